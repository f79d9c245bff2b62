"""The trainer's fast path on CUDA: the same training step as `Trainer._step`, with far fewer host launches.

Why (measured on an H200, docs/performance.md): an SDXL LoRA step in the sd-scripts style is bound by the host,
not the GPU. Each of the ~20,000 small eager CUDA ops costs about 9 µs of Python/launch time, the fp32 LoRA
weights are cast to bf16 in every forward and backward, and `loss.item()` drains the queue every step. So:

- LoRA weights are computed in the mixed-precision dtype from one flat bf16 copy of the fp32 weights
  (refreshed by one kernel per step); the optimizer keeps fp32 weights and state (one flat fp32 gradient,
  filled by one copy). Same arithmetic as autocast casting fp32 LoRA weights at every use.
- The whole step (noise, UNet forward/backward, gradient clipping, AdamW) is captured once per batch shape
  in a CUDA graph and replayed; the GPU then runs back to back. Random numbers come from the same CUDA
  generator (graph-safe Philox offsets), so the run stays seeded.
- Latents and cached text-encoder outputs live on the GPU; the text encoders leave the GPU once every caption
  is encoded (as sd-scripts does with `cache_text_encoder_outputs`); per-step host→device copies are pinned
  and non-blocking.
- AdamW runs fused (one multi-tensor kernel).
- The frozen bf16 U-Net runs without autocast (its norms read and write bf16, as every other layer does), and a
  LoRA's up-projection is added to the frozen layer's output inside one matrix product (`addmm`).
- A LoRA-wrapped GEGLU projection (the transformer blocks' widest layer) produces its two halves as two
  contiguous products instead of one output split by `chunk` (`_geglu_forward`).
- `--torch_compile` compiles the U-Net's repeated blocks (regional compilation, diffusers'
  `compile_repeated_blocks`) inside the captured step; the fused LoRA sums stay in place there as custom
  operators.

Everything falls back to the plain path (`Trainer._step`) when it does not apply (CPU, text-encoder training,
gradient accumulation, dropout options, captions that change between epochs, fp16) and to eager steps when
CUDA graphs do not apply (optimizer other than torch's AdamW/Adam, host-random noise options) or capture fails.
Switches (sd-scripts style command-line/TOML options, see `SPEED_OPTIONS`): `no_cuda_graphs`,
`lora_fp32_weights`, `channels_last`, `unet_autocast`, `torch_compile_resnets`, and sd-scripts' own
`torch_compile`/`dynamo_backend`;
environment `LORA_TUI_FAST_PATH=0` turns the whole fast path off
(`=1` forces it on a CPU, for tests).

This module imports torch only inside functions: `args.py` reads `SPEED_OPTIONS` without torch.
"""
from __future__ import annotations

import functools
import os
import sys

# Options this trainer adds to sd-scripts' command line (argparse spec in args_catalogue.json's shape).
SPEED_OPTIONS = {
    "no_cuda_graphs": {"action": "_StoreTrueAction", "type": None, "nargs": 0, "choices": None, "default": False},
    "lora_fp32_weights": {"action": "_StoreTrueAction", "type": None, "nargs": 0, "choices": None,
                          "default": False},
    "channels_last": {"action": "_StoreTrueAction", "type": None, "nargs": 0, "choices": None, "default": False},
    "unet_autocast": {"action": "_StoreTrueAction", "type": None, "nargs": 0, "choices": None, "default": False},
    # --torch_compile plus the ResNet blocks (implies --torch_compile): faster steps, a longer cold compile
    "torch_compile_resnets": {"action": "_StoreTrueAction", "type": None, "nargs": 0, "choices": None,
                              "default": False},
}

# U-Net block classes compiled by `--torch_compile` (regional compilation). diffusers lists only the transformer
# block for UNet2DConditionModel; `--torch_compile_resnets` adds the ResNet blocks; `LORA_TUI_COMPILE_BLOCKS`
# (comma-separated class names) overrides both, for benchmarks.
COMPILE_BLOCKS = ("BasicTransformerBlock",)
COMPILE_RESNET_BLOCKS = ("ResnetBlock2D",)
# Compiled variants kept per block class (distinct shapes x batch sizes); torch's default of 8 is too few for
# bucketed data sets, and a block past the limit silently runs eagerly.
COMPILE_RECOMPILE_LIMIT = 64

# Eager steps per batch shape before its graph is captured (lazy CUDA/cuBLAS set-up must happen outside capture).
WARMUP_STEPS = 2
# Batch shapes that get their own graph; further shapes run eagerly (each graph keeps its inputs alive).
MAX_GRAPHS = 4
# Latents moved to the GPU only up to this many bytes (a 1024 px SDXL latent is 256 KiB in fp32).
MAX_GPU_LATENT_BYTES = 4 * 2**30

