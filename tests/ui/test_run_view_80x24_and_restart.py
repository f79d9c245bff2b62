"""The Run view at 80x24 (a common SSH window): after a run fails with a full queue, the error, the failure box's
last lines and the log pane's last lines are all on screen; at 120x40 the plot keeps its 14 rows. Without a job
the progress bar stands still; after a restart the Run view shows the newest earlier job instead of "No run yet",
and a job started later by another process in its place. Each test reads the text painted on the screen."""
from __future__ import annotations

import subprocess
import sys

from lora_tui.run.jobs import load_job, start_job
from lora_tui.run.queue import Queue
from lora_tui.ui.app import LoraApp
from lora_tui.ui.runview import RunView

from ui_helpers import fake, screen_text, wait_for

FAILING_TRAINER = '''
import json
for step in range(1, 31):
    print(f"step {step} log line", flush=True)
    print("LORA_TUI_PROGRESS " + json.dumps({"step": step, "total": 100, "epoch": 1, "epochs": 1,
                                             "loss": 1.0 / step, "avr_loss": 1.0 / step}), flush=True)
raise FileNotFoundError("no such file: /data/10_subject/missing.txt (check train_data_dir) END-OF-ERROR")
'''


def painted(app, widget) -> str:
    """The words painted inside `widget`'s content region (clipped to the screen), lines joined by spaces."""
    r = widget.scrollable_content_region
    lines = screen_text(app).split("\n")[r.y:r.bottom]
    return " ".join(" ".join(line[r.x:r.right] for line in lines).split())


