"""Start with a valid config writes the TOML and the settings JSON into output_dir and starts the job the run
layer supervises; the Run view follows it to its exit. The trainer and `accelerate` here are small stand-ins
(real processes): the real trainer's end-to-end run is the demo test."""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from textual.widgets import Log

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, stand_ins, static_text, type_into, valid_sdxl_setup, wait_for


async def test_start_writes_toml_and_json_and_follows_the_job(settings, tmp_path):
    stand_ins(tmp_path, settings)
    fields = valid_sdxl_setup(tmp_path)
    out = Path(fields["output_dir"])
    app = LoraApp(load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        for name, value in fields.items():
            assert app.apply_edit(name, value)
        await type_into(pilot, app, "network_dim", "24")
        await type_into(pilot, app, "output_name", "my_lora")
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.job is not None, timeout=20)
        await wait_for(pilot, lambda: app.view == "run")
        await wait_for(pilot, lambda: not app.job_running, timeout=30)
        lines = list(app.query_one("#log", Log).lines)
        assert "config: network_dim=24 output_name=my_lora" in lines
        assert "exit code 0" in static_text(app.query_one("#run-status"))
        assert app.query_one("#run").progress.step == 5  # the \r bar was parsed
        assert not app.query_one("#failure").display
    tomls = list(out.glob("config_lora-*.toml"))
    jsons = list(out.glob("my_lora_*.json"))
    assert len(tomls) == 1 and len(jsons) == 1
    toml = tomllib.loads(tomls[0].read_text(encoding="utf-8"))
    assert toml["network_dim"] == 24 and toml["output_name"] == "my_lora"
    saved = json.loads(jsons[0].read_text(encoding="utf-8"))
    assert saved["network_dim"] == 24 and saved["LoRA_type"] == "Standard"
    meta = app.job.state["meta"]
    assert meta["config_toml"] == str(tomls[0]) and os.path.samefile(meta["config_json"], jsons[0])