# Benchmarks append callables here; each gets (fast_path, event) with event "step" after every step.
STEP_HOOKS: list = []


def _log(msg: str, trainer=None) -> None:
    """INFO line on stderr, from the main process only (as the trainer's own log lines)."""
    if trainer is not None and not trainer.acc.is_main_process:
        return
    print(f"INFO {msg}", file=sys.stderr, flush=True)


def host_to_device(values, dtype, device):
    """A small host list as a tensor on `device` without blocking the host: pinned memory and a non-blocking
    copy on CUDA (a plain `torch.tensor(..., device=cuda)` waits for the whole queue to drain)."""
    import torch

    t = torch.tensor(values, dtype=dtype)
    if getattr(device, "type", str(device)) == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def fast_path_refusal(trainer) -> str | None:
    """Why the fast path cannot run this training (a short reason), or None when it can."""
    args = trainer.args
    env = os.environ.get("LORA_TUI_FAST_PATH", "")
    if env == "0":
        return "LORA_TUI_FAST_PATH=0"
    if trainer.acc.device.type != "cuda" and env != "1":
        return "no CUDA device"
    if trainer.te_trained:
        return "text-encoder training"
    if trainer.cond_cache is None:
        return "captions change between epochs (shuffle_caption/caption dropout)"
    if int(args.gradient_accumulation_steps) != 1:
        return "gradient_accumulation_steps > 1"
    if trainer.mixed_precision not in ("bf16", "no"):
        return f"mixed_precision {trainer.mixed_precision}"
    if getattr(args, "full_bf16", False) or getattr(args, "full_fp16", False):
        # half-precision LoRA weights updated in place (sd-scripts' full_bf16): no fp32 master copy wanted
        return "full_bf16/full_fp16"
    if args.network_dropout or any(m.rank_dropout or m.module_dropout for m in trainer.network.unet_modules):
        return "network dropout options"
    if trainer.acc.num_processes != 1:
        return "several processes"
    # features whose step differs from the captured one (masks, fp8 layers, per-step image/caption changes)
    for opt in ("fp8_base", "fp8_base_unet", "masked_loss", "alpha_mask", "color_aug", "face_crop_aug_range",
                "weighted_captions", "token_warmup_step"):
        if getattr(args, opt, None):
            return opt
    if any(getattr(it, "mask", None) is not None or getattr(it, "cond_path", None) is not None
           for it in trainer.dataset.samples[:1000]):
        return "loss masks"
    if getattr(trainer.dataset, "validation", None) is not None:
        return "validation_split"
    if not trainer.network.unet_modules:
        return "no U-Net LoRA modules"
    return None


def setup_fast_path(trainer):
    """A `FastPath` for `trainer` (called after the optimizer, scheduler and noise schedule exist), or None
    with a log line saying why the plain path is used."""
    why = fast_path_refusal(trainer)
    if why is not None:
        _log(f"fast path off ({why}): plain training steps", trainer)
        return None
    return FastPath(trainer)


def _no_rng_checkpoint(module, *args):
    """diffusers' gradient-checkpointing call without saving/restoring the RNG state (the UNet draws no random
    numbers: its dropouts are 0), which CUDA graph capture does not allow."""
    import torch.utils.checkpoint

    return torch.utils.checkpoint.checkpoint(module.__call__, *args, use_reentrant=False, preserve_rng_state=False)


class _CastMemo:
    """The last input cast to the compute dtype, shared by consecutive LoRA-wrapped layers that read the same
    tensor (attention's to_q/to_k/to_v all read one LayerNorm output): one bf16 copy is made and saved for
    backward instead of one per layer. Holds one reference to the last input until the next different one."""

    def __init__(self):
        self.src = None
        self.out = None
        self.version = -1

    def cast(self, x, dtype):
        if x.dtype == dtype or not x.is_floating_point():
            return x
        if x is self.src and x._version == self.version and self.out.dtype == dtype:
            return self.out
        self.src, self.out, self.version = x, x.to(dtype), x._version
        return self.out


