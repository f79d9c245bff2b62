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


TRAINER = """
# Stand-in for sdxl_train_network.py: reads --config_file as sd-scripts does, prints one line per step for
# SECONDS (from LORA_TUI_TEST_SECONDS, default 0.3), writes <output_dir>/<output_name>.safetensors and exits 0.
import os, sys, time, tomllib
toml = tomllib.load(open(sys.argv[sys.argv.index("--config_file") + 1], "rb"))
seconds = float(os.environ.get("LORA_TUI_TEST_SECONDS", "0.3"))
for step in range(1, 11):
    print("step %d/10 of %s" % (step, toml["output_name"]), flush=True)
    time.sleep(seconds / 10)
with open(os.path.join(toml["output_dir"], toml["output_name"] + ".safetensors"), "wb") as fh:
    fh.write(b"a stand-in LoRA")
print("model saved.", flush=True)
"""


def headless_setup(root: Path) -> tuple[Path, dict]:
    """A state for ``cli`` under ``root`` whose launches run stand-ins (no torch): settings.toml pointing at a
    stand-in ``accelerate`` and sdxl_train_network.py (``TRAINER``), and a config the plan accepts (a header-only
    SDXL checkpoint, two captioned images). Returns ``(config file, its dict)``; queue more with ``--set
    output_name=...``."""
    import json

    import tomli_w

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
    from ui_helpers import ACCELERATE, valid_sdxl_setup

    bindir = root / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    (bindir / "accelerate").write_text(ACCELERATE)
    (bindir / "accelerate").chmod(0o755)
    sd = root / "sd-scripts"
    sd.mkdir()
    (sd / "sdxl_train_network.py").write_text(TRAINER)
    (root / "xconfig" / "lora-tui").mkdir(parents=True)
    (root / "xconfig" / "lora-tui" / "settings.toml").write_text(tomli_w.dumps(
        {"python": str(bindir / "python"), "sd_scripts_dir": str(sd)}), encoding="utf-8")
    data = {**valid_sdxl_setup(root), "sdxl": True, "output_name": "a", "network_dim": 4,
            "max_train_steps": 10}
    cfg = root / "a.json"
    cfg.write_text(json.dumps(data))
    return cfg, data
