"""Issue 14 through the app: the Minimal form's learning rate is the rate the U-Net trains at, the Advanced form says
which of the three rates is in force, and loading a kohya_ss file without paths keeps the form's machine-local
paths (the notes say which settings took defaults)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from lora_tui.config.model import TrainingConfig
from lora_tui.plan import make_plan
from lora_tui.ui.app import LoraApp
from lora_tui.ui.files import default_config
from lora_tui.ui.forms import AdvancedForm, section_of
from ui_helpers import SIZE, static_text, toml_of, type_into, wait_for

SHARED_PRESETS = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "kohya_presets"


def _words(widget) -> str:
    """A message label's text with its line breaks (it folds at the row's width) read as spaces."""
    return " ".join(static_text(widget).split())


def _lr_rows(app) -> list[str]:
    return [w.id.removeprefix("f-") for w in app.query(".field-editor")
            if w.id in ("f-learning_rate", "f-unet_lr")]


async def test_a_typed_rate_beats_the_demos_unet_lr(settings):
    # The demo used to hold unet_lr = learning_rate = 0.0005: a 1e-4 typed into "Learning rate" trained nothing.
    cfg = default_config().model_copy(update={"learning_rate": 0.0005, "unet_lr": 0.0005})
    app = LoraApp(cfg, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: _lr_rows(app) == ["unet_lr"])  # the U-Net's rate, and the row edits it
        assert app.query_one("#f-unet_lr").value == "0.0005"
        await type_into(pilot, app, "unet_lr", "1e-4")
        assert toml_of(app)["unet_lr"] == 1e-4
        assert not [p for p in make_plan(app.config, settings).problems if p.field in ("learning_rate", "unet_lr")]


async def test_loaded_files_show_the_rate_in_force_minimal_and_advanced(settings, tmp_path):
    only_lr = tmp_path / "only_lr.json"
    only_lr.write_text(json.dumps({"LoRA_type": "Standard", "sdxl": True, "learning_rate": 0.0002}))
    only_unet = tmp_path / "only_unet.json"
    only_unet.write_text(json.dumps({"LoRA_type": "Standard", "sdxl": True, "unet_lr": 0.0003,
                                     "text_encoder_lr": 5e-05}))
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.load_file(only_lr)
        await wait_for(pilot, lambda: _lr_rows(app) == ["learning_rate"])
        assert app.query_one("#f-learning_rate").value == "0.0002"
        assert toml_of(app)["unet_lr"] == 0.0002  # not the old default 0.0001
        await type_into(pilot, app, "learning_rate", "0.0004")
        assert toml_of(app)["unet_lr"] == 0.0004

        assert app.load_file(only_unet)
        await wait_for(pilot, lambda: _lr_rows(app) == ["unet_lr"])  # the load moved the row to unet_lr
        assert app.query_one("#f-unet_lr").value == "0.0003"
        assert not [p for p in make_plan(app.config, settings).problems
                    if p.field in ("learning_rate", "unet_lr", "text_encoder_lr")]

        # The Advanced form says under each rate which one is in force.
        await app.show_view("advanced")
        await app.query_one(AdvancedForm).show_section(section_of("unet_lr"))
        await wait_for(pilot, lambda: app.query_one_optional("#msg-unet_lr") is not None)
        assert _words(app.query_one("#msg-unet_lr")) == \
            "in force: the U-Net trains at 0.0003, not at learning_rate 0.0001"
        assert "-info" in app.query_one("#msg-unet_lr").classes
        assert _words(app.query_one("#msg-text_encoder_lr")).startswith("in force: the text encoder trains at 5e-05")
        await app.query_one(AdvancedForm).show_section(section_of("learning_rate"))
        await wait_for(pilot, lambda: app.query_one_optional("#msg-learning_rate") is not None)
        assert _words(app.query_one("#msg-learning_rate")) == (
            "not used: the U-Net trains at unet_lr 0.0003, the text encoder trains at text_encoder_lr 5e-05")


async def test_loading_a_shared_preset_keeps_the_forms_paths(settings, tmp_path):
    paths = {"pretrained_model_name_or_path": str(tmp_path / "m.safetensors"), "train_data_dir": str(tmp_path / "img"),
             "output_dir": str(tmp_path / "out"), "logging_dir": str(tmp_path / "logs")}
    cfg = TrainingConfig.model_validate({**default_config().model_dump(), **paths, "reg_data_dir": "/r"})
    preset = SHARED_PRESETS / "SDXL - LoRA AI_Now ADamW v1.0.json"
    app = LoraApp(cfg, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.load_file(preset)  # a file (not applied over the form): its training settings replace the form's
        await wait_for(pilot, lambda: _lr_rows(app) == ["unet_lr"])  # the preset sets unet_lr: the row follows
        for name, value in paths.items():
            assert getattr(app.config, name) == value, name
        assert app.config.reg_data_dir == ""  # a training setting the file lacks takes its default
        assert app.config.network_dim == 32 and app.config.unet_lr == 0.0001  # the preset's own values
        title, notes = app.load_notes
        kept = next(n for n in notes if "machine-local paths not in the file were kept from the form" in n)
        assert all(name in kept for name in paths)
        defaults = next(n for n in notes if "not in the file took" in n)
        assert "reg_data_dir" in defaults and "train_data_dir" not in defaults
        toast = list(app._notifications)[-1].message
        assert "4 paths kept from the form" in toast and "settings took defaults" in toast
        assert not re.search(r"(?<!\d)1 settings", toast)  # "1 setting", never "1 settings"


async def test_the_step_preview_says_why_a_files_max_train_epochs_wins(settings, tmp_path):
    path = tmp_path / "epochs.json"
    path.write_text(json.dumps({"LoRA_type": "Standard", "sdxl": True, "epoch": 2, "max_train_epochs": 10}))
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.load_file(path)
        await wait_for(pilot, lambda: app.query_one("#f-epoch").value == "2")  # the Minimal form shows Epochs 2
        await wait_for(pilot, lambda: "max_train_epochs 10" in _words(app.query_one("#plan-summary")))
        assert "so Epochs 2 is not used" in _words(app.query_one("#plan-summary"))


async def test_a_form_edit_wins_over_a_files_legacy_key(settings, tmp_path):
    # Every form edit applies to the loaded config, after the file's renames: emptying network_weights in the form
    # must not bring back the file's legacy lora_network_weights.
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"LoRA_type": "Standard", "sdxl": True,
                                "lora_network_weights": str(tmp_path / "old_lora.safetensors")}))
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.load_file(path)
        assert app.config.network_weights == str(tmp_path / "old_lora.safetensors")
        await app.focus_field("network_weights")
        await wait_for(pilot, lambda: app.query_one_optional("#f-network_weights") is not None)
        await type_into(pilot, app, "network_weights", "")
        assert app.config.network_weights == "" and "network_weights" not in toml_of(app)
