"""Following a job's log file: live progress while it runs, and the same figures from the log alone."""
from __future__ import annotations

import time

from run_helpers import fake
from lora_tui.run.follow import LogFollower, follow
from lora_tui.run.jobs import load_job, start_job


async def test_follow_reports_lines_live_progress_saves_and_the_exit(state_dir, tmp_path):
    job = start_job(fake("saving_trainer.py", tmp_path, 40, 0.02), state_dir=state_dir)
    lines, lives, batches = [], [], []
    async for batch in follow(job, interval=0.05):
        batches.append(batch)
        lines += batch.lines
        if batch.live:
            lives.append(batch.live)
    last = batches[-1]
    assert last.ended and last.exit_code == 0 and last.status == "done"
    assert "epoch 1/1" in lines and "model saved." in lines
    assert f"saving checkpoint: {tmp_path / 'fake.safetensors'}" in lines
    assert any(line.startswith("steps: 100%") for line in lines)  # the bar's final state, once
    assert sum(line.startswith("steps:") for line in lines) == 1
    assert len(batches) > 3 and lives  # it was followed as it ran, not only read at the end


def test_attach_from_the_log_alone_replays_progress(state_dir, tmp_path):
    job = start_job(fake("saving_trainer.py", tmp_path, 10_000, 0.01), state_dir=state_dir)
    deadline = time.monotonic() + 10
    while "LORA_TUI_PROGRESS" not in job.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    attached = LogFollower(load_job(job.id, state_dir=state_dir))  # a new app process knows only the id
    first = attached.replay()
    p = attached.progress
    assert not first.ended and first.progress_changed
    assert p.total == 10_000 and p.step > 0 and p.epoch == 1 and p.loss_history
    written = job.log_path.read_text().count("LORA_TUI_PROGRESS")
    assert 0 < p.step <= written  # replayed from the file: as far as the file went at attach time
    assert not any("LORA_TUI_" in line for line in first.lines)  # machine lines are parsed, not shown
    step_before = p.step
    time.sleep(0.3)
    attached.poll()
    assert attached.progress.step > step_before
    result = job.stop(grace_s=5)
    assert result.signals == ["SIGINT"]
    end = attached.poll()
    while not end.ended:
        end = attached.poll()
    assert end.status == "stopped" and end.exit_code == 130
    assert attached.progress.saved == [str(tmp_path / "fake-interrupted.safetensors")]


def test_upstream_style_log_replays_the_whole_loss_curve(tmp_path):
    # sd-scripts writes no machine lines: the curve comes from the \r-overwritten tqdm states in the log
    from lora_tui.run.statefile import write_json_atomic

    job_dir = tmp_path / "jobs" / "20260101-000000-abcd"
    bars = "".join(f"\rsteps: {i:3d}%|#| {i}/100 [00:{i:02d}<01:00, 1.50it/s, avr_loss={1 / i:.4f}]"
                   for i in range(1, 101))
    job_dir.mkdir(parents=True)
    # sd-scripts prints `saving checkpoint:` before the write and `model saved.` after the final one
    (job_dir / "train.log").write_text("epoch 1/1\n" + bars + "\nsaving checkpoint: /o/x.safetensors\nmodel saved.\n")
    write_json_atomic(job_dir / "state.json", {"id": job_dir.name, "status": "done", "exit_code": 0,
                                               "start_time": 1.0, "end_time": 2.0})
    f = LogFollower(load_job(str(job_dir)))
    batch = f.replay()
    assert batch.ended and batch.status == "done"
    assert batch.lines == ["epoch 1/1", bars.rsplit("\r", 1)[-1], "saving checkpoint: /o/x.safetensors",
                           "model saved."]
    assert [s for s, _ in f.progress.loss_history] == list(range(1, 101))
    assert f.progress.step == 100 and f.progress.saved == ["/o/x.safetensors"]


def test_a_bar_state_closed_by_our_progress_line_is_not_a_log_line():
    from lora_tui.run.follow import _shown_lines

    bar = "steps:   4%|▍         | 2/50 [00:02<00:48,  1.01s/it, avr_loss=1.18]"
    end = "steps: 100%|█| 50/50 [01:00<00:00]"
    lines = [bar, 'LORA_TUI_PROGRESS {"step": 2}', "epoch 2/2", bar, "INFO saving", end]
    # kept: a bar that no machine line closes (upstream sd-scripts, a message printed while the bar was open)
    assert _shown_lines(lines) == ["epoch 2/2", bar, "INFO saving", end]
