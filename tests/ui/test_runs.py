"""The app's run side against fake trainers (real processes, real signals): failure report, Stop escalation,
quit-detach and re-attach. The real trainer's end-to-end run is the lead's demo test."""
from __future__ import annotations

import time

from textual.widgets import Log

from lora_tui.run.jobs import load_job, start_job
from lora_tui.ui.app import LoraApp

from ui_helpers import SIZE, fake, static_text, wait_for


def log_lines(app) -> list[str]:
    return list(app.query_one("#log", Log).lines)


async def test_failed_run_goes_idle_with_exit_code_tail_and_values_kept(settings, tmp_path):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        assert app.apply_edit("network_dim", "48")
        job = start_job(fake("fail_after.py", 2), settings=settings)
        app.attach(job)
        await wait_for(pilot, lambda: app.view == "run" and app.job_running)
        assert app.check_action("stop", ()) is True
        await wait_for(pilot, lambda: any("epoch 1/3" in line for line in log_lines(app)), timeout=10)
        # The moment the trainer's exit is recorded, the app has one second to be idle again.
        await wait_for(pilot, lambda: not load_job(job.id, settings).is_alive(), timeout=15, step=0.02)
        took = await wait_for(pilot, lambda: not app.job_running, timeout=5, step=0.02)
        assert took < 1.0
        status = static_text(app.query_one("#run-status"))
        assert "exit code 1" in status
        assert "ValueError: fake failure" in status  # the exception line is the hint for exit code 1
        assert app.query_one("#failure").display
        tail = list(app.query_one("#failure-tail", Log).lines)
        assert any("Traceback" in line for line in tail)
        assert tail[-1].startswith("ValueError: fake failure")
        assert app.last_exit == 1
        assert app.config.network_dim == 48  # form values kept
        assert app.check_action("stop", ()) is False  # Stop hidden, Start available again
        assert app.check_action("start", ()) is True
        await pilot.press("f2")
        await pilot.pause()
        assert app.query_one("#f-network_dim").value == "48"


async def test_stop_escalates_on_second_press_and_says_so(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        job = start_job(fake("ignore_sigint.py"), settings=settings)
        app.attach(job)
        await wait_for(pilot, lambda: any("caching latents" in line for line in log_lines(app)), timeout=10)
        await pilot.press("f9")
        await pilot.pause()
        assert "SIGINT sent" in static_text(app.query_one("#run-status"))
        await pilot.pause(0.5)
        assert app.job_running  # SIGINT is ignored while caching latents
        await pilot.press("f9")
        await pilot.pause()
        assert "Stop escalated: SIGTERM" in app.last_stop_message
        await wait_for(pilot, lambda: not app.job_running, timeout=10)
        status = static_text(app.query_one("#run-status"))
        assert "terminated (SIGTERM)" in status
        assert not load_job(job.id, settings).members()


async def test_stop_escalates_by_itself_after_the_grace_time(settings):
    settings.stop_grace_s = 0.5
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        job = start_job(fake("ignore_sigint.py", "--ignore-term"), settings=settings)
        app.attach(job)
        await wait_for(pilot, lambda: any("caching latents" in line for line in log_lines(app)), timeout=10)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "escalated" in app.last_stop_message, timeout=5)
        assert "SIGTERM sent" in app.last_stop_message
        assert "no exit within the grace time" in app.last_stop_message
        # SIGTERM is ignored too: SIGKILL follows.
        await wait_for(pilot, lambda: not app.job_running, timeout=15)
        assert "SIGKILL" in app.last_stop_message
        assert "killed (SIGKILL)" in static_text(app.query_one("#run-status"))
        assert not load_job(job.id, settings).members()


async def test_quit_detach_then_a_new_app_attaches_and_stop_works(settings, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    job = start_job(fake("saving_trainer.py", out, 100000, 0.02), settings=settings)
    app = LoraApp(settings=settings, attach_job=job)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: (app.query_one("#run").progress or None) is not None
                       and (app.query_one("#run").progress.step or 0) > 5, timeout=15)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.screen.id == "quit-dialog", timeout=5)
        await pilot.click("#choice-detach")
        await wait_for(pilot, lambda: not app.is_running, timeout=5)
    time.sleep(0.3)
    assert load_job(job.id, settings).is_alive(), "detaching must leave the trainer running"
    note = app.left_running_note()  # what run_app prints to the shell after the app exits
    assert note and f"lora-tui attach {job.id}" in note and f"lora-tui stop {job.id}" in note

    app2 = LoraApp(settings=settings, attach_job=job.id)
    async with app2.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app2.job_running and app2.query_one("#run").progress.step, timeout=10)
        assert app2.query_one("#run").lines_shown > 0  # the log so far
        assert any(line.startswith("epoch 1/1") for line in log_lines(app2))
        step0 = app2.query_one("#run").progress.step
        await wait_for(pilot, lambda: app2.query_one("#run").progress.step > step0, timeout=10)  # live
        await pilot.press("f9")
        await wait_for(pilot, lambda: not app2.job_running, timeout=20)
        status = static_text(app2.query_one("#run-status"))
        assert "stopped · saved " in status and "exit code 130" in status
        assert "fake-interrupted.safetensors" in status
        assert not app2.query_one("#failure").display
    assert (out / "fake-interrupted.safetensors").exists()
    assert not load_job(job.id, settings).members()


async def test_quit_and_stop_waits_for_the_save_then_exits(settings, tmp_path):
    job = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02, 0.5), settings=settings)
    app = LoraApp(settings=settings, attach_job=job)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: (app.query_one("#run").progress.step or 0) > 3, timeout=15)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.screen.id == "quit-dialog")
        assert app.screen.focused.id == "choice-cancel"  # Enter alone never ends a run
        await pilot.click("#choice-stop")
        await wait_for(pilot, lambda: not app.is_running, timeout=20)
    ended = load_job(job.id, settings)
    assert not ended.is_alive() and ended.status == "stopped" and ended.exit_code == 130
    assert (tmp_path / "fake-interrupted.safetensors").exists()
    note = app.left_running_note()  # the shell is told how it ended, as "leave it running" tells where it runs
    assert note.startswith(f"lora-tui: Job {job.id} stopped") and "fake-interrupted.safetensors" in note, note


async def test_attach_to_a_finished_job_shows_its_log_result_and_tail(settings):
    job = start_job(fake("fail_after.py", 0.2), settings=settings)
    job.wait(timeout=20)
    app = LoraApp(settings=settings, attach_job=job.id)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.job is not None and not app.job_running, timeout=10)
        assert app.view == "run"
        assert "epoch 1/3" in log_lines(app)
        status = static_text(app.query_one("#run-status"))
        assert "(failed)" in status and "exit code 1" in status
        assert app.query_one("#failure").display
        assert app.check_action("stop", ()) is False
