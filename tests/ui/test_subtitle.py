"""The subtitle (`app.sub_title`, shown in the title bar) names what is loaded now: the preset applied last through
ctrl+o, else the file loaded or saved last; and says "modified" while the form differs from it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.ui.app import LoraApp
from ui_helpers import KOHYA_PRESETS, SIZE, screen_text, static_text, type_into, wait_for

KOHYA = KOHYA_PRESETS / "SDXL - LoKR v1.0.json"


def title_bar(app) -> str:
    return static_text(app.query_one("#title-bar"))


async def open_with_picker(pilot, app, text: str) -> None:
    """ctrl+o, type `text` (a preset name filters the list; a path is a file), Enter."""
    await pilot.press("ctrl+o")
    await wait_for(pilot, lambda: app.screen.id == "open-dialog")
    await pilot.press(*text)
    await pilot.pause()
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.screen.id != "open-dialog")
    await pilot.pause()


async def test_subtitle_follows_presets_and_files_and_edits(settings, tmp_path):
    kohya = tmp_path / "kohya files" / KOHYA.name
    kohya.parent.mkdir()
    shutil.copy(KOHYA, kohya)
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        assert app.sub_title == "preset sdxl-face-lora"
        assert "preset sdxl-face-lora" in title_bar(app)

        await open_with_picker(pilot, app, "sdxl-style")
        assert app.sub_title == "preset sdxl-style-lora"
        assert "sdxl-style-lora" in title_bar(app) and "sdxl-face-lora" not in title_bar(app)

        await type_into(pilot, app, "network_dim", "48")
        assert app.config.network_dim == 48
        assert app.sub_title == "preset sdxl-style-lora · modified"
        assert "modified" in title_bar(app)

        await open_with_picker(pilot, app, str(kohya))
        assert app.screen.id == "discard-edits-dialog"  # over unsaved edits the load asks first
        await pilot.press("left", "enter")  # Load and discard edits
        await wait_for(pilot, lambda: app.config_path == kohya)
        await pilot.pause()
        assert app.config_path == kohya
        assert app.sub_title == KOHYA.name  # loaded: not modified
        assert KOHYA.name in title_bar(app) and "sdxl-style-lora" not in title_bar(app)

        await open_with_picker(pilot, app, "sdxl-locon")  # a preset over a loaded file: the preset is named
        assert app.sub_title == "preset sdxl-locon"
        assert "preset sdxl-locon" in screen_text(app)


async def test_a_refused_value_and_a_save_change_the_modified_state(settings, tmp_path):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        assert not app.modified
        await type_into(pilot, app, "learning_rate", "abc")  # refused: the form differs from the preset
        assert "learning_rate" in app.field_errors
        assert app.sub_title.endswith("· modified")
        await type_into(pilot, app, "learning_rate", "0.0001")  # back to the preset's value
        assert not app.modified and app.sub_title == "preset sdxl-face-lora"

        await type_into(pilot, app, "output_name", "mine")
        assert app.sub_title == "preset sdxl-face-lora · modified"
        target = tmp_path / "saved.json"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.id == "save-dialog")
        box = app.screen.query_one("#save-path")
        box.value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, lambda: target.is_file())
        await pilot.pause()
        assert json.loads(target.read_text())["output_name"] == "mine"
        assert app.sub_title == "saved.json"
        assert "saved.json" in title_bar(app) and "modified" not in title_bar(app)


async def test_app_opened_on_a_file_names_it(settings):
    from lora_tui.config.kohya_json import load_config_file

    path = BUNDLED_PRESETS / "sd15-character-lora.json"
    app = LoraApp(load_config_file(path).config, settings=settings, config_path=path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.sub_title == "sd15-character-lora.json"
        assert "sd15-character-lora.json" in title_bar(app)
