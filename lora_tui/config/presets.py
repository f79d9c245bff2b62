"""Preset discovery: our bundled ``presets/*.json`` and the user's presets dir (``AppSettings.presets_dir``); and
what applying one over the form does to kept values it makes invalid (:func:`reset_invalid_kept`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Optional

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.model import all_field_meta
from lora_tui.config.paths import BUNDLED_PRESETS

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig


@dataclass(frozen=True)
class PresetRef:
    """One preset file: ``name`` is the file stem (``sdxl-face-lora``); ``origin`` says where it was found."""

    name: str
    path: Path
    origin: Literal["bundled", "user"]


def list_presets(settings: Optional[AppSettings] = None) -> list[PresetRef]:
    """All presets, bundled first then the user's, each group sorted by name (case-insensitive).

    A user preset with the same name as a bundled one is listed too; :func:`find_preset` prefers the user's."""
    settings = settings or AppSettings()
    out: list[PresetRef] = []
    for origin, folder in (("bundled", BUNDLED_PRESETS), ("user", Path(settings.presets_dir))):
        if folder.is_dir():
            files = sorted(folder.glob("*.json"), key=lambda p: p.stem.lower())
            out.extend(PresetRef(p.stem, p, origin) for p in files if p.is_file())  # type: ignore[arg-type]
    return out


def find_preset(name: str, settings: Optional[AppSettings] = None) -> Optional[PresetRef]:
    """The preset called ``name`` (stem, with or without ``.json``, case-insensitive); user presets win.
    None when there is none."""
    wanted = name.removesuffix(".json").lower()
    found = [p for p in list_presets(settings) if p.name.lower() == wanted]
    if not found:
        return None
    user = [p for p in found if p.origin == "user"]
    return (user or found)[0]


#: Fields a preset never resets, even when the form's value is an error: the user's files, folders and output
#: names (a missing dataset folder is the user's to fix, and a default "" would be no better).
DEFAULT_PRESET = "sdxl-face-lora"
"""The bundled preset a new form opens with (the Minimal defaults); ``lora-tui doctor`` checks it by default."""

NEVER_RESET = frozenset((
    "pretrained_model_name_or_path", "train_data_dir", "reg_data_dir", "output_dir", "dataset_config", "vae",
    "network_weights", "logging_dir", "resume", "log_tracker_config", "tokenizer_cache_dir", "ae", "clip_l",
    "t5xxl", "clip_g", "sd3_clip_l", "sd3_t5xxl", "output_name", "wandb_run_name", "huggingface_path_in_repo",
    "resume_from_huggingface", "huggingface_repo_id",
))


#: In every note of :func:`reset_invalid_kept` (the app's toast counts them by it).
RESET_NOTE_MARK = " from the form is invalid with this preset "


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else "empty" if value is None else str(value)


def reset_invalid_kept(cfg: TrainingConfig, kept: Iterable[str],
                       errors_of: Callable[[TrainingConfig], Mapping[str, str]]) -> tuple[TrainingConfig, list[str]]:
    """After a preset is applied over the form: each field in ``kept`` (those the preset did not set, so the form's
    value stayed) whose value is now an error takes its default instead, when the default is not an error.

    ``errors_of(cfg)``: ``{field: message}`` of the errors a config has (the plan's ``validate``; the config layer
    cannot import it). Fields in :data:`NEVER_RESET` stay as they are. Returns the config and one note per reset,
    e.g. ``"bucket_reso_steps: 32 from the form is invalid with this preset (must be a multiple of 64 for SD1.x);
    took the default 64"``, each holding :data:`RESET_NOTE_MARK`. Raises only what ``errors_of`` raises."""
    errors = errors_of(cfg)
    metas = {m.name: m for m in all_field_meta()}
    resets: dict[str, Any] = {}
    notes: list[str] = []
    for name in kept:
        meta = metas.get(name)
        if meta is None or name in NEVER_RESET or name not in errors:
            continue
        value, default = getattr(cfg, name), meta.default
        if value == default or name in errors_of(cfg.model_copy(update={name: default})):
            continue
        resets[name] = default
        # The rule's message often opens with "<field> <value> "; the note names both already.
        why = errors[name].removeprefix(f"{name} {value} ").removeprefix(f"{name} {_shown(value)} ")
        notes.append(f"{name}: {_shown(value)}{RESET_NOTE_MARK}({why}); "
                     f"took the default {_shown(default)}")
    return (cfg.model_copy(update=resets) if resets else cfg), notes
