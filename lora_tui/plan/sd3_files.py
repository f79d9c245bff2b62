"""SD3 inputs checked before Start (sd-scripts' `sd3_train_network.py` loads CLIP-L, CLIP-G and T5-XXL from their own
files when `clip_l` / `clip_g` / `t5xxl` are set, else from the checkpoint's `text_encoders.*` tensors, and finds out
only at load time, minutes into a run): each text encoder either set (existing, and the component it names, read
from the safetensors header alone) or inside the checkpoint; and `bucket_reso_steps` a multiple of 32 (sd-scripts'
SD3 trainer checks 32, not the base 64).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from lora_tui.plan.model_family import ModelFileError, read_safetensors_header

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig

# config field → (sd-scripts option, the checkpoint's key prefix when the encoder is inside it)
_ENCODERS = {"sd3_clip_l": ("clip_l", "text_encoders.clip_l.transformer."),
             "clip_g": ("clip_g", "text_encoders.clip_g.transformer."),
             "sd3_t5xxl": ("t5xxl", "text_encoders.t5xxl.transformer.")}
_WHAT = {"clip_l": "a CLIP-L text encoder (clip_l.safetensors)", "clip_g": "a CLIP-G text encoder (clip_g.safetensors)",
         "t5xxl": "a T5-XXL text encoder (t5xxl_fp16.safetensors)", "sd": "a Stable Diffusion 1.x/2.x/XL checkpoint",
         "flux": "a Flux.1 transformer", "sd3": "an SD3 checkpoint", "vae": "a VAE"}


def sd3_component(path: str) -> str | None:
    """"clip_l", "clip_g" (told apart by width: CLIP-L is 768 wide, CLIP-G 1280), "t5xxl", "sd3", "flux", "sd",
    "vae" or None for a .safetensors file, from its header. Raises ModelFileError for an unreadable file."""
    header = read_safetensors_header(path)
    keys = [k for k in header if k != "__metadata__"]
    if any(k.startswith(("model.diffusion_model.joint_blocks.", "joint_blocks.")) for k in keys):
        return "sd3"
    if any(k.startswith(("conditioner.embedders.", "cond_stage_model.", "model.diffusion_model.input_blocks."))
           for k in keys):
        return "sd"
    if any("double_blocks.0.img_attn.qkv.weight" in k for k in keys):
        return "flux"
    if any(k.endswith("encoder.block.0.layer.0.SelfAttention.q.weight") for k in keys):
        return "t5xxl"
    q = [k for k in keys if k.endswith("encoder.layers.0.self_attn.q_proj.weight")]
    if q:
        width = (header[q[0]].get("shape") or [0])[0]
        meta = header.get("__metadata__") or {}
        if '"clip_g"' in str(meta.get("lora_tui_diffusers_config", "")) and width < 768:
            return None  # a tiny test/demo encoder: its width says nothing; the trainer reads its config
        return "clip_g" if width >= 1024 else "clip_l"
    if any(k.endswith("encoder.conv_in.weight") for k in keys):
        return "vae"
    return None


def check_sd3_inputs(out: Any, cfg: TrainingConfig, resolve_path, resolved_note) -> None:
    """Errors for the SD3 text-encoder files and bucket steps of `cfg` (an SD3 config) into `out`."""
    ck = str(getattr(cfg, "pretrained_model_name_or_path", "") or "")
    inside: set[str] | None = None
    p = resolve_path(ck) if ck else ""
    if p and os.path.isfile(p) and p.lower().endswith(".safetensors"):
        try:
            keys = read_safetensors_header(p)
            inside = {opt for opt, pre in _ENCODERS.values() if any(k.startswith(pre) for k in keys)}
        except (ModelFileError, OSError, ValueError):
            inside = None  # the base-model rule reports an unreadable checkpoint
    for field, (opt, _pre) in _ENCODERS.items():
        v = str(getattr(cfg, field, "") or "")
        if not v:
            if inside is not None and opt not in inside:
                out.err(field, f"{opt} is not set and the checkpoint does not include it: SD3 training needs "
                               f"{_WHAT[opt]}; pick the file (or a checkpoint with the text encoders inside)")
            continue
        fp = resolve_path(v)
        if not os.path.isfile(fp):
            out.err(field, f"{opt} '{v}' does not exist{resolved_note(v)}: pick {_WHAT[opt]}")
            continue
        if not fp.lower().endswith((".safetensors", ".sft")):
            continue
        try:
            kind = sd3_component(fp)
        except (ModelFileError, OSError, ValueError) as exc:
            out.err(field, f"{opt} '{v}' is not a readable safetensors file: {exc}; re-download it")
            continue
        if kind is not None and kind != opt:
            out.err(field, f"{opt} '{v}' is {_WHAT.get(kind, kind)}, not {_WHAT[opt]}: pick the right file")
    steps = getattr(cfg, "bucket_reso_steps", None)
    if getattr(cfg, "enable_bucket", False) and steps and int(steps) % 32:
        out.err("bucket_reso_steps", f"bucket_reso_steps {steps}: sd3_train_network.py needs a multiple of 32; "
                                     f"use 32 or 64")
