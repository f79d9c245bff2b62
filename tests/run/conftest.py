"""Fixtures for the run layer: a private state dir per test, fake trainers, and a finaliser that leaves no
process of a test's jobs behind even when the test fails."""
from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from lora_tui.run.jobs import list_jobs

FAKE = Path(__file__).resolve().parents[1] / "fake_trainers"


def fake(name: str, *args: str) -> list[str]:
    """argv running the fake trainer ``name`` (a file in tests/fake_trainers) with this interpreter."""
    return [sys.executable, str(FAKE / name), *map(str, args)]


def alive(pid: int) -> bool:
    """True when ``pid`` is a live, non-zombie process."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