def _lora_forward(lora, org_forward, down, up, memo: "_CastMemo | None", compiled: bool = False):
    """Forward of one wrapped layer: `org(x) + up(down(x)) * multiplier * alpha / rank`, as `LoRAModule.forward`
    without dropout, with `down`/`up` weights already in the compute dtype.

    An input in another dtype (under autocast: the fp32 output of a LayerNorm/GroupNorm) is cast once (`memo`)
    and that copy feeds the frozen layer and the LoRA of every layer reading it: the same values autocast would
    produce by casting at each use; fewer casts and fewer saved copies (their input-gradients are summed in bf16).
    `memo` None (compiled blocks: the compiler merges the casts itself) casts at each use.

    For a Linear layer the up-projection and the sum are one `addmm` on the frozen output (cuBLAS adds it in
    the product's epilogue): no separate LoRA output tensor is written and read back; the backward does the
    same for the input gradient (`_lora_linear_function`; `LORA_TUI_LORA_FN=0`, for benchmarks, keeps
    autograd's own backward). `compiled` (the layer runs inside a `torch.compile`d block): the same sums as
    opaque custom ops (`_lora_linear_op`), because the compiler rewrites the in-place `addmm_` out of place,
    which costs a full copy of the output first."""
    import torch
    import torch.nn.functional as F

    dtype = down.dtype

    def cast(x):
        if memo is not None:
            return memo.cast(x, dtype)
        return x if x.dtype == dtype or not x.is_floating_point() else x.to(dtype)

    if lora.lora_down.__class__.__name__ == "Conv2d":
        cd = lora.lora_down
        stride, padding, dilation = cd.stride, cd.padding, cd.dilation

        def forward(x):
            x = cast(x)
            base = org_forward(x)
            y = F.conv2d(F.conv2d(x, down, None, stride, padding, dilation), up)
            s = lora.multiplier * lora.scale
            return base + (y * s if s != 1.0 else y)
    elif os.environ.get("LORA_TUI_LORA_FN", "1") != "0" \
            and getattr(org_forward, "__func__", None) is torch.nn.Linear.forward:
        org = org_forward.__self__
        if compiled:
            op = _lora_linear_op()

            def forward(x):
                x = cast(x)
                out, _ = op(x.reshape(-1, x.shape[-1]), org.weight, org.bias, down, up,
                            lora.multiplier * lora.scale)
                return out.view(*x.shape[:-1], out.shape[-1])
        else:
            fn = _lora_linear_function()

            def forward(x):
                return fn.apply(cast(x), org.weight, org.bias, down, up, lora.multiplier * lora.scale)
    else:
        def forward(x):
            x = cast(x)
            base = org_forward(x)
            h = F.linear(x, down)
            out = torch.addmm(base.reshape(-1, base.shape[-1]), h.reshape(-1, h.shape[-1]), up.t(),
                              alpha=lora.multiplier * lora.scale)
            return out.view(base.shape)
    return forward


def _frozen_plus_lora(x2, weight, bias, h, up, scale):
    """`x2 W^T + b + scale h U^T` (2-D, (M, N)), the LoRA sum added in place into the frozen product's output
    (cuBLAS accumulates it in the second product's epilogue: no separate LoRA output is written)."""
    import torch

    out = torch.addmm(bias, x2, weight.t()) if bias is not None else torch.mm(x2, weight.t())
    return out.addmm_(h, up.t(), alpha=scale)


def _dx_in_place(g2, weight, gh, down):
    """The input gradient of a LoRA-wrapped Linear, `g W + gh D` (2-D), the LoRA share summed in place."""
    import torch

    return torch.mm(g2, weight).addmm_(gh, down)


def _lora_linear_backward(ctx, g2, dx_of):
    """The backward shared by `_lora_linear_function` and `_lora_linear_op`, from `ctx.saved_tensors` = (x2, h,
    W, D, U), `ctx.scale` and `ctx.needs_input_grad` (inputs x, W, b, D, U, scale): gh = s g U; dx =
    `dx_of(g2, W, gh, D)` (2-D); dD = gh^T x2; dU = s g^T h. Returns the six input gradients."""
    import torch

    x2, h, weight, down, up = ctx.saved_tensors
    s = ctx.scale
    gh = torch.mm(g2, up)
    if s != 1.0:
        gh = gh * s
    needs = ctx.needs_input_grad
    dx = dx_of(g2, weight, gh, down) if needs[0] else None
    d_down = torch.mm(gh.t(), x2) if needs[3] else None
    d_up = None
    if needs[4]:
        d_up = torch.mm(g2.t(), h)
        if s != 1.0:
            d_up = d_up * s
    return dx, None, None, d_down, d_up, None


