"""Loading a preset or file (ctrl+o, or its command palette entry) over unsaved edits asks first: "Load and discard
edits" or Cancel (the default, so a stray Enter loses nothing). Without edits the load happens at once."""
from __future__ import annotations

import shutil
from pathlib import Path

from lora_tui.ui.app import LoraApp
from ui_helpers import KOHYA_PRESETS, SIZE, type_into, wait_for

KOHYA = KOHYA_PRESETS / "SDXL - LoKR v1.0.json"


async def pick(pilot, app, text: str) -> None:
    """ctrl+o, type `text` (a preset name or a file path), Enter: the picker closes."""
    await pilot.press("ctrl+o")
    await wait_for(pilot, lambda: app.screen.id == "open-dialog")
    await pilot.press(*text, "enter")
    await wait_for(pilot, lambda: app.screen.id != "open-dialog")
    await pilot.pause()


async def test_loading_a_preset_over_edits_asks_and_cancel_keeps_them(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "network_dim", "48")
        assert app.modified and app.config.network_dim == 48
        await pick(pilot, app, "sd15-char")
        assert app.screen.id == "discard-edits-dialog"
        await pilot.press("enter")  # Cancel has the focus
        await wait_for(pilot, lambda: app.screen.id != "discard-edits-dialog")
        assert app.config.network_dim == 48 and app.config.sdxl and app.modified
        assert app.sub_title == "preset sdxl-face-lora · modified"

        await pick(pilot, app, "sd15-char")
        assert app.screen.id == "discard-edits-dialog"
        await pilot.press("escape")  # Escape cancels too
        await wait_for(pilot, lambda: app.screen.id != "discard-edits-dialog")
        assert app.config.network_dim == 48 and app.config.sdxl


async def test_load_and_discard_replaces_the_edited_form_with_the_file(settings, tmp_path):
    kohya = tmp_path / KOHYA.name
    shutil.copy(KOHYA, kohya)
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "output_name", "my_edit")
        await pick(pilot, app, str(kohya))
        assert app.screen.id == "discard-edits-dialog"
        await pilot.press("left", "enter")  # the button left of Cancel: Load and discard edits
        await wait_for(pilot, lambda: app.screen.id != "discard-edits-dialog")
        await wait_for(pilot, lambda: app.config_path == kohya)
        assert app.config.output_name != "my_edit" and not app.modified
        assert app.sub_title == KOHYA.name

        # Unmodified now: the next load asks nothing.
        await pick(pilot, app, "sd15-char")
        assert app.screen.id != "discard-edits-dialog"
        assert app.sub_title == "preset sd15-character-lora" and not app.config.sdxl


async def test_a_refused_value_pending_counts_as_an_edit(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "learning_rate", "abc")
        assert "learning_rate" in app.field_errors
        await pick(pilot, app, "sd15-char")
        assert app.screen.id == "discard-edits-dialog"


async def test_quit_over_edits_asks_and_cancel_keeps_the_app(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "network_dim", "48")
        assert app.modified
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.screen.id == "quit-unsaved-dialog")
        await pilot.press("enter")  # Cancel has the focus
        await wait_for(pilot, lambda: app.screen.id != "quit-unsaved-dialog")
        assert app.is_running and app.config.network_dim == 48
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.screen.id == "quit-unsaved-dialog")
        await pilot.press("left", "enter")  # Quit and discard edits
        await wait_for(pilot, lambda: not app.is_running)


async def test_quit_without_edits_asks_nothing(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        assert not app.modified
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running)
