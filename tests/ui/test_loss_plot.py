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


async def test_trainer_text_that_looks_like_markup_is_shown_as_is(settings, tmp_path):
    # scale_weight_norms puts "Average key norm=..., Keys Scaled=0" in tqdm's postfix; read as Textual markup the
    # live line raised MarkupError and the app died mid-run (a trial's crash). Paths may hold brackets too.
    extra = "Average key norm=0.00924, Keys Scaled=0"
    job = start_job(fake("bar_trainer.py", 3, extra, 60), settings=settings)
    app = LoraApp(settings=settings, attach_job=job)
    try:
        async with app.run_test(size=SIZE) as pilot:
            live = app.query_one("#live")
            await wait_for(pilot, lambda: "Keys Scaled=0, avr_loss=0.333]" in str(live.render()), timeout=15)
            assert app.job_running
            app.query_one("#run").set_status("log [b]x[/b] in /data/[set 1]/log.txt")
            await pilot.pause()
            assert "[b]x[/b] in /data/[set 1]" in str(app.query_one("#run-status").render())
    finally:
        job.stop(grace_s=5, escalate=True)


async def test_a_toast_with_bracketed_trainer_text_is_shown_as_is(settings):
    # Toasts carry exception texts and paths ("Job ... ended · ValueError: [x=1] ..."): plain text, never markup.
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.notify("ValueError: bad [network_args=conv_dim=4] in /data/[set 1]", title="Not loaded", timeout=10)
        await pilot.pause(0.3)
        toasts = [str(t.render()) for t in app.screen.query("Toast")]
        assert any("[network_args=conv_dim=4] in /data/[set 1]" in t for t in toasts), toasts


async def test_the_plot_has_whole_step_ticks_and_frames_a_single_point(settings):
    from ui_helpers import painted

    for steps in (1, 13):
        job = start_job(fake("bar_trainer.py", steps), settings=settings)
        assert job.wait(30) is not None or not job.is_alive()
        app = LoraApp(settings=settings, attach_job=job)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: not app.job_running and app.query_one("#plot-box").display
                           and app.query_one_optional("#loss-plot") is not None, timeout=15)
            await wait_for(pilot, lambda: any("┼" in row or "┬" in row for row in painted(app, "#loss-plot")))
            rows = painted(app, "#loss-plot")
            x_labels = rows[-1].split()  # the row under the x axis
            assert x_labels and all(label.isdigit() for label in x_labels), rows
            assert x_labels[0] == "1" if steps == 1 else {"5", "10"} <= set(x_labels), rows
            # a single loss of 1.0 is framed around it (plotext alone: the step axis 0.50 ... 1.50)
            assert "0.50" not in "\n".join(rows) and "1.50" not in "\n".join(rows), rows
