"""The real bundled trainer's preflight through the app side (issue 13 §3): what validate/Start run before a launch.
Header-only checkpoint (the preflight loads no weights), two captioned images; one process per config, each answer
cached. The wall time is printed (`-s`) for the record."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.model import TrainingConfig
from lora_tui.plan import make_plan
from lora_tui.run.preflight import forget_preflights, preflight

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
from ui_helpers import valid_sdxl_setup  # noqa: E402

SD_SCRIPTS = Path(__file__).resolve().parents[2] / "sd-scripts"
HAS_PREFLIGHT = (SD_SCRIPTS / "lora_trainer" / "preflight.py").is_file()


@pytest.mark.skipif(not HAS_PREFLIGHT, reason="the bundled trainer has no --preflight yet (issue 13, trainer side)")
def test_the_real_trainer_passes_a_good_config_and_names_an_unknown_optimizer_keyword(tmp_path):
    forget_preflights()
    settings = AppSettings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    base = TrainingConfig(**valid_sdxl_setup(tmp_path), sdxl=True, output_name="x", optimizer="AdamW",
                          optimizer_args="weight_decay=0.01", log_with="tensorboard", max_train_steps=2)
    assert make_plan(base, settings).errors == []
    good = preflight(base, settings)
    print(f"\npreflight wall time: {good.wall_s:.2f} s (good config)")
    assert good.ran and good.errors == [], good.problems
    bad = base.model_copy(update={"optimizer_args": "weight_decay=0.01 foo=1"})
    res = preflight(bad, settings)
    print(f"preflight wall time: {res.wall_s:.2f} s (unknown optimizer keyword)")
    assert [p.field for p in res.errors] == ["optimizer_args"], res.problems
    assert "foo" in res.errors[0].message
    forget_preflights()


@pytest.mark.skipif(not HAS_PREFLIGHT, reason="the bundled trainer has no --preflight yet (issue 13, trainer side)")
def test_full_bf16_on_a_machine_without_a_gpu_is_reported_before_launch(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU for the trainer, also on a GPU box
    forget_preflights()
    settings = AppSettings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    cfg = TrainingConfig(**valid_sdxl_setup(tmp_path), sdxl=True, output_name="x", optimizer="AdamW",
                         mixed_precision="bf16", full_bf16=True, max_train_steps=2)
    res = preflight(cfg, settings)
    assert [p.field for p in res.errors] == ["full_bf16"], res.problems
    assert "needs a CUDA GPU" in res.errors[0].message
    forget_preflights()