@functools.cache
def _lora_linear_function():
    """`torch.autograd.Function` for a frozen Linear plus its LoRA, `y = x W^T + b + s (x D^T) U^T`, with both
    sums inside the matrix products (`addmm`), forward and backward.

    Shapes: x (..., K) in the compute dtype; W (N, K) and b (N,) frozen; D (r, K), U (N, r) the LoRA compute
    weights; s = multiplier * alpha / r. Saved for backward: x (already kept alive by the caller's graph) and
    h = x D^T (M x r, small). Backward: gh = s g U; dx = g W + gh D in one `addmm` (autograd would write the
    LoRA's share of dx and add it in a separate kernel); dD = gh^T x; dU = s g^T h. Same arithmetic as
    autograd through `_lora_forward`'s unfused form up to the order of bf16 sums."""
    import torch

    class LoRALinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, down, up, scale):
            shape = x.shape
            x2 = x.reshape(-1, shape[-1])
            h = torch.mm(x2, down.t())
            out = _frozen_plus_lora(x2, weight, bias, h, up, scale)
            ctx.save_for_backward(x2, h, weight, down, up)
            ctx.scale = scale
            ctx.x_shape = shape
            return out.view(*shape[:-1], out.shape[-1])

        @staticmethod
        def backward(ctx, g):
            grads = _lora_linear_backward(ctx, g.reshape(-1, g.shape[-1]), _dx_in_place)
            dx = grads[0].view(ctx.x_shape) if grads[0] is not None else None
            return (dx, *grads[1:])

    return LoRALinear


@functools.cache
def _lora_linear_op():
    """The fused LoRA Linear of `_lora_linear_function` as custom operators (`torch.library.custom_op`), for
    layers inside `torch.compile`d blocks: `lora_tui::lora_linear(x2, W, b, D, U, s) -> (y, h)` and, in its
    backward, `lora_tui::lora_linear_dx(g2, W, gh, D) -> dx`. Shapes as there, with x2 (M, K) and g2 (M, N) 2-D.

    Why opaque: AOTAutograd functionalizes the in-place `addmm_` into an out-of-place `addmm` with a full (M, N)
    input, and ATen's `addmm` then first copies that input into its output: a device-to-device copy of every
    LoRA layer's output and input gradient (11 ms a step at SDXL batch 4 on an H200, docs/performance.md).
    Inside an operator the product accumulates in place, as in eager mode. The LoRA weight gradients stay
    plain products in the compiled backward. Created once per process (operator names are global)."""
    import torch

    # explicit schemas: this module's postponed annotations are strings, which torch cannot infer from
    @torch.library.custom_op("lora_tui::lora_linear", mutates_args=(), schema=(
        "(Tensor x2, Tensor weight, Tensor? bias, Tensor down, Tensor up, float scale) -> (Tensor, Tensor)"))
    def lora_linear(x2, weight, bias, down, up, scale):
        h = torch.mm(x2, down.t())
        return _frozen_plus_lora(x2, weight, bias, h, up, scale), h

    @lora_linear.register_fake
    def _(x2, weight, bias, down, up, scale):
        return x2.new_empty(x2.shape[0], weight.shape[0]), x2.new_empty(x2.shape[0], down.shape[0])

    @torch.library.custom_op("lora_tui::lora_linear_dx", mutates_args=(),
                             schema="(Tensor g2, Tensor weight, Tensor gh, Tensor down) -> Tensor")
    def lora_linear_dx(g2, weight, gh, down):
        return _dx_in_place(g2, weight, gh, down)

    @lora_linear_dx.register_fake
    def _(g2, weight, gh, down):
        return g2.new_empty(g2.shape[0], weight.shape[1])

    def setup_context(ctx, inputs, output):
        x2, weight, _bias, down, up, scale = inputs
        ctx.save_for_backward(x2, output[1], weight, down, up)
        ctx.scale = scale

    def backward(ctx, g, _gh_out):
        return _lora_linear_backward(ctx, g, lora_linear_dx)

    lora_linear.register_autograd(backward, setup_context=setup_context)
    return lora_linear


def _geglu_forward(geglu, lora, down, up, memo: "_CastMemo | None"):
    """Forward of a diffusers `GEGLU` whose `proj` Linear carries a LoRA: `a * gelu(b)` where `[a, b]` is the
    LoRA-wrapped projection of x, as `GEGLU.forward` computes it, but with the two halves produced as two
    separate contiguous products (`_geglu_proj_op`) instead of one (M, 2I) output split by `chunk`.

    Why: `chunk` leaves two strided halves, so the GELU and the product run as non-vectorized strided kernels,
    and their backward writes both gradients into one (M, 2I) tensor (a concatenation). Two contiguous halves
    make every one of those elementwise passes a plain contiguous one (or one fused kernel under
    `torch.compile`). Same arithmetic as `_lora_forward` then `GEGLU.forward`: each half is its rows of the
    frozen weight, bias and LoRA up-projection, with the LoRA down-projection h = x D^T computed once."""
    op = _geglu_proj_op()

    def forward(hidden_states, *args, **kwargs):
        x = hidden_states
        if memo is not None:
            x = memo.cast(x, down.dtype)
        elif x.dtype != down.dtype and x.is_floating_point():
            x = x.to(down.dtype)
        p = geglu.proj
        a, b, _ = op(x.reshape(-1, x.shape[-1]), p.weight, p.bias, down, up, lora.multiplier * lora.scale)
        shape = (*x.shape[:-1], a.shape[-1])
        return a.view(shape) * geglu.gelu(b.view(shape))
    return forward


