"""Flux.1 models, offline: the four single files a Flux user downloads for kohya/ComfyUI, loaded into diffusers'
`FluxTransformer2DModel` / `AutoencoderKL` and transformers' `CLIPTextModel` / `T5EncoderModel` with bundled
configs (`configs/flux/`), plus tiny random models in the same file layouts for tests and `--demo flux`.

File layouts (what sd-scripts' `library/flux_utils.py` reads):
- transformer (`flux1-dev.safetensors`, `flux1-schnell.safetensors`, fp8 files too): BFL names
  (`double_blocks.N.img_attn.qkv.weight`, `single_blocks.N.linear1.weight`, `final_layer.adaLN_modulation.1`),
  optionally under `model.diffusion_model.` (ComfyUI). schnell has no `guidance_in.*` keys.
- `ae.safetensors`: the ldm VAE layout without a prefix and without quant convs.
- `clip_l.safetensors`: HF `CLIPTextModel` keys with `text_model.`.
- `t5xxl_fp16.safetensors`: HF `T5EncoderModel` keys (`encoder.block.N...`, `shared.weight`).

Full-width transformers (inner dim 3072, every released Flux.1) go through diffusers' own BFL converter
(`FluxTransformer2DModel.from_single_file(config=...)`); that converter hard-codes the width, so narrower
(tiny) files, which carry their config in the safetensors metadata, go through `bfl_to_diffusers` below, the
inverse of `diffusers_to_bfl` (a key mapping only; the modules are diffusers').

The T5 tokenizer (`google/t5-v1_1-xxl`, as sd-scripts' `strategy_flux` names it) comes from
`<tokenizer_cache_dir>/google_t5-v1_1-xxl` or the local Hugging Face cache; never from the network.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .metadata_keys import CONFIG_METADATA_KEY, FAMILY_METADATA_KEY
from .models import CONFIG_ROOT, ModelError, _read_header

FLUX_CONFIG_DIR = CONFIG_ROOT / "flux"
T5_TOKENIZER_ID = "google/t5-v1_1-xxl"
CLIP_L_TOKENIZER_ID = "openai/clip-vit-large-patch14"
FULL_WIDTH = 3072  # inner dim of every released Flux.1 transformer; diffusers' converter assumes it
# what each file is, told by one key its layout always has (prefix stripped)
_MARKERS = {
    "transformer": ("double_blocks.0.img_attn.qkv.weight",),
    "ae": ("encoder.conv_in.weight", "decoder.conv_in.weight"),
    "clip_l": ("text_model.encoder.layers.0.self_attn.q_proj.weight", "encoder.layers.0.self_attn.q_proj.weight"),
    "t5xxl": ("encoder.block.0.layer.0.SelfAttention.q.weight",),
}
FILE_OPTION = {"transformer": "pretrained_model_name_or_path", "ae": "ae", "clip_l": "clip_l", "t5xxl": "t5xxl"}
WHAT = {"transformer": "a Flux.1 transformer (flux1-dev/flux1-schnell .safetensors)",
        "ae": "the Flux.1 autoencoder (ae.safetensors)", "clip_l": "a CLIP-L text encoder (clip_l.safetensors)",
        "t5xxl": "a T5-XXL text encoder (t5xxl_fp16.safetensors)"}


@dataclass
class FluxModel:
    """The loaded Flux.1 components; `text_encoders` = [CLIP-L, T5-XXL], `tokenizers` likewise."""
    transformer: object
    ae: object
    text_encoders: list
    tokenizers: list
    is_schnell: bool
    configs: dict = field(default_factory=dict)
    family: str = "flux"
    pipeline: object = None

    @property
    def unet(self):
        """The denoiser under the shared loop's name for it."""
        return self.transformer

    @property
    def vae(self):
        """The autoencoder under the shared loop's name for it."""
        return self.ae


def _strip(key: str) -> str:
    for p in ("model.diffusion_model.", "first_stage_model.", "text_encoders.clip_l.transformer.",
              "text_encoders.t5xxl.transformer."):
        if key.startswith(p):
            return key[len(p):]
    return key


