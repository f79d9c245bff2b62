"""Our real trainer (sd-scripts/) on the demo data through the run layer: Start as the app does, Stop after a few
steps, and the LoRA is saved with the job shown as stopped. One torch process (~20-30 s on 2 cores)."""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from lora_tui.config.app_settings import AppSettings
from lora_tui.demo import demo_config, demo_files, prepare_demo
from lora_tui.run.follow import LogFollower
from lora_tui.run.launching import launch_config
from lora_tui.run.progress import stop_outcome


def test_stop_after_a_few_steps_saves_the_lora_and_shows_stopped(tmp_path, tiny_sdxl_ckpt):
    settings = AppSettings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    files = demo_files(settings)
    files.checkpoint.parent.mkdir(parents=True)
    shutil.copyfile(tiny_sdxl_ckpt, files.checkpoint)  # the session's tiny checkpoint: no second build
    prepare_demo(settings, log=lambda *a: None)
    job = launch_config(demo_config(files), settings)
    follower = LogFollower(job)
    deadline = time.monotonic() + 240
    shown: list[str] = []
    while (follower.progress.step or 0) < 2:
        batch = follower.poll()
        shown += batch.lines
        assert not batch.ended, "\n".join(job.tail())
        assert time.monotonic() < deadline, "no training step within 240 s:\n" + "\n".join(job.tail())
        time.sleep(0.1)
    assert follower.progress.total and follower.progress.epochs
    # each step's bar state, closed by its LORA_TUI_PROGRESS line, is in the live line, not one log line a step
    # (the 0/N bar, closed by the "epoch 1/N" line, stays)
    assert not [ln for ln in shown if ln.startswith("steps:") and "| 0/" not in ln], shown
    result = job.stop(grace_s=120)
    assert result.signals == ["SIGINT"] and result.exited, result.message
    while not follower.poll().ended:
        pass
    assert job.state["status"] == "stopped", "\n".join(job.tail())
    # Stop's SIGINT reached the trainer only: it saved and exited 130, and accelerate's launcher (--quiet) then
    # exited 1 by itself, with no KeyboardInterrupt or CalledProcessError traceback of its own in the log
    assert job.exit_code == 1
    log = job.log_path.read_text()
    assert log.count("interrupted: saved") == 1, log[-3000:]  # once, though stdout and stderr share the log
    # stdout and stderr reach the log in order, whole lines each (accelerate pipes stderr through a thread):
    # no progress record glued to the bar's line, where the follower would show it raw
    glued = [ln for ln in log.replace("\r", "\n").splitlines() if "LORA_TUI_" in ln and not ln.startswith("LORA_TUI_")]
    assert not glued, glued[:3]
    assert not [ln for ln in shown if "LORA_TUI_" in ln], shown
    assert "Traceback" not in log, log[-3000:]
    assert follower.progress.saved, "\n".join(job.tail())
    saved = follower.progress.saved[-1]
    assert saved.startswith(str(files.output_dir)) and (tmp_path / saved).stat().st_size > 1000
    # a stopped run is not the finished LoRA: sd-scripts' step-save name, and Stop's report says which file
    name = str(demo_config(files).output_name)
    assert re.fullmatch(rf"{re.escape(name)}-step\d{{8}}\.safetensors", Path(saved).name), saved
    assert not (files.output_dir / f"{name}.safetensors").exists()
    assert Path(saved).name in stop_outcome(follower.progress)
    assert not job.members()
