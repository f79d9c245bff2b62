"""Where the bundled pieces live: the repository root, the bundled trainer and presets."""

from __future__ import annotations

from pathlib import Path

#: The repository (or source-tree) root: lora_tui/config/paths.py → two levels up from the package.
REPO_ROOT: Path = Path(__file__).resolve().parents[2]
#: Our kohya-compatible trainer (`sd-scripts/`), the default `sd_scripts_dir`.
BUNDLED_SD_SCRIPTS: Path = REPO_ROOT / "sd-scripts"
#: Presets shipped with lora-tui.
BUNDLED_PRESETS: Path = REPO_ROOT / "presets"
