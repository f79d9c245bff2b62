"""Build tiny random models from `tiny.py` configs and save them as an original-layout single file."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from . import ldm_layout
from .atomic import atomic_path
from .tiny import tiny_configs

from .metadata_keys import CONFIG_METADATA_KEY, FAMILY_METADATA_KEY


def _config_kwargs(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def build_tiny_components(family: str, seed: int = 0):
    """Return ({"unet", "vae", "text_encoder"[, "text_encoder_2"]: module}, configs) with seeded random init."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfgs = tiny_configs(family)
    torch.manual_seed(seed)
    comps = {"unet": UNet2DConditionModel(**_config_kwargs(cfgs["unet"])),
             "vae": AutoencoderKL(**_config_kwargs(cfgs["vae"])),
             "text_encoder": CLIPTextModel(CLIPTextConfig(**cfgs["text_encoder"]))}
    if "text_encoder_2" in cfgs:
        comps["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(**cfgs["text_encoder_2"]))
    return comps, cfgs


def original_layout_state_dict(family: str, comps: dict, cfgs: dict) -> dict[str, torch.Tensor]:
    """All components' weights in the original single-file key layout (see `ldm_layout`)."""
    sd = {}
    sd.update(ldm_layout.unet_to_ldm(comps["unet"].state_dict(), cfgs["unet"]))
    sd.update(ldm_layout.vae_to_ldm(comps["vae"].state_dict(), cfgs["vae"]))
    if family == "sdxl":
        sd.update(ldm_layout.clip_to_ldm(comps["text_encoder"].state_dict(), "conditioner.embedders.0.transformer."))
        sd.update(ldm_layout.open_clip_to_ldm(comps["text_encoder_2"].state_dict(), "conditioner.embedders.1.model."))
    elif family == "sd2":
        te = ldm_layout.open_clip_to_ldm(comps["text_encoder"].state_dict(), "cond_stage_model.model.")
        sd.update({k: v for k, v in te.items() if not k.endswith("logit_scale")})  # SD2 files carry none
    else:
        sd.update(ldm_layout.clip_to_ldm(comps["text_encoder"].state_dict(), "cond_stage_model.transformer."))
    return {k: v.detach().contiguous() for k, v in sd.items()}


def save_original_layout(out: Path, family: str, comps: dict, cfgs: dict) -> None:
    """Write the single-file checkpoint atomically, with the tiny configs in the safetensors metadata."""
    from safetensors.torch import save_file

    sd = original_layout_state_dict(family, comps, cfgs)
    meta = {CONFIG_METADATA_KEY: json.dumps(cfgs), FAMILY_METADATA_KEY: family}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        save_file(sd, str(tmp), metadata=meta)