@functools.cache
def _geglu_proj_op():
    """Custom operator `lora_tui::lora_geglu_proj(x2, W, b, D, U, s) -> (a, g, h)`: the two halves of a
    LoRA-wrapped GEGLU projection, `a = x2 W[:I]^T + b[:I] + s h U[:I]^T` and `g` the same with rows `I:`,
    and `h = x2 D^T`. Shapes: x2 (M, K), W (2I, K), b (2I,) or None, D (r, K), U (2I, r); a, g (M, I), h (M, r).
    Each sum happens inside its `addmm`, in place (an operator, so `torch.compile` keeps it in place too: see
    `_lora_linear_op`). Backward: gh = s (ga U[:I] + gg U[I:]); dx = ga W[:I] + gg W[I:] + gh D (one
    accumulating operator); dD = gh^T x2; dU = s [ga^T h; gg^T h]."""
    import torch

    @torch.library.custom_op("lora_tui::lora_geglu_proj", mutates_args=(), schema=(
        "(Tensor x2, Tensor weight, Tensor? bias, Tensor down, Tensor up, float scale) -> (Tensor, Tensor, Tensor)"))
    def geglu_proj(x2, weight, bias, down, up, scale):
        n = weight.shape[0] // 2
        h = torch.mm(x2, down.t())
        a, g = (_frozen_plus_lora(x2, weight[sl], bias[sl] if bias is not None else None, h, up[sl], scale)
                for sl in (slice(0, n), slice(n, 2 * n)))
        return a, g, h

    @geglu_proj.register_fake
    def _(x2, weight, bias, down, up, scale):
        n = weight.shape[0] // 2
        return x2.new_empty(x2.shape[0], n), x2.new_empty(x2.shape[0], n), x2.new_empty(x2.shape[0], down.shape[0])

    @torch.library.custom_op("lora_tui::lora_geglu_dx", mutates_args=(),
                             schema="(Tensor ga, Tensor gg, Tensor weight, Tensor gh, Tensor down) -> Tensor")
    def geglu_dx(ga, gg, weight, gh, down):
        n = weight.shape[0] // 2
        return torch.mm(ga, weight[:n]).addmm_(gg, weight[n:]).addmm_(gh, down)

    @geglu_dx.register_fake
    def _(ga, gg, weight, gh, down):
        return ga.new_empty(ga.shape[0], weight.shape[1])

    def setup_context(ctx, inputs, output):
        x2, weight, _bias, down, up, scale = inputs
        ctx.save_for_backward(x2, output[2], weight, down, up)
        ctx.scale = scale

    def backward(ctx, ga, gg, _gh_out):
        x2, h, weight, down, up = ctx.saved_tensors
        s = ctx.scale
        n = weight.shape[0] // 2
        ga = ga if ga is not None else torch.zeros_like(gg)
        gg = gg if gg is not None else torch.zeros_like(ga)
        gh = torch.mm(ga, up[:n]).addmm_(gg, up[n:])
        if s != 1.0:
            gh = gh * s
        dx = geglu_dx(ga, gg, weight, gh, down) if ctx.needs_input_grad[0] else None
        d_down = torch.mm(gh.t(), x2) if ctx.needs_input_grad[3] else None
        d_up = None
        if ctx.needs_input_grad[4]:
            d_up = torch.cat([torch.mm(ga.t(), h), torch.mm(gg.t(), h)])
            if s != 1.0:
                d_up = d_up * s
        return dx, None, None, d_down, d_up, None

    geglu_proj.register_autograd(backward, setup_context=setup_context)
    return geglu_proj


