"""The queue with real jobs (fake trainers) and a restart in the middle."""
from __future__ import annotations

import time

from run_helpers import fake
from lora_tui.run.jobs import start_job
from lora_tui.run.queue import Queue, QueueRunner


def launcher_for(state_dir, tmp_path):
    """Start a queue item as a fake trainer chosen by its config snapshot (``{"fake": [script, args...]}``);
    the job machinery underneath is the real one."""
    def launch(item):
        argv = fake(*item.config["fake"])
        return start_job(argv, cwd=tmp_path, meta={"queue_item": item.id}, state_dir=state_dir)
    return launch


def test_queue_of_two_whose_first_fails_runs_the_second_and_records_both(state_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    q = Queue(state_dir=state_dir)
    first = q.add({"fake": ["fail_after.py", "0.2"]}, label="broken")
    second = q.add({"fake": ["saving_trainer.py", str(out), "5", "0.01"]}, label="good")
    assert [i.status for i in q.items()] == ["pending", "pending"]
    seen = []
    items = QueueRunner(q, launch=launcher_for(state_dir, tmp_path)).run_all(poll_s=0.05, on_event=seen.append)
    assert [(i.id, i.status) for i in items] == [(first.id, "failed"), (second.id, "done")]
    assert items[0].exit_code == 1 and "ValueError: fake failure" in items[0].message
    assert items[1].exit_code == 0 and items[1].job_id and items[1].job_id != items[0].job_id
    assert (out / "fake.safetensors").is_file()
    assert [e.status for e in seen] == ["running", "failed", "running", "done"]
    # the results are on disk for the next app start
    assert [i.status for i in Queue(state_dir=state_dir).items()] == ["failed", "done"]


def test_queue_survives_a_restart_while_an_item_runs(state_dir, tmp_path):
    q = Queue(state_dir=state_dir)
    item = q.add({"fake": ["fail_after.py", "0.5"]}, label="a")
    later = q.add({"fake": ["fail_after.py", "0"]}, label="b")
    runner = QueueRunner(q, launch=launcher_for(state_dir, tmp_path))
    started = runner.tick()
    assert started.id == item.id and started.status == "running"
    assert runner.tick() is None  # still running; the second does not start beside it
    # "restart": a new queue object and runner, knowing nothing but the files
    runner2 = QueueRunner(Queue(state_dir=state_dir), launch=launcher_for(state_dir, tmp_path))
    items = runner2.run_all(poll_s=0.05)
    assert [(i.id, i.status) for i in items] == [(item.id, "failed"), (later.id, "failed")]


def test_an_item_that_cannot_launch_is_recorded_and_the_queue_goes_on(state_dir, tmp_path):
    q = Queue(state_dir=state_dir)
    bad = q.add(config_path=tmp_path / "missing.json", label="missing")
    good = q.add({"fake": ["fail_after.py", "0"]})

    def launch(item):
        if item.config is None:
            raise FileNotFoundError(f"{item.config_path}: file not found")
        return launcher_for(state_dir, tmp_path)(item)

    items = QueueRunner(q, launch=launch).run_all(poll_s=0.05)
    assert items[0].id == bad.id and items[0].status == "error" and "file not found" in items[0].message
    assert items[1].id == good.id and items[1].status == "failed"
    q.move(good.id, -1)
    assert [i.id for i in q.items()] == [good.id, bad.id]
    assert q.clear_finished() == 2 and q.items() == []


def test_enqueue_snapshots_a_training_config(state_dir):
    from lora_tui.config.model import TrainingConfig
    from lora_tui.run.queue import enqueue

    cfg = TrainingConfig(output_name="face_v1", network_dim=16)
    item = enqueue(cfg, state_dir=state_dir)
    cfg.network_dim = 64  # editing the form afterwards does not change the queued run
    stored = Queue(state_dir=state_dir).get(item.id)
    assert stored.label == "face_v1" and stored.config["network_dim"] == 16 and stored.status == "pending"


def test_two_runners_on_one_queue_never_start_two_items_at_once(state_dir, tmp_path):
    import threading

    q = Queue(state_dir=state_dir)
    for _ in range(3):
        q.add({"fake": ["fail_after.py", "0.3"]})
    runners = [QueueRunner(Queue(state_dir=state_dir), launch=launcher_for(state_dir, tmp_path)) for _ in range(2)]
    overlaps = []

    def watch():
        while any(i.status in ("pending", "running") for i in q.items()):
            overlaps.append(sum(i.status == "running" for i in q.items()))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    threads = [threading.Thread(target=r.run_all, kwargs={"poll_s": 0.01}) for r in runners]
    for t in threads + [watcher]:
        t.start()
    for t in threads + [watcher]:
        t.join(timeout=60)
    assert [i.status for i in q.items()] == ["failed"] * 3
    assert max(overlaps) == 1
    assert len({i.job_id for i in q.items()}) == 3


def test_queue_list_settles_an_item_whose_job_ended_with_nothing_driving_the_queue(state_dir, tmp_path):
    import io

    from lora_tui import cli_jobs
    from lora_tui.run.jobs import load_job

    q = Queue(state_dir=state_dir)
    item = q.add({"fake": ["fail_after.py", "0"]}, label="a")
    nxt = q.add({"fake": ["fail_after.py", "0"]}, label="b")
    started = QueueRunner(q, launch=launcher_for(state_dir, tmp_path)).tick()  # then the "app" goes away
    job = load_job(started.job_id, state_dir=state_dir)
    deadline = time.time() + 30
    while job.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    assert Queue(state_dir=state_dir).get(item.id).status == "running"  # nobody recorded the end yet
    buf = io.StringIO()
    assert cli_jobs.queue_list(settings=state_dir, out=buf) == 0  # a state dir stands for the settings
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith(f"{item.id}  failed") and "exit 1" in lines[0], lines
    assert lines[1].startswith(f"{nxt.id}  pending"), lines  # listing starts nothing


def test_pause_is_kept_in_the_queue_file_and_holds_back_the_next_item_but_not_the_running_one(tmp_path):
    import json

    from run_helpers import cli
    from lora_tui.run.jobs import load_job
    from lora_tui.run.queue import QUEUE_FILE

    state_dir = tmp_path / "xstate" / "lora-tui"  # the state dir `lora-tui` uses under cli()'s XDG dirs
    q = Queue(state_dir=state_dir)
    # it runs 3 s: the `queue pause` process below must find it running (a CLI start takes 1-2 s on a busy box)
    first = q.add({"fake": ["fail_after.py", "3"]}, label="first")
    second = q.add({"fake": ["fail_after.py", "0"]}, label="second")
    runner = QueueRunner(q, launch=launcher_for(state_dir, tmp_path))
    assert runner.tick().id == first.id
    # Paused from another process while the first runs: the running item goes on.
    out = cli(["queue", "pause"], tmp_path)
    assert out.returncode == 0 and "queue paused" in out.stdout and "running item goes on" in out.stdout
    data = json.loads((state_dir / QUEUE_FILE).read_text())
    assert data["paused"]["reason"] == "paused from the command line" and len(data["items"]) == 2
    assert q.paused and runner.paused
    job = load_job(q.get(first.id).job_id, state_dir=state_dir)
    assert job.is_alive()
    job.wait(timeout=30)
    settled = runner.tick()  # the end is recorded while paused...
    assert settled.id == first.id and settled.status == "failed"
    for _ in range(3):  # ...but nothing starts, however often the runner (or a restarted one) ticks
        assert runner.tick() is None
        assert QueueRunner(Queue(state_dir=state_dir), launch=launcher_for(state_dir, tmp_path)).tick() is None
    assert Queue(state_dir=state_dir).get(second.id).status == "pending"
    listed = cli(["queue", "list"], tmp_path)
    assert listed.stdout.splitlines()[0].startswith("queue paused since "), listed.stdout
    assert "(paused from the command line)" in listed.stdout and "queue resume" in listed.stdout
    assert not q.pause("again")  # already paused: the first reason stays
    assert q.pause_info()["reason"] == "paused from the command line"
    assert q.resume() and not q.paused and not q.resume()
    assert "paused" not in json.loads((state_dir / QUEUE_FILE).read_text())
    started = runner.tick()
    assert started.id == second.id and started.status == "running"


def test_run_all_waits_while_paused_and_goes_on_when_another_process_resumes(state_dir, tmp_path):
    import threading

    q = Queue(state_dir=state_dir)
    a = q.add({"fake": ["fail_after.py", "0"]}, label="a")
    b = q.add({"fake": ["fail_after.py", "0"]}, label="b")
    q.pause("testing")
    seen, pauses, result = [], [], []
    runner = QueueRunner(Queue(state_dir=state_dir), launch=launcher_for(state_dir, tmp_path))
    thread = threading.Thread(target=lambda: result.append(
        runner.run_all(poll_s=0.02, on_event=seen.append, on_pause=pauses.append)))
    thread.start()
    try:
        time.sleep(1.0)
        assert thread.is_alive() and seen == [] and pauses == [True]  # it waits; it starts nothing
        assert [i.status for i in q.items()] == ["pending", "pending"]
        Queue(state_dir=state_dir).resume()
        thread.join(timeout=60)
    finally:
        Queue(state_dir=state_dir).resume()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert pauses == [True, False]
    assert [(i.id, i.status) for i in result[0]] == [(a.id, "failed"), (b.id, "failed")]


def test_pause_for_stop_pauses_only_when_items_wait(state_dir):
    q = Queue(state_dir=state_dir)
    assert q.pause_for_stop() == 0 and not q.paused  # an empty queue is not left paused
    item = q.add({"output_name": "x"})
    q.mark(item.id, "running")
    assert q.pause_for_stop() == 0 and not q.paused  # the stopped run was the last: nothing to hold back
    q.add({"output_name": "y"})
    assert q.pause_for_stop() == 1 and q.paused and q.pause_info()["reason"] == "stopped by the user"


def test_an_item_whose_output_lora_exists_at_its_turn_is_refused_unless_queued_with_overwrite(state_dir, tmp_path):
    # Three items write the same <out>/fake.safetensors (the fake trainer's file): the first writes it; the
    # second, queued without overwrite, is refused at its start, names the first, and launches nothing; the third
    # was queued with overwrite and replaces it; the queue goes on after the refusal.
    out = tmp_path / "out"
    out.mkdir()
    target = {"output_dir": str(out), "output_name": "fake"}
    q = Queue(state_dir=state_dir)
    first = q.add({"fake": ["saving_trainer.py", str(out), "2", "0.01"], **target}, label="first")
    second = q.add({"fake": ["saving_trainer.py", str(out), "2", "0.01"], **target}, label="second")
    third = q.add({"fake": ["saving_trainer.py", str(out), "2", "0.01"], **target}, label="third", overwrite=True)
    assert [i.overwrite for i in Queue(state_dir=state_dir).items()] == [False, False, True]  # stored in the file
    launched, mtimes = [], []
    base = launcher_for(state_dir, tmp_path)

    def launch(item):
        launched.append(item.label)
        mtimes.append((out / "fake.safetensors").stat().st_mtime_ns if (out / "fake.safetensors").exists() else 0)
        return base(item)

    items = QueueRunner(q, launch=launch).run_all(poll_s=0.05)
    assert [(i.id, i.status) for i in items] == [(first.id, "done"), (second.id, "error"), (third.id, "done")]
    assert launched == ["first", "third"] and items[1].job_id is None
    msg = items[1].message
    assert msg.startswith(f"not started: {out / 'fake.safetensors'} already exists") and "overwrite" in msg, msg
    assert f"written by queue item “first” {first.id}" in msg, msg
    assert mtimes[1] > 0 and (out / "fake.safetensors").stat().st_mtime_ns >= mtimes[1]


def test_queue_add_refuses_an_existing_lora_without_overwrite_and_queue_run_checks_again(tmp_path):
    # The fresh-user finding, through the real command line: `queue add` with the output present, then a file
    # written after queueing, then `queue run` (the refused item launches no trainer, so no model is needed).
    import json

    from run_helpers import cli
    from lora_tui.run.queue import QUEUE_FILE

    from pathlib import Path

    from run_helpers import headless_setup

    _, data = headless_setup(tmp_path)  # a valid config (queue add refuses one with errors), stand-in trainer
    out = Path(data["output_dir"])
    (out / "demo_lora.safetensors").write_bytes(b"a finished LoRA")
    demo = tmp_path / "demo.json"
    demo.write_text(json.dumps({**data, "output_name": "demo_lora"}), encoding="utf-8")
    queue_file = tmp_path / "xstate" / "lora-tui" / QUEUE_FILE

    def stored():
        return json.loads(queue_file.read_text())["items"] if queue_file.exists() else []

    refused = cli(["queue", "add", str(demo)], tmp_path)
    assert refused.returncode == 1 and stored() == [], refused.stdout + refused.stderr
    assert str(out / "demo_lora.safetensors") in refused.stdout and "output_dir/output_name" in refused.stdout
    assert "--overwrite" in refused.stdout and "nothing was queued" in refused.stdout

    fresh = cli(["queue", "add", str(demo), "--set", "output_name=fresh"], tmp_path)
    assert fresh.returncode == 0 and [i["overwrite"] for i in stored()] == [False], fresh.stdout + fresh.stderr
    same = cli(["queue", "add", str(demo), "--set", "output_name=fresh"], tmp_path)  # would replace its LoRA
    assert same.returncode == 1 and len(stored()) == 1 and "demo.json" in same.stdout, same.stdout

    (out / "fresh.safetensors").write_bytes(b"trained by hand meanwhile")
    ran = cli(["queue", "run"], tmp_path)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "demo.json (output_name fresh; --set output_name=fresh): error" in ran.stdout
    assert f"{out / 'fresh.safetensors'} already exists" in ran.stdout
    assert (out / "fresh.safetensors").read_bytes() == b"trained by hand meanwhile"
    assert stored()[0]["status"] == "error" and stored()[0]["job_id"] is None

    forced = cli(["queue", "add", str(demo), "--overwrite"], tmp_path)
    assert forced.returncode == 0 and "--overwrite" in forced.stdout, forced.stdout + forced.stderr
    assert [(i["status"], i["overwrite"]) for i in stored()] == [("error", False), ("pending", True)]


def test_two_runners_count_only_the_items_they_started(state_dir, tmp_path):
    # Two `queue run`s (or an app and one) on one queue: either may settle the other's item. Each answers only
    # for what it started (its exit status), and says whose job it waits for.
    from run_helpers import wait_for
    from lora_tui.run.jobs import load_job

    out = tmp_path / "out"
    out.mkdir()
    q = Queue(state_dir=state_dir)
    good = q.add({"fake": ["saving_trainer.py", str(out), "3", "0.01"]}, label="good")
    bad = q.add({"fake": ["fail_after.py", "1.0"]}, label="bad")
    a = QueueRunner(q, launch=launcher_for(state_dir, tmp_path))
    b = QueueRunner(Queue(state_dir=state_dir), launch=launcher_for(state_dir, tmp_path))
    assert a.tick().id == good.id and a.started == {good.id}
    assert b.tick() is None and b.waiting_for == q.get(good.id).job_id  # not its job: it says whose
    wait_for(lambda: not load_job(q.get(good.id).job_id, state_dir=state_dir).is_alive(), 10)
    assert b.tick().status == "done"  # b settles a's item
    started = b.tick()
    assert started.id == bad.id and started.status == "running" and b.waiting_for is None
    assert a.tick() is None and a.waiting_for == started.job_id
    items = a.run_all(poll_s=0.05)  # a settles b's failing item
    assert [i.status for i in items] == ["done", "failed"]
    assert a.own_failures(items) == [] and a.waiting_for is None
    assert [i.id for i in b.own_failures(items)] == [bad.id]


def test_output_writers_names_waiting_items_and_a_running_job_of_the_same_lora(state_dir, tmp_path):
    # Queueing behind a run started by Start (not a queue item) that writes the same LoRA must be asked about too.
    from lora_tui.run.queue import output_writers

    out = tmp_path / "out"
    q = Queue(state_dir=state_dir)
    cfg = {"output_dir": str(out), "output_name": "face"}
    assert output_writers(q, cfg) == []
    q.add({**cfg, "fake": []}, label="face")
    job = start_job(fake("saving_trainer.py", str(tmp_path), "100000", "0.02"), cwd=tmp_path,
                    meta={"output_dir": str(out), "output_name": "face"}, state_dir=state_dir)
    try:
        found = output_writers(q, cfg)
        assert found == ["queue item “face” (pending)", f"job {job.id} (running)"], found
        assert output_writers(q, {**cfg, "output_name": "other"}) == []
    finally:
        job.stop(grace_s=5, escalate=True)
    assert output_writers(q, cfg) == ["queue item “face” (pending)"]
