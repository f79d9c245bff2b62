"""Edits made through the forms reach the TOML under the right key; presets set every field they hold; the forms
hide what does not apply; refused values stay visible with the model's message and block Start."""
from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Input, OptionList, Select

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.ui.app import LoraApp
from lora_tui.ui.forms import AdvancedForm, minimal_fields, section_of
from ui_helpers import SIZE, choose, toggle, toml_of, type_into, wait_for

FACE = BUNDLED_PRESETS / "sdxl-face-lora.json"


def face_app(settings, **kw) -> LoraApp:
    res = load_config_file(FACE)
    return LoraApp(res.config, settings=settings, config_path=FACE, **kw)


def te_lr(toml: dict):
    """`text_encoder_lr` is written per text encoder (a list) or once; either way one value is meant."""
    v = toml["text_encoder_lr"]
    if isinstance(v, list):
        assert len(set(v)) == 1, v
        return v[0]
    return v


# (field, what the user types, TOML key, expected TOML value); `epoch` is checked before `max_train_steps`
# is set, since a step count > 0 overrides the epochs (architecture.md).
TYPED = [
    ("pretrained_model_name_or_path", "/models/my model/sdxl base.safetensors", "pretrained_model_name_or_path",
     "/models/my model/sdxl base.safetensors"),
    ("train_data_dir", r"D:\xdata\img", "train_data_dir", r"D:\xdata\img"),
    ("output_name", "кот_v1", "output_name", "кот_v1"),
    ("output_dir", r"E:\AI\Kohya\Dev\01\XL\model", "output_dir", r"E:\AI\Kohya\Dev\01\XL\model"),
    ("learning_rate", "0.0003", "learning_rate", 0.0003),
    ("text_encoder_lr", "0.00002", "text_encoder_lr", 0.00002),
    ("network_dim", "48", "network_dim", 48),
    ("network_alpha", "24", "network_alpha", 24.0),
    ("epoch", "7", "max_train_epochs", 7),
    ("max_train_steps", "500", "max_train_steps", 500),
    ("max_resolution", "768x768", "resolution", "768,768"),
    ("train_batch_size", "3", "train_batch_size", 3),
]


async def test_each_minimal_field_typed_in_the_form_reaches_the_toml(settings):
    app = face_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        shown = [w.id.removeprefix("f-") for w in app.query(".field-editor")]
        assert shown == minimal_fields() and len(shown) == 16
        for name, typed, key, expected in TYPED:
            await type_into(pilot, app, name, typed)
            assert not app.field_errors, app.field_errors
            toml = toml_of(app)
            got = te_lr(toml) if key == "text_encoder_lr" else toml[key]
            assert got == expected, (name, got)
            assert type(got) is type(expected) or isinstance(expected, float), (name, type(got))
        # The Minimal "Learning rate" reaches the U-Net (kohya_ss Minimal bug 1, spec §8.6).
        assert toml_of(app)["unet_lr"] == 0.0003
        # Checkboxes: space toggles; true is written, false is not (sd-scripts store_true flags).
        assert toml_of(app)["cache_latents"] is True
        await toggle(pilot, app, "cache_latents")
        assert app.config.cache_latents is False and "cache_latents" not in toml_of(app)
        await toggle(pilot, app, "cache_latents")
        assert toml_of(app)["cache_latents"] is True
        await toggle(pilot, app, "cache_latents_to_disk")
        assert app.config.cache_latents_to_disk is False and "cache_latents_to_disk" not in toml_of(app)
        await toggle(pilot, app, "cache_latents_to_disk")
        assert toml_of(app)["cache_latents_to_disk"] is True
        # Closed choice lists are Selects, picked with the keyboard.
        await choose(pilot, app, "save_model_as", "ckpt")
        assert toml_of(app)["save_model_as"] == "ckpt"
        await choose(pilot, app, "save_precision", "bf16")
        assert toml_of(app)["save_precision"] == "bf16"
        # Every Minimal value survives a trip through the Advanced form and back.
        before = app.config.model_dump()
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("f2")
        await pilot.pause()
        assert app.config.model_dump() == before
        assert app.query_one("#f-output_name", Input).value == "кот_v1"
        assert app.query_one("#f-save_precision", Select).value == "bf16"


# A sample of Advanced fields: (field, typed text or choice, TOML key, expected value)
ADVANCED = [
    ("optimizer", "Prodigy", "optimizer_type", "Prodigy"),
    ("max_grad_norm", "0", "max_grad_norm", 0.0),
    ("gradient_accumulation_steps", "4", "gradient_accumulation_steps", 4),
    ("seed", "1234", "seed", 1234),
    ("optimizer_args", 'betas=0.9,0.99 weight_decay=0.01 d_coef="2"', "optimizer_args",
     ["betas=0.9,0.99", "weight_decay=0.01", "d_coef=2"]),
    ("noise_offset", "0.05", "noise_offset", 0.05),
    ("xformers", "sdpa", "sdpa", True),
]


