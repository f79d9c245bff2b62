"""Diffusers → original ("ldm"/"sgm") key layout, the reverse of diffusers' single-file converters.

Diffusers only ships the original → diffusers direction (`diffusers.loaders.single_file_utils`). We need the
other direction twice: to write the tiny demo checkpoint in the layout real SD1.5/SDXL files use (so the same
`from_single_file` loader reads both), and to name SDXL UNet LoRA modules with the original block paths kohya
writes (spec sd_scripts_interface.md §5.2.3). Only key names and tensor layout are mapped here; the models
themselves are diffusers/transformers classes.

Layout facts (verified by loading back bit-exact through `from_single_file`, see tests/trainer):
- UNet (`model.diffusion_model.`), L = layers_per_block: `down_blocks.i.{resnets|attentions}.j` →
  `input_blocks.{i(L+1)+j+1}.{0|1}`, `down_blocks.i.downsamplers.0.conv` → `input_blocks.{(i+1)(L+1)}.0.op`,
  `mid_block.resnets.j` → `middle_block.{2j}`, `mid_block.attentions.0` → `middle_block.1`,
  `up_blocks.i.{resnets|attentions}.j` → `output_blocks.{i(L+1)+j}.{0|1}`, `up_blocks.i.upsamplers.0.conv` →
  `output_blocks.{i(L+1)+L}.{2 if the block has attentions else 1}.conv`; resnet children renamed as in
  `_RESNET`.
- VAE (`first_stage_model.`): `down.i.block.j`, `down.i.downsample`, `mid.block_{1,2}`, `mid.attn_1` (q/k/v/
  proj_out as 1×1 convs), decoder `up.{n-1-i}` (reversed order), `nin_shortcut`.
- CLIP-L (`cond_stage_model.transformer.` SD1, `conditioner.embedders.0.transformer.` SDXL): HF names with
  `text_model.` (transformers ≥ 5.6 drops that level from `CLIPTextModel`, so it is added back here).
- OpenCLIP (`conditioner.embedders.1.model.` SDXL, `cond_stage_model.model.` SD2): `transformer.resblocks.N`
  with fused `attn.in_proj_*`, `ln_1/ln_2`, `mlp.c_fc/c_proj`, `ln_final`, `token_embedding`,
  `positional_embedding`, `text_projection` stored transposed.
"""
from __future__ import annotations

import re

import torch

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]
_UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _resnet_child(rest: str) -> str:
    for old, new in _RESNET:
        if rest == old or rest.startswith(old + "."):
            return new + rest[len(old):]
    return rest


def unet_path_to_ldm(path: str, unet_config: dict) -> str:
    """Map a diffusers UNet parameter or module path (e.g. `down_blocks.1.attentions.0.proj_in` or
    `up_blocks.0.resnets.2.conv1.weight`) to the original layout (`input_blocks.4.1.proj_in`,
    `output_blocks.2.0.in_layers.2.weight`). Raises ValueError for a path it does not know."""
    L = int(unet_config["layers_per_block"])
    for old, new in _UNET_TOP.items():
        if path == old or path.startswith(old + "."):
            return new + path[len(old):]
    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)(.*)$", path)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        idx = i * (L + 1) + j + 1
        if kind == "resnets":
            return f"input_blocks.{idx}.0" + ("." + _resnet_child(rest[1:]) if rest else "")
        return f"input_blocks.{idx}.1{rest}"
    m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv(.*)$", path)
    if m:
        return f"input_blocks.{(int(m[1]) + 1) * (L + 1)}.0.op{m[2]}"
    m = re.match(r"mid_block\.resnets\.(\d+)(.*)$", path)
    if m:
        rest = m[2]
        return f"middle_block.{2 * int(m[1])}" + ("." + _resnet_child(rest[1:]) if rest else "")
    m = re.match(r"mid_block\.attentions\.0(.*)$", path)
    if m:
        return f"middle_block.1{m[1]}"
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)(.*)$", path)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        idx = i * (L + 1) + j
        if kind == "resnets":
            return f"output_blocks.{idx}.0" + ("." + _resnet_child(rest[1:]) if rest else "")
        return f"output_blocks.{idx}.1{rest}"
    m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv(.*)$", path)
    if m:
        i = int(m[1])
        has_attn = "CrossAttn" in unet_config["up_block_types"][i]
        return f"output_blocks.{i * (L + 1) + L}.{2 if has_attn else 1}.conv{m[2]}"
    raise ValueError(f"unknown diffusers UNet path: {path}")


