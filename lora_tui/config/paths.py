"""Where the bundled pieces live: the bundled trainer and presets, inside an installed wheel or in the checkout.

A wheel carries them in ``lora_tui/_bundled/`` (``setup.py`` copies them there at build time); a checkout (the
editable install of ``scripts/setup``) has them beside the package, at the repository root. Nothing is ever
written to either place: jobs, settings, the demo and user presets live in the user dirs (``app_settings``).
"""

from __future__ import annotations

from pathlib import Path

#: The ``lora_tui`` package folder.
PACKAGE_DIR: Path = Path(__file__).resolve().parents[1]
#: Where a built wheel keeps the trainer and presets (absent in a checkout).
INSTALLED_DATA: Path = PACKAGE_DIR / "_bundled"
#: The source-tree root of a checkout: the folder that holds ``lora_tui/`` (in a wheel: site-packages).
REPO_ROOT: Path = PACKAGE_DIR.parent


def _bundled(name: str) -> Path:
    """``_bundled/<name>`` in an installed wheel, else ``<checkout>/<name>``."""
    installed = INSTALLED_DATA / name
    return installed if installed.is_dir() else REPO_ROOT / name


#: Our kohya-compatible trainer (``sd-scripts/``), the default ``sd_scripts_dir``.
BUNDLED_SD_SCRIPTS: Path = _bundled("sd-scripts")
#: Presets shipped with lora-tui.
BUNDLED_PRESETS: Path = _bundled("presets")


def is_installed_copy() -> bool:
    """True when the app runs from a built wheel (the trainer and presets inside the package), False in a
    checkout."""
    return INSTALLED_DATA.is_dir()
