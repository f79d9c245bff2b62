"""SD3 / SD3.5 models, offline: the single-file checkpoints sd-scripts' `sd3_train_network.py` reads
(`library/sd3_utils.py`), loaded into diffusers' `SD3Transformer2DModel` / `AutoencoderKL` and transformers'
`CLIPTextModelWithProjection` (CLIP-L, CLIP-G) / `T5EncoderModel`; plus tiny random models in the same layout for
tests and `--demo sd3`.

File layouts:
- the checkpoint (`sd3_medium.safetensors`, `sd3.5_medium.safetensors`, `sd3.5_large.safetensors`): the MMDiT
  under `model.diffusion_model.` (`joint_blocks.N.x_block.attn.qkv.weight`, `...context_block.adaLN_modulation.1`,
  `x_block.attn2.*` in SD3.5 Medium, `attn.ln_q/ln_k` in SD3.5), the VAE under `first_stage_model.`, and optionally
  the text encoders under `text_encoders.clip_l.transformer.`, `text_encoders.clip_g.transformer.`,
  `text_encoders.t5xxl.transformer.` (HF names).
- separate `clip_l.safetensors`, `clip_g.safetensors`, `t5xxl_fp16.safetensors`: HF names (with or without
  `text_model.`); a CLIP-L without `text_projection.weight` gets the identity, as sd-scripts does.

The transformer's config is read from the file's tensor shapes (depth, widths, attn2 layers, qk norm: sd-scripts'
`analyze_state_dict_state`), so SD3 Medium, SD3.5 Medium and SD3.5 Large need no bundled transformer config; a tiny
file carries its exact config in the safetensors metadata. The weights go through diffusers' own SD3 single-file
converter (`SD3Transformer2DModel.from_single_file(config=...)`).

Tokenizers: CLIP-L and CLIP-G from the bundled CLIP BPE (CLIP-G pads with id 0, as sd-scripts' `strategy_sd3`), T5
from `<tokenizer_cache_dir>/google_t5-v1_1-xxl` or the local Hugging Face cache (`flux_models.t5_tokenizer`).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .metadata_keys import CONFIG_METADATA_KEY, FAMILY_METADATA_KEY
from .models import ModelError, _read_header

MMDIT_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TE_PREFIX = {"clip_l": "text_encoders.clip_l.transformer.", "clip_g": "text_encoders.clip_g.transformer.",
             "t5xxl": "text_encoders.t5xxl.transformer."}
FILE_OPTION = {"checkpoint": "pretrained_model_name_or_path", "clip_l": "clip_l", "clip_g": "clip_g",
               "t5xxl": "t5xxl", "vae": "vae"}
WHAT = {"checkpoint": "an SD3/SD3.5 checkpoint (sd3_medium.safetensors, sd3.5_medium.safetensors, ...)",
        "clip_l": "a CLIP-L text encoder (clip_l.safetensors)", "clip_g": "a CLIP-G text encoder (clip_g.safetensors)",
        "t5xxl": "a T5-XXL text encoder (t5xxl_fp16.safetensors)", "vae": "an SD3 VAE (16 latent channels)"}
# sd-scripts' sd3_utils configs (CLIP-L/-G with projection) and the SD3 VAE (16 channels, no quant convs)
FULL_CONFIGS = {
    "clip_l": {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
               "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
               "layer_norm_eps": 1e-05, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
               "projection_dim": 768},
    "clip_g": {"vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
               "num_attention_heads": 20, "max_position_embeddings": 77, "hidden_act": "gelu",
               "layer_norm_eps": 1e-05, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
               "projection_dim": 1280},
    "vae": {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
            "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
            "in_channels": 3, "out_channels": 3, "latent_channels": 16, "layers_per_block": 2, "norm_num_groups": 32,
            "sample_size": 1024, "scaling_factor": 1.5305, "shift_factor": 0.0609, "use_quant_conv": False,
            "use_post_quant_conv": False},
}


@dataclass
class SD3Model:
    """The loaded SD3 components; `text_encoders` = [CLIP-L, CLIP-G, T5-XXL], `tokenizers` likewise."""
    transformer: object
    vae: object
    text_encoders: list
    tokenizers: list
    model_type: str  # sd-scripts' names: "medium" (SD3), "5-medium", "5-large"
    configs: dict = field(default_factory=dict)
    family: str = "sd3"
    pipeline: object = None

    @property
    def unet(self):
        """The denoiser under the shared loop's name for it."""
        return self.transformer