def compile_unet(trainer) -> str:
    """sd-scripts' `--torch_compile` with `--dynamo_backend`: compile the U-Net's repeated blocks in place
    (regional compilation through diffusers' `compile_repeated_blocks`; a whole-U-Net compile took ~9 minutes
    on an H200, notes/gpu_ceiling.md). Compilation happens at the first steps (the fast path's eager warm-up
    steps, before any CUDA graph capture). The blocks: the transformer blocks, plus the ResNet blocks with
    `--torch_compile_resnets` (SDXL batch 4 on an H200: +4 % and +8.5 % images/s; ~13 s and ~55 s more start-up
    on a cold inductor cache, docs/performance.md). Returns a note for the log.

    Raises OptionError for a backend torch does not have."""
    import torch

    from .args import OptionError

    backend = trainer.args.dynamo_backend
    if not backend or backend == "no":  # kohya_ss writes accelerate's "no" into the TOML: sd-scripts' default
        backend = "inductor"
    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise OptionError(f"dynamo_backend {backend!r}: not available in this torch "
                          f"(available: {', '.join(torch._dynamo.list_backends())})")
    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    setattr(cfg, name, max(getattr(cfg, name), COMPILE_RECOMPILE_LIMIT))
    unet = trainer.model.unet
    env = os.environ.get("LORA_TUI_COMPILE_BLOCKS", "")
    blocks = [b for b in env.split(",") if b] if env else \
        list(COMPILE_BLOCKS) + (list(COMPILE_RESNET_BLOCKS) if trainer.args.torch_compile_resnets else [])
    unet._repeated_blocks = blocks  # this instance only; diffusers reads the attribute
    # Static shapes: a batch shape compiles once per block shape (SDXL: 2 transformer-block shapes, 12 ResNet
    # ones). Symbolic shapes for the ResNet blocks compiled for 160 s and ran no faster (run 11).
    unet.compile_repeated_blocks(backend=backend, dynamic=False)
    n = sum(1 for m in unet.modules() if type(m).__name__ in blocks)
    return f"torch.compile ({backend}) of {n} U-Net blocks ({', '.join(blocks)})"


