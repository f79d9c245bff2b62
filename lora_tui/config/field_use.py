"""Values a config holds that its command will not carry: fields of another LoRA type or model family, and the
noise settings of the other ``noise_offset_type``.

The model keeps such values (a user who switches the LoRA type back gets them again, and a save writes them), as
the kohya_ss GUI keeps hidden fields; the launch leaves them out (``applies`` for the TOML and ``network_args``,
``NOISE_TYPE_FIELDS`` for the noise options). Loading a file reports each one so no typed value vanishes silently
(a field of another model family is left to validation, which warns about it while it stays set).
"""
from __future__ import annotations

from typing import Any, Iterable

from lora_tui.config.model import FieldMeta, TrainingConfig, all_field_meta, family, field_meta

#: The noise options each ``noise_offset_type`` uses; the launch leaves the other type's options out (kohya_ss
#: passes noise_offset/adaptive_noise_scale only for "Original" and multires_* only for "Multires").
NOISE_TYPE_FIELDS: dict[str, frozenset[str]] = {
    "Original": frozenset({"noise_offset", "noise_offset_random_strength", "adaptive_noise_scale"}),
    "Multires": frozenset({"multires_noise_iterations", "multires_noise_discount"}),
}

_FAMILY_LABELS = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL", "flux1": "Flux.1", "sd3": "SD3"}
_FAMILY_SWITCH = {"sd1": "untick SDXL/v2/Flux.1/SD3", "sd2": "tick v2", "sdxl": "tick SDXL",
                  "flux1": "tick Flux.1", "sd3": "tick SD3"}
_TYPES_SHOWN = 4


def is_default_or_blank(meta: FieldMeta, value: Any) -> bool:
    """Whether ``value`` is the field's default or an empty/unset form of it (None, "", or the 0 that kohya_ss
    writes where our default is None): such a value carries nothing a user typed."""
    if value is None or value == "" or value == meta.default:
        return True
    return meta.default is None and meta.kind in ("int", "float") and value == 0


def unused_reason(meta: FieldMeta, cfg: TrainingConfig) -> str | None:
    """Why ``cfg``'s launch leaves ``meta``'s field out, or None when the field is used. The reason names the
    setting to change to use it, e.g. "LoRA_type 'Standard' does not use it (it applies to Kohya DyLoRA, ...)"."""
    if meta.lora_types is not None and cfg.LoRA_type not in meta.lora_types:
        types = sorted(meta.lora_types)
        if len(types) == 1:
            shown = f"{types[0]} only"
        else:
            shown = ", ".join(types[:_TYPES_SHOWN]) + (
                f" and {len(types) - _TYPES_SHOWN} more" if len(types) > _TYPES_SHOWN else "")
        return f"LoRA_type '{cfg.LoRA_type}' does not use it (it applies to {shown})"
    fam = family(cfg)
    if meta.families is not None and fam not in meta.families:
        wanted = "/".join(_FAMILY_LABELS.get(f, f) for f in meta.families)
        return (f"it applies to {wanted} models only and this config is {_FAMILY_LABELS.get(fam, fam)} "
                f"({_FAMILY_SWITCH.get(meta.families[0], 'change the model family')} to use it)")
    for kind, names in NOISE_TYPE_FIELDS.items():
        if meta.name in names and cfg.noise_offset_type != kind:
            return f"noise_offset_type is '{cfg.noise_offset_type}' (set it to '{kind}' to use it)"
    return None


def _noted(meta: FieldMeta, cfg: TrainingConfig, fam: str) -> str | None:
    """``unused_reason`` for a field the load notes report; None for a used field and for a field of another
    model family (validation's family rule reports that one)."""
    why = unused_reason(meta, cfg)
    other_family = meta.families is not None and fam not in meta.families and (
        meta.lora_types is None or cfg.LoRA_type in meta.lora_types)
    return None if other_family else why


def kept_unused_fields(cfg: TrainingConfig) -> dict[str, str]:
    """Field name → reason for every field whose value ``cfg``'s launch leaves out for its LoRA type or
    ``noise_offset_type`` (the fields :func:`unused_value_notes` calls "kept, not used" when set), whatever their
    value. Validation checks none of them: the trainer never sees them (kohya_ss passes them only for the other
    type)."""
    fam = family(cfg)
    found: dict[str, str] = {}
    for meta in all_field_meta():
        why = _noted(meta, cfg, fam)
        if why:
            found[meta.name] = why
    return found


def unused_value_notes(cfg: TrainingConfig, names: Iterable[str]) -> list[str]:
    """One note per field in ``names`` whose value in ``cfg`` is set (see :func:`is_default_or_blank`) but not used by
    ``cfg``'s command (see :func:`unused_reason`), in ``names`` order, worded
    ``"<field>: <value> kept, not used: <reason>"``. Names that are not fields are skipped, and so is a field
    of another model family: validation warns about that one at every edit (the family-fields rule), and one
    message per value is enough."""
    notes: list[str] = []
    fam = family(cfg)
    for name in names:
        try:
            meta = field_meta(name)
        except KeyError:
            continue
        value = getattr(cfg, name)
        if is_default_or_blank(meta, value):
            continue
        why = _noted(meta, cfg, fam)
        if why:
            notes.append(f"{name}: {value!r} kept, not used: {why}")
    return notes
