"""The demo: a tiny SDXL-architecture checkpoint (or, with `--demo flux`, a tiny Flux.1 in its four single files and
a small T5 tokenizer; with `--demo sd3`, a tiny SD3.5 Medium-shaped single file with its text encoders inside and the
T5 tokenizer) and a folder of real photographs, prepared once in the user cache dir.

`lora-tui --demo` opens the form filled with `demo_config()`; pressing Start then trains a real LoRA on the CPU in
well under two minutes. The checkpoint is written by the trainer's own `make_demo_checkpoint.py` in a subprocess,
because building it needs torch and the app must never import torch.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.model import TrainingConfig
from lora_tui.config.paths import BUNDLED_PRESETS

PHOTOS = Path(__file__).parent / "photos"
SUBSET = "10_demo person"

# One caption per photo: the class token first, as users caption a face/character set.
CAPTIONS = {
    "astronaut.jpg": "demo person, a woman in an orange space suit in front of a flag, portrait photo",
    "astronaut_face.jpg": "demo person, close-up of a smiling woman's face, portrait photo",
    "chelsea.jpg": "demo person, a tabby cat looking to the side, photo",
    "coffee.jpg": "demo person, a cup of coffee on a saucer, photo",
    "rocket.jpg": "demo person, a rocket on a launch pad, photo",
}

# What the demo changes from the SDXL face preset so that a CPU run is short: a tiny model trains at 128 px, with
# plain AdamW (bitsandbytes' 8-bit AdamW wants a GPU) and no mixed precision (CPUs have no fast fp16).
DEMO_OVERRIDES = {
    "output_name": "demo_lora",
    "max_resolution": "128,128",
    "enable_bucket": True,
    "min_bucket_reso": 64,
    "max_bucket_reso": 256,
    "bucket_reso_steps": 32,
    "train_batch_size": 2,
    "epoch": 2,
    "max_train_steps": None,  # unset: the epochs set the steps
    "save_every_n_epochs": 1,
    "optimizer": "AdamW",
    "learning_rate": 0.0005,
    "unet_lr": None,  # empty: the U-Net trains at learning_rate, the Minimal form's "Learning rate"
    "text_encoder_lr": 0.0001,
    "mixed_precision": "no",
    "save_precision": "fp16",
    "cache_latents": True,
    "cache_latents_to_disk": False,
    "gradient_checkpointing": False,
    "num_cpu_threads_per_process": 1,
    "max_data_loader_n_workers": 0,
    "seed": 42,
}


# The Flux demo: the Flux.1 preset at CPU size (no mixed precision, plain AdamW, short T5 sequences, 64-px steps
# as sd-scripts' Flux trainer requires).
FLUX_DEMO_OVERRIDES = {**DEMO_OVERRIDES, "output_name": "demo_flux_lora", "bucket_reso_steps": 64,
                       "max_bucket_reso": 192, "full_bf16": False, "fp8_base": False, "text_encoder_lr": 0.0,
                       "t5xxl_max_token_length": 32, "guidance_scale": 1.0, "sample_prompts": ""}
# The SD3 demo: the SD3 preset at CPU size (as the Flux demo; U-Net only with the text-encoder outputs cached, as
# the preset trains, kept in memory; 32-px bucket steps as sd-scripts' SD3 trainer checks).
SD3_DEMO_OVERRIDES = {**DEMO_OVERRIDES, "output_name": "demo_sd3_lora", "max_bucket_reso": 192, "full_bf16": False,
                      "text_encoder_lr": 0.0, "sample_prompts": "",
                      "sd3_cache_text_encoder_outputs_to_disk": False, "optimizer": "AdamW"}
FAMILIES = ("sdxl", "flux", "sd3")


@dataclass(frozen=True)
class DemoFiles:
    """Where the demo lives: `root` (cache dir), the checkpoint (Flux: the transformer file), the image folder
    (parent of `10_demo person`), the output folder; for Flux also the ae/clip_l/t5xxl files and the folder given
    as `tokenizer_cache_dir`."""

    root: Path
    checkpoint: Path
    train_data_dir: Path
    output_dir: Path
    family: str = "sdxl"
    ae: Path | None = None
    clip_l: Path | None = None
    t5xxl: Path | None = None
    tokenizer_cache_dir: Path | None = None


def demo_files(settings: AppSettings, family: str = "sdxl") -> DemoFiles:
    """The demo's paths under `settings.cache_dir` for `family` ("sdxl", "flux" or "sd3"; nothing is created)."""
    root = Path(settings.cache_dir) / "demo"
    if family == "sd3":
        m = root / "sd3_model"
        return DemoFiles(root, m / "sd3_tiny.safetensors", root / "img", root / "outputs", "sd3",
                         tokenizer_cache_dir=m / "tokenizers")
    if family == "flux":
        m = root / "flux_model"
        return DemoFiles(root, m / "flux1-tiny.safetensors", root / "img", root / "outputs", "flux",
                         m / "ae.safetensors", m / "clip_l.safetensors", m / "t5xxl_tiny.safetensors",
                         m / "tokenizers")
    return DemoFiles(root, root / "model" / "tiny_sdxl.safetensors", root / "img", root / "outputs")


