"""Atomic writes give files the mode a user's new file gets (0666 & ~umask), not mkstemp's private 0600."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")

# Every writer of the config layer, run under a chosen umask in a fresh interpreter (umask is process-wide).
_WRITE_ALL = r"""
import os, sys
from datetime import datetime
from pathlib import Path
os.umask(int(sys.argv[2], 8))
from lora_tui.config.app_settings import AppSettings
from lora_tui.config.atomic import atomic_write_text
from lora_tui.config.kohya_json import save_config_file
from lora_tui.config.model import TrainingConfig
from lora_tui.plan.launch import build_launch, write_launch_files
out = Path(sys.argv[1])
cfg = TrainingConfig(output_dir=str(out / "run"), output_name="m", sample_prompts="a photo")
launch = write_launch_files(build_launch(cfg, AppSettings(), now=datetime(2026, 1, 2, 3, 4, 5)), cfg)
save_config_file(cfg, out / "saved" / "mine.json")
atomic_write_text(out / "plain.txt", "x", exclusive=True)
print(launch.toml_path, launch.json_path, launch.sample_prompts_path, sep="\n")
"""


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("umask,expected", [("022", 0o644), ("027", 0o640), ("002", 0o664)])
def test_every_written_file_gets_the_umask_mode(tmp_path, umask, expected):
    res = subprocess.run([sys.executable, "-c", _WRITE_ALL, str(tmp_path), umask], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    written = [Path(line) for line in res.stdout.split()]
    written += [tmp_path / "saved" / "mine.json", tmp_path / "plain.txt"]
    assert {p.suffix for p in written} == {".toml", ".json", ".txt"}
    for p in written:
        assert _mode(p) == expected, (p, oct(_mode(p)))
    assert json.loads((tmp_path / "saved" / "mine.json").read_text(encoding="utf-8"))["output_name"] == "m"
    assert not list(tmp_path.rglob("*.tmp"))


def test_replacing_a_file_keeps_its_mode(tmp_path):
    from lora_tui.config.atomic import atomic_write_text

    target = tmp_path / "secret.json"
    target.write_text("{}", encoding="utf-8")
    target.chmod(0o600)
    atomic_write_text(target, '{"wandb_api_key": "k"}')
    assert _mode(target) == 0o600 and "wandb" in target.read_text(encoding="utf-8")
    target.chmod(0o644)
    atomic_write_text(target, "{}")
    assert _mode(target) == 0o644


def test_exclusive_write_never_replaces(tmp_path):
    from lora_tui.config.atomic import atomic_write_text

    target = tmp_path / "a.toml"
    atomic_write_text(target, "a = 1\n", exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write_text(target, "a = 2\n", exclusive=True)
    assert target.read_text(encoding="utf-8") == "a = 1\n" and not list(tmp_path.glob("*.tmp"))
