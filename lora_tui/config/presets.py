"""Preset discovery: our bundled ``presets/*.json`` and the user's presets dir (``AppSettings.presets_dir``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.paths import BUNDLED_PRESETS


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