async def test_a_sample_of_advanced_fields_reaches_the_toml(settings):
    app = face_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        adv = app.query_one(AdvancedForm)
        for name, typed, key, expected in ADVANCED:
            # Navigate as a user does: the section list, then the field.
            section = section_of(name)
            nav = app.query_one("#sections", OptionList)
            nav.focus()
            nav.highlighted = nav.get_option_index(section)
            await pilot.press("enter")
            await wait_for(pilot, lambda: adv.current == section and app.query_one_optional(f"#f-{name}"))
            widget = app.query_one(f"#f-{name}")
            if isinstance(widget, Select):
                await choose(pilot, app, name, typed)
            else:
                await type_into(pilot, app, name, typed)
            assert not app.field_errors, app.field_errors
            assert toml_of(app)[key] == expected, (name, toml_of(app).get(key))


async def test_filter_finds_a_field_across_sections(settings):
    app = face_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        app.query_one("#adv-filter", Input).focus()
        await pilot.press(*"min_snr")
        await wait_for(pilot, lambda: app.query_one_optional("#f-min_snr_gamma") is not None)
        await pilot.press("enter")  # to the first match
        await pilot.pause()
        assert app.focused.id == "f-min_snr_gamma"
        await pilot.press(*"5")
        await pilot.pause()
        assert toml_of(app)["min_snr_gamma"] == 5


async def test_locon_preset_loaded_once_over_a_standard_form_sets_all_five(settings, tmp_path):
    preset = tmp_path / "locon.json"
    preset.write_text(json.dumps({"LoRA_type": "LyCORIS/LoCon", "network_dim": 32, "network_alpha": 16,
                                  "conv_dim": 8, "conv_alpha": 4}))
    app = face_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        assert app.config.LoRA_type == "Standard"
        await pilot.press("f3")
        await pilot.pause()
        await app.query_one(AdvancedForm).show_section(section_of("conv_dim"))
        await pilot.pause()
        assert app.query_one_optional("#f-conv_dim") is None  # not used by Standard: hidden
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.id == "open-dialog")
        await pilot.press(*str(preset), "enter")
        await wait_for(pilot, lambda: app.screen.id != "open-dialog")
        await wait_for(pilot, lambda: app.query_one_optional("#f-conv_dim") is not None)
        assert app.query_one("#f-LoRA_type", Select).value == "LyCORIS/LoCon"
        assert app.query_one("#f-network_dim", Input).value == "32"
        assert float(app.query_one("#f-network_alpha", Input).value) == 16
        assert app.query_one("#f-conv_dim", Input).value == "8"
        assert app.query_one("#f-conv_alpha", Input).value == "4"
        cfg = app.config
        assert (cfg.LoRA_type, cfg.network_dim, cfg.network_alpha, cfg.conv_dim, cfg.conv_alpha) == \
            ("LyCORIS/LoCon", 32, 16, 8, 4)
        toml = toml_of(app)
        assert toml["network_dim"] == 32 and toml["network_alpha"] == 16
        assert "conv_dim=8" in toml["network_args"] and "conv_alpha=4" in toml["network_args"]
        assert not app.field_errors


async def test_preset_picker_lists_bundled_presets_and_loads_one(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.id == "open-dialog")
        await pilot.press(*"sd15-char")
        await pilot.pause()
        lst = app.screen.query_one("#open-list", OptionList)
        assert lst.option_count == 1
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id != "open-dialog")
        preset = load_config_file(BUNDLED_PRESETS / "sd15-character-lora.json").config
        assert app.config.sdxl is False and app.config.output_name == preset.output_name


async def test_refused_value_stays_with_its_message_and_blocks_start(settings):
    app = face_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "network_dim", "sixteen")
        assert app.config.network_dim == 1  # the model keeps the last valid value typed ("1" of "16", erased)
        assert "network_dim" in app.field_errors
        msg = app.query_one("#msg-network_dim")
        assert "integer" in str(msg.render())
        problems = app.query_one("#problems", OptionList)
        assert "integer" in str(problems.get_option_at_index(0).prompt)
        # The refused text survives a form switch.
        await pilot.press("f3", "f2")
        await pilot.pause()
        assert app.query_one("#f-network_dim", Input).value == "sixteen"
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.focused is problems)
        assert app.job is None
        assert not list(Path(settings.state_dir).glob("jobs/*"))
        # Enter on the problem jumps to its field; fixing it clears the error.
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "f-network_dim")
        await type_into(pilot, app, "network_dim", "12")
        assert not app.field_errors and app.config.network_dim == 12
        assert app.query_one_optional("#msg-network_dim") is None


async def test_family_switch_hides_and_shows_fields(settings):
    app = face_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        adv = app.query_one(AdvancedForm)
        await adv.show_section("SDXL")
        await pilot.pause()
        sdxl_rows = [w.id for w in app.query(".field-editor")]
        assert sdxl_rows, "SDXL options are shown for an SDXL config"
        await adv.show_section(section_of("sdxl"))
        await pilot.pause()
        await toggle(pilot, app, "sdxl")
        assert app.config.sdxl is False
        await adv.show_section("SDXL")
        await pilot.pause()
        assert not list(app.query(".field-editor"))
        assert "hidden" in str(app.query_one("#adv-head").render())
