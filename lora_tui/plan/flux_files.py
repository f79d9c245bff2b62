"""Flux.1 inputs checked before Start (sd-scripts' `flux_train_network.py` needs four files, read only at load time,
minutes into a run): `ae`, `clip_l` and `t5xxl` set, existing, and each the component it names (read from the
safetensors header alone: a ComfyUI CLIP-G or an SDXL checkpoint in `clip_l` is named as what it is); and
`bucket_reso_steps` a multiple of 64 (the base trainer's check runs before Flux's own 32 check); a set
`tokenizer_cache_dir` a folder, holding the T5-XXL tokenizer.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from lora_tui.plan.model_family import ModelFileError, read_safetensors_header

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig

# one tensor each layout always has (after a ComfyUI / ldm prefix is stripped)
_MARKERS = {
    "transformer": ("double_blocks.0.img_attn.qkv.weight",),
    "ae": ("encoder.conv_in.weight", "decoder.conv_in.weight"),
    "clip_l": ("text_model.encoder.layers.0.self_attn.q_proj.weight", "encoder.layers.0.self_attn.q_proj.weight"),
    "t5xxl": ("encoder.block.0.layer.0.SelfAttention.q.weight",),
}
_PREFIXES = ("model.diffusion_model.", "first_stage_model.", "text_encoders.clip_l.transformer.",
             "text_encoders.t5xxl.transformer.")
_WHAT = {"transformer": "a Flux.1 transformer", "ae": "the Flux.1 autoencoder (ae.safetensors)",
         "clip_l": "a CLIP-L text encoder (clip_l.safetensors)",
         "t5xxl": "a T5-XXL text encoder (t5xxl_fp16.safetensors)",
         "sd": "a Stable Diffusion checkpoint"}


def flux_component(path: str) -> str | None:
    """"transformer", "ae", "clip_l", "t5xxl", "sd" (a Stable Diffusion checkpoint) or None (unknown) for a
    .safetensors file, from its header. Raises ModelFileError for an unreadable file."""
    keys = [k for k in read_safetensors_header(path) if k != "__metadata__"]
    if any(k.startswith(("conditioner.embedders.", "cond_stage_model.", "model.diffusion_model.input_blocks."))
           for k in keys):
        return "sd"
    stripped = set()
    for k in keys:
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
                break
        stripped.add(k)
    for kind, marks in _MARKERS.items():
        if any(m in stripped for m in marks):
            return kind
    return None


def check_flux_inputs(out: Any, cfg: TrainingConfig, resolve_path, resolved_note) -> None:
    """Errors for the Flux.1 component files and bucket steps of `cfg` (a Flux.1 config) into `out`."""
    for name in ("ae", "clip_l", "t5xxl"):
        v = str(getattr(cfg, name, "") or "")
        if not v:
            out.err(name, f"{name} is not set: Flux.1 training needs {_WHAT[name]}; pick the file")
            continue
        p = resolve_path(v)
        if not os.path.isfile(p):
            out.err(name, f"{name} '{v}' does not exist{resolved_note(v)}: pick {_WHAT[name]}")
            continue
        if not p.lower().endswith((".safetensors", ".sft")):
            continue
        try:
            kind = flux_component(p)
        except (ModelFileError, OSError, ValueError) as exc:
            out.err(name, f"{name} '{v}' is not a readable safetensors file: {exc}; re-download it")
            continue
        if kind is not None and kind != name:
            out.err(name, f"{name} '{v}' is {_WHAT[kind]}, not {_WHAT[name]}: pick the right file")
    _check_t5_tokenizer(out, cfg, resolve_path, resolved_note)
    steps = getattr(cfg, "bucket_reso_steps", None)
    if getattr(cfg, "enable_bucket", False) and steps and int(steps) % 64:
        out.err("bucket_reso_steps", f"bucket_reso_steps {steps}: flux_train_network.py needs a multiple of 64 "
                                     f"(sd-scripts checks 64 before Flux's own 32); use 64")


T5_TOKENIZER_FOLDER = "google_t5-v1_1-xxl"
"""The T5-XXL tokenizer's folder under `tokenizer_cache_dir` (sd-scripts names a cached tokenizer by its Hub id with
"/" made "_"; the bundled trainer's `flux_models.t5_tokenizer` looks there first, then in the local Hugging Face
cache)."""


def _check_t5_tokenizer(out: Any, cfg: TrainingConfig, resolve_path, resolved_note) -> None:
    """A set `tokenizer_cache_dir` that is not a folder is an error (a typo: offline nothing fills it); a folder
    without the T5 tokenizer is a warning (the trainer still tries the local Hugging Face cache, and stops minutes
    in when that lacks it too). Empty: the Hugging Face cache, which the app does not read."""
    v = str(getattr(cfg, "tokenizer_cache_dir", "") or "")
    if not v:
        return
    p = resolve_path(v)
    if not os.path.isdir(p):
        out.err("tokenizer_cache_dir", f"tokenizer_cache_dir '{v}' is not a folder{resolved_note(v)}: pick the "
                                       f"folder holding {T5_TOKENIZER_FOLDER}, or empty it to use the Hugging Face "
                                       f"cache")
    elif not os.path.isdir(os.path.join(p, T5_TOKENIZER_FOLDER)):
        out.warn("tokenizer_cache_dir", f"tokenizer_cache_dir '{v}' has no {T5_TOKENIZER_FOLDER} folder: the "
                                        f"trainer looks in the Hugging Face cache next and stops if the T5-XXL "
                                        f"tokenizer is not there; download google/t5-v1_1-xxl's spiece.model, "
                                        f"tokenizer_config.json and special_tokens_map.json into "
                                        f"{os.path.join(v, T5_TOKENIZER_FOLDER)}")
