"""Loading a kohya_ss file: one summary notification instead of a toast per note; ctrl+n shows every note."""
from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList

from lora_tui.config.kohya_json import load_config_file
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, wait_for

FIXTURE = Path("/work/shared/fixtures/kohya_presets/SDXL - LoKR v1.0.json")


async def test_one_summary_toast_and_notes_on_ctrl_n(settings):
    notes = load_config_file(FIXTURE).notes
    assert len(notes) > 3
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.clear_notifications()
        assert app.load_file(FIXTURE)
        await pilot.pause()
        shown = list(app._notifications)
        assert len(shown) == 1
        text = shown[0].message
        assert text.startswith(f"Loaded {FIXTURE.name}: ") and "ctrl+n" in text
        converted = sum(" read as " in n and "legacy" not in n for n in notes)
        assert f"{converted} values converted" in text
        defaults = next(n for n in notes if "settings not in the file" in n).split()[0]
        assert f"{defaults} defaults" in text
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.screen.id == "notes-dialog")
        lst = app.screen.query_one("#notes-list", OptionList)
        assert [str(lst.get_option_at_index(i).prompt) for i in range(lst.option_count)] == notes
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id != "notes-dialog")


async def test_notes_given_at_start_are_one_toast(settings):
    result = load_config_file(FIXTURE)
    app = LoraApp(result.config, notes=result.notes, settings=settings, config_path=FIXTURE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        loaded = [n for n in app._notifications if n.title == "Loaded"]
        assert len(loaded) == 1 and loaded[0].message.startswith(f"Loaded {FIXTURE.name}: ")
