"""Flux.1 LoRA training (`flux_train_network.py`): the Flux family of the shared `Trainer`, with sd-scripts'
`flux_train_network.py` rules (flow matching, `library/flux_train_utils.py`'s timestep sampling and model
prediction types, packed 2×2 latents, CLIP-L pooled + T5-XXL conditioning, guidance input).

Training step (sd-scripts' `get_noise_pred_and_target`): noise n ~ N(0, 1); σ from `timestep_sampling`
(sigma: `weighting_scheme` density over the shifted FlowMatchEuler schedule; uniform; sigmoid(σ_scale·N);
shift: sigmoid then `discrete_flow_shift`; flux_shift: sigmoid then the resolution-dependent shift μ);
x_σ = (1 − σ)·x₀ + σ·n; the transformer sees t = σ and guidance `guidance_scale` (dev); the prediction is used
raw, `additive` (+ x_σ) or `sigma_scaled` (·(−σ) + x_σ, with the `weighting_scheme` loss weight); the target is
n − x₀. Loss: l2/l1 per element, weighted, mean over C,H,W, × prior_loss_weight, mean over the batch.
SD-only options that sd-scripts' Flux trainer ignores (noise_offset, min_snr_gamma, ...) are ignored with a
warning here.
"""
from __future__ import annotations

import math
import sys

from .args import OptionError, parse_args
from .console import log, out, warn
from .models import ModelError
from .train import EXIT_INTERRUPTED, Trainer

SCRIPT = "flux_train_network"
# SD options sd-scripts' Flux trainer does not use: set, they are ignored with a warning (never silently)
_IGNORED_FOR_FLUX = ("noise_offset", "multires_noise_iterations", "adaptive_noise_scale", "min_snr_gamma",
                     "scale_v_pred_loss_like_noise_pred", "v_pred_like_loss", "debiased_estimation_loss",
                     "zero_terminal_snr", "v_parameterization", "clip_skip", "max_token_length", "vae",
                     "min_timestep", "max_timestep")


def flux_problems(args) -> list[str]:
    """flux_train_network.py's own option checks (before any model loads); messages name the option."""
    msgs = []
    if (args.network_module or "networks.lora") != "networks.lora_flux":
        msgs.append(f"network_module {args.network_module or 'networks.lora'!r}: flux_train_network.py trains "
                    f"networks.lora_flux; set network_module = \"networks.lora_flux\"")
    for opt in ("ae", "clip_l", "t5xxl"):
        if not getattr(args, opt, None):
            msgs.append(f"{opt} is not set; give the path of the Flux.1 {opt} file "
                        f"({'ae.safetensors' if opt == 'ae' else opt + '.safetensors'})")
    if args.cache_text_encoder_outputs_to_disk and not args.cache_text_encoder_outputs:
        args.cache_text_encoder_outputs = True  # as sd-scripts' Flux trainer does, with its warning
        warn("cache_text_encoder_outputs_to_disk is enabled, so cache_text_encoder_outputs is also enabled")
    if args.cache_text_encoder_outputs_to_disk:
        warn("cache_text_encoder_outputs_to_disk: this trainer keeps the text-encoder outputs in memory for the run "
             "(no _flux_te.npz files are written); training is the same")
    if args.fp8_base_unet:
        args.fp8_base = True
    if (args.loss_type or "l2") not in ("l2", "l1"):
        msgs.append(f"loss_type {args.loss_type!r}: Flux.1 training implements l2 and l1 here; use one of them")
    if args.torch_compile:
        msgs.append("torch_compile: not implemented for Flux.1 by this trainer; remove it")
    if args.scale_weight_norms and "split_qkv=True" in (args.network_args or []):
        msgs.append("scale_weight_norms cannot be combined with network_args split_qkv=True here; drop one")
    for name in _IGNORED_FOR_FLUX:
        v = getattr(args, name, None)
        if v not in (None, False, 0, 0.0, "") and not (name == "max_timestep" and v == 1000) \
                and not (name == "clip_skip" and v == 1):
            warn(f"{name} = {v!r} is not used by Flux.1 training (sd-scripts' flux_train_network.py ignores it)")
    return msgs


def _checks(args):
    """Everything checked before a model loads: options, the four files (headers), the dataset blueprint.
    Returns the dataset; raises OptionError / ModelError / DatasetError (every line one problem)."""
    from .dataset import build_dataset
    from .flux_models import FILE_OPTION, check_file
    from .options import validate

    problems = []
    try:
        validate(args, SCRIPT)
    except OptionError as e:
        problems.append(str(e))
    for kind in ("transformer", "ae", "clip_l", "t5xxl"):
        if getattr(args, FILE_OPTION[kind], None) or kind == "transformer":  # unset ones: flux_problems says so
            try:
                check_file(kind, getattr(args, FILE_OPTION[kind]))
            except ModelError as e:
                problems.append(str(e))
    if problems:
        raise ModelError("\n".join(problems))
    return build_dataset(args, warn)


