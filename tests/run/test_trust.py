"""Issue 19, run side: Stop never touches another process, one Start trains once, "saved" means saved, a broken
state file never disables the job commands. Real processes and files: an unrelated `sleep` that takes a recorded
pid/pgid, two real `lora-tui train` processes racing, a write refused by the kernel (RLIMIT_FSIZE)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from run_helpers import alive, cli, fake, headless_setup, wait_for
from lora_tui import cli_jobs
from lora_tui.run.jobs import Job, list_jobs, start_job
from lora_tui.run.progress import ProgressState, stop_outcome
from lora_tui.run.statefile import update_json, write_json_atomic


@pytest.fixture
def stranger():
    """A real process that is not ours to stop: `sleep` in its own session (its pid is its process group)."""
    p = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield p
    p.kill()
    p.wait()


def _write_state(state_dir: Path, name: str, **fields) -> Path:
    job_dir = state_dir / "jobs" / name
    write_json_atomic(job_dir / "state.json", {"id": name, "argv": ["python", "train_network.py"],
                                               "start_time": time.time() - 3600, "end_time": None,
                                               "exit_code": None, "stop_signals": [], **fields})
    (job_dir / "train.log").write_text("epoch 1/1\n")
    return job_dir


# -- item 1: a Stop signals only processes verified as the job's ----------------------------------------------------
def test_stop_of_an_ended_job_never_signals_the_process_that_took_its_pid_and_group(tmp_path, stranger):
    state = tmp_path / "xstate" / "lora-tui"
    ctime = psutil.Process(stranger.pid).create_time()
    # A finished job whose recorded pid/pgid the system has since given to an unrelated process.
    _write_state(state, "20260101-000000-done", status="done", exit_code=0, end_time=time.time() - 60,
                 pid=stranger.pid, pgid=stranger.pid, create_time=ctime - 500, child_pid=stranger.pid,
                 child_create_time=ctime - 500)
    t0 = time.monotonic()
    out = cli(["stop", "20260101-000000-done"], tmp_path)
    assert "already ended" in out.stdout, out.stdout + out.stderr
    time.sleep(max(0.0, 5.5 - (time.monotonic() - t0)))  # past the 5 s after which leftovers were SIGKILLed
    assert alive(stranger.pid), "lora-tui stop killed a process that is not the job's"
    assert f"not signalled: 1 process(es) in its recorded process group {stranger.pid}" in out.stdout


def test_a_running_record_without_create_time_is_never_signalled_and_says_so(tmp_path, stranger):
    state = tmp_path / "state"
    _write_state(state, "20260101-000000-nctm", status="running", pid=stranger.pid, pgid=stranger.pid)
    buf = io.StringIO()
    code = cli_jobs.stop("20260101-000000-nctm", settings=state, grace_s=1, out=buf)
    assert alive(stranger.pid), "a pid without its create time was signalled"
    text = buf.getvalue()
    assert code == 0 and "stopping" not in text and "SIGINT" not in text, text
    assert "cannot be verified (no create time recorded); nothing was signalled" in text, text
    assert Job(state / "jobs" / "20260101-000000-nctm").state["status"] == "lost"


def test_stop_of_a_live_job_whose_recorded_group_is_another_process_group_spares_that_group(tmp_path, stranger):
    state = tmp_path / "state"
    job = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), state_dir=state)
    wait_for(lambda: job.refresh().get("child_pid") and "LORA_TUI_PROGRESS" in job.log_path.read_text(), 10)
    update_json(job.state_path, lambda d: d.update(pgid=stranger.pid))  # a record that lies about the group
    assert job.refresh()["pgid"] == stranger.pid
    result = job.stop(grace_s=10)
    assert result.exited and result.signals == ["SIGINT"], result
    assert (tmp_path / "fake-interrupted.safetensors").is_file()  # the trainer itself got the SIGINT
    assert alive(stranger.pid), "a SIGINT went to a process group that is not the job's"
    assert stranger.pid not in {p.pid for p in job.members()}


# -- item 2: two Starts at the same moment: exactly one trains ------------------------------------------------------
def test_two_trains_started_at_the_same_moment_start_exactly_one_job(tmp_path):
    cfg, _ = headless_setup(tmp_path)
    state = tmp_path / "xstate" / "lora-tui"
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xstate"), XDG_CONFIG_HOME=str(tmp_path / "xconfig"),
               XDG_CACHE_HOME=str(tmp_path / "xcache"), LORA_TUI_TEST_SECONDS="1.5")
    race = Path(__file__).with_name("race_start.py")
    for round_no in range(4):
        before = {j.id for j in list_jobs(state_dir=state)}
        at = time.time() + 2.5  # both interpreters are up and have imported lora_tui by then
        procs = [subprocess.Popen([sys.executable, str(race), str(at), "train", str(cfg), "--detach",
                                   "--overwrite"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for _ in range(2)]
        outs = [p.communicate(timeout=60)[0] for p in procs]
        codes = sorted(p.returncode for p in procs)
        new = [j for j in list_jobs(state_dir=state) if j.id not in before]
        assert len(new) == 1 and codes == [0, 1], (round_no, codes, outs)
        loser = outs[[p.returncode for p in procs].index(1)]
        assert f"job {new[0].id} is still running" in loser, loser
        new[0].wait(timeout=30)
    # the refused Starts left no launch files behind: one TOML per job
    assert len(list((tmp_path / "out").glob("config_lora-*.toml"))) == 4


# -- item 3: "saved" only after the save, only for a file that exists -----------------------------------------------
def test_a_save_refused_by_the_kernel_is_reported_as_a_failure_naming_path_and_cause(tmp_path):
    state = tmp_path / "state"
    job = start_job(fake("failing_save_trainer.py", tmp_path), state_dir=state)
    wait_for(lambda: job.log_path.exists() and "LORA_TUI_PROGRESS" in job.log_path.read_text(), 10)
    buf = io.StringIO()
    cli_jobs.stop(job.id, settings=state, grace_s=10, out=buf)
    text = buf.getvalue()
    path = tmp_path / "broken.safetensors"
    assert f"saved {path}" not in text, text
    assert f"saving {path} failed: OSError: [Errno 27] File too large" in text, text
    prog = job.progress()
    assert prog.saved == [] and prog.save_failed[0] == str(path)


def test_only_the_after_save_line_for_an_existing_file_counts_as_saved(tmp_path):
    lora = tmp_path / "a.safetensors"
    ours = ProgressState()
    ours.feed_lines(['LORA_TUI_PROGRESS {"step": 1, "total": 2}', f"saving checkpoint: {lora}",
                     'LORA_TUI_PROGRESS {"step": 2, "total": 2}'])
    assert ours.saved == [] and stop_outcome(ours) == "nothing saved"  # the before-save line is no save
    ours.feed_line("LORA_TUI_SAVED " + json.dumps({"path": str(lora), "step": 2}))
    assert ours.saved == [str(lora)]
    assert stop_outcome(ours).startswith("nothing saved")  # reported, but no such file
    lora.write_bytes(b"x")
    assert stop_outcome(ours) == f"saved {lora}"
    # upstream sd-scripts prints no after-save line: its save counts once the trainer went on from it
    upstream = ProgressState()
    upstream.feed_lines([f"saving checkpoint: {lora}"])
    assert upstream.saved == []
    upstream.feed_line("model saved.")
    assert upstream.saved == [str(lora)] and stop_outcome(upstream) == f"saved {lora}"


# -- item 5: a broken state file never disables jobs / stop / attach ------------------------------------------------
def test_broken_state_files_and_queue_file_leave_jobs_stop_and_attach_working(tmp_path):
    state = tmp_path / "xstate" / "lora-tui"
    job = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), state_dir=state)
    wait_for(lambda: job.log_path.exists() and "LORA_TUI_PROGRESS" in job.log_path.read_text(), 10)
    broken = {"20260101-000000-trun": b'{"id": "20260101-000000-trun", "status": "runn',
              "20260101-000001-garb": os.urandom(64) + b"\xff\xfe",
              "20260101-000002-type": json.dumps({"status": "running", "pid": "123", "start_time": "yesterday",
                                                  "stop_signals": 5}).encode(),
              "20260101-000003-list": b"[1, 2, 3]",
              "20260101-000004-meta": json.dumps({"status": "done", "meta": {"config_json": ["x"]}}).encode()}
    for name, data in broken.items():
        (state / "jobs" / name).mkdir(parents=True)
        (state / "jobs" / name / "state.json").write_bytes(data)
    (state / "queue.json").write_bytes(b'{"items": [{"id": ')  # a torn queue file too
    listed = cli(["jobs"], tmp_path)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stdout + listed.stderr
    for name in broken:
        assert f"job {name}: state unreadable (" in listed.stdout and "skipped" in listed.stdout, listed.stdout
    assert any(line.startswith(job.id) and "running" in line for line in listed.stdout.splitlines())
    assert "pid is a str, not an integer" in listed.stdout and "holds a JSON list" in listed.stdout
    for name in broken:
        one = cli(["stop", name], tmp_path)
        assert one.returncode == 1 and "state unreadable" in one.stdout and "nothing was signalled" in one.stdout
        att = cli(["attach", "--text", name], tmp_path)
        assert att.returncode == 1 and "state unreadable" in att.stdout and "Traceback" not in att.stderr
    app = cli(["attach", "20260101-000004-meta"], tmp_path)  # the app's attach reads the job's meta
    assert app.returncode != 0 and "state unreadable (meta.config_json is a list, not text)" in app.stderr, app
    stopped = cli(["stop", "--grace", "10"], tmp_path)  # the running job, with the queue file broken
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "queue not paused" in stopped.stdout and f"stopping job {job.id}" in stopped.stdout
    assert not job.is_alive() and job.state["status"] == "stopped"


# -- item 7: an orphaned app never hangs; the job it followed goes on ------------------------------------------------
def test_app_whose_terminal_stopped_reading_exits_within_seconds_of_sighup_and_the_job_goes_on(tmp_path):
    import fcntl
    import pty
    import select
    import signal
    import struct
    import termios

    state = tmp_path / "xstate" / "lora-tui"
    job = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), state_dir=state)
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xstate"), XDG_CONFIG_HOME=str(tmp_path / "xconfig"),
               XDG_CACHE_HOME=str(tmp_path / "xcache"), TERM="xterm-256color")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    app = subprocess.Popen([sys.executable, "-m", "lora_tui", "attach", job.id], stdin=slave, stdout=slave,
                           stderr=slave, env=env, start_new_session=True,
                           preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))  # its controlling terminal
    os.close(slave)
    try:
        seen = b""
        deadline = time.monotonic() + 30
        while b"step" not in seen and time.monotonic() < deadline:  # the Run view follows the job
            if select.select([master], [], [], 0.2)[0]:
                seen = (seen + os.read(master, 65536))[-4096:]
        assert b"step" in seen, "the app did not show the job"

        # The terminal stops reading (a stalled SSH link): the pty fills and Textual's writer blocks on it.
        def pending() -> int:
            return struct.unpack("i", fcntl.ioctl(master, termios.FIONREAD, b"\0" * 4))[0]

        last, still_since = -1, time.monotonic()
        while time.monotonic() - still_since < 1.5 and time.monotonic() < deadline + 20:
            now = pending()
            if now != last:
                last, still_since = now, time.monotonic()
            time.sleep(0.1)
        assert last > 0 and app.poll() is None
        app.send_signal(signal.SIGHUP)
        t0 = time.monotonic()
        try:
            app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the app hung after SIGHUP with its terminal not reading") from None
        assert time.monotonic() - t0 < 6
        assert job.is_alive(), "the job must outlive the app"
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        os.close(master)
        job.stop(grace_s=10)
    assert job.state["status"] == "stopped"


# -- also: temp files, a refused or failed Start, how a run ended -------------------------------------------------
def test_temp_files_left_by_a_kill_9_mid_save_are_removed_by_the_next_write_to_that_folder(tmp_path):
    from lora_tui.config.atomic import atomic_write_text

    sd_scripts = Path(__file__).resolve().parents[2] / "sd-scripts"
    # A real writer killed with SIGKILL in the middle of each kind of save: the trainer's LoRA file (10 MB),
    # the app's config writer and a job state file.
    code = (f"import os, sys; sys.path.insert(0, {str(sd_scripts)!r})\n"
            "from pathlib import Path\n"
            "from lora_trainer.atomic import atomic_path\n"
            "from lora_tui.config import atomic\n"
            "from lora_tui.run import statefile\n"
            "atomic._open_temp(Path(sys.argv[1]) / 'demo_lora.json')\n"
            "statefile.os.replace = lambda a, b: os.kill(os.getpid(), 9)\n"
            "with atomic_path(Path(sys.argv[1]) / 'demo_lora.safetensors') as tmp:\n"
            "    tmp.write_bytes(b'\\0' * 10_000_000)\n"
            "    statefile.write_json_atomic(Path(sys.argv[1]) / 'state.json', {'a': 1})\n")
    killed = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    left = sorted(p.name for p in tmp_path.glob(".*.tmp"))
    assert len(left) == 3, left
    for p in tmp_path.glob(".*.tmp"):
        os.utime(p, (time.time() - 60, time.time() - 60))  # older than a live writer's
    mine = tmp_path / f".other.toml.{os.getpid()}.tmp"  # a live writer's temp file stays
    mine.write_text("x")
    foreign = tmp_path / ".vim.swp.tmp"  # not our naming: never touched
    foreign.write_text("x")
    atomic_write_text(tmp_path / "config_lora.toml", "a = 1\n")
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == sorted([mine.name, foreign.name])


@pytest.mark.parametrize("limit,refused", [(300, "config_lora-"),  # the TOML (~1 KB) is refused
                                           (3000, "a_")])  # the TOML is written, the settings JSON (~6 KB) not
def test_start_that_cannot_write_names_the_file_and_leaves_no_launch_file(tmp_path, limit, refused):
    import resource
    import signal

    cfg, _ = headless_setup(tmp_path)
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xstate"), XDG_CONFIG_HOME=str(tmp_path / "xconfig"),
               XDG_CACHE_HOME=str(tmp_path / "xcache"))

    def small_files() -> None:  # the kernel refuses any write past `limit` bytes (EFBIG), as a full disk (ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    out = subprocess.run([sys.executable, "-m", "lora_tui", "train", str(cfg)], capture_output=True, text=True,
                         env=env, preexec_fn=small_files, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "File too large" in out.stdout and str(tmp_path / "out" / refused) in out.stdout, out.stdout
    assert not list((tmp_path / "out").glob("config_lora-*")) and not list((tmp_path / "out").glob(".*.tmp"))
    assert not list((tmp_path / "out").glob("a_*.json"))
    assert not list_jobs(state_dir=tmp_path / "xstate" / "lora-tui")


def test_a_stop_that_arrives_after_the_final_save_records_a_completed_run(tmp_path):
    job = start_job(fake("slow_exit_trainer.py", tmp_path), state_dir=tmp_path / "state")
    wait_for(lambda: job.log_path.exists() and "model saved." in job.log_path.read_text(), 10)
    result = job.stop(grace_s=10)
    assert result.exited and result.signals == ["SIGINT"] and job.exit_code != 0  # interrupted in its teardown
    assert job.state["status"] == "done", job.state
    assert job.hint().startswith("finished; the Stop came after the final save")


def test_a_killed_supervisor_does_not_make_a_finished_run_lost(tmp_path):
    import signal

    job = start_job([sys.executable, "-c", "import time; time.sleep(1.5); print('model saved.', flush=True)"],
                    state_dir=tmp_path / "state")
    wait_for(lambda: job.refresh().get("child_pid"), 10)
    os.kill(job.state["pid"], signal.SIGKILL)  # the supervisor goes; the trainer finishes on its own
    wait_for(lambda: not job.is_alive(), 15)
    assert job.state["status"] == "done" and job.exit_code is None, job.state
    assert "exit status unknown" in job.hint()


def test_stop_now_says_what_it_sends(tmp_path):
    job = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), state_dir=tmp_path / "xstate" / "lora-tui")
    wait_for(lambda: job.log_path.exists() and "LORA_TUI_PROGRESS" in job.log_path.read_text(), 10)
    out = cli(["stop", "--now", job.id], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(SIGTERM, then SIGKILL after 5 s)" in out.stdout and "SIGINT" not in out.stdout, out.stdout
    job.refresh()
    assert job.stop_signals == ["SIGTERM"]


def test_a_trainer_killed_under_accelerates_quiet_launcher_is_said_to_be_killed(tmp_path):
    import signal

    bindir = tmp_path / "bin"
    bindir.mkdir()
    # Stand-in for `accelerate launch --quiet SCRIPT ...` (simple_launcher): any failure of its trainer, a SIGKILL
    # included, becomes a silent exit 1.
    (bindir / "accelerate").write_text(f"#!{sys.executable}\n"
                                       "import subprocess, sys\n"
                                       "args = [a for a in sys.argv[2:] if a != '--quiet']\n"
                                       "sys.exit(0 if subprocess.Popen([sys.executable, *args]).wait() == 0 else 1)\n")
    (bindir / "accelerate").chmod(0o755)
    job = start_job([str(bindir / "accelerate"), "launch", "--quiet", *fake("saving_trainer.py", tmp_path, 100000,
                                                                             0.02)[1:]], state_dir=tmp_path / "state")
    wait_for(lambda: job.log_path.exists() and "LORA_TUI_PROGRESS" in job.log_path.read_text(), 10)
    launcher = psutil.Process(job.refresh()["child_pid"])
    trainer = launcher.children()[0]
    trainer.send_signal(signal.SIGKILL)  # as the out-of-memory killer does
    assert job.wait(timeout=20) == 1 and job.state["status"] == "failed"
    assert "most likely killed (SIGKILL" in job.hint(), job.hint()
