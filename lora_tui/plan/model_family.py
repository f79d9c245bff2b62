"""Which model family a checkpoint is, read from its keys without loading tensors.

A ``.safetensors`` file starts with an 8-byte little-endian header length and a JSON header naming every tensor
(dtype, shape, offsets); we read that with the standard library only. Diffusers folders are recognised from
``model_index.json`` and the component configs. Families: ``sd1``, ``sd2``, ``sdxl``, ``flux1``, ``sd3`` (the
names ``lora_tui.config.model.family`` returns).
"""
from __future__ import annotations

import json
import os
import struct
import threading
from dataclasses import dataclass

FAMILY_LABELS = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL", "flux1": "Flux.1", "sd3": "SD3"}

_MAX_HEADER = 100 * 1024 * 1024  # safetensors itself refuses headers above 100 MB
# A VAE file's keys: original layout (optionally under the checkpoint's first_stage_model.) or Diffusers layout.
_VAE_PREFIXES = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.", "first_stage_model.")
# Textual-inversion embeddings: A1111/kohya SD1 (emb_params), SDXL (clip_l, clip_g), old string_to_param.*.
_EMBEDDING_KEYS = frozenset({"emb_params", "clip_l", "clip_g"})


class ModelFileError(ValueError):
    """The file is not a readable safetensors checkpoint; the message says why."""


@dataclass(frozen=True)
class ModelInfo:
    """``family``: one of FAMILY_LABELS' keys or None when unknown; ``kind``: ``"checkpoint"``, ``"diffusers"``,
    ``"unet"`` (UNet/transformer only), or a file that is no base model: ``"lora"``, ``"vae"`` (VAE weights
    only), ``"embedding"`` (a textual-inversion embedding), ``"empty"`` (no tensors), ``"unknown"`` (a
    safetensors file with no key layout of a Stable Diffusion, Flux.1 or SD3 model); ``detail``: why we think
    so."""

    family: str | None
    kind: str
    detail: str


