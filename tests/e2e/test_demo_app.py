"""The main job end to end (issue 2): the app opened on the demo, two fields edited through the form, F5, the real
trainer (`accelerate launch ... sdxl_train_network.py`) on the tiny SDXL-architecture checkpoint, and the LoRA file
checked key by key. One real training run, so it is the slowest test (about a minute on 2 cores)."""
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
from ui_helpers import type_into, wait_for  # noqa: E402

KEY = re.compile(r"^lora_(unet|te1|te2)_[a-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)$")


@pytest.fixture
def demo_settings(tmp_path) -> AppSettings:
    return AppSettings(state_dir=tmp_path / "state", presets_dir=tmp_path / "presets", cache_dir=tmp_path / "cache",
                       stop_grace_s=30.0)


async def test_demo_trains_through_the_app(demo_settings):
    files = prepare_demo(demo_settings)
    assert sorted(p.name for p in (files.train_data_dir / "10_demo person").glob("*.jpg"))
    app = LoraApp(config=demo_config(files), demo=True, settings=demo_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await type_into(pilot, app, "output_name", "e2e_lora")
        await type_into(pilot, app, "network_dim", "8")
        await type_into(pilot, app, "network_alpha", "4")
        assert (app.config.output_name, app.config.network_dim, app.config.network_alpha) == ("e2e_lora", 8, 4)
        await pilot.press("f5")
        # Start runs the bundled trainer's preflight first (torch and transformers load: seconds, more on a busy
        # machine), then launches
        await wait_for(pilot, lambda: app.job_running, timeout=120, step=0.2)
        await wait_for(pilot, lambda: not app.job_running, timeout=240, step=0.2)
        assert app.last_exit == 0, list(app.query_one("#log", Log).lines)[-30:]
        log_text = "\n".join(app.query_one("#log", Log).lines)

    out = files.output_dir
    tomls = sorted(out.glob("config_lora-*.toml"))
    assert len(tomls) == 1
    toml = tomllib.loads(tomls[0].read_text(encoding="utf-8"))
    assert toml["output_name"] == "e2e_lora"
    assert toml["network_dim"] == 8
    assert toml["network_alpha"] == 4
    assert len(sorted(out.glob("e2e_lora_*.json"))) == 1

    lora = out / "e2e_lora.safetensors"
    assert lora.exists()
    with safe_open(str(lora), framework="numpy") as f:
        keys = list(f.keys())
        meta = f.metadata()
        bad = [k for k in keys if not KEY.match(k)]
        assert not bad, bad[:5]
        prefixes = {k.split("_")[1] for k in keys}
        assert prefixes == {"unet", "te1", "te2"}  # text_encoder_lr > 0 trains both text encoders
        # SDXL UNet names are the original block paths; text encoders carry `text_model` whatever transformers does.
        assert any(k.startswith("lora_unet_input_blocks_") for k in keys)
        assert any(k.startswith("lora_unet_output_blocks_") for k in keys)
        assert all("_text_model_encoder_layers_" in k for k in keys if k.startswith(("lora_te1_", "lora_te2_")))
        downs = [k for k in keys if k.endswith(".lora_down.weight")]
        assert downs
        for k in downs:
            assert f.get_slice(k).get_shape()[0] == 8, k
            base = k[: -len(".lora_down.weight")]
            assert float(f.get_tensor(base + ".alpha")) == 4.0
            assert base + ".lora_up.weight" in keys
    assert meta["ss_network_dim"] == "8"
    assert float(meta["ss_network_alpha"]) == 4.0
    assert meta["ss_network_module"] == "networks.lora"

    # Loss values reached the log pane (the trainer's tqdm line carries avr_loss).
    losses = [float(m) for m in re.findall(r"avr_loss=([0-9.]+)", log_text)]
    assert losses and all(v > 0 for v in losses)
