"""The config layer: the training-config model, its field metadata, kohya JSON files, presets and app settings.

Imports stay light (pydantic and the standard library only); nothing here imports textual or torch.
"""

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
    network_args,
    network_module,
    script_name,
)

__all__ = [
    "FAMILIES", "SECTIONS", "FieldMeta", "TrainingConfig", "all_field_meta", "applies", "family", "field_meta",
    "fields_in_section", "minimal_fields", "network_args", "network_module", "script_name",
]