def read_safetensors_header(path: str) -> dict:
    """The JSON header of a ``.safetensors`` file as a dict (tensor name → {dtype, shape, data_offsets}, plus
    ``__metadata__``). Raises ModelFileError when the file is too short or the header is not JSON."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise ModelFileError("the file is shorter than a safetensors header")
            (n,) = struct.unpack("<Q", raw)
            if n <= 1 or n > _MAX_HEADER:
                raise ModelFileError("the header length is not plausible: not a safetensors file")
            data = fh.read(n)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read it: {getattr(exc, 'strerror', None) or exc}") from exc
    if len(data) < n:
        raise ModelFileError("the file ends inside its header (truncated download?)")
    try:
        header = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"the header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ModelFileError("the header is not a JSON object")
    return header


def family_from_keys(keys: list[str] | set[str], shapes: dict[str, list[int]] | None = None) -> ModelInfo:
    """Family from tensor names (single-file layouts sd-scripts' `model_util`/`sdxl_model_util` load, Flux/SD3 originals, or their
    ComfyUI ``model.diffusion_model.`` prefixed forms)."""
    ks = [k for k in keys if k != "__metadata__"]

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in ks)

    def contains(part: str) -> bool:
        return any(part in k for k in ks)

    if not ks:
        return ModelInfo(None, "empty", "its header lists none: an unfinished save or download?")
    if has("lora_unet_") or has("lora_te") or contains(".lora_down.") or contains(".lora_A.") \
            or contains(".lora.down."):
        return ModelInfo(None, "lora", "lora_unet_*/lora_te*/lora_down keys")
    if all(k in _EMBEDDING_KEYS or k.startswith("string_to_param.") for k in ks):
        return ModelInfo(None, "embedding", f"textual-inversion vectors ({', '.join(sorted(ks)[:3])})")
    if all(k.startswith(_VAE_PREFIXES) for k in ks):
        return ModelInfo(None, "vae", "encoder.*/decoder.* keys only")
    if contains("double_blocks.") and contains("single_blocks."):
        return ModelInfo("flux1", "checkpoint", "double_blocks/single_blocks keys (Flux.1 transformer)")
    if contains("joint_blocks."):
        return ModelInfo("sd3", "checkpoint", "joint_blocks keys (SD3 MMDiT)")
    if has("conditioner.embedders.1.") or has("model.diffusion_model.label_emb."):
        return ModelInfo("sdxl", "checkpoint", "conditioner.embedders.1 / label_emb keys (SDXL)")
    if has("cond_stage_model.model."):
        return ModelInfo("sd2", "checkpoint", "OpenCLIP text encoder keys cond_stage_model.model.* (SD2.x)")
    if has("cond_stage_model.transformer."):
        return ModelInfo("sd1", "checkpoint", "CLIP text encoder keys cond_stage_model.transformer.* (SD1.x)")
    if has("model.diffusion_model.") or has("input_blocks."):
        # UNet only: the cross-attention width tells SD1 (768) from SD2 (1024).
        for k, shape in (shapes or {}).items():
            if k.endswith("attn2.to_k.weight") and len(shape) == 2:
                fam = "sd2" if shape[1] == 1024 else "sd1" if shape[1] == 768 else None
                if fam:
                    return ModelInfo(fam, "unet", f"UNet cross-attention width {shape[1]}")
        return ModelInfo(None, "unet", "a UNet without text encoder keys; its family is unclear")
    if has("add_embedding.") or has("down_blocks.") and contains("add_embedding"):
        return ModelInfo("sdxl", "unet", "Diffusers UNet with add_embedding (SDXL)")
    if has("transformer_blocks.") and has("single_transformer_blocks."):
        return ModelInfo("flux1", "unet", "Diffusers Flux transformer keys")
    shown = ", ".join(sorted(ks)[:3]) + (f" and {len(ks) - 3} more" if len(ks) > 3 else "")
    return ModelInfo(None, "unknown", f"keys: {shown}")


_cache: dict[str, tuple[int, int, ModelInfo]] = {}
_lock = threading.Lock()


def detect_family(path: str) -> ModelInfo:
    """Family of a local model: a ``.safetensors`` file (header only) or a Diffusers folder.

    Cached by (path, mtime, size). Raises ModelFileError for an unreadable safetensors file; returns family None
    for formats we cannot inspect without loading (``.ckpt``/``.pt``: pickles, which we never open).
    """
    st = os.stat(path)
    hit = _cache.get(path)
    if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
        return hit[2]
    if os.path.isdir(path):
        info = _detect_diffusers(path)
    elif path.lower().endswith(".safetensors"):
        header = read_safetensors_header(path)
        shapes = {k: v.get("shape", []) for k, v in header.items() if isinstance(v, dict) and k != "__metadata__"}
        info = family_from_keys(set(shapes), shapes)
    else:
        info = ModelInfo(None, "checkpoint", "not a .safetensors file: its keys are not inspected")
    with _lock:
        _cache[path] = (st.st_mtime_ns, st.st_size, info)
    return info


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _detect_diffusers(path: str) -> ModelInfo:
    index = _read_json(os.path.join(path, "model_index.json"))
    cls = str(index.get("_class_name", ""))
    if "XL" in cls:
        return ModelInfo("sdxl", "diffusers", f"Diffusers {cls}")
    if "Flux" in cls:
        return ModelInfo("flux1", "diffusers", f"Diffusers {cls}")
    if "StableDiffusion3" in cls:
        return ModelInfo("sd3", "diffusers", f"Diffusers {cls}")
    unet = _read_json(os.path.join(path, "unet", "config.json")) or (
        _read_json(os.path.join(path, "config.json")) if not index else {}
    )
    if unet:
        if unet.get("addition_embed_type") == "text_time":
            return ModelInfo("sdxl", "diffusers", "Diffusers UNet with text_time embedding (SDXL)")
        width = unet.get("cross_attention_dim")
        if width == 1024:
            return ModelInfo("sd2", "diffusers", "Diffusers UNet, cross-attention 1024 (SD2.x)")
        if width == 768:
            return ModelInfo("sd1", "diffusers", "Diffusers UNet, cross-attention 768 (SD1.x)")
    if index:
        return ModelInfo(None, "diffusers", f"Diffusers {cls or 'pipeline'} of unknown family")
    return ModelInfo(None, "diffusers", "a folder without model_index.json: not a Diffusers model")
