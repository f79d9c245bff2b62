"""A Stop's result is "stopped" whatever exit code the launcher turns it into (torchrun exits 1 after its ranks
saved and exited 130), and the exit code is still recorded beside it."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from lora_tui.run.jobs import start_job

FAKE = Path(__file__).resolve().parents[1] / "fake_trainers"


def test_stop_through_a_torchrun_like_launcher_is_stopped_not_failed(state_dir, tmp_path):
    job = start_job([sys.executable, str(FAKE / "torchrun_like.py"), str(tmp_path)], state_dir=state_dir)
    deadline = time.monotonic() + 15
    while "epoch 1/1" not in job.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the fake trainer did not start"
        time.sleep(0.05)
    result = job.stop(grace_s=10)
    assert result.exited and not result.escalated
    assert job.wait(timeout=10) == 1
    assert job.state["status"] == "stopped"
    assert (tmp_path / "fake-interrupted.safetensors").exists()
    assert not job.members()
