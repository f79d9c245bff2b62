"""SD3 / SD3.5 LoRA training (`sd3_train_network.py`): the SD3 family of the shared `Trainer`, with sd-scripts'
`sd3_train_network.py` rules (`library/sd3_train_utils.py`, `library/strategy_sd3.py`).

Conditioning (`Sd3TextEncodingStrategy`): CLIP-L and CLIP-G penultimate hidden states concatenated on channels and
zero-padded to the T5 width, then T5-XXL's last hidden state appended on the token axis (77 + t5xxl_max_token_length
tokens); pooled = CLIP-L and CLIP-G projected embeddings concatenated. `apply_lg_attn_mask` / `apply_t5_attn_mask`
pass the padding masks to the text encoders (the MMDiT gets none, as in sd-scripts). `clip_l_dropout_rate`,
`clip_g_dropout_rate`, `t5_dropout_rate` zero that encoder's part of a sample's conditioning.

Training step (`get_noisy_model_input_and_timesteps`): u from `weighting_scheme` (logit_normal: sigmoid(N(logit_mean,
logit_std)); mode: `mode_scale`; else uniform), shifted by `training_shift` (u·s / (1 + (s − 1)·u)), timesteps =
⌊u·(max_timestep − min_timestep) + min_timestep⌋, σ = t / 1000, x_σ = σ·n + (1 − σ)·x₀; the prediction v becomes
v·(−σ) + x_σ and the target is x₀; loss weight σ⁻² (sigma_sqrt), cosmap, or 1. Loss l2/l1, mean over C,H,W,
× prior_loss_weight, mean over the batch. SD-only options sd-scripts' SD3 trainer does not use are ignored with a
warning.
"""
from __future__ import annotations

import math
import random
import sys

from .args import OptionError, parse_args
from .console import log, out, warn
from .models import ModelError
from .train import EXIT_INTERRUPTED, Trainer

SCRIPT = "sd3_train_network"
_IGNORED_FOR_SD3 = ("noise_offset", "multires_noise_iterations", "adaptive_noise_scale", "min_snr_gamma",
                    "scale_v_pred_loss_like_noise_pred", "v_pred_like_loss", "debiased_estimation_loss",
                    "zero_terminal_snr", "v_parameterization", "clip_skip", "max_token_length", "ip_noise_gamma",
                    "save_clip", "save_t5xxl", "t5xxl_device")  # t5xxl_dtype: kohya_ss always writes it


def sd3_problems(args) -> list[str]:
    """sd3_train_network.py's own option checks (before any model loads); messages name the option."""
    msgs = []
    if (args.network_module or "networks.lora") != "networks.lora_sd3":
        msgs.append(f"network_module {args.network_module or 'networks.lora'!r}: sd3_train_network.py trains "
                    f"networks.lora_sd3; set network_module = \"networks.lora_sd3\"")
    if args.cache_text_encoder_outputs_to_disk and not args.cache_text_encoder_outputs:
        args.cache_text_encoder_outputs = True  # as sd-scripts' SD3 trainer does, with its warning
        warn("cache_text_encoder_outputs_to_disk is enabled, so cache_text_encoder_outputs is also enabled")
    if args.cache_text_encoder_outputs_to_disk:
        warn("cache_text_encoder_outputs_to_disk: this trainer keeps the text-encoder outputs in memory for the run "
             "(no _sd3_te.npz files are written); training is the same")
    if args.fp8_base_unet:
        args.fp8_base = True  # sd-scripts: fp8_base_unet turns fp8_base on for SD3
    if (args.loss_type or "l2") not in ("l2", "l1"):
        msgs.append(f"loss_type {args.loss_type!r}: SD3 training implements l2 and l1 here; use one of them")
    if args.torch_compile:
        msgs.append("torch_compile: not implemented for SD3 by this trainer; remove it")
    if args.scale_weight_norms and "split_qkv=True" in (args.network_args or []):
        msgs.append("scale_weight_norms cannot be combined with network_args split_qkv=True here; drop one")
    for name in ("clip_l_dropout_rate", "clip_g_dropout_rate", "t5_dropout_rate"):
        v = getattr(args, name, 0.0) or 0.0
        if not 0.0 <= float(v) <= 1.0:
            msgs.append(f"{name} {v}: give a rate between 0 and 1")
    for name in _IGNORED_FOR_SD3:
        v = getattr(args, name, None)
        if v not in (None, False, 0, 0.0, "") and not (name == "clip_skip" and v == 1):
            warn(f"{name} = {v!r} is not used by SD3 training (sd-scripts' sd3_train_network.py ignores it)")
    return msgs