def start_elsewhere(settings, argv: list[str]) -> str:
    """Start `argv` as a job from another process (as `lora-tui train --detach` does); returns the job id."""
    code = ("import sys; from lora_tui.run.jobs import start_job; "
            "print(start_job(sys.argv[2:], state_dir=sys.argv[1]).id)")
    done = subprocess.run([sys.executable, "-c", code, str(settings.state_dir), *argv], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def flat(text: str) -> str:
    return "".join(text.split())


async def fail_with_full_queue(app, pilot, settings, tmp_path):
    queue = Queue(settings=settings)
    for i in range(8):
        queue.add(config={}, label=f"queued {i}")
    queue.pause("test: nothing starts")
    script = tmp_path / "failing.py"
    script.write_text(FAILING_TRAINER)
    app.attach(start_job([sys.executable, str(script)], settings=settings))
    await wait_for(pilot, lambda: app.job is not None and not app.job_running, timeout=20)
    await wait_for(pilot, lambda: app.query_one("#queue").option_count == 8, timeout=10)
    await wait_for(pilot, lambda: app.query_one("#plot-box").display, timeout=10)
    await pilot.pause(0.3)


async def test_a_failed_run_at_80x24_shows_the_error_the_last_lines_and_the_log(settings, tmp_path):
    app = LoraApp(settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await fail_with_full_queue(app, pilot, settings, tmp_path)
        footer_y = 23
        log, tail = app.query_one("#log"), app.query_one("#failure-tail")
        for widget in ("#progress", "#run-status", "#queue", "#failure-tail", "#log"):
            region = app.query_one(widget).region
            assert region.height >= 1 and region.bottom <= footer_y, (widget, region)
        assert log.scrollable_content_region.height >= 3  # several log rows, not a border alone
        assert tail.scrollable_content_region.height >= 3
        status = flat(painted(app, app.query_one("#run-status")))
        # whole, to its end: the headline then says where it failed (the trainer's innermost frame)
        assert "exitcode1" in status and "END-OF-ERROR(at" in status and status.endswith("/failing.py:7in<module>)"), \
            status
        assert str(app.query_one("#title-bar").render()).endswith(": ended (exit 1)")  # a failure keeps its code
        # The failure box and the log pane both end with the error, folded but whole.
        error = flat("FileNotFoundError: no such file: /data/10_subject/missing.txt (check train_data_dir) "
                     "END-OF-ERROR")
        assert flat(painted(app, tail)).endswith(error), painted(app, tail)
        assert flat(painted(app, log)).endswith(error), painted(app, log)
        assert "step 30/100" in painted(app, app.query_one("#run-stats"))
        assert painted(app, app.query_one("#progress")).endswith("30%")  # the bar gives way to its percentage


async def test_at_120x40_the_plot_keeps_its_rows_and_the_log_more(settings, tmp_path):
    app = LoraApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await fail_with_full_queue(app, pilot, settings, tmp_path)
        assert app.query_one("#run-mid").region.height == 14
        assert app.query_one("#log").scrollable_content_region.height >= 5
        assert app.query_one("#log").region.bottom <= 39
        hint = painted(app, app.query_one("#failure-hint"))  # room enough for the headline in the box too
        assert hint.startswith("Job ") and hint.endswith("Last lines of output:"), hint
        assert "step 30 log line" in painted(app, app.query_one("#log"))


async def test_the_progress_bar_stands_still_without_a_job(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.view == "run")
        bar = app.query_one("#progress")
        frames = set()
        for _ in range(6):
            await pilot.pause(0.15)
            frames.add(painted(app, bar) + "|" + screen_text(app).split("\n")[bar.region.y])
        assert len(frames) == 1, frames  # an "unknown total" bar would move from frame to frame
        assert "No run yet" in painted(app, app.query_one("#run-status"))


async def test_after_a_restart_the_run_view_shows_the_last_ended_job(settings, tmp_path):
    older = start_job(fake("saving_trainer.py", tmp_path, 2, 0.01), settings=settings)
    assert older.wait(timeout=20) == 0
    failed = start_job(fake("fail_after.py", 0), settings=settings)
    assert failed.wait(timeout=20) == 1
    app = LoraApp(settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert app.view == "minimal"  # an ended job does not take the user away from the form
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.view == "run")
        await pilot.pause(0.3)
        status = painted(app, app.query_one("#run-status"))
        assert f"Last run: job {failed.id} ended (failed) · exit code 1" in status, status
        assert "ValueError: fake failure" in status and "lora-tui jobs` lists all 2 jobs" in status, status
        assert "No run yet" not in screen_text(app)
        assert flat(painted(app, app.query_one("#failure-tail"))).endswith(
            flat("ValueError: fake failure: train_data_dir has no images"))
        assert "ValueError: fake failure" in painted(app, app.query_one("#log"))
        assert app.job is None and not app.job_running  # shown, not followed: no Stop, F5 starts anew

        # A job started by another process while the app follows none is followed (the form stays in front);
        # a second one does not take the view from it.
        await pilot.press("f2")
        await wait_for(pilot, lambda: app.view == "minimal")
        started: list[str] = []
        try:
            started.append(start_elsewhere(settings, fake("saving_trainer.py", tmp_path, 100000, 0.02)))
            other = started[0]
            await wait_for(pilot, lambda: app.job is not None and app.job.id == other and app.job_running,
                           timeout=10)
            assert app.view == "minimal"
            assert any(f"Job {other} started by another process: following it" in str(n.message)
                       for n in app._notifications)
            await pilot.press("f4")
            await wait_for(pilot, lambda: app.view == "run")
            await wait_for(pilot, lambda: "step " in painted(app, app.query_one("#run-stats")), timeout=10)
            assert f"Job {other} running" in painted(app, app.query_one("#run-status"))
            assert "Last run" not in painted(app, app.query_one("#run-status"))
            started.append(start_elsewhere(settings, fake("saving_trainer.py", tmp_path, 100000, 0.02)))
            await pilot.pause(2.5)  # two queue ticks
            assert app.job.id == other and app.job_running
        finally:
            for job_id in started:
                load_job(job_id, settings).stop(grace_s=5, escalate=True)


async def test_after_a_restart_a_running_job_is_attached(settings, tmp_path):
    running = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), settings=settings)
    app = LoraApp(settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.job is not None and app.view == "run", timeout=10)
        assert app.job.id == running.id and app.job_running
        await wait_for(pilot, lambda: "steps:" in painted(app, app.query_one("#live"))
                       or "step " in painted(app, app.query_one("#run-stats")), timeout=10)
        assert f"Job {running.id} running" in painted(app, app.query_one("#run-status"))
        running.stop(grace_s=5, escalate=True)
