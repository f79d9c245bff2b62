"""A stopped run is saved under sd-scripts' step-save name (`<output_name>-stepNNNNNNNN`), and the Run view's end
line says it is a step save, not the finished LoRA."""
from __future__ import annotations

from lora_tui.run.jobs import start_job
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, fake, static_text, wait_for


async def test_the_run_view_says_a_stopped_runs_file_is_a_step_save(settings, tmp_path):
    job = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02, 0, "demo-step{step}.safetensors"),
                    settings=settings)
    app = LoraApp(settings=settings, attach_job=job)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: (app.query_one("#run").progress.step or 0) > 2, timeout=15)
        await pilot.press("f9")
        await wait_for(pilot, lambda: not app.job_running, timeout=20)
        saved = next(tmp_path.glob("demo-step*.safetensors"))
        step = int(saved.stem.rpartition("-step")[2])
        status = static_text(app.query_one("#run-status"))
        assert f"saved {saved} (stopped at step {step}: a step save, not the finished LoRA)" in status, status
