"""Helpers for plan tests: real image files (tiny PNGs written by Pillow) in real folders, real configs."""
from __future__ import annotations

import json
import struct
from pathlib import Path

from PIL import Image

from lora_tui.config.model import TrainingConfig


def write_images(folder: Path, count: int, size: tuple[int, int], start: int = 0, ext: str = ".png",
                 caption_ext: str | None = None) -> list[Path]:
    """``count`` real single-colour images of ``size`` (W, H) named 0000.png, 0001.png, ... from ``start``."""
    folder.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, (120, 80, 40))
    out = []
    for i in range(start, start + count):
        p = folder / f"{i:04d}{ext}"
        im.save(p, format="PNG" if ext.lower() == ".png" else None)
        if caption_ext:
            p.with_suffix(caption_ext).write_text(f"caption {i}\n", encoding="utf-8")
        out.append(p)
    return out


def write_safetensors_header(path: Path, keys: list[str]) -> Path:
    """A valid safetensors file with one F32 scalar per key (the header is what detection reads)."""
    header = {}
    for i, k in enumerate(keys):
        header[k] = {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * (4 * len(keys)))
    return path


def make_cfg(**kw) -> TrainingConfig:
    """A config with the bucket settings of sd-scripts' own defaults unless given (kohya_ss' GUI default is
    bucket_no_upscale on) and a Hub id as base model (a warning only, no file needed)."""
    base = dict(pretrained_model_name_or_path="runwayml/stable-diffusion-v1-5", max_resolution="512,512", enable_bucket=True, bucket_no_upscale=False, min_bucket_reso=256,
                max_bucket_reso=1024, bucket_reso_steps=64, lr_warmup=0, lr_scheduler="constant",
                caption_extension=".txt")
    base.update(kw)
    return TrainingConfig(**base)