def preflight(argv: list[str]) -> int:
    """`flux_train_network.py ... --preflight`: the shared preflight (`preflight.run`: options, the four files by
    header, the dataset blueprint, optimizer and scheduler on stand-in parameters, trackers, sample prompts),
    printed as the app's preflight reads it; exit 0 (no error), 1 (errors), 2 (argparse)."""
    from .preflight import run

    return run(SCRIPT, argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `flux_train_network.py`; returns the exit code. With `--preflight` the checks only."""
    from .dataset import DatasetError

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--preflight" in argv:
        return preflight([a for a in argv if a != "--preflight"])
    from .console import join_streams

    join_streams()  # one ordered stream under lora-tui's job log, as train.main
    try:
        args = parse_args(SCRIPT, argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        dataset = _checks(args)
        return FluxTrainer(args, "flux", dataset).run()
    except (OptionError, ModelError, DatasetError) as e:
        for line in str(e).splitlines():
            print(f"ERROR: {line}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing saved (training had not started)", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def pack_latents(x):
    """(B, C, H, W) → (B, H/2·W/2, 4C): 2×2 patches, as Flux's transformer takes them."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(x, h: int, w: int):
    """Inverse of `pack_latents` for latent height `h` and width `w`."""
    b, _, c4 = x.shape
    c = c4 // 4
    return x.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def image_ids(h2: int, w2: int, device):
    """Position ids (h2·w2, 3) of the packed latent grid: (0, row, column)."""
    import torch

    ids = torch.zeros(h2, w2, 3, device=device)
    ids[..., 1] = torch.arange(h2, device=device)[:, None]
    ids[..., 2] = torch.arange(w2, device=device)[None, :]
    return ids.reshape(h2 * w2, 3)


def _fp8_forward(lin):
    """Store `lin`'s weight in float8_e4m3fn and return a forward that computes in the input's dtype."""
    import torch
    import torch.nn.functional as F

    lin.weight = torch.nn.Parameter(lin.weight.data.to(torch.float8_e4m3fn), requires_grad=False)

    def forward(x):
        b = lin.bias.to(x.dtype) if lin.bias is not None else None
        return F.linear(x, lin.weight.to(x.dtype), b)
    return forward


class FluxTrainer(Trainer):
    """The Flux.1 family of the shared training loop (see the module docstring)."""

    def _load_models(self):
        import torch

        from .flux_models import load_flux
        m = load_flux(self.args, torch.float32)
        self.is_schnell = m.is_schnell
        self.t5_max_len = self.args.t5xxl_max_token_length or (256 if m.is_schnell else 512)
        log(f"t5xxl_max_token_length: {self.t5_max_len}; {'schnell' if m.is_schnell else 'dev'} transformer")
        return m

    def _make_network(self, unet, tes, na, network_dim, network_alpha, train_unet, train_te, conv_dim, conv_alpha):
        from .flux_network import FluxLoRANetwork, flux_network_options
        o = flux_network_options(na)
        net = FluxLoRANetwork(unet, tes, network_dim, network_alpha, o, train_unet=train_unet, train_te=train_te,
                              dropout=self.args.network_dropout)
        if o["verbose"]:
            for m in net.te_modules + net.unet_modules:
                log(f"\t{m.lora_name:50} {m.rank}, {float(m.alpha)}")
            for name in net.skipped:
                log(f"\tskipped (dim 0): {name}")
        return net

    def _after_network(self, net) -> None:
        args = self.args
        self.train_t5 = any(m.lora_name.startswith("lora_te3_") for m in net.te_modules)
        if self.train_t5 and args.cache_text_encoder_outputs:
            raise OptionError("network_args train_t5xxl=True: T5XXL is trained, so cache_text_encoder_outputs "
                              "cannot be used; turn one off")

    def _prepare_models(self, weight_dtype) -> None:
        """fp8_base / fp8_base_unet: the frozen transformer's (and with fp8_base the untrained T5's) Linear
        weights stored in float8_e4m3fn and cast to the compute dtype per call, as sd-scripts' fp8 mode does
        under autocast."""
        import torch

        args = self.args
        if not self.train_t5:
            self.model.text_encoders[1].eval()  # gradient checkpointing put the text encoders in train mode
        if not (args.fp8_base or args.fp8_base_unet):
            return
        net = self.network
        targets = [self.model.transformer]
        if args.fp8_base and not args.fp8_base_unet and not self.train_t5:
            targets.append(self.model.text_encoders[1])
        lora_of = {}
        for m in net.te_modules + net.unet_modules:
            for j, part in enumerate(m._parts):
                lora_of[id(part)] = (m, j)
        n = 0
        for root in targets:
            for path, mod in root.named_modules():
                # T5's gated MLP casts its input to `wo`'s dtype (transformers), so `wo` keeps its dtype
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
                                                               shift=float(self.args.discrete_flow_shift))
        self.snr = None
        self.t5_cache: dict | None = {} if not getattr(self, "train_t5", False) else None

    # ---------------------------------------------------------------- conditioning
    def _encode(self, captions: list[str]):
        """(T5 hidden states (B, L, 4096), (CLIP-L pooled (B, 768), T5 attention mask (B, L))), as sd-scripts'
        `FluxTextEncodingStrategy`; untrained encoders' outputs are kept per caption (cache_text_encoder_outputs
        or static captions)."""
        import torch

        m, args, dev = self.model, self.args, self.acc.device
        clip, t5 = m.text_encoders
        if self.cond_cache is not None and all(c in self.cond_cache for c in captions):
            parts = [self.cond_cache[c] for c in captions]
            return torch.stack([p[0] for p in parts]), (torch.stack([p[1] for p in parts]),
                                                       torch.stack([p[2] for p in parts]))
        train_clip = any(x.lora_name.startswith("lora_te1_") for x in self.network.te_modules) and self.te_trained
        ids = m.tokenizers[0](captions, max_length=77, padding="max_length", truncation=True,
                              return_tensors="pt").input_ids.to(dev)
        with torch.set_grad_enabled(train_clip):
            pooled = clip(ids).pooler_output
        cached = self.t5_cache is not None and all(c in self.t5_cache for c in captions)
        if cached:
            t5_out = torch.stack([self.t5_cache[c][0] for c in captions])
            mask = torch.stack([self.t5_cache[c][1] for c in captions])
        else:
            tk = m.tokenizers[1](captions, max_length=self.t5_max_len, padding="max_length", truncation=True,
                                 return_tensors="pt")
            mask = tk.attention_mask.to(dev)
            with torch.set_grad_enabled(self.train_t5):
                t5_out = t5(tk.input_ids.to(dev), attention_mask=mask if args.apply_t5_attn_mask else None
                            ).last_hidden_state
            if self.t5_cache is not None and (self.cond_cache is not None or args.cache_text_encoder_outputs):
                for i, c in enumerate(captions):
                    self.t5_cache[c] = (t5_out[i].detach(), mask[i])
        if self.cond_cache is not None:
            for i, c in enumerate(captions):
                self.cond_cache[c] = (t5_out[i].detach(), pooled[i].detach(), mask[i])
        return t5_out, (pooled, mask)

    # ---------------------------------------------------------------- one step
    def _sigmas(self, bsz: int, h: int, w: int, dev):
        """σ (B,) in (0, 1) for `timestep_sampling` (sd-scripts' `get_noisy_model_input_and_timesteps`)."""
        import torch

        args = self.args
        ts = args.timestep_sampling or "sigma"
        scale = float(args.sigmoid_scale)
        if ts == "uniform":
            return torch.rand(bsz, device=dev)
        if ts == "sigmoid":
            return torch.sigmoid(scale * torch.randn(bsz, device=dev))
        if ts == "shift":
            s = torch.sigmoid(scale * torch.randn(bsz, device=dev))
            shift = float(args.discrete_flow_shift)
            return (s * shift) / (1 + (shift - 1) * s)
        if ts == "flux_shift":
            s = torch.sigmoid(scale * torch.randn(bsz, device=dev))
            seq = (h // 2) * (w // 2)
            mu = 0.5 + (1.15 - 0.5) / (4096 - 256) * (seq - 256)  # line through (256, 0.5) and (4096, 1.15)
            return math.exp(mu) / (math.exp(mu) + (1 / s - 1) ** 1.0)
        # "sigma": the weighting_scheme density over the shifted FlowMatchEuler schedule
        ws = args.weighting_scheme or "uniform"
        if ws == "logit_normal":
            u = torch.sigmoid(torch.normal(float(args.logit_mean), float(args.logit_std), size=(bsz,)))
        elif ws == "mode":
            u = torch.rand(bsz)
            u = 1 - u - float(args.mode_scale) * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
        else:
            u = torch.rand(bsz)
        idx = (u * self.noise_scheduler.config.num_train_timesteps).long()
        return self.noise_scheduler.sigmas[idx].to(dev)

    def _forward_loss(self, latents, ctx, pooled, time_ids, weights):
        """Flow-matching loss of one batch (see the module docstring); latents (B, 16, H, W), ctx T5 (B, L, D)."""
        import contextlib

        import torch

        args, acc = self.args, self.acc
        l_pooled, mask = pooled
        tr = self.model.transformer
        bsz, _, h, w = latents.shape
        dev = latents.device
        noise = torch.randn_like(latents)
        sig = self._sigmas(bsz, h, w, dev).float()
        s = sig.view(-1, 1, 1, 1)
        if args.ip_noise_gamma:
            gamma = float(args.ip_noise_gamma)
            if args.ip_noise_gamma_random_strength:
                gamma = torch.rand(1, device=dev) * gamma
            noisy = (1.0 - s) * latents + s * (noise + gamma * torch.randn_like(latents))
        else:
            noisy = (1.0 - s) * latents + s * noise
        dt = next(p for p in tr.parameters() if p.dtype.is_floating_point and p.dtype.itemsize > 1).dtype
        guidance = torch.full((bsz,), float(args.guidance_scale), device=dev) if tr.config.guidance_embeds else None
        kw = {}
        if args.apply_t5_attn_mask:
            full = torch.cat([mask.bool(), torch.ones(bsz, (h // 2) * (w // 2), dtype=torch.bool, device=dev)], 1)
            kw["joint_attention_kwargs"] = {"attention_mask": full[:, None, None, :]}
        with acc.autocast() if self.unet_autocast else contextlib.nullcontext():
            pred = tr(hidden_states=pack_latents(noisy).to(dt), encoder_hidden_states=ctx.to(dt),
                      pooled_projections=l_pooled.to(dt), timestep=sig.to(dt),
                      img_ids=image_ids(h // 2, w // 2, dev), txt_ids=torch.zeros(ctx.shape[1], 3, device=dev),
                      guidance=guidance, return_dict=False, **kw)[0]
        pred = unpack_latents(pred.float(), h, w)
        weighting = None
        mpt = args.model_prediction_type or "sigma_scaled"
        if mpt == "additive":
            pred = pred + noisy
        elif mpt == "sigma_scaled":
            pred = pred * (-s) + noisy
            ws = args.weighting_scheme or "uniform"
            if ws == "sigma_sqrt":
                weighting = s ** -2.0
            elif ws == "cosmap":
                weighting = 2 / (math.pi * (1 - 2 * s + 2 * s ** 2))
        target = noise - latents
        if (args.loss_type or "l2") == "l1":
            loss = (pred - target).abs()
        else:
            loss = (pred - target) ** 2
        if weighting is not None:
            loss = loss * weighting
        return (loss.mean(dim=[1, 2, 3]) * weights).mean()

    # ---------------------------------------------------------------- files
    def _metadata(self, epoch: int, step: int) -> dict[str, str]:
        """sd-scripts' metadata plus flux_train_network.py's `ss_*` keys and the Flux model spec."""
        md = super()._metadata(epoch, step)
        args = self.args
        md["ss_base_model_version"] = "flux1"
        md["ss_network_module"] = "networks.lora_flux"
        if not args.no_metadata:
            md.update({
                "ss_model_type": str(args.model_type or "flux"),
                "ss_apply_t5_attn_mask": str(bool(args.apply_t5_attn_mask)),
                "ss_weighting_scheme": str(args.weighting_scheme), "ss_logit_mean": str(args.logit_mean),
                "ss_logit_std": str(args.logit_std), "ss_mode_scale": str(args.mode_scale),
                "ss_guidance_scale": str(args.guidance_scale), "ss_timestep_sampling": str(args.timestep_sampling),
                "ss_sigmoid_scale": str(args.sigmoid_scale),
                "ss_model_prediction_type": str(args.model_prediction_type),
                "ss_discrete_flow_shift": str(args.discrete_flow_shift),
            })
            for k in ("ss_v2", "ss_clip_skip"):
                md.pop(k, None)
        md["modelspec.architecture"] = f"flux-1-{'schnell' if self.is_schnell else 'dev'}/lora"
        md["modelspec.implementation"] = "https://github.com/black-forest-labs/flux"
        md.pop("modelspec.prediction_type", None)
        if not args.resolution:
            md["modelspec.resolution"] = "1024x1024"
        return md

    def _sample(self, epoch: int | None, step: int) -> None:
        """Sample images through diffusers' FluxPipeline over the training modules (LoRA active)."""
        from .flux_sampling import flux_sample_images

        if not self.acc.is_main_process:
            return
        try:
            flux_sample_images(self, epoch, step)
        except (ValueError, OSError) as e:
            print(f"ERROR: sample images skipped: {e}", file=sys.stderr, flush=True)
