"""`lora-tui stop` says what the job left once it has ended: its final status and the saved LoRA path (or "nothing
saved"), the same words as the Run view (`run.progress.stop_outcome`). Real CLI processes on real fake-trainer
jobs in a private XDG state dir."""
from __future__ import annotations

import time

from run_helpers import cli, fake
from lora_tui.run.jobs import load_job, start_job


def wait_in_log(job, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while text not in job.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} never appeared in the log"
        time.sleep(0.05)


def last_line(stdout: str) -> str:
    return stdout.strip().splitlines()[-1]


def test_stop_reports_the_status_and_the_lora_the_trainer_saved(tmp_path):
    state = tmp_path / "xstate" / "lora-tui"
    job = start_job(fake("saving_trainer.py", tmp_path, 10_000, 0.02, 0.3), state_dir=state)
    try:
        wait_in_log(job, "LORA_TUI_PROGRESS")
        stopped = cli(["stop", "--grace", "20", job.id], tmp_path)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        saved = tmp_path / "fake-interrupted.safetensors"
        assert saved.is_file()
        line = last_line(stopped.stdout)
        assert line.startswith(f"lora-tui: job {job.id} stopped · saved {saved} · ")
        assert "exit code 130" in line and "stopped after SIGINT; " in line and "(SIGINT)" not in line
        assert load_job(job.id, state_dir=state).status == "stopped"

        again = cli(["stop", job.id], tmp_path)  # ended already: the same account, no signal
        assert again.returncode == 0
        line = last_line(again.stdout)
        assert line.startswith(f"lora-tui: job {job.id} stopped · saved {saved} · already ended")
    finally:
        for p in job.members():
            p.kill()


def test_stop_of_a_trainer_that_saves_nothing_says_so(tmp_path):
    state = tmp_path / "xstate" / "lora-tui"
    job = start_job(fake("ignore_sigint.py"), state_dir=state)  # ignores SIGINT: SIGTERM ends it, unsaved
    try:
        wait_in_log(job, "ready")
        stopped = cli(["stop", "--grace", "0.5"], tmp_path)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        line = last_line(stopped.stdout)
        status = load_job(job.id, state_dir=state).status
        assert line.startswith(f"lora-tui: job {job.id} {status} · nothing saved · escalated to SIGTERM")
        assert "SIGINT → SIGTERM" in line
    finally:
        for p in job.members():
            p.kill()


def test_stop_of_a_job_that_finished_names_its_final_lora(tmp_path):
    state = tmp_path / "xstate" / "lora-tui"
    job = start_job(fake("saving_trainer.py", tmp_path, 3, 0.01), state_dir=state)
    assert job.wait(timeout=20) == 0
    out = cli(["stop", job.id], tmp_path)
    assert out.returncode == 0
    assert last_line(out.stdout).startswith(
        f"lora-tui: job {job.id} done · saved {tmp_path / 'fake.safetensors'} · already ended")


def test_stop_of_a_run_saved_under_a_step_name_says_it_is_not_the_finished_lora(tmp_path):
    # our trainer saves a stopped run as sd-scripts' step save `<output_name>-stepNNNNNNNN`: `stop` says what it is
    state = tmp_path / "xstate" / "lora-tui"
    job = start_job(fake("saving_trainer.py", tmp_path, 10_000, 0.02, 0, "demo-step{step}.safetensors"),
                    state_dir=state)
    try:
        wait_in_log(job, "LORA_TUI_PROGRESS")
        stopped = cli(["stop", "--grace", "20", job.id], tmp_path)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        saved = next(tmp_path.glob("demo-step*.safetensors"))
        step = int(saved.stem.rpartition("-step")[2])
        line = last_line(stopped.stdout)
        assert f"saved {saved} (stopped at step {step}: a step save, not the finished LoRA) · " in line, line
    finally:
        for p in job.members():
            p.kill()
