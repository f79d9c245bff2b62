"""Fixtures for plan tests."""
from __future__ import annotations

import pytest

from lora_tui.config.app_settings import AppSettings


@pytest.fixture
def settings(tmp_path) -> AppSettings:
    """App settings pointing at an empty sd-scripts folder (no unsupported list: an upstream checkout)."""
    d = tmp_path / "sd-scripts-upstream"
    d.mkdir()
    for s in ("train_network.py", "sdxl_train_network.py", "flux_train_network.py", "sd3_train_network.py"):
        (d / s).write_text("# stand-in entry point name\n")
    return AppSettings(sd_scripts_dir=d)
