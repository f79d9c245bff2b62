"""ctrl+s never proposes the file a config was loaded from (a source preset); it proposes `<output_name>.json` in
output_dir (else the working directory) and asks before replacing any existing file."""
from __future__ import annotations

import json
import shutil

from textual.widgets import Input

from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, wait_for



async def test_save_proposes_output_dir_and_asks_before_replacing(settings, tmp_path):
    source = tmp_path / "src" / "preset.json"
    source.parent.mkdir()
    shutil.copy(BUNDLED_PRESETS / "sdxl-face-lora.json", source)
    before = source.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        assert app.load_file(source)
        assert app.apply_edit("output_dir", str(out)) and app.apply_edit("output_name", "mine")
        target = out / "mine.json"
        target.write_text("{}")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.id == "save-dialog")
        box = app.screen.query_one("#save-path", Input)
        assert box.value == str(target)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id == "overwrite-save-dialog")
        assert app.screen.focused.id == "choice-cancel"  # a stray Enter replaces nothing
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id == "save-dialog")
        assert target.read_text() == "{}"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id == "overwrite-save-dialog")
        await pilot.click("#choice-overwrite")
        await wait_for(pilot, lambda: target.read_text() != "{}")
        assert json.loads(target.read_text())["output_name"] == "mine"
        # Saved once: ctrl+s proposes that file again.
        await wait_for(pilot, lambda: app.screen.id != "save-dialog")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.id == "save-dialog")
        assert app.screen.query_one("#save-path", Input).value == str(target)
        await pilot.press("escape")
    assert source.read_bytes() == before


async def test_save_of_a_bundled_preset_proposes_the_working_directory(settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = LoraApp(settings=settings, config_path=BUNDLED_PRESETS / "sdxl-face-lora.json")
    async with app.run_test(size=SIZE) as pilot:
        assert app.apply_edit("output_dir", str(tmp_path / "not-made-yet"))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.id == "save-dialog")
        value = app.screen.query_one("#save-path", Input).value
        assert value == str(tmp_path / f"{app.config.output_name}.json")
        assert not value.startswith(str(BUNDLED_PRESETS))