def header(path) -> tuple[dict, dict]:
    """({tensor name: shape}, metadata) of a safetensors file from its header alone."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n <= 0 or n > 100 * 2**20:
            raise ValueError("no safetensors header")
        h = json.loads(f.read(n))
    meta = h.pop("__metadata__", None) or {}
    return {k: v.get("shape") for k, v in h.items()}, meta


def file_kind(path) -> str | None:
    """"checkpoint" (an SD3 MMDiT, maybe with VAE and text encoders), "clip_l" / "clip_g" (by width), "t5xxl",
    "vae", "flux" (a Flux.1 transformer), "sd" (SD1/2/XL), or None. Reads only the header; ModelError when the file
    is not safetensors."""
    try:
        keys, _ = _read_header(Path(path))
    except (OSError, ValueError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read {path} as safetensors: {e}") from e
    ks = set(keys)
    if any(k.startswith((MMDIT_PREFIX + "joint_blocks.", "joint_blocks.")) for k in ks):
        return "checkpoint"
    if any(k.startswith(("conditioner.embedders.", "cond_stage_model.", MMDIT_PREFIX + "input_blocks.")) for k in ks):
        return "sd"
    if any("double_blocks.0.img_attn.qkv.weight" in k for k in ks):
        return "flux"
    if any(k.endswith("encoder.block.0.layer.0.SelfAttention.q.weight") for k in ks):
        return "t5xxl"
    q = [k for k in ks if k.endswith("encoder.layers.0.self_attn.q_proj.weight")]
    if q:
        shapes, meta = header(path)
        width = shapes[q[0]][0]
        if CONFIG_METADATA_KEY in meta:  # a tiny file: its own config says which encoder has this width
            cfg = json.loads(meta[CONFIG_METADATA_KEY])
            if cfg.get("clip_g", {}).get("hidden_size") == width:
                return "clip_g"
        return "clip_g" if width >= 1024 else "clip_l"  # CLIP-L is 768 wide, CLIP-G 1280
    if any(k.endswith("encoder.conv_in.weight") for k in ks) and any(k.endswith("decoder.conv_in.weight") for k in ks):
        return "vae"
    return None


def check_file(kind: str, path) -> Path:
    """The path of the `kind` file ("checkpoint", "clip_l", "clip_g", "t5xxl", "vae"), checked by header;
    ModelError naming the option and the fix otherwise."""
    opt = FILE_OPTION[kind]
    if not path:
        raise ModelError(f"{opt} is not set; give the path of {WHAT[kind]}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(f"{opt}: {path} does not exist (give a local file of {WHAT[kind]}; this trainer does not "
                         f"download models)")
    try:
        got = file_kind(p)
    except ModelError as e:
        raise ModelError(f"{opt}: {e}") from None
    if got != kind:
        what = {"sd": "a Stable Diffusion 1.x/2.x/XL checkpoint (train it with train_network.py/sdxl_train_network.py)",
                "flux": "a Flux.1 transformer (train it with flux_train_network.py)"}.get(got) \
            or (WHAT[got] if got else "not an SD3 component")
        raise ModelError(f"{opt}: {path} is {what}; give {WHAT[kind]}")
    return p


def included(path) -> set[str]:
    """Which of "vae", "clip_l", "clip_g", "t5xxl" the checkpoint at `path` holds (header only)."""
    keys, _ = _read_header(Path(path))
    have = set()
    for k in keys:
        if k.startswith(VAE_PREFIX):
            have.add("vae")
        for name, pre in TE_PREFIX.items():
            if k.startswith(pre):
                have.add(name)
    return have


def missing_parts(args) -> list[str]:
    """Messages for each text encoder / VAE neither in the checkpoint nor given as a file (sd-scripts loads
    each from `clip_l`/`clip_g`/`t5xxl`/`vae` when set, else from the checkpoint)."""
    have = included(args.pretrained_model_name_or_path)
    msgs = []
    for part in ("clip_l", "clip_g", "t5xxl", "vae"):
        if part not in have and not getattr(args, part, None):
            msgs.append(f"{part} is not set and {args.pretrained_model_name_or_path} does not include it; give the "
                        f"path of {WHAT[part]}")
    return msgs


def transformer_config(shapes: dict, meta: dict) -> dict:
    """SD3Transformer2DModel config from the MMDiT tensor shapes (names without `model.diffusion_model.`), as
    sd-scripts' `analyze_state_dict_state` reads them; a tiny file's metadata config wins."""
    if CONFIG_METADATA_KEY in meta:
        cfg = json.loads(meta[CONFIG_METADATA_KEY]).get("transformer")
        if cfg:
            return cfg
    xw = shapes["x_embedder.proj.weight"]
    hidden = xw[0]
    depth = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("joint_blocks."))
    attn2 = sorted({int(k.split(".")[1]) for k in shapes if ".x_block.attn2." in k})
    ctx = shapes["context_embedder.weight"]
    return {"sample_size": 128, "patch_size": xw[2], "in_channels": xw[1], "num_layers": depth,
            "attention_head_dim": 64, "num_attention_heads": hidden // 64, "joint_attention_dim": ctx[1],
            "caption_projection_dim": ctx[0], "pooled_projection_dim": shapes["y_embedder.mlp.0.weight"][1],
            "out_channels": 16, "pos_embed_max_size": round(math.sqrt(shapes["pos_embed"][1])),
            "dual_attention_layers": attn2,
            "qk_norm": "rms_norm" if "joint_blocks.0.context_block.attn.ln_k.weight" in shapes else None}


def model_type(cfg: dict) -> str:
    """sd-scripts' model type: "medium" (SD3, no qk norm), "5-medium" (attn2 layers), "5-large"."""
    if not cfg.get("qk_norm"):
        return "medium"
    return "5-medium" if cfg.get("dual_attention_layers") else "5-large"


