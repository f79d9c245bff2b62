"""Fixtures for the run layer: a private state dir per test, and a finaliser that leaves no process of a test's
jobs behind even when the test fails."""
from __future__ import annotations

import psutil
import pytest

from lora_tui.run.jobs import list_jobs


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    yield d
    for job in list_jobs(state_dir=d):
        for p in job.members():
            try:
                p.kill()
            except psutil.Error:
                pass