def prepare_demo(settings: AppSettings, log=print, family: str = "sdxl") -> DemoFiles:
    """Create the demo checkpoint (`family` "sdxl" or "flux") and dataset once (idempotent; a second call only
    checks).

    Raises `RuntimeError` with the trainer's message when the checkpoint cannot be built (for example when the
    trainer's packages are not installed in `settings.python`).
    """
    files = demo_files(settings, family)
    if not files.checkpoint.exists() or (family in ("flux", "sd3")
                                         and not (files.tokenizer_cache_dir or Path()).is_dir()):
        label = {"flux": "Flux.1", "sd3": "SD3.5 Medium"}.get(family, "SDXL")
        log(f"Building the tiny {label}-architecture demo model in {files.checkpoint.parent} ...")
        files.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        script = Path(settings.sd_scripts_dir) / "make_demo_checkpoint.py"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        target = files.checkpoint.parent if family in ("flux", "sd3") else files.checkpoint
        try:
            proc = subprocess.run([str(settings.python), str(script), "--family", family, str(target)],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
        except OSError as exc:  # no such interpreter, or not executable
            raise RuntimeError(f"could not run {settings.python} ({exc.strerror}); set the trainer's Python "
                               f"(app setting `python`)") from None
        if proc.returncode != 0 or not files.checkpoint.exists():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"could not build the demo checkpoint with {settings.python} {script}:\n{tail}")
    subset = files.train_data_dir / SUBSET
    subset.mkdir(parents=True, exist_ok=True)
    for name, caption in CAPTIONS.items():
        image = subset / name
        if not image.exists():
            shutil.copyfile(PHOTOS / name, image)
        caption_file = image.with_suffix(".txt")
        if not caption_file.exists():
            caption_file.write_text(caption + "\n", encoding="utf-8")
    files.output_dir.mkdir(parents=True, exist_ok=True)
    return files


def demo_config(files: DemoFiles) -> TrainingConfig:
    """The SDXL face preset (`presets/sdxl-face-lora.json`) pointed at the demo files, with `DEMO_OVERRIDES`; for
    the Flux demo the Flux.1 preset (`presets/flux1-lora.json`) with `FLUX_DEMO_OVERRIDES`, its three extra files,
    and the demo's T5 tokenizer folder as `tokenizer_cache_dir`; for the SD3 demo the SD3 preset with
    `SD3_DEMO_OVERRIDES` and its tokenizer folder as `tokenizer_cache_dir` (the text encoders are in the checkpoint)."""
    if files.family == "flux":
        data = load_config_file(BUNDLED_PRESETS / "flux1-lora.json").config.model_dump()
        data.update(FLUX_DEMO_OVERRIDES)
        data.update(ae=str(files.ae), clip_l=str(files.clip_l), t5xxl=str(files.t5xxl),
                    tokenizer_cache_dir=str(files.tokenizer_cache_dir))
    elif files.family == "sd3":
        data = load_config_file(BUNDLED_PRESETS / "sd3-lora.json").config.model_dump()
        data.update(SD3_DEMO_OVERRIDES)
        data.update(tokenizer_cache_dir=str(files.tokenizer_cache_dir))
    else:
        data = load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config.model_dump()
        data.update(DEMO_OVERRIDES)
    data.update(
        pretrained_model_name_or_path=str(files.checkpoint),
        train_data_dir=str(files.train_data_dir),
        output_dir=str(files.output_dir),
        logging_dir="",
    )
    return TrainingConfig.model_validate(data)