def _config_dir(td: str, sub: str, cfg: dict) -> str:
    (Path(td) / sub).mkdir()
    (Path(td) / sub / "config.json").write_text(json.dumps(cfg))
    return td


def _kwargs(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def _tiny_meta(p: Path) -> dict:
    _, meta = _read_header(p)
    return json.loads(meta[CONFIG_METADATA_KEY]) if CONFIG_METADATA_KEY in meta else {}


def load_transformer(path, torch_dtype=None):
    """(SD3Transformer2DModel, config) from the checkpoint, through diffusers' SD3 single-file converter."""
    from diffusers import SD3Transformer2DModel

    p = check_file("checkpoint", path)
    shapes, meta = header(p)
    mm = {k[len(MMDIT_PREFIX):] if k.startswith(MMDIT_PREFIX) else k: v for k, v in shapes.items()}
    cfg = transformer_config(mm, meta)
    with tempfile.TemporaryDirectory(prefix="lora_tui_sd3_") as td:
        _config_dir(td, "transformer", {"_class_name": "SD3Transformer2DModel", **cfg})
        model = SD3Transformer2DModel.from_single_file(str(p), config=td, subfolder="transformer",
                                                       local_files_only=True, torch_dtype=torch_dtype)
    return model, cfg


def _state(p: Path, prefix: str | None, dtype) -> dict:
    """Tensors of `p` (under `prefix`, stripped, when given) in `dtype`."""
    from safetensors import safe_open

    out = {}
    with safe_open(str(p), framework="pt") as f:
        for k in f.keys():
            if prefix is None or k.startswith(prefix):
                t = f.get_tensor(k)
                out[k[len(prefix):] if prefix else k] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    return out


def load_vae(path, vae_path=None, torch_dtype=None):
    """The SD3 VAE (16 latent channels, scale 1.5305, shift 0.0609) from `vae_path` or the checkpoint's
    `first_stage_model.*`."""
    from diffusers import AutoencoderKL

    src = check_file("vae", vae_path) if vae_path else Path(path)
    cfg = _tiny_meta(src).get("vae") or _tiny_meta(Path(path)).get("vae") or FULL_CONFIGS["vae"]
    with tempfile.TemporaryDirectory(prefix="lora_tui_sd3_") as td:
        _config_dir(td, "vae", cfg)
        return AutoencoderKL.from_single_file(str(src), config=td, subfolder="vae", local_files_only=True,
                                              torch_dtype=torch_dtype)


def _clip(which: str, sd: dict, cfg: dict, where: str):
    """CLIPTextModelWithProjection from HF-named tensors `sd` (with or without `text_model.`)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    with init_empty_weights():
        model = CLIPTextModelWithProjection(CLIPTextConfig(**cfg))
    own = model.state_dict()
    flat = not any(k.startswith("text_model.") for k in own)  # transformers >= 5.6 dropped `text_model.`
    got = {}
    for k, v in sd.items():
        k2 = k[len("text_model."):] if flat and k.startswith("text_model.") else k
        if not flat and not k2.startswith(("text_model.", "text_projection.")):
            k2 = "text_model." + k2
        if k2 in own:
            got[k2] = v
    if "text_projection.weight" not in got:  # sd-scripts: a CLIP-L file without projection gets the identity
        n = cfg["hidden_size"]
        got["text_projection.weight"] = torch.eye(n, dtype=next(iter(sd.values())).dtype)
    for k, v in own.items():
        if k not in got and k.endswith("position_ids"):
            got[k] = torch.arange(v.shape[-1])[None]
    missing = sorted(k for k in own if k not in got)
    if missing:
        raise ModelError(f"{which}: {where} lacks {missing[0]} (is it a {which} text encoder?)")
    model.load_state_dict(got, assign=True, strict=True)
    return model


def _t5(sd: dict, cfg: dict, where: str):
    from accelerate import init_empty_weights
    from transformers import T5Config, T5EncoderModel

    with init_empty_weights():
        model = T5EncoderModel(T5Config(**cfg))
    emb = sd.get("shared.weight", sd.get("encoder.embed_tokens.weight"))
    if emb is None:
        raise ModelError(f"t5xxl: {where} has no token embedding (shared.weight)")
    sd = {**sd, "shared.weight": emb, "encoder.embed_tokens.weight": emb}
    own = model.state_dict()
    missing = sorted(k for k in own if k not in sd)
    if missing:
        raise ModelError(f"t5xxl: {where} lacks {missing[0]} (is it a T5-XXL encoder?)")
    model.load_state_dict({k: sd[k] for k in own}, assign=True, strict=True)
    return model


def load_text_encoder(which: str, ckpt, file=None, torch_dtype=None):
    """CLIP-L / CLIP-G / T5-XXL from its own file (`file`, when set, as sd-scripts prefers it) or from the
    checkpoint's `text_encoders.<which>.transformer.*`."""
    import torch

    dtype = torch_dtype or torch.float32
    if file:
        p = check_file(which, file)
        sd, where = _state(p, None, dtype), str(file)
        tiny = _tiny_meta(p).get(which)
    else:
        sd, where = _state(Path(ckpt), TE_PREFIX[which], dtype), f"{ckpt} (text_encoders.{which})"
        tiny = _tiny_meta(Path(ckpt)).get(which)
        if not sd:
            raise ModelError(f"{which} is not set and {ckpt} does not include it; give the path of {WHAT[which]}")
    if which == "t5xxl":
        from .flux_models import FLUX_CONFIG_DIR
        cfg = tiny or json.loads((FLUX_CONFIG_DIR / "text_encoder_2" / "config.json").read_text())
        return _t5(sd, _kwargs(cfg), where)
    return _clip(which, sd, tiny or FULL_CONFIGS[which], where)


def tokenizers(tokenizer_cache_dir: str | None, t5_max_length: int) -> list:
    """[CLIP-L, CLIP-G (pads with 0), T5-XXL] tokenizers, offline."""
    from .flux_models import t5_tokenizer
    from .models import tokenizers_for

    clip_l, clip_g = tokenizers_for("sdxl", tokenizer_cache_dir)
    return [clip_l, clip_g, t5_tokenizer(tokenizer_cache_dir, t5_max_length)]


def load_sd3(args, torch_dtype=None) -> SD3Model:
    """All components for `args` (pretrained_model_name_or_path, clip_l, clip_g, t5xxl, vae, tokenizer_cache_dir,
    t5xxl_max_token_length). Files are checked first, so one run reports every bad path together."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    problems = []
    for kind in ("checkpoint", "clip_l", "clip_g", "t5xxl", "vae"):
        path = getattr(args, FILE_OPTION[kind], None)
        if path or kind == "checkpoint":
            try:
                check_file(kind, path)
            except ModelError as e:
                problems.append(str(e))
    if not problems:
        problems = missing_parts(args)
    if problems:
        raise ModelError("\n".join(problems))
    ck = args.pretrained_model_name_or_path
    tr, cfg = load_transformer(ck, torch_dtype)
    vae = load_vae(ck, args.vae, torch_dtype)
    tes = [load_text_encoder(w, ck, getattr(args, w, None), torch_dtype) for w in ("clip_l", "clip_g", "t5xxl")]
    toks = tokenizers(args.tokenizer_cache_dir, int(args.t5xxl_max_token_length or 256))
    return SD3Model(tr, vae, tes, toks, model_type(cfg), {"transformer": cfg, "vae": dict(vae.config)})


# ------------------------------------------------------------------------------------------ SD3 key layout
def _pairs(cfg: dict):
    """(SD3 single-file name, [diffusers names concatenated along dim 0], swap) for one transformer; `swap`: the
    two halves of the rows are exchanged (shift/scale in SD3, scale/shift in diffusers' AdaLayerNormContinuous)."""
    n = cfg["num_layers"]
    yield "pos_embed", ["pos_embed.pos_embed"], False
    for s in ("weight", "bias"):
        for src, dst in (("x_embedder.proj", "pos_embed.proj"), ("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
                         ("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
                         ("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
                         ("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2"),
                         ("context_embedder", "context_embedder"), ("final_layer.linear", "proj_out")):
            yield f"{src}.{s}", [f"{dst}.{s}"], False
        yield f"final_layer.adaLN_modulation.1.{s}", [f"norm_out.linear.{s}"], True
    for i in range(n):
        j, d = f"joint_blocks.{i}.", f"transformer_blocks.{i}."
        last = i == n - 1
        for s in ("weight", "bias"):
            yield j + f"x_block.attn.qkv.{s}", [d + f"attn.to_{x}.{s}" for x in "qkv"], False
            yield j + f"context_block.attn.qkv.{s}", [d + f"attn.add_{x}_proj.{s}" for x in "qkv"], False
            yield j + f"x_block.attn.proj.{s}", [d + f"attn.to_out.0.{s}"], False
            yield j + f"x_block.adaLN_modulation.1.{s}", [d + f"norm1.linear.{s}"], False
            yield j + f"context_block.adaLN_modulation.1.{s}", [d + f"norm1_context.linear.{s}"], last
            yield j + f"x_block.mlp.fc1.{s}", [d + f"ff.net.0.proj.{s}"], False
            yield j + f"x_block.mlp.fc2.{s}", [d + f"ff.net.2.{s}"], False
            if not last:
                yield j + f"context_block.attn.proj.{s}", [d + f"attn.to_add_out.{s}"], False
                yield j + f"context_block.mlp.fc1.{s}", [d + f"ff_context.net.0.proj.{s}"], False
                yield j + f"context_block.mlp.fc2.{s}", [d + f"ff_context.net.2.{s}"], False
            if i in cfg.get("dual_attention_layers") or ():
                yield j + f"x_block.attn2.qkv.{s}", [d + f"attn2.to_{x}.{s}" for x in "qkv"], False
                yield j + f"x_block.attn2.proj.{s}", [d + f"attn2.to_out.0.{s}"], False
        if cfg.get("qk_norm"):
            for blk, a, q, k in (("x_block", "attn", "norm_q", "norm_k"),
                                 ("context_block", "attn", "norm_added_q", "norm_added_k")):
                yield j + f"{blk}.{a}.ln_q.weight", [d + f"attn.{q}.weight"], False
                yield j + f"{blk}.{a}.ln_k.weight", [d + f"attn.{k}.weight"], False
            if i in cfg.get("dual_attention_layers") or ():
                yield j + "x_block.attn2.ln_q.weight", [d + "attn2.norm_q.weight"], False
                yield j + "x_block.attn2.ln_k.weight", [d + "attn2.norm_k.weight"], False


def swap_halves(t):
    """Exchange the two halves of dim 0 (SD3's shift/scale ↔ diffusers' scale/shift rows)."""
    import torch

    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def diffusers_to_sd3(sd: dict, cfg: dict) -> dict:
    """diffusers `SD3Transformer2DModel` state dict → SD3 single-file names (fused qkv, SD3 adaLN row order),
    without the `model.diffusion_model.` prefix. KeyError names a tensor the model lacks."""
    import torch

    out = {}
    for src, dsts, swap in _pairs(cfg):
        t = torch.cat([sd[d] for d in dsts], dim=0) if len(dsts) > 1 else sd[dsts[0]]
        out[src] = swap_halves(t) if swap else t
    return out


# ------------------------------------------------------------------------------------------ tiny models
def tiny_sd3_configs(vocab_size: int = 64) -> dict:
    """Configs of a tiny random SD3.5 Medium-shaped model: 2 joint blocks of width 16 (head dim 8) with attn2 in
    block 0 and RMS qk norm, a 4-level VAE with 16 latent channels, CLIP-L and CLIP-G of width 16/24 (projection
    16 each; the pooled input is their 32-wide concatenation), a 2-layer T5 of width 32 (= joint_attention_dim)."""
    from .tokenizers import VOCAB_SIZE

    def clip(width, act):
        return {"hidden_act": act, "hidden_size": width, "intermediate_size": 2 * width, "num_attention_heads": 4,
                "num_hidden_layers": 2, "max_position_embeddings": 77, "vocab_size": VOCAB_SIZE, "projection_dim": 16,
                "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1, "layer_norm_eps": 1e-05}
    return {
        "transformer": {"sample_size": 32, "patch_size": 2, "in_channels": 16, "num_layers": 2,
                        "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 32,
                        "caption_projection_dim": 16, "pooled_projection_dim": 32, "out_channels": 16,
                        "pos_embed_max_size": 32, "dual_attention_layers": [0], "qk_norm": "rms_norm"},
        "vae": {**FULL_CONFIGS["vae"], "block_out_channels": [8, 16, 32, 32], "layers_per_block": 1,
                "norm_num_groups": 8, "sample_size": 64},
        "clip_l": clip(16, "quick_gelu"),
        "clip_g": clip(24, "gelu"),
        "t5xxl": {"vocab_size": vocab_size, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4,
                  "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16,
                  "feed_forward_proj": "gated-gelu", "is_encoder_decoder": False, "use_cache": False,
                  "pad_token_id": 0, "eos_token_id": 1, "dense_act_fn": "gelu_new", "is_gated_act": True},
    }


def build_tiny_sd3(seed: int = 0):
    """({"transformer", "vae", "clip_l", "clip_g", "t5xxl": module}, configs) with seeded random weights."""
    import torch
    from diffusers import AutoencoderKL, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    cfgs = tiny_sd3_configs()
    torch.manual_seed(seed)
    comps = {"transformer": SD3Transformer2DModel(**cfgs["transformer"]),
             "vae": AutoencoderKL(**_kwargs(cfgs["vae"])),
             "clip_l": CLIPTextModelWithProjection(CLIPTextConfig(**cfgs["clip_l"])),
             "clip_g": CLIPTextModelWithProjection(CLIPTextConfig(**cfgs["clip_g"])),
             "t5xxl": T5EncoderModel(T5Config(**cfgs["t5xxl"]))}
    with torch.no_grad():  # diffusers zero-initialises some output layers; random weights make outputs differ
        for p in comps["transformer"].parameters():
            if p.abs().sum() == 0 and p.dim() > 1:
                p.normal_(0, 0.02)
    return comps, cfgs


def save_tiny_sd3(folder: Path, comps: dict, cfgs: dict, include_text_encoders: bool = True) -> dict[str, Path]:
    """Write the tiny model as `folder/sd3_tiny.safetensors` (MMDiT under `model.diffusion_model.`, VAE under
    `first_stage_model.`, and with `include_text_encoders` the three text encoders under `text_encoders.*`);
    without them, `clip_l.safetensors`, `clip_g.safetensors`, `t5xxl_tiny.safetensors` beside it. Every file
    carries the tiny configs in its metadata. Returns {"checkpoint"[, "clip_l", "clip_g", "t5xxl"]: path}."""
    from safetensors.torch import save_file

    from . import ldm_layout
    from .atomic import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {MMDIT_PREFIX + k: v for k, v in diffusers_to_sd3(comps["transformer"].state_dict(),
                                                          cfgs["transformer"]).items()}
    sd.update(ldm_layout.vae_to_ldm(comps["vae"].state_dict(), cfgs["vae"]))
    # HF names as released SD3 files have them: `text_model.*` and `text_projection.weight`, no position_ids
    te_sds = {w: {(k if k.startswith(("text_model.", "text_projection.")) else "text_model." + k): v
                  for k, v in comps[w].state_dict().items() if not k.endswith("position_ids")}
              for w in ("clip_l", "clip_g")}
    te_sds["t5xxl"] = {k: v for k, v in comps["t5xxl"].state_dict().items() if k != "encoder.embed_tokens.weight"}
    meta = {CONFIG_METADATA_KEY: json.dumps(cfgs), FAMILY_METADATA_KEY: "sd3"}
    files = {}
    if include_text_encoders:
        for w, tsd in te_sds.items():
            sd.update({TE_PREFIX[w] + k: v for k, v in tsd.items()})
    else:
        names = {"clip_l": "clip_l.safetensors", "clip_g": "clip_g.safetensors", "t5xxl": "t5xxl_tiny.safetensors"}
        for w, tsd in te_sds.items():
            files[w] = (folder / names[w], tsd)
    files["checkpoint"] = (folder / "sd3_tiny.safetensors", sd)
    paths = {}
    for kind, (p, tsd) in files.items():
        with atomic_path(p) as tmp:
            save_file({k: v.detach().contiguous() for k, v in tsd.items()}, str(tmp), metadata=meta)
        paths[kind] = p
    return paths


def make_tiny_sd3(folder: Path, seed: int = 0, include_text_encoders: bool = True) -> dict[str, Path]:
    """Build and save a tiny SD3.5 Medium-shaped model with its T5 tokenizer (under `folder/tokenizers`);
    returns the paths (see `save_tiny_sd3`) and "tokenizer_cache_dir"."""
    from .flux_models import save_tiny_t5_tokenizer

    comps, cfgs = build_tiny_sd3(seed)
    paths = save_tiny_sd3(folder, comps, cfgs, include_text_encoders)
    save_tiny_t5_tokenizer(Path(folder) / "tokenizers", cfgs["t5xxl"]["vocab_size"])
    paths["tokenizer_cache_dir"] = Path(folder) / "tokenizers"
    return paths
