"""Model loading, offline: single-file checkpoints (original layout) and diffusers folders.

Single files go through diffusers' own converters (`Pipeline.from_single_file`) with `config=` pointing at a
bundled diffusers-format config folder (`configs/<family>/`), so nothing asks the hub for a config or tokenizer
(trainer_feasibility.md, answer 3). The family is detected from the safetensors header keys, not with
`infer_diffusers_model_type`, which misreads small models. A checkpoint written by `make_demo_checkpoint.py`
carries its tiny component configs in the metadata (`lora_tui_diffusers_config`); those replace the full-size
configs for that file.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .metadata_keys import CONFIG_METADATA_KEY

CONFIG_ROOT = Path(__file__).parent / "configs"
FAMILY_LABEL = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL"}


class ModelError(Exception):
    """A checkpoint that cannot be used: missing, unreadable or of the wrong family. The message says which."""


@dataclass
class LoadedModel:
    """The components of one base model. `text_encoders` / `tokenizers` hold one entry (SD1/2) or two (SDXL)."""
    family: str
    unet: object
    vae: object
    text_encoders: list
    tokenizers: list
    configs: dict = field(default_factory=dict)
    pipeline: object = None


def _read_header(path: Path) -> tuple[list[str], dict]:
    """Tensor names and metadata of a safetensors file from its JSON header alone (no torch import, so bad
    input is reported in a fraction of a second). Raises ValueError for a file that is not safetensors."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("file shorter than a safetensors header")
        n = int.from_bytes(head, "little")
        if n <= 0 or n > 100 * 2**20:
            raise ValueError("no safetensors header")
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", None) or {}
    return list(header), meta


def detect_family(path: str | os.PathLike) -> str:
    """Return "sdxl", "sd2" or "sd1" for a single-file checkpoint or diffusers folder.

    Raises ModelError when the path does not exist or holds no recognisable Stable Diffusion model."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"pretrained_model_name_or_path: {path} does not exist (give a local .safetensors/.ckpt "
                         f"file or a diffusers folder; this trainer does not download models)")
    if p.is_dir():
        idx = p / "model_index.json"
        if not idx.is_file():
            raise ModelError(f"pretrained_model_name_or_path: {path} is a folder without model_index.json")
        cls = json.loads(idx.read_text()).get("_class_name", "")
        if "XL" in cls:
            return "sdxl"
        te = p / "text_encoder" / "config.json"
        if te.is_file() and json.loads(te.read_text()).get("hidden_size") == 1024:
            return "sd2"
        return "sd1"
    if p.suffix.lower() == ".safetensors":
        try:
            keys, _ = _read_header(p)
        except Exception as e:  # a truncated or non-safetensors file
            raise ModelError(f"pretrained_model_name_or_path: cannot read {path} as safetensors: {e}") from e
    else:
        keys = list(_load_ckpt(p).keys())
    return _family_from_keys(keys, path)


def _family_from_keys(keys, path) -> str:
    if any(k.startswith("conditioner.embedders.1.") or k.startswith("model.diffusion_model.label_emb.") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2"
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "sd1"
    raise ModelError(f"pretrained_model_name_or_path: {path} is not a Stable Diffusion 1.x/2.x/XL checkpoint "
                     f"(no UNet/text-encoder keys in the original layout)")


def _load_ckpt(p: Path) -> dict:
    import torch

    try:
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"pretrained_model_name_or_path: cannot read {p} (only weights-only .ckpt files are "
                         f"accepted): {e}") from e
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    return sd


def tiny_configs_in(path: Path) -> dict | None:
    """The component configs stored by make_demo_checkpoint.py in the file's metadata, or None."""
    if path.is_file() and path.suffix.lower() == ".safetensors":
        _, meta = _read_header(path)
        if CONFIG_METADATA_KEY in meta:
            return json.loads(meta[CONFIG_METADATA_KEY])
    return None


def config_dir_for(family: str, overrides: dict | None, workdir: Path) -> Path:
    """The diffusers config folder for `family`; with `overrides` a copy under `workdir` whose component
    `config.json` files are replaced."""
    base = CONFIG_ROOT / {"sd1": "sd15", "sd2": "sd2", "sdxl": "sdxl"}[family]
    if not overrides:
        return base
    dst = workdir / base.name
    shutil.copytree(base, dst)
    for comp, cfg in overrides.items():
        (dst / comp / "config.json").write_text(json.dumps(cfg, indent=2))
    return dst


