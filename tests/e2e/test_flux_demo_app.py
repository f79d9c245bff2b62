"""Flux.1 through the app (issue 15): the app opened on `--demo flux` (the bundled Flux.1 preset on a tiny Flux.1
built offline in its four single files), F5 launches `accelerate launch ... flux_train_network.py`, F9 after the
first steps lets the trainer save (under the step-save name), and the saved LoRA has kohya's networks.lora_flux
keys. One real run."""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from safetensors import safe_open
from textual.widgets import Log

from lora_tui.config.app_settings import AppSettings
from lora_tui.demo import demo_config, prepare_demo
from lora_tui.ui.app import LoraApp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
from ui_helpers import wait_for  # noqa: E402

KEY = re.compile(r"^lora_unet_(double_blocks_\d+_(img|txt)_(attn_qkv|attn_proj|mlp_0|mlp_2|mod_lin)|"
                 r"single_blocks_\d+_(linear1|linear2|modulation_lin))\.(lora_down\.weight|lora_up\.weight|alpha)$")


@pytest.fixture
def demo_settings(tmp_path) -> AppSettings:
    return AppSettings(state_dir=tmp_path / "state", presets_dir=tmp_path / "presets", cache_dir=tmp_path / "cache",
                       stop_grace_s=60.0)


async def test_flux_demo_trains_and_stops_with_a_save(demo_settings):
    files = prepare_demo(demo_settings, family="flux")
    cfg = demo_config(files).model_copy(update={"epoch": 200})  # long enough to be stopped
    app = LoraApp(config=cfg, demo=True, settings=demo_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        # Start runs the trainer's --preflight first (seconds of imports), then launches
        await wait_for(pilot, lambda: app.job_running, timeout=120, step=0.2)
        run = app.query_one("#run")
        await wait_for(pilot, lambda: (run.progress.step or 0) >= 2, timeout=240, step=0.2)
        await pilot.press("f9")
        await wait_for(pilot, lambda: not app.job_running, timeout=120, step=0.2)
        log_text = "\n".join(app.query_one("#log", Log).lines)
        # the trainer saved and exited 130; accelerate's launcher reports that as its own failure, so the job's
        # state (not the launcher's exit code) says how it ended
        assert app.job.state["status"] == "stopped", log_text[-3000:]
        # a stopped run saves under sd-scripts' step-save name, not as the finished LoRA
        saved = re.search(r"stopped · saved (demo_flux_lora-step\d{8}\.safetensors)", app.last_outcome)
        assert saved, app.last_outcome
        assert "interrupted: saved" in log_text

    out = files.output_dir
    toml = tomllib.loads(sorted(out.glob("config_lora-*.toml"))[-1].read_text(encoding="utf-8"))
    assert toml["network_module"] == "networks.lora_flux" and toml["ae"] == str(files.ae)
    assert toml["tokenizer_cache_dir"] == str(files.tokenizer_cache_dir)  # the field, not an argv option
    assert "import network module: networks.lora_flux" in log_text
    assert not (out / "demo_flux_lora.safetensors").exists()
    with safe_open(str(out / saved.group(1)), framework="numpy") as f:
        keys = list(f.keys())
        meta = f.metadata()
    assert keys and not [k for k in keys if not KEY.match(k)]  # text_encoder_lr 0: the transformer only
    assert any("_single_blocks_" in k for k in keys) and any("_double_blocks_" in k for k in keys)
    assert meta["ss_network_module"] == "networks.lora_flux" and meta["ss_base_model_version"] == "flux1"
