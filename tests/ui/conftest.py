"""Fixtures for the app's Pilot tests: private app settings (state dir, presets dir) per test, fake trainers, and a
finaliser that leaves no process of a test's jobs behind even when the test fails."""
from __future__ import annotations

import psutil
import pytest

from lora_tui.config.app_settings import AppSettings
from lora_tui.run.jobs import list_jobs

@pytest.fixture
def settings(tmp_path) -> AppSettings:
    """App settings whose state and presets dirs live in the test's tmp dir."""
    s = AppSettings(state_dir=tmp_path / "state", presets_dir=tmp_path / "user-presets",
                    cache_dir=tmp_path / "cache", stop_grace_s=60.0)
    yield s
    for job in list_jobs(settings=s):
        for p in job.members():
            try:
                p.kill()
            except psutil.Error:
                pass