def tokenizers_for(family: str, tokenizer_cache_dir: str | None = None) -> list:
    """Tokenizers for `family`: bundled CLIP BPE (spec §3.7 repos are not contacted). With
    `tokenizer_cache_dir`, an existing `openai_clip-vit-large-patch14` folder there is used for CLIP-L."""
    from .tokenizers import clip_tokenizer

    first = None
    if tokenizer_cache_dir:
        d = Path(tokenizer_cache_dir) / "openai_clip-vit-large-patch14"
        if d.is_dir():
            from transformers import CLIPTokenizer
            first = CLIPTokenizer.from_pretrained(str(d), local_files_only=True)
    toks = [first or clip_tokenizer()]
    if family == "sdxl":
        toks.append(clip_tokenizer(pad_with_zero=True))
    elif family == "sd2":
        # SD2's tokenizer pads with id 0 as well (pad token != EOS, spec §2.6).
        toks = [clip_tokenizer(pad_with_zero=True)]
    return toks


def load_model(path: str | os.PathLike, expected_family: str | None = None, torch_dtype=None,
               tokenizer_cache_dir: str | None = None, vae_path: str | None = None) -> LoadedModel:
    """Load UNet, VAE, text encoder(s) and tokenizer(s) from a local checkpoint without network access.

    `expected_family` ("sdxl" or "sd1"/"sd2"; "sd" accepts both) raises ModelError naming the right script
    when the file is of another family. `vae_path` replaces the VAE (single file or diffusers folder)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = Path(path).expanduser().resolve()
    family = detect_family(p)
    if expected_family and not (family == expected_family or (expected_family == "sd" and family in ("sd1", "sd2"))):
        script = "sdxl_train_network.py" if family == "sdxl" else "train_network.py"
        raise ModelError(f"pretrained_model_name_or_path: {path} is an {FAMILY_LABEL[family]} checkpoint; "
                         f"train it with {script}")
    toks = tokenizers_for(family, tokenizer_cache_dir)
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    tok_kwargs = {"tokenizer": toks[0]}
    if family == "sdxl":
        tok_kwargs["tokenizer_2"] = toks[1]
    with tempfile.TemporaryDirectory(prefix="lora_tui_cfg_") as td:
        overrides = tiny_configs_in(p)
        if p.is_dir():
            pipe = cls.from_pretrained(str(p), local_files_only=True, torch_dtype=torch_dtype,
                                       safety_checker=None, requires_safety_checker=False, **tok_kwargs) \
                if family != "sdxl" else cls.from_pretrained(str(p), local_files_only=True,
                                                             torch_dtype=torch_dtype, **tok_kwargs)
        else:
            cfg_dir = config_dir_for(family, overrides, Path(td))
            extra = {} if family == "sdxl" else {"safety_checker": None, "requires_safety_checker": False}
            pipe = cls.from_single_file(str(p), config=str(cfg_dir), local_files_only=True,
                                        torch_dtype=torch_dtype, **tok_kwargs, **extra)
    if vae_path:
        pipe.vae = load_vae(vae_path, family, torch_dtype)
    tes = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
    configs = {"unet": dict(pipe.unet.config), "vae": dict(pipe.vae.config)}
    return LoadedModel(family=family, unet=pipe.unet, vae=pipe.vae, text_encoders=tes, tokenizers=toks,
                       configs=configs, pipeline=pipe)


def load_vae(path: str, family: str, torch_dtype=None):
    """`--vae`: a diffusers folder (with or without a `vae` subfolder) or a single file (VAE-only or a full
    checkpoint) in the original layout (spec §3.5). Hub ids are refused: no network."""
    from diffusers import AutoencoderKL

    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"vae: {path} does not exist (give a local VAE file or folder)")
    if p.is_dir():
        sub = "vae" if (p / "vae" / "config.json").is_file() else None
        return AutoencoderKL.from_pretrained(str(p), subfolder=sub, local_files_only=True, torch_dtype=torch_dtype)
    cfg_dir = CONFIG_ROOT / {"sd1": "sd15", "sd2": "sd2", "sdxl": "sdxl"}[family]
    return AutoencoderKL.from_single_file(str(p), config=str(cfg_dir), subfolder="vae", local_files_only=True,
                                          torch_dtype=torch_dtype)
