"""Loading a kohya_ss file: one summary notification instead of a toast per note; ctrl+n shows every note. A preset
applied over the form resets a kept value it makes invalid, and says so in both places."""
from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.demo import DEMO_OVERRIDES
from lora_tui.ui.app import LoraApp
from lora_tui.ui.files import default_config
from ui_helpers import KOHYA_PRESETS, SIZE, painted, wait_for

FIXTURE = KOHYA_PRESETS / "SDXL - LoKR v1.0.json"


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
        missing = next(n for n in notes if "settings not in the file" in n)
        defaults = missing.split()[0]
        # The toast and ctrl+n say the same about the keys the file lacked: they took defaults.
        assert f"{defaults} settings took defaults" in text
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.screen.id == "notes-dialog")
        lst = app.screen.query_one("#notes-list", OptionList)
        shown = [str(lst.get_option_at_index(i).prompt) for i in range(lst.option_count)]
        assert f"{defaults} settings not in the file took defaults: " in "\n".join(shown)
        assert shown == notes
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id != "notes-dialog")


async def test_notes_given_at_start_are_one_toast(settings):
    result = load_config_file(FIXTURE)
    app = LoraApp(result.config, notes=result.notes, settings=settings, config_path=FIXTURE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        loaded = [n for n in app._notifications if n.title == "Loaded"]
        assert len(loaded) == 1 and loaded[0].message.startswith(f"Loaded {FIXTURE.name}: ")


async def test_a_preset_over_the_demo_resets_the_kept_bucket_step_it_makes_invalid(settings, tmp_path):
    # The demo's form: SDXL with bucket_reso_steps 32 (SDXL takes multiples of 32, SD1.x only of 64).
    form = default_config().model_copy(update={**DEMO_OVERRIDES, "output_dir": str(tmp_path / "out")})
    assert form.sdxl and form.bucket_reso_steps == 32
    app = LoraApp(form, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.plan is not None, timeout=15)
        before = app.plan
        app.clear_notifications()
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.id == "open-dialog")
        await pilot.press(*"sd15-character", "enter")
        await wait_for(pilot, lambda: app.screen.id != "open-dialog")
        await wait_for(pilot, lambda: app.plan is not before, timeout=15)  # the plan of the preset's config
        await pilot.pause()
        assert not app.config.sdxl and app.sub_title == "preset sd15-character-lora"
        assert app.config.bucket_reso_steps == 64
        assert app.config.output_dir == str(tmp_path / "out")  # the preset has no paths: the form's stay
        assert not [p for p in app.plan.errors if p.field == "bucket_reso_steps"]
        side = " ".join(" ".join(painted(app, "#side")).split())
        assert "Bucket reso steps" not in side and "Output folder" not in side, side  # painted; the folder is set

        toast = [n.message for n in app._notifications if n.title == "Loaded"]
        assert len(toast) == 1
        assert toast[0].startswith("Applied preset sd15-character-lora.json: ")
        assert "1 invalid value took its default" in toast[0] and "defaults" not in toast[0].replace(
            "took its default", "")
        kept = int(toast[0].split(" settings kept from the form")[0].split()[-1])

        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.screen.id == "notes-dialog")
        lst = app.screen.query_one("#notes-list", OptionList)
        notes = [str(lst.get_option_at_index(i).prompt) for i in range(lst.option_count)]
        assert notes[0].startswith("bucket_reso_steps: 32 from the form is invalid with this preset (must be a "
                                   "multiple of 64 for SD1.x") and notes[0].endswith("; took the default 64")
        missing = next(n for n in notes if "settings not in the file" in n)
        assert missing.startswith(f"{kept} settings not in the file kept from the form: ")
        # The reset field took its default: it is not counted as kept.
        assert kept == len(load_config_file(BUNDLED_PRESETS / "sd15-character-lora.json").defaulted) - 1
        await pilot.press("escape")
