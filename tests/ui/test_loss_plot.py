"""The loss curve starts at step 1: on a replay (the whole log in one read) the first step's figures arrive after
the overwritten bar states of later steps and must not be dropped."""
from __future__ import annotations

from lora_tui.run.jobs import start_job
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, fake, wait_for


async def test_replayed_run_plots_from_step_one_with_every_step(settings):
    job = start_job(fake("bar_trainer.py", 30), settings=settings)
    assert job.wait(30) is not None or not job.is_alive()
    app = LoraApp(settings=settings, attach_job=job)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: not app.job_running, timeout=15)
        hist = app.query_one("#run").progress.loss_history
        assert [s for s, _ in hist] == list(range(1, 31))
        assert hist[0] == (1, 1.0) and hist[1] == (2, 0.5)  # the machine lines' exact values, not the bar's
        assert app.query_one("#plot-box").display