def file_problems(args) -> list[str]:
    """The checkpoint and the clip_l/clip_g/t5xxl/vae files by header, and the parts neither given nor in the
    checkpoint; one message per problem (the run's and the preflight's check)."""
    from .sd3_models import FILE_OPTION, check_file, missing_parts

    problems = []
    ok = True
    for kind in ("checkpoint", "clip_l", "clip_g", "t5xxl", "vae"):
        if getattr(args, FILE_OPTION[kind], None) or kind == "checkpoint":
            try:
                check_file(kind, getattr(args, FILE_OPTION[kind]))
            except ModelError as e:
                problems.append(str(e))
                ok = ok and kind != "checkpoint"
    if ok and args.pretrained_model_name_or_path:
        problems += missing_parts(args)
    return problems


def _checks(args):
    """Everything checked before a model loads: options, the files (`file_problems`), the dataset blueprint.
    Returns the dataset; raises OptionError / ModelError / DatasetError (every line one problem)."""
    from .dataset import build_dataset
    from .options import validate

    problems = []
    try:
        validate(args, SCRIPT)
    except OptionError as e:
        problems.append(str(e))
    problems += file_problems(args)
    if problems:
        raise ModelError("\n".join(problems))
    return build_dataset(args, warn)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `sd3_train_network.py`; returns the exit code. With `--preflight` the checks only."""
    from .dataset import DatasetError

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--preflight" in argv:
        from .preflight import run
        return run(SCRIPT, [a for a in argv if a != "--preflight"])
    from .console import join_streams

    join_streams()
    try:
        args = parse_args(SCRIPT, argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        dataset = _checks(args)
        return SD3Trainer(args, "sd3", dataset).run()
    except (OptionError, ModelError, DatasetError) as e:
        for line in str(e).splitlines():
            print(f"ERROR: {line}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing saved (training had not started)", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


class SD3Trainer(Trainer):
    """The SD3 family of the shared training loop (see the module docstring)."""

    def _load_models(self):
        import torch

        from .sd3_models import load_sd3
        m = load_sd3(self.args, torch.float32)
        self.t5_max_len = int(self.args.t5xxl_max_token_length or 256)
        log(f"t5xxl_max_token_length: {self.t5_max_len}; SD3 model type {m.model_type}")
        return m

    def _make_network(self, unet, tes, na, network_dim, network_alpha, train_unet, train_te, conv_dim, conv_alpha):
        from .sd3_network import SD3LoRANetwork, sd3_network_options
        o = sd3_network_options(na)
        net = SD3LoRANetwork(unet, tes, network_dim, network_alpha, o, train_unet=train_unet, train_te=train_te,
                             dropout=self.args.network_dropout)
        if o["verbose"]:
            for m in net.te_modules + net.unet_modules:
                log(f"\t{m.lora_name:50} {m.rank}, {float(m.alpha)}")
            for name in net.skipped:
                log(f"\tskipped (dim 0): {name}")
        return net

    def _after_network(self, net) -> None:
        self.train_t5 = any(m.lora_name.startswith("lora_te3_") for m in net.te_modules)
        if self.train_t5 and self.args.cache_text_encoder_outputs:
            raise OptionError("network_args train_t5xxl=True: T5XXL is trained, so cache_text_encoder_outputs "
                              "cannot be used; turn one off")

    def _prepare_models(self, weight_dtype) -> None:
        """fp8_base: the frozen transformer's (and, unless fp8_base_unet, the untrained T5's) Linear weights stored
        in float8_e4m3fn, computed in the input's dtype (flux_train's fp8 mode)."""
        import torch

        from .flux_train import _fp8_forward

        args = self.args
        if not self.train_t5:
            self.model.text_encoders[2].eval()
        if not (args.fp8_base or args.fp8_base_unet):
            return
        targets = [self.model.transformer]
        if args.fp8_base and not args.fp8_base_unet and not self.train_t5:
            targets.append(self.model.text_encoders[2])
        lora_of = {}
        for m in self.network.te_modules + self.network.unet_modules:
            for j, part in enumerate(m._parts):
                lora_of[id(part)] = (m, j)
        n = 0
        for root in targets:
            for path, mod in root.named_modules():
                if isinstance(mod, torch.nn.Linear) and mod.weight.dtype != torch.float8_e4m3fn \
                        and not path.endswith("DenseReluDense.wo"):
                    fwd = _fp8_forward(mod)
                    if id(mod) in lora_of:
                        m, j = lora_of[id(mod)]
                        m._org_forwards[j] = fwd
                    else:
                        mod.forward = fwd
                    n += 1
        out(f"fp8 base: {n} Linear weights stored as float8_e4m3fn")

    def _setup_noise(self, dev) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        self.noise_scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000,
                                                               shift=float(self.args.training_shift))
        self.snr = None
        self.t5_cache: dict | None = {} if not getattr(self, "train_t5", False) else None

    # ---------------------------------------------------------------- conditioning
    def _encode_parts(self, captions: list[str]):
        """(lg (B, 77, L+G widths), t5 (B, L, D), pooled (B, Pl+Pg)) before dropout; untrained encoders' outputs
        kept per caption (cache_text_encoder_outputs or static captions)."""
        import torch

        m, args, dev = self.model, self.args, self.acc.device
        clip_l, clip_g, t5 = m.text_encoders
        if self.cond_cache is not None and all(c in self.cond_cache for c in captions):
            parts = [self.cond_cache[c] for c in captions]
            return tuple(torch.stack([p[i] for p in parts]) for i in range(3))
        train_clip = self.te_trained and any(x.lora_name.startswith(("lora_te1_", "lora_te2_"))
                                             for x in self.network.te_modules)
        outs, pooled = [], []
        with torch.set_grad_enabled(train_clip):
            for tok, enc in ((m.tokenizers[0], clip_l), (m.tokenizers[1], clip_g)):
                tk = tok(captions, max_length=77, padding="max_length", truncation=True, return_tensors="pt")
                mask = tk.attention_mask.to(dev) if args.apply_lg_attn_mask else None
                o = enc(tk.input_ids.to(dev), attention_mask=mask, output_hidden_states=True)
                outs.append(o.hidden_states[-2])
                pooled.append(o.text_embeds)
        lg = torch.cat(outs, dim=-1)
        pooled = torch.cat(pooled, dim=-1)
        if self.t5_cache is not None and all(c in self.t5_cache for c in captions):
            t5_out = torch.stack([self.t5_cache[c] for c in captions])
        else:
            tk = m.tokenizers[2](captions, max_length=self.t5_max_len, padding="max_length", truncation=True,
                                 return_tensors="pt")
            mask = tk.attention_mask.to(dev) if args.apply_t5_attn_mask else None
            with torch.set_grad_enabled(self.train_t5):
                t5_out = t5(tk.input_ids.to(dev), attention_mask=mask).last_hidden_state
            if self.t5_cache is not None and (self.cond_cache is not None or args.cache_text_encoder_outputs):
                for i, c in enumerate(captions):
                    self.t5_cache[c] = t5_out[i].detach()
        if self.cond_cache is not None:
            for i, c in enumerate(captions):
                self.cond_cache[c] = (lg[i].detach(), t5_out[i].detach(), pooled[i].detach())
        return lg, t5_out, pooled

    def _encode(self, captions: list[str]):
        """(context (B, 77 + L, D), pooled (B, Pl+Pg)) with the per-encoder caption dropout applied."""
        import torch

        args = self.args
        lg, t5_out, pooled = self._encode_parts(captions)
        lw = self.model.text_encoders[0].config.hidden_size
        lp = self.model.text_encoders[0].config.projection_dim
        rates = [float(args.clip_l_dropout_rate or 0), float(args.clip_g_dropout_rate or 0),
                 float(args.t5_dropout_rate or 0)]
        if any(rates):
            keep_lg = torch.ones_like(lg)
            keep_p = torch.ones_like(pooled)
            keep_t5 = torch.ones_like(t5_out)
            for i in range(len(captions)):
                if rates[0] and random.random() < rates[0]:
                    keep_lg[i, :, :lw] = 0
                    keep_p[i, :lp] = 0
                if rates[1] and random.random() < rates[1]:
                    keep_lg[i, :, lw:] = 0
                    keep_p[i, lp:] = 0
                if rates[2] and random.random() < rates[2]:
                    keep_t5[i] = 0
            lg, pooled, t5_out = lg * keep_lg, pooled * keep_p, t5_out * keep_t5
        lg = torch.nn.functional.pad(lg, (0, t5_out.shape[-1] - lg.shape[-1]))
        return torch.cat([lg, t5_out.to(lg.dtype)], dim=-2), pooled

    # ---------------------------------------------------------------- one step
    def _timesteps(self, bsz: int):
        """Timesteps (B,) as floats in [min_timestep, max_timestep) (sd-scripts' SD3 rule, drawn on the CPU)."""
        import torch

        args = self.args
        ws = args.weighting_scheme or "uniform"
        if ws == "logit_normal":
            u = torch.sigmoid(torch.normal(mean=float(args.logit_mean), std=float(args.logit_std), size=(bsz,)))
        elif ws == "mode":
            u = torch.rand(bsz)
            u = 1 - u - float(args.mode_scale) * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
        else:
            u = torch.rand(bsz)
        lo = args.min_timestep if args.min_timestep is not None else 0
        hi = args.max_timestep if args.max_timestep is not None else 1000
        s = float(args.training_shift)
        u = (u * s) / (1 + (s - 1) * u)
        return (u * (hi - lo) + lo).long().float()

    def _forward_loss(self, latents, ctx, pooled, time_ids, weights):
        """Flow-matching loss of one batch (see the module docstring); latents (B, 16, H, W)."""
        import contextlib

        import torch

        args, acc = self.args, self.acc
        tr = self.model.transformer
        dev = latents.device
        noise = torch.randn_like(latents)
        t = self._timesteps(latents.shape[0]).to(dev)
        s = (t / 1000).view(-1, 1, 1, 1)
        noisy = s * noise + (1.0 - s) * latents
        dt = next(p for p in tr.parameters() if p.dtype.is_floating_point and p.dtype.itemsize > 1).dtype
        with acc.autocast() if self.unet_autocast else contextlib.nullcontext():
            pred = tr(hidden_states=noisy.to(dt), encoder_hidden_states=ctx.to(dt), pooled_projections=pooled.to(dt),
                      timestep=t.to(dt), return_dict=False)[0]
        pred = pred.float() * (-s) + noisy
        ws = args.weighting_scheme or "uniform"
        if (args.loss_type or "l2") == "l1":
            loss = (pred - latents).abs()
        else:
            loss = (pred - latents) ** 2
        if ws == "sigma_sqrt":
            loss = loss * s ** -2.0
        elif ws == "cosmap":
            loss = loss * (2 / (math.pi * (1 - 2 * s + 2 * s ** 2)))
        return (loss.mean(dim=[1, 2, 3]) * weights).mean()

    # ---------------------------------------------------------------- files
    def _metadata(self, epoch: int, step: int) -> dict[str, str]:
        """sd-scripts' metadata plus sd3_train_network.py's `ss_*` keys and the SD3 model spec."""
        md = super()._metadata(epoch, step)
        args = self.args
        md["ss_base_model_version"] = self.model.model_type
        md["ss_network_module"] = "networks.lora_sd3"
        if not args.no_metadata:
            md.update({
                "ss_apply_lg_attn_mask": str(bool(args.apply_lg_attn_mask)),
                "ss_apply_t5_attn_mask": str(bool(args.apply_t5_attn_mask)),
                "ss_weighting_scheme": str(args.weighting_scheme), "ss_logit_mean": str(args.logit_mean),
                "ss_logit_std": str(args.logit_std), "ss_mode_scale": str(args.mode_scale),
            })
            for k in ("ss_v2", "ss_clip_skip"):
                md.pop(k, None)
        md["modelspec.architecture"] = f"stable-diffusion-3-{self.model.model_type}/lora"
        md["modelspec.implementation"] = "https://github.com/Stability-AI/SD3.5"
        md.pop("modelspec.prediction_type", None)
        if not args.resolution:
            md["modelspec.resolution"] = "1024x1024"
        return md

    def _sample(self, epoch: int | None, step: int) -> None:
        """Sample images through diffusers' StableDiffusion3Pipeline over the training modules (LoRA active)."""
        from .sd3_sampling import sd3_sample_images

        if not self.acc.is_main_process:
            return
        try:
            with self._eval_weights():
                sd3_sample_images(self, epoch, step)
        except (ValueError, OSError) as e:
            print(f"ERROR: sample images skipped: {e}", file=sys.stderr, flush=True)
