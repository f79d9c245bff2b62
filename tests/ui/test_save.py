"""ctrl+s saves the config as kohya_ss JSON where the user says; a problem in an Advanced field jumps there."""
from __future__ import annotations

import json

from textual.widgets import Input, OptionList

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.ui.app import LoraApp
from lora_tui.ui.forms import AdvancedForm, section_of
from ui_helpers import SIZE, screen_text, type_into, wait_for


async def test_ctrl_s_saves_json_that_loads_back_equal(settings, tmp_path):
    app = LoraApp(load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config, settings=settings)
    target = tmp_path / "saved" / "my config.json"
    target.parent.mkdir()
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "network_dim", "40")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.id == "save-dialog")
        box = app.screen.query_one("#save-path", Input)
        assert box.value.endswith(".json")
        assert "Enter saves" in screen_text(app)  # the keys are said: the dialog has no buttons
        box.value = ""
        await pilot.press("enter")  # an empty path is not a silent cancel
        await wait_for(pilot, lambda: "Type where to save" in str(app.screen.query_one("#save-msg").render()))
        assert app.screen.id == "save-dialog"
        box.value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, lambda: target.exists())
        assert app.config_path == target
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["network_dim"] == 40 and data["LoRA_type"] == "Standard" and data["sdxl"] is True
    assert load_config_file(target).config == app.config


async def test_enter_on_a_problem_of_an_advanced_field_opens_its_section(settings):
    app = LoraApp(load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        assert not app.apply_edit("max_grad_norm", "lots")  # refused: not a number
        panel = app.query_one("#problems", OptionList)
        panel.focus()
        panel.highlighted = 0
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "f-max_grad_norm")
        assert app.view == "advanced"
        assert app.query_one(AdvancedForm).current == section_of("max_grad_norm")
        assert app.query_one("#f-max_grad_norm", Input).value == "lots"
        await type_into(pilot, app, "max_grad_norm", "0")
        assert app.config.max_grad_norm == 0 and not app.field_errors
