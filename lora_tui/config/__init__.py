"""The config layer: the training-config model, its field metadata, kohya JSON files, presets and app settings.

Imports stay light (pydantic and the standard library only); nothing here imports textual or torch. The model's
names below are loaded on first use (PEP 562), so importing one small module of this package (``config.wording``,
``config.shown``, ``config.atomic``) does not build the model.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lora_tui.config.model import (
        FAMILIES,
        SECTIONS,
        FieldMeta,
        TrainingConfig,
        all_field_meta,
        applies,
        family,
        field_meta,
        fields_in_section,
        minimal_fields,
        script_name,
    )

__all__ = [
    "FAMILIES", "SECTIONS", "FieldMeta", "TrainingConfig", "all_field_meta", "applies", "family", "field_meta",
    "fields_in_section", "minimal_fields", "script_name",
]


def __getattr__(name: str) -> Any:
    """Load ``name`` from :mod:`lora_tui.config.model` on first use (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.model"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