def unet_to_ldm(state_dict: dict[str, torch.Tensor], unet_config: dict) -> dict[str, torch.Tensor]:
    """Diffusers UNet state dict → `model.diffusion_model.*` keys (tensors unchanged)."""
    return {"model.diffusion_model." + unet_path_to_ldm(k, unet_config): v for k, v in state_dict.items()}


def _vae_resnet(rest: str) -> str:
    return rest.replace("conv_shortcut", "nin_shortcut")


def vae_to_ldm(state_dict: dict[str, torch.Tensor], vae_config: dict) -> dict[str, torch.Tensor]:
    """Diffusers AutoencoderKL state dict → `first_stage_model.*` keys; mid-block attention projections become
    1×1 conv weights `[C, C, 1, 1]` as in the original files."""
    n = len(vae_config["up_block_types"])
    out = {}
    attn_names = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    for k, v in state_dict.items():
        m = re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(\w+)$", k)
        if m:
            if m[2] != "group_norm" and m[3] == "weight":
                v = v[:, :, None, None]
            out[f"{m[1]}.mid.attn_1.{attn_names[m[2]]}.{m[3]}"] = v
            continue
        m = re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)$", k)
        if m:
            out[f"{m[1]}.mid.block_{int(m[2]) + 1}.{_vae_resnet(m[3])}"] = v
            continue
        m = re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$", k)
        if m:
            out[f"encoder.down.{m[1]}.block.{m[2]}.{_vae_resnet(m[3])}"] = v
            continue
        m = re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)$", k)
        if m:
            out[f"encoder.down.{m[1]}.downsample.conv.{m[2]}"] = v
            continue
        m = re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$", k)
        if m:
            out[f"decoder.up.{n - 1 - int(m[1])}.block.{m[2]}.{_vae_resnet(m[3])}"] = v
            continue
        m = re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)$", k)
        if m:
            out[f"decoder.up.{n - 1 - int(m[1])}.upsample.conv.{m[2]}"] = v
            continue
        k2 = k.replace("conv_norm_out", "norm_out")
        if not re.match(r"(encoder|decoder)\.(conv_in|conv_out|norm_out)\.|(post_)?quant_conv\.", k2):
            raise ValueError(f"unknown diffusers VAE key: {k}")
        out[k2] = v
    return {"first_stage_model." + k: v for k, v in out.items()}


def clip_to_ldm(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """HF `CLIPTextModel` state dict → `<prefix>text_model.*` (prefix e.g. `cond_stage_model.transformer.`).
    `position_ids` buffers are dropped, as in released checkpoints."""
    out = {}
    for k, v in state_dict.items():
        if k.endswith("position_ids"):
            continue
        out[prefix + (k if k.startswith("text_model.") else "text_model." + k)] = v
    return out


def open_clip_to_ldm(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """HF `CLIPTextModelWithProjection` state dict → OpenCLIP layout under `prefix`
    (e.g. `conditioner.embedders.1.model.`), fusing q/k/v into `attn.in_proj_*`."""
    sd = {(k[len("text_model."):] if k.startswith("text_model.") else k): v for k, v in state_dict.items()}
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        if k.endswith("position_ids"):
            continue
        if k == "embeddings.token_embedding.weight":
            out["token_embedding.weight"] = v
        elif k == "embeddings.position_embedding.weight":
            out["positional_embedding"] = v
        elif k.startswith("final_layer_norm."):
            out["ln_final." + k.split(".", 1)[1]] = v
        elif k == "text_projection.weight":
            out["text_projection"] = v.T.contiguous()
        else:
            m = re.match(r"encoder\.layers\.(\d+)\.(.*)$", k)
            if not m:
                raise ValueError(f"unknown CLIPTextModelWithProjection key: {k}")
            base, rest = f"transformer.resblocks.{m[1]}.", m[2]
            q = re.match(r"self_attn\.(q|k|v)_proj\.(weight|bias)$", rest)
            if q:
                fused.setdefault(base + "attn.in_proj_" + q[2], {})[q[1]] = v
                continue
            rest = (rest.replace("self_attn.out_proj", "attn.out_proj").replace("layer_norm1", "ln_1")
                    .replace("layer_norm2", "ln_2").replace("mlp.fc1", "mlp.c_fc").replace("mlp.fc2", "mlp.c_proj"))
            out[base + rest] = v
    for k, parts in fused.items():
        out[k] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    # OpenCLIP checkpoints carry the contrastive temperature; diffusers ignores it.
    out["logit_scale"] = torch.tensor(4.6052)
    return {prefix + k: v for k, v in out.items()}
