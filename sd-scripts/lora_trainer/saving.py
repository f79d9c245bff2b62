"""LoRA files: writing them (atomically, with sd-scripts' `ss_*` metadata, the `modelspec.*` keys and the
`sshs_*` hashes), removing old ones (save_last_n_*), and reading them back (network_weights, dim_from_weights).
"""
from __future__ import annotations

import hashlib
import json
import re
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

    def _file_hashes(self) -> dict[str, str]:
        """ss_sd_model_hash / ss_new_sd_model_hash (and ss_vae_* with `vae`) of local files, computed once per
        run (sd-scripts hashes them once before training): the legacy A1111 hash (SHA-256 of the 64 KiB at
        1 MiB, 8 hex digits) and the SHA-256 of the whole file; the name is the file's basename."""
        cached = getattr(self, "_hashes", None)
        if cached is not None:
            return cached
        from .file_hash import legacy_hash, sha256_file

        out: dict[str, str] = {}
        for key, value in (("sd", self.args.pretrained_model_name_or_path), ("vae", self.args.vae)):
            if not value:
                continue
            name = str(value)
            if Path(name).exists():
                out[f"ss_{key}_hash" if key == "vae" else "ss_sd_model_hash"] = legacy_hash(name)
                out[f"ss_new_{key}_hash" if key == "vae" else "ss_new_sd_model_hash"] = sha256_file(name)
                name = Path(name).name
            out["ss_sd_model_name" if key == "sd" else "ss_vae_name"] = name
        self._hashes = out
        return out

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
        # Only SD1.x/2.x use clip_skip (the SDXL text encoders always read their fixed layers, as in sd-scripts,
        # which warns and ignores it): the metadata must not claim a skip that did not happen.
        clip_skip = args.clip_skip if fam in ("sd1", "sd2") else None
        te_lr = args.text_encoder_lr[0] if isinstance(args.text_encoder_lr, list) and args.text_encoder_lr \
            else args.text_encoder_lr
        reso = args.resolution
        md = {
            "ss_session_id": str(self.session_id), "ss_training_started_at": str(self.started_at),
            "ss_training_finished_at": str(time.time()), "ss_output_name": str(args.output_name),
            "ss_learning_rate": str(args.learning_rate), "ss_unet_lr": str(args.unet_lr),
            "ss_text_encoder_lr": str(te_lr), "ss_num_train_images": str(ds.num_train_images),
            "ss_num_validation_images": str(getattr(getattr(ds, "validation", None), "num_train_images", 0)), "ss_num_reg_images": str(ds.num_reg_images),
            "ss_num_batches_per_epoch": str(self.batches_per_epoch), "ss_num_epochs": str(self.num_epochs),
            "ss_steps": str(step), "ss_epoch": str(epoch), "ss_max_train_steps": str(self.max_train_steps),
            "ss_gradient_checkpointing": str(args.gradient_checkpointing),
            "ss_gradient_accumulation_steps": str(args.gradient_accumulation_steps),
            "ss_lr_warmup_steps": str(args.lr_warmup_steps), "ss_lr_scheduler": str(args.lr_scheduler),
            "ss_network_module": args.network_module or "networks.lora", "ss_network_dim": str(self.network_dim),
            "ss_network_alpha": str(self.network_alpha), "ss_network_dropout": str(args.network_dropout),
            # the precision trained in (sd-scripts writes the option; on a CPU box ours falls back to "no")
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
            "ss_fp8_base": str(bool(args.fp8_base)), "ss_fp8_base_unet": str(bool(args.fp8_base_unet)),
            "ss_validation_seed": str(args.validation_seed), "ss_validation_split": str(args.validation_split),
            "ss_max_validation_steps": str(args.max_validation_steps),
            "ss_validate_every_n_epochs": str(args.validate_every_n_epochs),
            "ss_validate_every_n_steps": str(args.validate_every_n_steps),
            "ss_resize_interpolation": str(args.resize_interpolation),
        }
        from .dataset_metadata import config_metadata, folder_metadata
        if getattr(args, "dataset_config", None):
            md.update(config_metadata(getattr(ds, "parts", [ds])))
        else:
            # sd-scripts stores the parsed resolution tuple: "512" -> (512, 512)
            r = tuple(int(x) for x in str(reso).split(",")) if reso else None
            md.update({
                "ss_batch_size_per_device": str(args.train_batch_size),
                "ss_total_batch_size": str(int(args.train_batch_size) * self.acc.num_processes
                                           * int(args.gradient_accumulation_steps)),
                "ss_resolution": str(r * 2 if r and len(r) == 1 else r),
                "ss_color_aug": str(bool(args.color_aug)), "ss_flip_aug": str(bool(args.flip_aug)),
                "ss_random_crop": str(bool(args.random_crop)), "ss_shuffle_caption": str(bool(args.shuffle_caption)),
                "ss_enable_bucket": str(bool(args.enable_bucket)),
                "ss_bucket_no_upscale": str(bool(args.bucket_no_upscale)),
                "ss_min_bucket_reso": str(args.min_bucket_reso), "ss_max_bucket_reso": str(args.max_bucket_reso),
                "ss_keep_tokens": str(args.keep_tokens), **folder_metadata(ds)})
        md.update(self._file_hashes())
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


# the 3×3 convs of ResnetBlock2D / Downsample2D / Upsample2D, by their kohya names (SD1/2 diffusers paths, SDXL
# original paths); 1×1 convs (conv_shortcut / skip_connection) take network_dim as sd-scripts gives them
_KXK_NAME = re.compile(r"_(conv1|conv2|conv|in_layers_2|out_layers_3|op)$")
# per algorithm, the tensor whose first dimension is the rank (LoCon/LoRA, LoHa, LoKr, sd-scripts' lora)
_RANK_KEYS = (".lora_down.weight", ".hada_w1_b", ".lokr_w2_b", ".lokr_w1_b")


def module_dims_from_weights(sd) -> dict[str, tuple[int, float]]:
    """{module name: (rank, alpha)} of a kohya LoRA state dict, as sd-scripts' `create_network_from_weights`
    reads it: rank from the first dimension of `lora_down` (or LyCORIS' hada_w1_b / lokr_w2_b / lokr_w1_b), alpha
    from `<name>.alpha`, else the rank."""
    out: dict[str, tuple[int, float]] = {}
    for k, v in sd.items():
        for suffix in _RANK_KEYS:
            if k.endswith(suffix):
                name = k[: -len(suffix)]
                if name not in out:
                    a = sd.get(name + ".alpha")
                    rank = int(v.shape[0])
                    out[name] = (rank, float(a) if a is not None else float(rank))
                break
    return out


def dims_from_weights(sd):
    """(network_dim, network_alpha, conv_dim, conv_alpha) read from a kohya LoRA state dict: the first linear
    (or 1×1) module's rank/alpha and the first 3×3 conv module's (None when the file has none). For LyCORIS,
    whose modules are made from one dim/alpha pair per kind."""
    dim = alpha = cdim = calpha = None
    for name, (rank, a) in module_dims_from_weights(sd).items():
        if _KXK_NAME.search(name):
            if cdim is None:
                cdim, calpha = rank, a
        elif dim is None:
            dim, alpha = rank, a
    return dim or 4, alpha, cdim, calpha
