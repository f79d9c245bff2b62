"""The problems panel is re-planned when a run ends (issue 14): the LoRA it wrote is an overwrite risk for the next
Start, shown at once rather than after the next edit."""
from __future__ import annotations

from lora_tui.ui.app import LoraApp
from lora_tui.ui.files import default_config
from ui_helpers import SIZE, run_script_to_end, wait_for


async def test_the_overwrite_risk_shows_right_after_a_run(settings, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cfg = default_config().model_copy(update={"output_dir": str(out), "output_name": "face"})
    app = LoraApp(cfg, settings=settings)

    def overwrite_warnings():
        return [p for p in app.plan_problems if p.field == "output_name" and "already exists" in p.message]

    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.plan is not None)
        assert not overwrite_warnings()
        # A run (any job the app follows) that saves the LoRA the form names, then ends.
        lora = out / "face.safetensors"
        await run_script_to_end(pilot, app, settings, tmp_path / "saves.py",
                                f"open({str(lora)!r}, 'wb').write(b'a LoRA')\n")
        await wait_for(pilot, overwrite_warnings)
        assert str(lora) in overwrite_warnings()[0].message