class FastPath:
    """Runs training steps for a `Trainer` (see the module docstring). `step()` returns the loss as a 0-dim
    device tensor (read it before the next step: a graph replay overwrites it)."""

    def __init__(self, trainer):
        import torch

        self.t = trainer
        args = trainer.args
        self.dev = trainer.acc.device
        self.cuda = self.dev.type == "cuda"
        self.steps = 0
        self.max_grad_norm = float(args.max_grad_norm) if args.max_grad_norm else 0.0
        unet = trainer.model.unet
        self.notes: list[str] = []

        self._cache_conditioning()
        self._latents_to_device()

        # flat fp32 master weights/grads, and (mixed precision) a flat compute copy
        mods = trainer.network.unet_modules
        params = [p for m in mods for p in (m.lora_down.weight, m.lora_up.weight)]
        n = sum(p.numel() for p in params)
        self.master = torch.empty(n, dtype=torch.float32, device=self.dev)
        self.master_grad = torch.zeros(n, dtype=torch.float32, device=self.dev)
        self.params = params
        self._grad_views = []
        o = 0
        for p in params:
            k = p.numel()
            self.master[o:o + k].copy_(p.detach().reshape(-1))
            p.data = self.master[o:o + k].view(p.shape)
            self._grad_views.append(self.master_grad[o:o + k].view(p.shape))
            o += k
        compute_dtype = torch.bfloat16 if trainer.mixed_precision == "bf16" else torch.float32
        self.compute = self.compute_grad = None
        if compute_dtype != torch.float32 and not args.lora_fp32_weights:
            self.compute = torch.empty(n, dtype=compute_dtype, device=self.dev)
            self.compute_grad = torch.zeros(n, dtype=compute_dtype, device=self.dev)
            o = 0
            views = []
            for p in params:
                k = p.numel()
                w = self.compute[o:o + k].view(p.shape)
                w.requires_grad_(True)
                w.grad = self.compute_grad[o:o + k].view(p.shape)
                views.append(w)
                o += k
            memo = None if args.torch_compile else _CastMemo()
            gegl = {id(g.proj): g for g in unet.modules() if type(g).__name__ == "GEGLU"} \
                if os.environ.get("LORA_TUI_GEGLU_SPLIT", "1") != "0" else {}
            n_split = 0
            for i, m in enumerate(mods):
                org = m._org[0]
                org.forward = _lora_forward(m, m._org_forward, views[2 * i], views[2 * i + 1], memo,
                                            compiled=bool(args.torch_compile))
                g = gegl.get(id(org))
                if g is not None and getattr(m._org_forward, "__func__", None) is torch.nn.Linear.forward:
                    g.forward = _geglu_forward(g, m, views[2 * i], views[2 * i + 1], memo)
                    n_split += 1
            if n_split:
                self.notes.append(f"GEGLU halves computed apart ({n_split} layers)")
            self._compute_views = views
            self.notes.append(f"LoRA weights {str(compute_dtype).replace('torch.', '')} in the step "
                              f"(fp32 master weights and optimizer state)")
            if not args.unet_autocast and next(unet.parameters()).dtype == compute_dtype:
                # every input of the frozen U-Net is already in its dtype (see `_lora_forward`): autocast would
                # only move the norms to fp32 (extra casts, fp32 activations saved for backward)
                trainer.unet_autocast = False
                self.notes.append(f"U-Net {str(compute_dtype).replace('torch.', '')} without autocast")
        else:
            self.notes.append("LoRA weights fp32 (cast at each use)")
        self._assign_grads()

        if args.gradient_checkpointing:
            unet.enable_gradient_checkpointing(gradient_checkpointing_func=_no_rng_checkpoint)
        if args.channels_last:
            unet.to(memory_format=torch.channels_last)
            self.notes.append("channels_last")
        if args.torch_compile:
            self.notes.append(compile_unet(trainer))

        self.inner_opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
        opt_ok = type(self.inner_opt) in (torch.optim.AdamW, torch.optim.Adam)
        self.fused = opt_ok and self.cuda
        noise_ok = not (args.noise_offset_random_strength or args.multires_noise_iterations)
        self.graphs = self.cuda and opt_ok and noise_ok and not args.no_cuda_graphs
        why_not = ("no_cuda_graphs" if args.no_cuda_graphs else "optimizer is not torch AdamW/Adam" if not opt_ok
                   else "noise option with host randomness" if not noise_ok else "no CUDA device")
        self.notes.append("CUDA graphs" if self.graphs else f"eager steps ({why_not})")
        if self.fused:
            self.notes.append("fused AdamW")
        self._graphs: dict = {}
        self._seen: dict = {}
        self._pool = None
        self._lr_tensors = None
        self._opt_ready = False
        _log("fast path: " + ", ".join(self.notes), trainer)

    # ------------------------------------------------------------ set-up
    def _cache_conditioning(self):
        """Encode every caption once (captions are static here) and take the text encoders off the GPU."""
        import torch

        from .dataset import process_caption
        import random

        t = self.t
        caps = []
        seen = set()
        for it in t.dataset.samples:
            c = process_caption(it.caption, t.args, 1, random.Random(0))
            if c not in seen:
                seen.add(c)
                caps.append(c)
        for i in range(0, len(caps), 16):
            t._encode(caps[i:i + 16])
        if self.cuda:
            for te in t.model.text_encoders:
                te.to("cpu")
            torch.cuda.empty_cache()
        self._te_on_device = not self.cuda

    def _latents_to_device(self):
        items = list({id(it): it for it in self.t.dataset.samples}.values())
        total = sum(x.numel() * x.element_size() for it in items
                    for x in (it.latents, it.latents_flipped) if x is not None)
        if total > MAX_GPU_LATENT_BYTES:
            return
        for it in items:
            if it.latents is not None:
                it.latents = it.latents.to(self.dev)
            if it.latents_flipped is not None:
                it.latents_flipped = it.latents_flipped.to(self.dev)

    def _assign_grads(self):
        for p, g in zip(self.params, self._grad_views):
            p.grad = g

    def _prepare_optimizer(self):
        """At the first step (after a `resume` may have replaced the groups and state): step counts on the
        device, as fused/capturable AdamW wants them, and the gradient views in place."""
        import torch

        if self.fused:
            for st in self.inner_opt.state.values():
                if "step" in st and torch.is_tensor(st["step"]) and st["step"].device != self.dev:
                    st["step"] = st["step"].to(self.dev, torch.float32)
        self._assign_grads()
        self._opt_ready = True

    def _fused_flags(self, on: bool):
        """Fused + capturable AdamW while the fast path steps or captures; the groups' own flags otherwise, so a
        saved optimizer state (`save_state`) still loads in a plain or CPU run."""
        if not self.fused:
            return
        if on:
            self._saved_flags = [(g.get("fused"), g.get("foreach"), g.get("capturable"))
                                 for g in self.inner_opt.param_groups]
            for g in self.inner_opt.param_groups:
                g["fused"], g["foreach"], g["capturable"] = True, None, True
        else:
            for g, (f, fe, c) in zip(self.inner_opt.param_groups, self._saved_flags):
                g["fused"], g["foreach"], g["capturable"] = f, fe, c

    # ------------------------------------------------------------ the step
    def _encode(self, captions):
        t = self.t
        if not self._te_on_device and not all(c in t.cond_cache for c in captions):
            for te in t.model.text_encoders:  # a caption we did not see at set-up: encode it the slow way
                te.to(self.dev)
            try:
                return t._encode(captions)
            finally:
                for te in t.model.text_encoders:
                    te.to("cpu")
        return t._encode(captions)

    def _device_step(self, latents, ctx, pooled, time_ids, weights):
        """One optimizer step from device tensors; no host sync (captured in a CUDA graph)."""
        import torch

        if self.compute is not None:
            self.compute.copy_(self.master)
            self.compute_grad.zero_()
        else:
            self.master_grad.zero_()
        loss = self.t._forward_loss(latents, ctx, pooled, time_ids, weights)
        loss.backward()
        if self.compute is not None:
            self.master_grad.copy_(self.compute_grad)
        if self.max_grad_norm:
            # torch.nn.utils.clip_grad_norm_ over all LoRA grads, on the one flat buffer
            norm = torch.linalg.vector_norm(self.master_grad)
            self.master_grad.mul_(torch.clamp(self.max_grad_norm / (norm + 1e-6), max=1.0))
        self.inner_opt.step()
        if self.compute is not None:  # sampling between steps uses the compute copy: keep it current
            self.compute.copy_(self.master)
        return loss.detach()

    def _eager(self, inputs, side_stream: bool):
        import torch

        self._fused_flags(True)
        try:
            if not side_stream:
                return self._device_step(*inputs)
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                loss = self._device_step(*inputs)
            torch.cuda.current_stream().wait_stream(s)
            return loss
        finally:
            self._fused_flags(False)

    def _capture(self, inputs):
        import torch

        static = [x.clone() if x is not None else None for x in inputs]
        groups = self.inner_opt.param_groups
        if self._lr_tensors is None:
            self._lr_tensors = [torch.zeros((), dtype=torch.float32, device=self.dev) for _ in groups]
        floats = [g["lr"] for g in groups]
        for g, lt in zip(groups, self._lr_tensors):
            lt.fill_(float(g["lr"]))
            g["lr"] = lt
        graph = torch.cuda.CUDAGraph()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        torch.cuda.synchronize()
        self._fused_flags(True)
        try:
            with torch.cuda.graph(graph, pool=self._pool):
                out = self._device_step(*static)
        finally:
            self._fused_flags(False)
            for g, f in zip(groups, floats):
                g["lr"] = f
        return {"graph": graph, "inputs": static, "loss": out}

    def step(self, batch, epoch, rng):
        """One training step (host inputs, then the device step as a graph replay or eagerly), then the LR
        scheduler; returns the loss (0-dim device tensor)."""
        import time

        import torch

        t = self.t
        if not self._opt_ready:
            self._prepare_optimizer()
        latents, captions, time_ids, weights = t._batch_inputs(batch, epoch, rng)
        ctx, pooled = self._encode(captions)
        inputs = (latents, ctx, pooled, time_ids, weights)
        if self.graphs:
            key = tuple(None if x is None else (tuple(x.shape), x.dtype) for x in inputs)
            g = self._graphs.get(key)
            if g is None:
                n = self._seen.get(key, 0)
                self._seen[key] = n + 1
                if n < WARMUP_STEPS or len(self._graphs) >= MAX_GRAPHS:
                    loss = self._eager(inputs, side_stream=True)
                else:
                    t0 = time.perf_counter()
                    try:
                        g = self._capture(inputs)
                    except Exception as e:  # a capture failure must not end the run: go on eagerly
                        print(f"WARNING CUDA graph capture failed ({type(e).__name__}: {e}); "
                              f"eager steps from now on", file=sys.stderr, flush=True)
                        self.graphs = False
                        self._assign_grads()
                        torch.cuda.synchronize()
                        loss = self._eager(inputs, side_stream=False)
                    else:
                        self._graphs[key] = g
                        _log(f"CUDA graph captured for batch shape {tuple(latents.shape)} in "
                             f"{time.perf_counter() - t0:.2f} s", t)
            if g is not None:
                for dst, src in zip(g["inputs"], inputs):
                    if dst is not None:
                        dst.copy_(src, non_blocking=True)
                for grp, lt in zip(self.inner_opt.param_groups, self._lr_tensors):
                    lt.fill_(float(grp["lr"]))
                g["graph"].replay()
                loss = g["loss"]
        else:
            loss = self._eager(inputs, side_stream=False)
        t.scheduler.step()
        self.steps += 1
        for h in STEP_HOOKS:
            h(self, "step")
        return loss
