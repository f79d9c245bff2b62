"""Keys and commands: every action is in the command palette; SIGHUP (an SSH drop) detaches and exits."""
from __future__ import annotations

import os
import signal
import time

from lora_tui.run.jobs import load_job, start_job
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, fake, wait_for


async def test_actions_are_in_the_command_palette(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in ("Start training", "Load preset or config file", "Save config as JSON", "Minimal form",
                       "Advanced form", "Run view", "Quit"):
            assert wanted in titles
        assert "Stop training" not in titles  # only while a job runs
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Advanced form")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.view == "advanced")


async def test_stop_is_shown_only_while_a_job_runs(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        footer_keys = lambda: {b.action for (_, b, enabled, _) in app.active_bindings.values() if enabled}  # noqa
        assert app.check_action("stop", ()) is False
        job = start_job(fake("fail_after.py", 3), settings=settings)
        app.attach(job)
        assert app.check_action("stop", ()) is True
        assert "Stop training" in [c.title for c in app.get_system_commands(app.screen)]
        await wait_for(pilot, lambda: not app.job_running, timeout=10)
        assert app.check_action("stop", ()) is False
        await pilot.press("f9")  # harmless when nothing runs
        assert "start" in footer_keys()


async def test_sighup_detaches_and_exits(settings, tmp_path):
    job = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), settings=settings)
    app = LoraApp(settings=settings, attach_job=job)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.job_running and (app.query_one("#run").progress.step or 0) > 2)
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(pilot, lambda: not app.is_running, timeout=5)
    time.sleep(0.3)
    assert load_job(job.id, settings).is_alive(), "an SSH drop must leave the training running"
    load_job(job.id, settings).stop(grace_s=10)
