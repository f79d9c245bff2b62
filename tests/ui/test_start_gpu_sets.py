"""One training per GPU set, in the app: F5 with gpu_ids 1 while the followed job trains on GPU 0 starts a second
run beside it (no "still running" question); F5 with gpu_ids 0 then offers the queue, naming the job on GPU 0.
Stand-ins for accelerate and the trainer (real processes, no torch)."""
from __future__ import annotations

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.run.jobs import load_job, start_job
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, fake, stand_ins, valid_sdxl_setup, wait_for


async def test_a_run_on_other_gpus_starts_beside_the_running_one(settings, tmp_path):
    stand_ins(tmp_path, settings)
    cfg = load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config
    on0 = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.05), meta={"gpu_ids": ["0"]}, settings=settings)
    app = LoraApp(cfg, settings=settings, attach_job=on0)
    try:
        async with app.run_test(size=SIZE) as pilot:
            for name, value in valid_sdxl_setup(tmp_path).items():
                assert app.apply_edit(name, value)
            assert app.apply_edit("gpu_ids", "1")
            await wait_for(pilot, lambda: app.job_running and app.job.id == on0.id)
            await pilot.press("f5")
            await wait_for(pilot, lambda: app.job is not None and app.job.id != on0.id, timeout=20)
            assert app.screen.id != "queue-dialog"
            second = app.job
            assert (second.state.get("meta") or {}).get("gpu_ids") == ["1"]
            assert "--gpu_ids" in second.state["argv"] and load_job(on0.id, settings).is_alive()
            # GPU 0 is taken: Start offers the queue and names the job there
            assert app.apply_edit("gpu_ids", "0")
            await wait_for(pilot, lambda: not app.starting)
            await pilot.press("f5")
            await wait_for(pilot, lambda: app.screen.id == "queue-dialog", timeout=20)
            assert f"Job {on0.id} is still running on GPU 0" in str(app.screen.question)
            await pilot.press("escape")
    finally:
        on0.stop(grace_s=5, escalate=True)
