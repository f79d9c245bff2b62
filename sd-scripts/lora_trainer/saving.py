"""LoRA files: writing them (atomically, with sd-scripts' `ss_*` metadata, the `modelspec.*` keys and the
`sshs_*` hashes), removing old ones (save_last_n_*), and reading them back (network_weights, dim_from_weights).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from .args import OptionError
from .console import SAVED_PREFIX, out
from .options import network_args


class SavingMixin:
    """`Trainer`'s LoRA files. Reads the trainer's `args`, `acc`, `net_prepared`, `save_dtype`, `dataset`,
    `family` and the figures set up by `run` (session_id, started_at, batches_per_epoch, num_epochs,
    max_train_steps, network_dim/alpha, mixed_precision, optimizer_name); appends each file to `saved`."""

    def _ext(self) -> str:
        """The LoRA file suffix: "." + save_model_as, ".safetensors" by default."""
        return "." + (self.args.save_model_as or "safetensors")

    def _remove(self, stem: str) -> None:
        """Delete an old LoRA file (save_last_n_*)."""
        p = Path(self.args.output_dir) / (stem + self._ext())
        if p.exists():
            out(f"removing old checkpoint: {p}")
            p.unlink()

    def _save(self, stem: str, epoch: int, step: int) -> Path:
        """Write `<output_dir>/<stem><ext>` atomically (main process only; others return Path()), with the
        metadata in safetensors files; then print the `LORA_TUI_SAVED` line."""
        import torch
        from safetensors.torch import save, save_file

        from .atomic import atomic_path

        if not self.acc.is_main_process:
            return Path()
        od = Path(self.args.output_dir)
        od.mkdir(parents=True, exist_ok=True)
        path = od / (stem + self._ext())
        net = self.acc.unwrap_model(self.net_prepared)
        sd = {}
        for k, v in net.state_dict().items():
            v = v.detach().to("cpu")
            if self.save_dtype is not None:
                v = v.to(self.save_dtype)
            sd[k] = v.contiguous()
        out(f"\nsaving checkpoint: {path}")
        with atomic_path(path) as tmp:
            if self._ext() == ".safetensors":
                meta = self._metadata(epoch, step)
                ss_only = {k: v for k, v in meta.items() if k.startswith("ss_")}
                buf = save(sd, metadata=ss_only)
                n = int.from_bytes(buf[:8], "little")
                meta["sshs_model_hash"] = hashlib.sha256(buf[8 + n:]).hexdigest()
                meta["sshs_legacy_hash"] = hashlib.sha256(buf[0x100000:0x110000]).hexdigest()[:8]
                save_file(sd, str(tmp), metadata=meta)
            else:
                torch.save(sd, str(tmp))
        self.saved.append(path)
        out(SAVED_PREFIX + " " + json.dumps({"path": str(path), "step": step, "epoch": epoch}))
        return path

    def _metadata(self, epoch: int, step: int) -> dict[str, str]:
        """sd-scripts' `ss_*` training metadata (only the network keys with no_metadata) and the `modelspec.*`
        keys, all strings."""
        args = self.args
        ds = self.dataset
        fam = self.family
        if fam == "sdxl":
            base = "sdxl_base_v1-0"
            arch = "stable-diffusion-xl-v1-base/lora"
        else:
            base = ("sd_v2" if fam == "sd2" else "sd_v1") + ("_v" if args.v_parameterization else "")
            arch = "stable-diffusion-v1/lora" if fam == "sd1" else \
                ("stable-diffusion-v2-768-v/lora" if args.v_parameterization else "stable-diffusion-v2-512/lora")
        dirs = {s.dir.name: {"n_repeats": s.repeats, "img_count": len(s.items)} for s in ds.subsets if not s.is_reg}
        reg_dirs = {s.dir.name: {"n_repeats": s.repeats, "img_count": len(s.items)} for s in ds.subsets if s.is_reg}
        tags: dict[str, dict[str, int]] = {}
        for s in ds.subsets:
            if s.is_reg:
                continue
            freq = tags.setdefault(s.dir.name, {})
            for it in s.items:
                for t in it.caption.split(","):
                    t = t.strip().lower()
                    if t:
                        freq[t] = freq.get(t, 0) + 1
        buckets = {str(i): {"resolution": list(k), "count": len(v)} for i, (k, v) in enumerate(sorted(ds.buckets.items()))}
        # Only SD1.x/2.x use clip_skip (the SDXL text encoders always read their fixed layers, as in sd-scripts,
        # which warns and ignores it): the metadata must not claim a skip that did not happen.
        clip_skip = args.clip_skip if fam in ("sd1", "sd2") else None
        te_lr = args.text_encoder_lr[0] if isinstance(args.text_encoder_lr, list) and args.text_encoder_lr \
            else args.text_encoder_lr
        model_path = Path(args.pretrained_model_name_or_path)
        reso = args.resolution
        md = {
            "ss_session_id": str(self.session_id), "ss_training_started_at": str(self.started_at),
            "ss_training_finished_at": str(time.time()), "ss_output_name": str(args.output_name),
            "ss_learning_rate": str(args.learning_rate), "ss_unet_lr": str(args.unet_lr),
            "ss_text_encoder_lr": str(te_lr), "ss_num_train_images": str(ds.num_train_images),
            "ss_num_validation_images": "0", "ss_num_reg_images": str(ds.num_reg_images),
            "ss_num_batches_per_epoch": str(self.batches_per_epoch), "ss_num_epochs": str(self.num_epochs),
            "ss_steps": str(step), "ss_epoch": str(epoch), "ss_max_train_steps": str(self.max_train_steps),
            "ss_gradient_checkpointing": str(args.gradient_checkpointing),
            "ss_gradient_accumulation_steps": str(args.gradient_accumulation_steps),
            "ss_lr_warmup_steps": str(args.lr_warmup_steps), "ss_lr_scheduler": str(args.lr_scheduler),
            "ss_network_module": args.network_module or "networks.lora", "ss_network_dim": str(self.network_dim),
            "ss_network_alpha": str(self.network_alpha), "ss_network_dropout": str(args.network_dropout),
            "ss_mixed_precision": str(self.mixed_precision), "ss_full_fp16": str(args.full_fp16),
            "ss_v2": str(bool(args.v2)), "ss_base_model_version": base, "ss_clip_skip": str(clip_skip),
            "ss_max_token_length": str(args.max_token_length), "ss_cache_latents": str(args.cache_latents),
            "ss_seed": str(args.seed), "ss_lowram": str(args.lowram), "ss_noise_offset": str(args.noise_offset),
            "ss_noise_offset_random_strength": str(args.noise_offset_random_strength),
            "ss_adaptive_noise_scale": str(args.adaptive_noise_scale),
            "ss_multires_noise_iterations": str(args.multires_noise_iterations),
            "ss_multires_noise_discount": str(args.multires_noise_discount),
            "ss_zero_terminal_snr": str(args.zero_terminal_snr), "ss_ip_noise_gamma": str(args.ip_noise_gamma),
            "ss_ip_noise_gamma_random_strength": str(args.ip_noise_gamma_random_strength),
            "ss_min_snr_gamma": str(args.min_snr_gamma), "ss_debiased_estimation": str(args.debiased_estimation_loss),
            "ss_loss_type": str(args.loss_type), "ss_huber_schedule": str(args.huber_schedule),
            "ss_huber_scale": str(args.huber_scale), "ss_huber_c": str(args.huber_c),
            "ss_training_comment": str(args.training_comment), "ss_sd_scripts_commit_hash": "lora-tui",
            "ss_optimizer": self.optimizer_name, "ss_max_grad_norm": str(args.max_grad_norm),
            "ss_scale_weight_norms": str(args.scale_weight_norms), "ss_prior_loss_weight": str(args.prior_loss_weight),
            "ss_caption_dropout_rate": str(args.caption_dropout_rate),
            "ss_caption_dropout_every_n_epochs": str(args.caption_dropout_every_n_epochs),
            "ss_caption_tag_dropout_rate": str(args.caption_tag_dropout_rate),
            "ss_face_crop_aug_range": str(args.face_crop_aug_range),
            "ss_sd_model_name": model_path.name if model_path.exists() else str(args.pretrained_model_name_or_path),
            "ss_batch_size_per_device": str(args.train_batch_size),
            "ss_total_batch_size": str(int(args.train_batch_size) * self.acc.num_processes
                                       * int(args.gradient_accumulation_steps)),
            "ss_resolution": str(tuple(int(x) for x in str(reso).split(","))) if reso else "None",
            "ss_color_aug": str(args.color_aug), "ss_flip_aug": str(args.flip_aug),
            "ss_random_crop": str(args.random_crop), "ss_shuffle_caption": str(args.shuffle_caption),
            "ss_enable_bucket": str(args.enable_bucket), "ss_bucket_no_upscale": str(args.bucket_no_upscale),
            "ss_min_bucket_reso": str(args.min_bucket_reso), "ss_max_bucket_reso": str(args.max_bucket_reso),
            "ss_keep_tokens": str(args.keep_tokens), "ss_dataset_dirs": json.dumps(dirs),
            "ss_reg_dataset_dirs": json.dumps(reg_dirs), "ss_tag_frequency": json.dumps(tags),
            "ss_bucket_info": json.dumps({"buckets": buckets}),
        }
        if args.network_args:
            kv = network_args(args)
            kv["dropout"] = str(args.network_dropout)
            md["ss_network_args"] = json.dumps(kv)
        if args.no_metadata:
            keep = {"ss_v2", "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha",
                    "ss_network_args"}
            md = {k: v for k, v in md.items() if k in keep}
        res = str(reso).replace(",", "x") if reso and "," in str(reso) else (f"{reso}x{reso}" if reso else
                                                                            ("1024x1024" if fam == "sdxl" else "512x512"))
        md.update({
            "modelspec.sai_model_spec": "1.0.1", "modelspec.architecture": arch,
            "modelspec.implementation": "https://github.com/Stability-AI/generative-models" if fam == "sdxl"
            else "diffusers",
            "modelspec.title": args.metadata_title or args.output_name or f"LoRA@{int(self.started_at)}",
            "modelspec.resolution": res, "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "modelspec.prediction_type": "v" if args.v_parameterization else "epsilon",
            "modelspec.implementation_version": "lora-tui",
        })
        for k in ("author", "description", "license", "tags"):
            v = getattr(args, f"metadata_{k}", None)
            if v:
                md[f"modelspec.{k}"] = str(v)
        return md


def read_lora(path):
    """A LoRA state dict from a .safetensors file or, else, a torch file (weights_only=True)."""
    from safetensors.torch import load_file
    import torch

    p = Path(path)
    if not p.is_file():
        raise OptionError(f"network_weights: {path} does not exist")
    # A file that is not what its name says (a text file, a truncated download, a checkpoint pickle) raises deep in
    # safetensors or torch ("SafetensorError: header too large"): name the option and the file instead.
    try:
        if p.suffix == ".safetensors":
            return load_file(str(p))
        return torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every reader failure means the same to the user
        kind = "a .safetensors LoRA file" if p.suffix == ".safetensors" else "a LoRA file (.safetensors or torch)"
        raise OptionError(f"network_weights: {path} could not be read as {kind} ({type(e).__name__}: {e}); "
                          f"give a LoRA saved by sd-scripts or lora-tui, or leave network_weights empty") from None


def dims_from_weights(sd):
    """(network_dim, network_alpha, conv_dim, conv_alpha) read from a kohya LoRA state dict."""
    dim = alpha = cdim = calpha = None
    for k, v in sd.items():
        if not k.endswith(".lora_down.weight"):
            continue
        base = k[: -len(".lora_down.weight")]
        a = sd.get(base + ".alpha")
        if v.dim() == 4 and v.shape[2] > 1:
            cdim = cdim or int(v.shape[0])
            calpha = calpha if calpha is not None else (float(a) if a is not None else cdim)
        else:
            dim = dim or int(v.shape[0])
            alpha = alpha if alpha is not None else (float(a) if a is not None else dim)
    return dim or 4, alpha, cdim, calpha
