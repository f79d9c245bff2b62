"""Helpers for the run-layer tests (a uniquely named module: `conftest` is ambiguous across test folders)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

FAKE = Path(__file__).resolve().parents[1] / "fake_trainers"


def fake(name: str, *args) -> list[str]:
    """argv running the fake trainer ``name`` (a file in tests/fake_trainers) with this interpreter."""
    return [sys.executable, str(FAKE / name), *map(str, args)]


def cli(args, env_dirs: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m lora_tui *args`` as a user runs it, with XDG state/config/cache dirs under ``env_dirs``
    (``xstate``, ``xconfig``, ``xcache``); text output captured."""
    env = dict(os.environ, XDG_STATE_HOME=str(env_dirs / "xstate"), XDG_CONFIG_HOME=str(env_dirs / "xconfig"),
               XDG_CACHE_HOME=str(env_dirs / "xcache"))
    return subprocess.run([sys.executable, "-m", "lora_tui", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def alive(pid: int) -> bool:
    """True when ``pid`` is a live, non-zombie process."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for(predicate, timeout: float, step: float = 0.02) -> float:
    """Seconds until ``predicate()`` held; AssertionError after ``timeout``."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)
    return time.monotonic() - t0