def file_kind(path: str | os.PathLike) -> str | None:
    """"transformer", "ae", "clip_l", "t5xxl" for a safetensors file of that Flux component, "sd" for a Stable
    Diffusion checkpoint, None when unknown. Reads only the header. Raises ModelError for unreadable files."""
    p = Path(path)
    try:
        keys, _ = _read_header(p)
    except (OSError, ValueError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read {path} as safetensors: {e}") from e
    ks = {_strip(k) for k in keys}
    if any(k.startswith(("conditioner.embedders.", "cond_stage_model.", "model.diffusion_model.input_blocks."))
           for k in keys):
        return "sd"
    for kind, marks in _MARKERS.items():
        if any(m in ks for m in marks):
            return kind
    return None


def check_file(kind: str, path) -> Path:
    """The path of the `kind` component file, checked (exists, safetensors, that component); ModelError naming
    the option (`ae`, `clip_l`, `t5xxl`, `pretrained_model_name_or_path`) and the fix otherwise."""
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
        what = "a Stable Diffusion checkpoint (train it with train_network.py/sdxl_train_network.py)" \
            if got == "sd" else (WHAT[got] if got else "not a Flux.1 component")
        raise ModelError(f"{opt}: {path} is {what}; give {WHAT[kind]}")
    return p


def _meta_config(p: Path) -> dict | None:
    _, meta = _read_header(p)
    return json.loads(meta[CONFIG_METADATA_KEY]) if CONFIG_METADATA_KEY in meta else None


def _bundled(comp: str) -> dict:
    return json.loads((FLUX_CONFIG_DIR / comp / "config.json").read_text())


def _kwargs(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def _load_sd(p: Path, dtype=None) -> dict:
    from safetensors.torch import load_file

    sd = {_strip(k): v for k, v in load_file(str(p)).items()}
    if dtype is not None:
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
    return sd


# ------------------------------------------------------------------------------------------ BFL key layout
def _pairs(n_double: int, n_single: int):
    """(BFL tensor name, [diffusers names concatenated along dim 0]) for one transformer; the final layer's
    adaLN rows are swapped (shift, scale in BFL; scale, shift in diffusers)."""
    for src, dst in (("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
                     ("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
                     ("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
                     ("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
                     ("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
                     ("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
                     ("txt_in", "context_embedder"), ("img_in", "x_embedder"), ("final_layer.linear", "proj_out"),
                     ("final_layer.adaLN_modulation.1", "norm_out.linear")):
        for s in ("weight", "bias"):
            yield f"{src}.{s}", [f"{dst}.{s}"]
    for i in range(n_double):
        b, d = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        for s in ("weight", "bias"):
            yield b + f"img_mod.lin.{s}", [d + f"norm1.linear.{s}"]
            yield b + f"txt_mod.lin.{s}", [d + f"norm1_context.linear.{s}"]
            yield b + f"img_attn.qkv.{s}", [d + f"attn.to_{x}.{s}" for x in "qkv"]
            yield b + f"txt_attn.qkv.{s}", [d + f"attn.add_{x}_proj.{s}" for x in "qkv"]
            yield b + f"img_attn.proj.{s}", [d + f"attn.to_out.0.{s}"]
            yield b + f"txt_attn.proj.{s}", [d + f"attn.to_add_out.{s}"]
            yield b + f"img_mlp.0.{s}", [d + f"ff.net.0.proj.{s}"]
            yield b + f"img_mlp.2.{s}", [d + f"ff.net.2.{s}"]
            yield b + f"txt_mlp.0.{s}", [d + f"ff_context.net.0.proj.{s}"]
            yield b + f"txt_mlp.2.{s}", [d + f"ff_context.net.2.{s}"]
        yield b + "img_attn.norm.query_norm.scale", [d + "attn.norm_q.weight"]
        yield b + "img_attn.norm.key_norm.scale", [d + "attn.norm_k.weight"]
        yield b + "txt_attn.norm.query_norm.scale", [d + "attn.norm_added_q.weight"]
        yield b + "txt_attn.norm.key_norm.scale", [d + "attn.norm_added_k.weight"]
    for i in range(n_single):
        b, d = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        for s in ("weight", "bias"):
            yield b + f"modulation.lin.{s}", [d + f"norm.linear.{s}"]
            yield b + f"linear1.{s}", [d + f"attn.to_{x}.{s}" for x in "qkv"] + [d + f"proj_mlp.{s}"]
            yield b + f"linear2.{s}", [d + f"proj_out.{s}"]
        yield b + "norm.query_norm.scale", [d + "attn.norm_q.weight"]
        yield b + "norm.key_norm.scale", [d + "attn.norm_k.weight"]


def _swap_halves(t):
    import torch

    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def diffusers_to_bfl(sd: dict, config: dict) -> dict:
    """diffusers `FluxTransformer2DModel` state dict → BFL single-file names (fused qkv and linear1)."""
    import torch

    out = {}
    for src, dsts in _pairs(config["num_layers"], config["num_single_layers"]):
        if dsts[0] not in sd:
            continue  # schnell: no guidance embedder
        t = torch.cat([sd[d] for d in dsts], dim=0) if len(dsts) > 1 else sd[dsts[0]]
        out[src] = _swap_halves(t) if src.startswith("final_layer.adaLN") else t
    return out


def bfl_to_diffusers(sd: dict, target_shapes: dict) -> dict:
    """BFL names → diffusers names, splitting fused tensors by the row counts in `target_shapes` (the diffusers
    model's state-dict shapes). Raises ModelError for a missing tensor."""
    import torch

    n_double = 1 + max((int(k.split(".")[1]) for k in sd if k.startswith("double_blocks.")), default=-1)
    n_single = 1 + max((int(k.split(".")[1]) for k in sd if k.startswith("single_blocks.")), default=-1)
    out = {}
    for src, dsts in _pairs(n_double, n_single):
        if dsts[0] not in target_shapes:
            continue
        if src not in sd:
            raise ModelError(f"transformer file lacks {src}")
        t = sd[src]
        if src.startswith("final_layer.adaLN"):
            t = _swap_halves(t)
        parts = torch.split(t, [target_shapes[d][0] for d in dsts], dim=0) if len(dsts) > 1 else [t]
        out.update(zip(dsts, parts))
    return out


# ------------------------------------------------------------------------------------------ loading
def load_transformer(path, torch_dtype=None):
    """The Flux.1 transformer from a BFL/ComfyUI single file; returns (model, is_schnell, config)."""
    import torch
    from diffusers import FluxTransformer2DModel

    p = check_file("transformer", path)
    keys = {_strip(k) for k in _read_header(p)[0]}
    is_schnell = "guidance_in.in_layer.weight" not in keys
    cfg = _meta_config(p)
    tiny = cfg["transformer"] if cfg else None
    if tiny is None:
        cfg_t = _bundled("transformer")
        cfg_t["guidance_embeds"] = not is_schnell
        import tempfile
        with tempfile.TemporaryDirectory(prefix="lora_tui_flux_") as td:
            (Path(td) / "transformer").mkdir()
            (Path(td) / "transformer" / "config.json").write_text(json.dumps(cfg_t))
            model = FluxTransformer2DModel.from_single_file(str(p), config=td, subfolder="transformer",
                                                            local_files_only=True, torch_dtype=torch_dtype)
        return model, is_schnell, dict(model.config)
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = FluxTransformer2DModel(**_kwargs(tiny))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    sd = bfl_to_diffusers(_load_sd(p, torch_dtype or torch.float32), shapes)
    missing = sorted(set(shapes) - set(sd))
    if missing:
        raise ModelError(f"pretrained_model_name_or_path: {path} lacks {len(missing)} tensors, e.g. {missing[0]}")
    model.load_state_dict(sd, assign=True, strict=True)
    return model, is_schnell, dict(tiny)


def load_ae(path, torch_dtype=None):
    """The Flux.1 autoencoder (16 latent channels, scale 0.3611, shift 0.1159) from `ae.safetensors`."""
    from diffusers import AutoencoderKL

    p = check_file("ae", path)
    cfg = _meta_config(p)
    import tempfile
    with tempfile.TemporaryDirectory(prefix="lora_tui_flux_") as td:
        (Path(td) / "vae").mkdir()
        (Path(td) / "vae" / "config.json").write_text(json.dumps(cfg["ae"] if cfg else _bundled("vae")))
        return AutoencoderKL.from_single_file(str(p), config=td, subfolder="vae", local_files_only=True,
                                              torch_dtype=torch_dtype)


def load_clip_l(path, torch_dtype=None):
    """CLIP-L (`CLIPTextModel`) from `clip_l.safetensors` (HF names, with or without `text_model.`)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel

    p = check_file("clip_l", path)
    cfg = _meta_config(p)
    conf = CLIPTextConfig(**(cfg["clip_l"] if cfg else _bundled("text_encoder")))
    with init_empty_weights():
        model = CLIPTextModel(conf)
    own = model.state_dict()
    flat = not any(k.startswith("text_model.") for k in own)  # transformers >= 5.6 dropped `text_model.`
    sd = {}
    for k, v in _load_sd(p, torch_dtype or torch.float32).items():
        k2 = k[len("text_model."):] if flat and k.startswith("text_model.") else k
        if k2 in own:
            sd[k2] = v
    for k, v in own.items():  # position_ids buffers, dropped from released files
        if k not in sd and k.endswith("position_ids"):
            sd[k] = torch.arange(v.shape[-1])[None]
    missing = sorted(k for k in own if k not in sd)
    if missing:
        raise ModelError(f"clip_l: {path} lacks {missing[0]} (is it a CLIP-L text encoder?)")
    model.load_state_dict(sd, assign=True, strict=True)
    return model


def load_t5xxl(path, torch_dtype=None):
    """T5-XXL encoder (`T5EncoderModel`) from `t5xxl_fp16.safetensors` (HF names; `shared.weight` and
    `encoder.embed_tokens.weight` are one tensor)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import T5Config, T5EncoderModel

    p = check_file("t5xxl", path)
    cfg = _meta_config(p)
    conf = T5Config(**(cfg["t5xxl"] if cfg else _bundled("text_encoder_2")))
    with init_empty_weights():
        model = T5EncoderModel(conf)
    sd = _load_sd(p, torch_dtype or torch.float32)
    emb = sd.get("shared.weight", sd.get("encoder.embed_tokens.weight"))
    if emb is None:
        raise ModelError(f"t5xxl: {path} has no token embedding (shared.weight)")
    sd["shared.weight"] = emb
    sd["encoder.embed_tokens.weight"] = emb
    own = model.state_dict()
    missing = sorted(k for k in own if k not in sd)
    if missing:
        raise ModelError(f"t5xxl: {path} lacks {missing[0]} (is it a T5-XXL encoder?)")
    model.load_state_dict({k: sd[k] for k in own}, assign=True, strict=True)
    model.tie_weights() if hasattr(model, "tie_weights") else None
    return model


def t5_tokenizer(tokenizer_cache_dir: str | None = None, max_length: int = 512):
    """The T5-XXL tokenizer: `<tokenizer_cache_dir>/google_t5-v1_1-xxl` (as sd-scripts caches it) or the local
    Hugging Face cache of `google/t5-v1_1-xxl`. ModelError saying what to download when neither has it."""
    from transformers import AutoTokenizer

    tried = []
    if tokenizer_cache_dir:
        d = Path(tokenizer_cache_dir) / T5_TOKENIZER_ID.replace("/", "_")
        tried.append(str(d))
        if d.is_dir():
            tok = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
            tok.model_max_length = max_length
            return tok
    try:
        tok = AutoTokenizer.from_pretrained(T5_TOKENIZER_ID, local_files_only=True)
        tok.model_max_length = max_length
        return tok
    except (OSError, ValueError):
        tried.append(f"the Hugging Face cache ({T5_TOKENIZER_ID})")
    raise ModelError(
        f"tokenizer_cache_dir: no T5-XXL tokenizer found (looked in {', '.join(tried)}); this trainer does not "
        f"download. On a machine with network: `hf download {T5_TOKENIZER_ID} spiece.model tokenizer_config.json "
        f"special_tokens_map.json --local-dir <tokenizer_cache_dir>/{T5_TOKENIZER_ID.replace('/', '_')}`, then "
        f"set tokenizer_cache_dir")


def clip_l_tokenizer(tokenizer_cache_dir: str | None = None):
    """CLIP-L tokenizer: `<tokenizer_cache_dir>/openai_clip-vit-large-patch14` when there, else the bundled BPE."""
    from .models import tokenizers_for

    return tokenizers_for("sd1", tokenizer_cache_dir)[0]


def load_flux(args, torch_dtype=None) -> FluxModel:
    """All four components for `args` (pretrained_model_name_or_path, ae, clip_l, t5xxl, tokenizer_cache_dir,
    t5xxl_max_token_length). Every file is checked before any loads, so one run reports all bad paths."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    problems = []
    for kind in ("transformer", "ae", "clip_l", "t5xxl"):
        try:
            check_file(kind, getattr(args, FILE_OPTION[kind], None))
        except ModelError as e:
            problems.append(str(e))
    if problems:
        raise ModelError("\n".join(problems))
    tr, is_schnell, tcfg = load_transformer(args.pretrained_model_name_or_path, torch_dtype)
    ae = load_ae(args.ae, torch_dtype)
    clip = load_clip_l(args.clip_l, torch_dtype)
    t5 = load_t5xxl(args.t5xxl, torch_dtype)
    max_len = args.t5xxl_max_token_length or (256 if is_schnell else 512)
    toks = [clip_l_tokenizer(args.tokenizer_cache_dir), t5_tokenizer(args.tokenizer_cache_dir, max_len)]
    return FluxModel(tr, ae, [clip, t5], toks, is_schnell, {"transformer": tcfg, "ae": dict(ae.config)})


# ------------------------------------------------------------------------------------------ tiny models
def tiny_flux_configs(vocab_size: int = 64, schnell: bool = False) -> dict:
    """Configs of a tiny random Flux.1: 2 double and 2 single blocks of width 32, a 4-level AE with 16 latent
    channels, a 2-layer CLIP-L of width 32 (CLIP's full vocabulary), a 2-layer T5 of width 32 with
    `vocab_size` tokens."""
    from .tokenizers import VOCAB_SIZE

    return {
        "transformer": {"patch_size": 1, "in_channels": 64, "num_layers": 2, "num_single_layers": 2,
                        "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 32,
                        "pooled_projection_dim": 32, "guidance_embeds": not schnell, "axes_dims_rope": [4, 6, 6]},
        "ae": {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [8, 16, 32, 32],
               "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
               "in_channels": 3, "out_channels": 3, "latent_channels": 16, "layers_per_block": 1,
               "norm_num_groups": 8, "sample_size": 64, "scaling_factor": 0.3611, "shift_factor": 0.1159,
               "use_quant_conv": False, "use_post_quant_conv": False},
        "clip_l": {"hidden_act": "quick_gelu", "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
                   "num_hidden_layers": 2, "max_position_embeddings": 77, "vocab_size": VOCAB_SIZE,
                   "projection_dim": 32, "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1,
                   "layer_norm_eps": 1e-05},
        "t5xxl": {"vocab_size": vocab_size, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4,
                  "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16,
                  "feed_forward_proj": "gated-gelu", "is_encoder_decoder": False, "use_cache": False,
                  "pad_token_id": 0, "eos_token_id": 1, "dense_act_fn": "gelu_new", "is_gated_act": True},
    }


TINY_T5_WORDS = ("a photo of the demo person cat dog face portrait man woman in on with red blue green "
                 "sks style painting smiling looking at camera background outdoor indoor light dark").split()


def save_tiny_t5_tokenizer(folder: Path, vocab_size: int = 64) -> Path:
    """A small word-level T5-style tokenizer (`<pad>` 0, `</s>` 1, `<unk>` 2; appends `</s>`) saved with
    `save_pretrained` into `folder/google_t5-v1_1-xxl`, where `t5_tokenizer(tokenizer_cache_dir=folder)` finds
    it. For tests and the demo only: real runs use Google's sentencepiece tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "</s>", "<unk>"] + [w for w in dict.fromkeys(TINY_T5_WORDS)]
    vocab = {w: i for i, w in enumerate(words[:vocab_size])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    out = Path(folder) / T5_TOKENIZER_ID.replace("/", "_")
    tok.save_pretrained(str(out))
    return out


def build_tiny_flux(seed: int = 0, schnell: bool = False):
    """({"transformer", "ae", "clip_l", "t5xxl": module}, configs) with seeded random weights."""
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    cfgs = tiny_flux_configs(schnell=schnell)
    torch.manual_seed(seed)
    comps = {"transformer": FluxTransformer2DModel(**_kwargs(cfgs["transformer"])),
             "ae": AutoencoderKL(**_kwargs(cfgs["ae"])),
             "clip_l": CLIPTextModel(CLIPTextConfig(**cfgs["clip_l"])),
             "t5xxl": T5EncoderModel(T5Config(**cfgs["t5xxl"]))}
    with torch.no_grad():  # diffusers zero-initialises some output layers; random weights make outputs differ
        for p in comps["transformer"].parameters():
            if p.abs().sum() == 0 and p.dim() > 1:
                p.normal_(0, 0.02)
    return comps, cfgs


def save_tiny_flux(folder: Path, comps: dict, cfgs: dict, comfy: bool = False) -> dict[str, Path]:
    """Write the four single files into `folder` (flux1-tiny.safetensors, ae.safetensors, clip_l.safetensors,
    t5xxl_tiny.safetensors), each carrying its tiny config in the metadata. `comfy` puts the transformer under
    `model.diffusion_model.` as ComfyUI's checkpoints do. Returns {kind: path}."""
    from safetensors.torch import save_file

    from . import ldm_layout
    from .atomic import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tr = diffusers_to_bfl(comps["transformer"].state_dict(), cfgs["transformer"])
    if comfy:
        tr = {"model.diffusion_model." + k: v for k, v in tr.items()}
    ae = {k[len("first_stage_model."):]: v for k, v in
          ldm_layout.vae_to_ldm(comps["ae"].state_dict(), cfgs["ae"]).items()}
    clip = ldm_layout.clip_to_ldm(comps["clip_l"].state_dict(), "")
    t5 = {k: v for k, v in comps["t5xxl"].state_dict().items() if k != "encoder.embed_tokens.weight"}
    files = {"transformer": ("flux1-tiny.safetensors", tr), "ae": ("ae.safetensors", ae),
             "clip_l": ("clip_l.safetensors", clip), "t5xxl": ("t5xxl_tiny.safetensors", t5)}
    paths = {}
    for kind, (name, sd) in files.items():
        meta = {CONFIG_METADATA_KEY: json.dumps({kind: cfgs[kind]}), FAMILY_METADATA_KEY: "flux"}
        p = folder / name
        with atomic_path(p) as tmp:
            save_file({k: v.detach().contiguous() for k, v in sd.items()}, str(tmp), metadata=meta)
        paths[kind] = p
    return paths


def make_tiny_flux(folder: Path, seed: int = 0, comfy: bool = False) -> dict[str, Path]:
    """Build and save a tiny Flux.1 with its T5 tokenizer (under `folder/tokenizers`); returns the paths
    {"transformer", "ae", "clip_l", "t5xxl", "tokenizer_cache_dir"}."""
    comps, cfgs = build_tiny_flux(seed)
    paths = save_tiny_flux(folder, comps, cfgs, comfy=comfy)
    save_tiny_t5_tokenizer(Path(folder) / "tokenizers", cfgs["t5xxl"]["vocab_size"])
    paths["tokenizer_cache_dir"] = Path(folder) / "tokenizers"
    return paths
