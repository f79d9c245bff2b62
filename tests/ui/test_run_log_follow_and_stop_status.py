"""Run view after a new user's trial: the log pane keeps following its end through relayouts (plot appearing,
Stop) until the user scrolls up; a Stop's status says what was saved; a stopped job shows no failure box."""
from __future__ import annotations

from textual.widgets import Log

from lora_tui.run.jobs import start_job
from lora_tui.run.queue import QueueItem
from lora_tui.ui.app import LoraApp

from ui_helpers import SIZE, fake, static_text, wait_for


async def test_log_follows_end_through_plot_and_stop_until_user_scrolls_up(settings, tmp_path):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        job = start_job(fake("chatty_trainer.py", tmp_path, "steps"), settings=settings)
        app.attach(job)
        run = app.query_one("#run")
        log = app.query_one("#log", Log)
        # The plot appearing shrinks the log pane: it must still show the newest lines.
        await wait_for(pilot, lambda: run.query_one("#plot-box").display and (run.progress.step or 0) > 40,
                       timeout=20)
        await pilot.pause(0.3)
        assert log.max_scroll_y > 0 and log.is_vertical_scroll_end
        # The user scrolls up: new lines no longer move the pane.
        log.scroll_to(y=0, animate=False, immediate=True)
        lines = run.lines_shown
        await wait_for(pilot, lambda: run.lines_shown > lines + 10, timeout=10)
        await pilot.pause(0.2)
        assert log.scroll_y == 0
        # End resumes following; it survives the Stop and the relayout at the end.
        log.focus()
        await pilot.press("end")
        lines = run.lines_shown
        await wait_for(pilot, lambda: run.lines_shown > lines + 10, timeout=10)
        await pilot.press("f9")
        await wait_for(pilot, lambda: not app.job_running, timeout=20)
        await pilot.pause(0.3)
        assert log.is_vertical_scroll_end
        assert any("interrupted: saved" in line for line in log.lines[-5:])
        status = static_text(app.query_one("#run-status"))
        assert f"stopped · saved {tmp_path / 'chatty-interrupted.safetensors'}" in status
        assert not app.query_one("#failure").display
        # The title says what the Stop did, not an exit code that reads as a failure.
        title = static_text(app.query_one("#title-bar"))
        assert title.endswith(f"job {app.job.id}: stopped · saved chatty-interrupted.safetensors"), title


async def test_stop_before_training_says_nothing_saved_without_failure_box(settings, tmp_path):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        job = start_job(fake("chatty_trainer.py", tmp_path, "wait"), settings=settings)
        app.attach(job)
        await wait_for(pilot, lambda: any("caching latents" in ln for ln in app.query_one("#log", Log).lines),
                       timeout=10)
        await pilot.press("f9")
        await wait_for(pilot, lambda: not app.job_running, timeout=20)
        status = static_text(app.query_one("#run-status"))
        assert "stopped · nothing saved" in status and "exit code 130" in status
        assert "saved before exiting" not in status
        assert not app.query_one("#failure").display  # the KeyboardInterrupt traceback is not a failure
        assert app.query_one("#log", Log).is_vertical_scroll_end
        title = static_text(app.query_one("#title-bar"))
        assert title.endswith(f"job {app.job.id}: stopped · nothing saved") and "exit" not in title, title
        # The queue list: a stopped item without its launcher's exit code, a failed one with its own.
        run = app.query_one("#run")
        run.show_queue([QueueItem("a", "first", status="stopped", exit_code=1),
                        QueueItem("b", "second", status="failed", exit_code=1)])
        queue = run.query_one("#queue")  # read at once: the app's queue tick redraws it from the (empty) queue file
        rows = [str(queue.get_option_at_index(i).prompt) for i in range(queue.option_count)]
        assert rows == ["■ first (stopped)", "✖ second (failed, exit 1)"], rows
