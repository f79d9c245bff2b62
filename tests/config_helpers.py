"""Test helpers for the config and plan layers: fixture paths, tomllib, and a non-default value for every field."""
from __future__ import annotations

import json
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from typing import Any

from lora_tui.config.model import FieldMeta, all_field_meta

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = sorted((SHARED / "fixtures" / "kohya_presets").glob("*.json"))
#: The fixtures that are not LoRA configs (read from the files: no LoRA_type or network_* keys, and the keys of
#: kohya_ss's other tabs), by the kind the loader refuses them as.
OTHER_KINDS: dict[str, str] = {
    **{f"test-TI-AdamW8bit{s}.json": "Textual Inversion" for s in ("", "-SDXL", "-toml")},
    **{f"test-finetune-AdamW{s}.json": "Fine-tuning" for s in ("", "-toml")},
    **{f"test-{n}.json": "DreamBooth" for n in (
        "SDXL-Standard-AdamW", "Standard-AdamW", "Standard-AdamW8bit", "dreambooth", "dreambooth-Adafactor",
        "dreambooth-AdamW", "dreambooth-AdamW8bit", "dreambooth-AdamW8bit-masked_loss-toml",
        "dreambooth-AdamW8bit-toml", "dreambooth-DAdaptAdam", "dreambooth-Prodigy", "dreambooth-Prodigy-SDXL")},
    "test-meta-1_lat.json": "metadata",
}
#: The kohya_ss LoRA configs among the fixtures: each loads.
LORA_FIXTURES = [p for p in FIXTURES if p.name not in OTHER_KINDS]
PRESETS = sorted((REPO / "presets").glob("*.json"))


def sd_scripts_args() -> dict[str, dict[str, Any]]:
    """The upstream argparse tables (spec), keyed by script file name."""
    data = json.loads((SHARED / "spec" / "sd_scripts_args.json").read_text(encoding="utf-8"))
    return {f"{k}.py": v for k, v in data.items()}


def other_value(meta: FieldMeta) -> Any:
    """A valid value different from the field's default."""
    d = meta.default
    if meta.name == "max_resolution":
        return "640,384"
    if meta.kind == "bool":
        return not d
    if meta.choices and meta.strict_choices:
        return next(c for c in meta.choices if c != d)
    if meta.kind == "str":
        return f"x ü {meta.name}"
    if meta.kind == "int":
        return (d or 0) + 3
    return (d or 0.0) + 0.25


def non_default_values() -> dict[str, Any]:
    return {m.name: other_value(m) for m in all_field_meta()}
