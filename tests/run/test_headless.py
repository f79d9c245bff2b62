"""`lora-tui jobs / stop / attach --text / train` as a user runs them: real CLI processes on real (fake-trainer)
jobs in a private XDG state dir."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from run_helpers import alive, cli, fake
from lora_tui.run.jobs import load_job, start_job


def test_jobs_lists_and_stop_stops_a_running_job(tmp_path):
    state = tmp_path / "xstate" / "lora-tui"
    job = start_job(fake("saving_trainer.py", tmp_path, 10_000, 0.02), state_dir=state,
                    meta={"output_name": "my_face_lora"})
    try:
        deadline = time.monotonic() + 10
        while "LORA_TUI_PROGRESS" not in job.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        listed = cli(["jobs"], tmp_path)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        row = [line for line in listed.stdout.splitlines() if line.startswith(job.id)]
        assert row and "running" in row[0] and "my_face_lora" in row[0] and "/10000" in row[0]
        stopped = cli(["stop", "--grace", "10"], tmp_path)  # no JOB: the running one
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert f"stopping job {job.id}" in stopped.stdout and "SIGINT" in stopped.stdout
        assert not job.is_alive() and job.state["status"] == "stopped" and job.exit_code == 130
        assert (tmp_path / "fake-interrupted.safetensors").is_file()
        again = cli(["stop", job.id], tmp_path)
        assert again.returncode == 0 and "already ended" in again.stdout
        assert "no running job" in cli(["stop"], tmp_path).stdout
    finally:
        for p in job.members():
            p.kill()


def test_attach_text_replays_the_log_of_a_finished_job_and_returns_its_status(tmp_path):
    state = tmp_path / "xstate" / "lora-tui"
    job = start_job(fake("fail_after.py", 0), state_dir=state)
    job.wait(timeout=10)
    out = cli(["attach", "--text", job.id[:15]], tmp_path)
    assert out.returncode == 1
    assert "epoch 1/3" in out.stdout and "ValueError: fake failure" in out.stdout
    assert "failed (exit code 1): ValueError: fake failure" in out.stdout
    assert load_job(job.id, state_dir=state).state["status"] == "failed"


def test_attach_text_shows_the_last_lines_then_follows_as_tail(tmp_path):
    state = tmp_path / "xstate" / "lora-tui"
    job = start_job(fake("chatty_trainer.py", tmp_path, "steps", 50, 0.001), state_dir=state)
    job.wait(timeout=20)
    # 80 "loading part" lines, "epoch 1/1", then 50 step lines, each followed by a machine line (not counted)
    out = cli(["attach", "--text", job.id], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    body = out.stdout.splitlines()
    assert body[0].endswith("; its last 40 lines (--lines all: the whole log)")
    assert body[1:41] == [f"step line {k}" for k in range(11, 51)], body[:3]
    assert body[-1].startswith(f"lora-tui: job {job.id} done")
    whole = cli(["attach", "--text", "--lines", "all", job.id], tmp_path).stdout.splitlines()
    assert whole[1] == "loading part 0" and whole[-3] == "step line 50" and "LORA_TUI" not in "".join(whole)
    assert "--lines" not in whole[0]
    three = cli(["attach", "--text", "--lines", "3", job.id], tmp_path).stdout.splitlines()
    assert three[1:4] == ["step line 48", "step line 49", "step line 50"]
    none = cli(["attach", "--text", "--lines", "0", job.id], tmp_path).stdout.splitlines()
    assert none[0].endswith("; what comes next (--lines N: the last N lines)") and "step line 50" not in none
    bad = cli(["attach", "--text", "--lines", "-2", job.id], tmp_path)
    assert bad.returncode == 2 and "give a number of lines (0 or more) or 'all'" in bad.stderr


def test_tail_start_counts_lines_as_the_terminal_shows_them(tmp_path):
    from lora_tui.run.logtail import tail_start

    log = tmp_path / "train.log"
    lines = [f"line {k} ".encode() + b"x" * 300 + b"\n" for k in range(600)]  # > 64 KiB: several blocks
    lines[-3] = b"LORA_TUI_PROGRESS {\"step\": 1}\n"  # a machine line: not counted
    lines[-5] = b"\rsteps: 1/2\rsteps: 2/2 LORA_TUI_SAVED {}\n"  # the text before it joins the next line
    raw = b"".join(lines) + b"\rsteps:  50%|#  | 1/2"  # an unfinished bar is a line
    log.write_bytes(raw)
    assert raw[tail_start(log, 1):] == b"\rsteps:  50%|#  | 1/2"
    assert raw[tail_start(log, 4):] == b"".join(lines[-4:]) + b"\rsteps:  50%|#  | 1/2"
    assert raw[tail_start(log, 5):] == b"".join(lines[-6:]) + b"\rsteps:  50%|#  | 1/2"
    assert raw[tail_start(log, 300):].startswith(b"line 299 ")
    assert tail_start(log, None) == 0 and tail_start(log, 10_000) == 0 and tail_start(log, 0) == len(raw)
    assert tail_start(tmp_path / "missing.log", 40) == 0


def test_train_refuses_a_config_with_errors_and_starts_nothing(tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"pretrained_model_name_or_path": str(tmp_path / "missing.safetensors"),
                               "train_data_dir": str(tmp_path / "no_such_dir"), "output_dir": str(tmp_path / "out"),
                               "output_name": "x", "sdxl": True}))
    out = cli(["train", str(cfg)], tmp_path)
    assert out.returncode == 1
    assert "nothing was started" in out.stdout and "train_data_dir" in out.stdout
    assert not (tmp_path / "xstate" / "lora-tui" / "jobs").exists()
    assert cli(["jobs"], tmp_path).stdout.startswith("no jobs")


def test_queue_commands(tmp_path):
    from run_helpers import headless_setup

    cfg, data = headless_setup(tmp_path)  # queue add refuses a config with errors: a valid one
    cfg.write_text(json.dumps({**data, "output_name": "qa", "network_dim": 8}))
    added = cli(["queue", "add", str(cfg), "--set", "network_dim=16"], tmp_path)
    assert added.returncode == 0, added.stdout + added.stderr
    assert cli(["queue", "add", str(cfg), "--set", "output_name=qb"], tmp_path).returncode == 0
    listed = cli(["queue"], tmp_path).stdout.splitlines()
    assert len(listed) == 2 and all(" pending " in line for line in listed), listed
    # two items of one file told apart by what they write and how they were changed
    assert listed[0].endswith(" a.json (output_name qa; --set network_dim=16)"), listed
    assert listed[1].endswith(" a.json (output_name qb; --set output_name=qb)"), listed
    data = json.loads((tmp_path / "xstate" / "lora-tui" / "queue.json").read_text())
    assert data["items"][0]["config"]["network_dim"] == 16  # the snapshot holds the override
    ids = [line.split()[0] for line in listed]
    removed = cli(["queue", "remove", ids[0][:-1], "nosuchid"], tmp_path)  # a unique prefix does
    assert removed.returncode == 1  # one of the two was not found
    assert removed.stdout.splitlines() == [
        f"lora-tui: removed pending queue item {ids[0]} a.json (output_name qa; --set network_dim=16)",
        "lora-tui: no queue item 'nosuchid'; `lora-tui queue list` shows the ids"]
    assert cli(["queue", "add", str(cfg)], tmp_path).returncode == 0
    assert cli(["queue", "clear", "--finished"], tmp_path).stdout == \
        "lora-tui: queue: no ended items to remove; kept 2 pending\n"
    cleared = cli(["queue", "clear"], tmp_path)
    assert cleared.returncode == 0 and cleared.stdout.count("lora-tui: removed pending queue item ") == 2
    assert cleared.stdout.endswith("lora-tui: queue: removed 2 pending items\n")
    assert cli(["queue"], tmp_path).stdout == "queue is empty\n"
    assert json.loads((tmp_path / "xstate" / "lora-tui" / "queue.json").read_text())["items"] == []
    # two items differing only in --overwrite look different
    assert cli(["queue", "add", str(cfg)], tmp_path).returncode == 0
    again = cli(["queue", "add", str(cfg), "--overwrite"], tmp_path)
    assert again.returncode == 0 and " (output_name qa; overwrite) as " in again.stdout, again.stdout
    listed = cli(["queue"], tmp_path).stdout.splitlines()
    assert listed[0].endswith(" a.json (output_name qa)") and listed[1].endswith(" a.json (output_name qa; overwrite)")
    wrong = cli(["queue", "run", ids[1]], tmp_path)
    assert wrong.returncode == 2 and "queue run: takes no FILE or ID" in wrong.stderr


def test_started_job_keeps_running_after_sighup_of_its_starter(tmp_path):
    # the starter (our app or `train`) goes away with the terminal: the job is in its own session
    state = tmp_path / "xstate" / "lora-tui"
    code = ("import sys, time; from lora_tui.run.jobs import start_job; "
            f"j = start_job({fake('saving_trainer.py', tmp_path, 10_000, 0.02)!r}, state_dir={str(state)!r}); "
            "print(j.id, flush=True); time.sleep(60)")
    starter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    job_id = starter.stdout.readline().strip()
    os.killpg(starter.pid, 1)  # SIGHUP to the starter's whole group, as a closing terminal does
    starter.wait(timeout=10)
    job = load_job(job_id, state_dir=state)
    time.sleep(0.3)
    try:
        assert job.is_alive() and alive(job.refresh()["child_pid"])
    finally:
        job.stop(grace_s=5)
    assert job.state["status"] == "stopped"


def test_ctrl_c_in_a_headless_train_asks_the_trainer_to_save_and_returns_its_status(tmp_path):
    state = tmp_path / "state"
    code = ("import sys; from lora_tui.run.jobs import start_job; "
            "from lora_tui.run.logtail import stream_job, shell_status; "
            f"j = start_job({fake('saving_trainer.py', tmp_path, 10_000, 0.02)!r}, state_dir={str(state)!r}); "
            "sys.exit(shell_status(stream_job(j, sys.stdout.buffer, poll_s=0.05)))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 20
    while b"steps:" not in seen and time.monotonic() < deadline:
        seen += proc.stdout.read1(65536)
    assert b"LORA_TUI_" not in seen  # machine lines are for the app, not the terminal
    assert seen.startswith(b"lora-tui: Ctrl-C stops the job (the trainer saves first); closing the terminal")
    proc.send_signal(2)  # Ctrl-C in the terminal running `lora-tui train` (the trainer is in its own session)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    assert b"asked the trainer to save" in rest and b"interrupted: saved" in rest
    assert (tmp_path / "fake-interrupted.safetensors").is_file()


def test_ctrl_c_in_attach_text_detaches_and_the_job_goes_on(tmp_path):
    state = tmp_path / "xstate" / "lora-tui"
    job = start_job(fake("saving_trainer.py", tmp_path, 10_000, 0.02), state_dir=state)
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xstate"), XDG_CONFIG_HOME=str(tmp_path / "xconfig"),
               XDG_CACHE_HOME=str(tmp_path / "xcache"))
    try:
        proc = subprocess.Popen([sys.executable, "-m", "lora_tui", "attach", "--text", job.id],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        seen = b""
        deadline = time.monotonic() + 20
        while b"steps:" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.read1(65536)
        assert f"Ctrl-C leaves the log (the job goes on); `lora-tui stop {job.id}` stops it".encode() in seen
        proc.send_signal(2)  # Ctrl-C in the terminal running `lora-tui attach --text`
        rest, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err.decode()
        assert f"`lora-tui attach {job.id}` to watch it again, `lora-tui stop {job.id}` to stop it".encode() in rest
        assert b"stopping" not in rest and not err
        time.sleep(0.3)
        assert job.is_alive() and not job.stop_signals and alive(job.refresh()["child_pid"])
        assert cli(["stop", "--grace", "10", job.id], tmp_path).returncode == 0
        assert not job.is_alive() and job.state["status"] == "stopped"
    finally:
        for p in job.members():
            p.kill()


def test_machine_lines_are_left_out_of_terminal_output_byte_for_byte_otherwise():
    from lora_tui.run.logtail import MachineLineFilter

    raw = ("\rsteps:  4%|▍| 1/25 [00:01<00:30, 1.2it/s]LORA_TUI_PROGRESS {\"step\": 1}\n"
           "\rsteps:  8%|▊| 2/25 [00:02<00:30, 1.2it/s]épö\nLORA_TUI_SAVED {\"path\": \"/o/x\"}\nmodel saved.\n"
           "LORA_TUI_PROG").encode()
    want = ("\rsteps:  4%|▍| 1/25 [00:01<00:30, 1.2it/s]"
            "\rsteps:  8%|▊| 2/25 [00:02<00:30, 1.2it/s]épö\nmodel saved.\n").encode()
    for size in (1, 3, 7, len(raw)):
        f = MachineLineFilter()
        out = b"".join(f.feed(raw[i:i + size]) for i in range(0, len(raw), size))
        assert out == want
        assert f.flush() == b"LORA_TUI_PROG"  # an unfinished line at the end of the stream is not lost


def test_queue_run_waits_while_paused_until_queue_resume(tmp_path):
    from run_helpers import headless_setup

    state = tmp_path / "xstate" / "lora-tui"
    bad, _ = headless_setup(tmp_path)  # valid when queued (queue add refuses errors); broken below before its turn
    paused = cli(["queue", "pause"], tmp_path)
    assert paused.returncode == 0 and "queue paused" in paused.stdout
    assert "already paused" in cli(["queue", "pause"], tmp_path).stdout
    added = cli(["queue", "add", str(bad)], tmp_path)
    assert added.returncode == 0 and "the queue is paused" in added.stdout
    assert cli(["queue", "add", str(bad), "--set", "output_name=y"], tmp_path).returncode == 0
    shutil.rmtree(tmp_path / "img")  # plan errors at each item's turn: it ends `error` at once, nothing starts
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xstate"), XDG_CONFIG_HOME=str(tmp_path / "xconfig"),
               XDG_CACHE_HOME=str(tmp_path / "xcache"))
    runner = subprocess.Popen([sys.executable, "-m", "lora_tui", "queue", "run"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = runner.stdout.readline()
        assert first.startswith("lora-tui: queue paused since ") and "queue resume" in first, first
        time.sleep(1.0)
        assert runner.poll() is None  # still waiting, and nothing started
        data = json.loads((state / "queue.json").read_text())
        assert [d["status"] for d in data["items"]] == ["pending", "pending"]
        resumed = cli(["queue", "resume"], tmp_path)
        assert resumed.returncode == 0 and "queue resumed (2 waiting" in resumed.stdout
        rest, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 1  # the items could not start
    assert "queue resumed" in rest and rest.count(": error ") == 2, rest
    assert "was not paused" in cli(["queue", "resume"], tmp_path).stdout
    listed = cli(["queue"], tmp_path).stdout
    assert "paused" not in listed and listed.count(" error ") == 2
    assert "PlanRefused" not in listed + rest and listed.count("the config has errors; nothing was started") == 2
    cli(["queue", "pause"], tmp_path)
    again = cli(["queue", "run"], tmp_path)  # nothing to do is not an error, and earlier failures are not this run's
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.startswith("lora-tui: queue: nothing pending (2 errors; paused since "), again.stdout


def test_stop_pauses_the_queue_when_items_wait(tmp_path):
    state = tmp_path / "xstate" / "lora-tui"
    from run_helpers import headless_setup

    job = start_job(fake("saving_trainer.py", tmp_path, 10_000, 0.02), state_dir=state)
    cfg, _ = headless_setup(tmp_path)  # queue add refuses a config with errors: a valid one
    try:
        assert cli(["queue", "add", str(cfg)], tmp_path).returncode == 0
        stopped = cli(["stop", "--grace", "10", job.id], tmp_path)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "queue paused (1 waiting); `lora-tui queue resume` lets it go on" in stopped.stdout
        listed = cli(["queue"], tmp_path).stdout
        assert "(stopped by the user)" in listed and " pending " in listed, listed
    finally:
        for p in job.members():
            p.kill()


def test_two_queue_runs_at_once_exit_0_when_every_item_is_done(tmp_path):
    # Each settles items the other started; neither counts those as its own unfinished ones (it did: exit 1).
    from run_helpers import headless_setup

    cfg, _ = headless_setup(tmp_path)
    for name in ("a", "b", "c", "d"):
        assert cli(["queue", "add", str(cfg), "--set", f"output_name={name}"], tmp_path).returncode == 0
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xstate"), XDG_CONFIG_HOME=str(tmp_path / "xconfig"),
               XDG_CACHE_HOME=str(tmp_path / "xcache"), LORA_TUI_TEST_SECONDS="0.6")
    runs = [subprocess.Popen([sys.executable, "-m", "lora_tui", "queue", "run"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env) for _ in range(2)]
    outs = [r.communicate(timeout=90)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outs
    listed = cli(["queue"], tmp_path).stdout
    assert listed.count(" done ") == 4, listed
    assert sum(o.count(": running (job ") for o in outs) == 4, outs  # each item started once
    assert "lora-tui: queue: waiting for queue item a.json" in "".join(outs), outs  # for the other's item


def test_ctrl_c_in_queue_run_says_what_goes_on_and_a_second_run_says_whose_job_it_waits_for(tmp_path):
    from run_helpers import headless_setup

    cfg, _ = headless_setup(tmp_path)
    for name in ("a", "b"):
        assert cli(["queue", "add", str(cfg), "--set", f"output_name={name}"], tmp_path).returncode == 0
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xstate"), XDG_CONFIG_HOME=str(tmp_path / "xconfig"),
               XDG_CACHE_HOME=str(tmp_path / "xcache"), LORA_TUI_TEST_SECONDS="60")

    def queue_run() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "lora_tui", "queue", "run"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)

    first = queue_run()
    try:
        line = first.stdout.readline()
        assert ": running (job " in line, line
        job_id = line.split("(job ")[1].split(")")[0]
        first.send_signal(2)  # Ctrl-C in its terminal (the job runs in its own session)
        rest, _ = first.communicate(timeout=30)
        assert first.returncode == 130, rest
        assert (f"left the queue; queue item a.json (output_name a; --set output_name=a) goes on running (job "
                f"{job_id}): `lora-tui attach {job_id}` to watch it, `lora-tui stop {job_id}` to stop it. The 1 "
                "pending item starts only when `lora-tui queue run` runs again (or the app is open).") in rest, rest
        job = load_job(job_id, state_dir=tmp_path / "xstate" / "lora-tui")
        assert job.is_alive() and not job.stop_signals
        item_a = json.loads((tmp_path / "xstate" / "lora-tui" / "queue.json").read_text())["items"][0]["id"]
        refused = cli(["queue", "remove", item_a], tmp_path)
        assert refused.returncode == 1 and f"is running (job {job_id}); stop it with `lora-tui stop {job_id}`, " \
            "then remove it" in refused.stdout, refused.stdout
        second = queue_run()
        line = second.stdout.readline()
        assert line.startswith(f"lora-tui: queue: waiting for queue item a.json (output_name a; --set output_name=a) "
                               f"(job {job_id}), started by another `queue run` or the app; the next item starts "
                               "when it ends"), line
        assert cli(["stop", "--grace", "10", job_id], tmp_path).returncode == 0  # pauses the queue: b waits
        seen = second.stdout.readline() + second.stdout.readline()  # in either order
        assert ": stopped (job " in seen and "lora-tui: queue paused since " in seen, seen
        second.send_signal(2)
        rest, _ = second.communicate(timeout=30)
        assert second.returncode == 130
        assert rest.strip() == ("lora-tui: left the queue; no item runs. The 1 pending item starts only when "
                                "`lora-tui queue run` runs again (or the app is open)."), rest
        assert [d["status"] for d in json.loads((tmp_path / "xstate" / "lora-tui" / "queue.json").read_text())[
            "items"]] == ["stopped", "pending"]
        cleared = cli(["queue", "clear", "--finished"], tmp_path).stdout
        assert cleared == (f"lora-tui: removed stopped queue item {item_a} a.json (output_name a; --set "
                           "output_name=a)\nlora-tui: queue: removed 1 ended item; kept 1 pending\n"), \
            cleared
    finally:
        for proc in (first, locals().get("second")):
            if proc is not None and proc.poll() is None:
                proc.kill()
