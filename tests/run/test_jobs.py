"""Real processes, real signals: fake trainers in tests/fake_trainers run under the real supervisor."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil

from run_helpers import alive, fake, wait_for
from lora_tui.run.jobs import Job, JobWatch, list_jobs, load_job, start_job
from lora_tui.run.statefile import write_json_atomic


def test_trainer_failing_after_2s_is_seen_ended_within_1s_with_code_and_tail(state_dir):
    job = start_job(fake("fail_after.py", 2), cwd=state_dir.parent, meta={"config_toml": "/x/c.toml"},
                    state_dir=state_dir)
    t0 = time.monotonic()
    assert job.is_alive() and job.state["status"] in ("starting", "running")
    # poll the way the UI does (state file + pids), from a fresh object as after a re-attach
    other = load_job(job.id, state_dir=state_dir)
    wait_for(lambda: not other.is_alive(), timeout=15)
    seen_at = time.time()
    assert time.monotonic() - t0 >= 2.0
    assert other.exit_code == 1 and other.state["status"] == "failed"
    # the supervisor stamps end_time when the trainer exits; the poller saw it well within 1 s of that
    assert other.state["end_time"] - other.state["start_time"] >= 2.0
    assert seen_at - other.state["end_time"] < 1.0
    assert other.state["meta"] == {"config_toml": "/x/c.toml"}
    tail = other.tail()
    assert tail[:2] == ["prepare optimizer, data loader etc.", "epoch 1/3"]
    assert tail[-1] == "ValueError: fake failure: train_data_dir has no images"
    # the failure headline names where it failed (the innermost frame of the trainer's own code)
    assert other.hint() == ("failed (exit code 1): ValueError: fake failure: train_data_dir has no images "
                            "(at fake_trainers/fail_after.py:9 in <module>)")


def test_stop_leaves_no_process_of_the_group(state_dir):
    job = start_job(fake("fork_two.py"), state_dir=state_dir)
    wait_for(lambda: "children:" in job.log_path.read_text(), timeout=10)
    kids = [int(p) for p in job.log_path.read_text().split("children:")[1].split()]
    pids = {job.refresh()["pid"], job.state["child_pid"], *kids}
    assert len(pids) == 4 and all(alive(p) for p in pids)
    assert {p.pid for p in job.members()} == pids
    result = job.stop(grace_s=5)
    assert result.signals == ["SIGINT"] and result.exited and not result.escalated
    assert job.state["status"] == "stopped"
    gone = [p for p in pids if not alive(p)]
    assert sorted(gone) == sorted(pids)
    time.sleep(0.5)  # nothing respawns
    assert not any(alive(p) for p in pids)
    pgid = job.state["pgid"]
    assert not [p for p in psutil.process_iter() if _pgid(p.pid) == pgid]


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def test_stop_escalates_when_sigint_is_ignored_and_says_so(state_dir):
    job = start_job(fake("ignore_sigint.py", "--ignore-term"), state_dir=state_dir)
    wait_for(lambda: "caching latents" in job.log_path.read_text(), timeout=10)
    trainer = job.refresh()["child_pid"]
    t0 = time.monotonic()
    result = job.stop(grace_s=0.5, term_grace_s=0.5)
    assert time.monotonic() - t0 < 6
    assert result.signals == ["SIGINT", "SIGTERM", "SIGKILL"] and result.escalated
    assert "escalated to SIGKILL" in result.message
    assert result.exited and not alive(trainer) and not job.is_alive()
    assert job.state["status"] == "killed" and job.exit_code == -signal.SIGKILL
    assert [s["signal"] for s in job.state["stop_signals"]] == ["SIGINT", "SIGTERM", "SIGKILL"]


def test_second_stop_press_escalates_at_once(state_dir):
    job = start_job(fake("ignore_sigint.py"), state_dir=state_dir)
    wait_for(lambda: "caching latents" in job.log_path.read_text(), timeout=10)
    assert job.request_stop() == "SIGINT"
    time.sleep(0.3)
    assert job.is_alive()  # SIGINT ignored
    result = job.stop(grace_s=60)  # a second press: SIGINT was sent already, so no 60 s wait
    assert result.signals == ["SIGTERM"] and "escalated to SIGTERM" in result.message
    assert not job.is_alive() and job.exit_code == -signal.SIGTERM


def test_grandchild_holding_stdout_does_not_keep_the_job_alive(state_dir):
    job = start_job(fake("grandchild_stdout.py"), state_dir=state_dir)
    wait_for(lambda: not job.is_alive(), timeout=10)
    seen_at = time.time()
    assert job.exit_code == 1 and job.state["status"] == "failed"
    # failed as soon as the trainer exited (start-up of a Python process on a busy CI box is not ours to time)
    assert seen_at - job.state["end_time"] < 1.0
    grandchild = int(job.log_path.read_text().split("grandchild:")[1].split()[0])
    wait_for(lambda: not alive(grandchild), timeout=2)
    job.wait()
    assert job.state["cleanup_done"] and grandchild in job.state["cleaned_pids"]


def test_state_claiming_running_job_with_dead_pid_is_ended(state_dir):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # a pid that existed and is gone
    job_dir = state_dir / "jobs" / "20260101-000000-dead"
    write_json_atomic(job_dir / "state.json", {
        "id": job_dir.name, "argv": ["python", "train_network.py"], "status": "running", "pid": p.pid,
        "pgid": p.pid, "create_time": time.time() - 3600, "child_pid": p.pid, "start_time": time.time() - 3600,
        "end_time": None, "exit_code": None, "stop_signals": []})
    job = Job(job_dir)
    assert not job.is_alive()
    assert job.state["status"] == "lost" and job.state["end_time"] is not None
    assert "unknown" in job.hint()
    assert list_jobs(state_dir=state_dir)[0].status == "lost"
    # a pid reused by an unrelated live process (ours) is not the job either
    write_json_atomic(job_dir / "state.json", {
        "id": job_dir.name, "status": "running", "pid": os.getpid(), "create_time": 1.0, "start_time": 1.0,
        "end_time": None})
    assert not Job(job_dir).is_alive()
    assert job.stop(grace_s=1).message.startswith("already ended")
    assert alive(os.getpid())


def test_launcher_like_parent_stopped_child_gets_sigint_and_saves(state_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # launcher.py Popens the real trainer and waits without forwarding signals (accelerate launch, 1 process)
    job = start_job(fake("launcher.py", fake("saving_trainer.py", out, 10_000, 0.02, 0.8)[1], out, 10_000, 0.02,
                         0.8), state_dir=state_dir)
    wait_for(lambda: "LORA_TUI_PROGRESS" in job.log_path.read_text(), timeout=10)
    trainer = [p for p in job.members() if p.cmdline()[1].endswith("saving_trainer.py")]
    assert len(trainer) == 1
    result = job.stop(grace_s=10)
    assert result.signals == ["SIGINT"] and result.exited
    assert (out / "fake-interrupted.safetensors").is_file()  # the save (0.8 s) outlived the launcher
    assert not alive(trainer[0].pid)
    assert job.state["status"] == "stopped"
    assert "interrupted: saved" in job.log_path.read_text()
    # the status shown is the trainer's (saved, 130), not the launcher's KeyboardInterrupt death
    assert job.exit_code == 130 and job.state["launcher_exit_code"] == -signal.SIGINT


def test_job_survives_the_starting_process_and_is_found_by_list_load_and_a_watch(state_dir):
    watch = JobWatch(state_dir=state_dir)
    assert watch.poll() == []  # the first poll records what is there (no jobs folder yet)
    code = ("import sys; from lora_tui.run.jobs import start_job; "
            f"j = start_job({fake('fail_after.py', 1)!r}, state_dir={str(state_dir)!r}); print(j.id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    job_id = out.stdout.strip()
    (state_dir / "jobs" / "half-made").mkdir()  # a folder whose state.json is not written yet: no job
    assert [j.id for j in watch.poll()] == [job_id]  # started by another process, seen by the next poll
    assert watch.poll() == []  # reported once
    job = load_job(job_id[:17], state_dir=state_dir)
    assert job.id == job_id
    assert job.is_alive()  # the app that started it is gone; the job is not
    assert job.wait(timeout=10) == 1 and job.state["status"] == "failed"
    assert load_job(None, state_dir=state_dir).id == job_id
    ended = start_job(fake("fail_after.py", 0), state_dir=state_dir)
    assert ended.wait(timeout=10) == 1
    assert watch.poll() == []  # new, but ended before the poll: nothing to follow


def test_missing_trainer_executable_is_a_failed_job_with_the_reason(state_dir):
    job = start_job([str(state_dir / "no_such_python"), "train_network.py"], state_dir=state_dir)
    assert job.wait(timeout=10) == 127
    assert job.state["status"] == "failed"
    assert "cannot start the trainer" in job.log_path.read_text()


def test_trainer_does_not_inherit_textuals_variables_and_gets_the_launch_env(state_dir, monkeypatch):
    # the app runs under Textual: its driver variables and the terminal's size must not reach the trainer
    monkeypatch.setenv("TEXTUAL_DRIVER", "textual.drivers.linux_driver:LinuxDriver")
    monkeypatch.setenv("TEXTUAL_FPS", "30")
    monkeypatch.setenv("LINES", "24")
    monkeypatch.setenv("COLUMNS", "80")
    show = ("import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith('TEXTUAL') or k in ('LINES', 'COLUMNS', 'NO_COLOR', 'PYTHONUNBUFFERED', 'EXTRA')}))")
    job = start_job([sys.executable, "-c", show], env={"EXTRA": "1", "NO_COLOR": "0"}, state_dir=state_dir)
    assert job.wait(timeout=10) == 0
    seen = json.loads(job.log_path.read_text().strip().splitlines()[-1])
    assert seen == {"COLUMNS": "200", "PYTHONUNBUFFERED": "1", "NO_COLOR": "0", "EXTRA": "1"}


def test_run_layer_imports_neither_textual_nor_torch():
    code = ("import sys; import lora_tui.run.jobs, lora_tui.run.follow, lora_tui.run.queue, lora_tui.run.launching, "
            "lora_tui.run.logtail, lora_tui.cli_jobs, "
            "lora_tui.run.progress, lora_tui.run.supervise; "
            "bad = [m for m in ('textual', 'torch', 'accelerate', 'diffusers', 'transformers', 'safetensors') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_three_presses_without_blocking_end_a_deaf_trainer(state_dir):
    job = start_job(fake("ignore_sigint.py", "--ignore-term"), state_dir=state_dir)
    wait_for(lambda: "caching latents" in job.log_path.read_text(), timeout=10)
    trainer = job.refresh()["child_pid"]
    sent = []
    for _ in range(3):
        t0 = time.monotonic()
        sent.append(job.request_stop())
        assert time.monotonic() - t0 < 0.5  # a UI calls this on its event loop
    assert sent == ["SIGINT", "SIGTERM", "SIGKILL"]
    wait_for(lambda: not job.is_alive(), timeout=3)
    assert not alive(trainer) and job.state["status"] == "killed" and job.exit_code == -9
    assert job.request_stop() is None


def _helper_pid(job):
    wait_for(lambda: "helper:" in job.log_path.read_text(), timeout=10)
    return int(job.log_path.read_text().split("helper:")[1].split()[0])


def test_stop_also_ends_a_descendant_that_left_the_process_group(state_dir):
    job = start_job(fake("setsid_grandchild.py", "wait"), state_dir=state_dir)
    helper = _helper_pid(job)
    assert _pgid(helper) != job.refresh()["pgid"]
    assert helper in {p.pid for p in job.members()}
    result = job.stop(grace_s=5)
    assert result.exited and not alive(helper)


def test_trainer_exit_cleans_up_a_descendant_that_left_the_group(state_dir):
    job = start_job(fake("setsid_grandchild.py", "exit"), state_dir=state_dir)
    helper = _helper_pid(job)
    assert job.wait(timeout=10) == 0 and job.state["status"] == "done"
    wait_for(lambda: not alive(helper), timeout=5)  # orphaned to the supervisor (subreaper), then ended by it
