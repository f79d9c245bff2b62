"""An 80x24 terminal (SSH) as a new user's trial saw it: nothing is cut without a "…" (title bar, problems title,
dialogs, footer, a long placeholder), the run keys stay in the footer, the problems list folds to a summary line (the
fields carry the messages), empty inputs say what empty means, and "Max train steps" shows one face for unset
whether the config holds 0 (the demo) or None (the same JSON reloaded). At 120x40 the full list and every key
come back."""
from __future__ import annotations

import json

from lora_tui.config.kohya_json import config_to_dict
from lora_tui.config.model import TrainingConfig
from lora_tui.ui.app import LoraApp
from lora_tui.ui.files import default_config

from ui_helpers import painted, screen_text, type_into, wait_for

LONG_SOURCE = "a-config-file-with-a-long-name-from-the-shared-drive.json"


def words(app, widget) -> str:
    """What ``widget`` paints, as one line of words (wrapped lines joined)."""
    return " ".join(" ".join(painted(app, widget)).split())


def footer_row(app) -> str:
    return screen_text(app).split("\n")[-1]


def assert_dialog_fits(app) -> None:
    """The open dialog lies inside the screen with its border painted on every row (left and right edges)."""
    box = app.screen.query_one(".dialog")
    region, (width, height) = box.region, app.size
    assert region.x >= 0 and region.right <= width and region.bottom <= height, (app.screen.id, region)
    rows = screen_text(app).split("\n")[region.y:region.bottom]
    assert rows[0][region.x:region.right].strip("▀█") == "", rows[0]
    assert all(row[region.x] == "█" and row[region.right - 1] == "█" for row in rows), "\n".join(rows)


async def open_dialog(pilot, app, key: str, dialog_id: str) -> None:
    await pilot.press(key)
    await wait_for(pilot, lambda: app.screen.id == dialog_id, timeout=5)
    await pilot.pause(0.2)
    assert_dialog_fits(app)


async def test_80x24_cuts_nothing_bare_and_folds_the_problem_list(settings, tmp_path):
    data = default_config().model_dump()
    data.update(max_train_steps=0, lr_scheduler="constant", lr_warmup=10)  # the demo's 0; one plan warning
    app = LoraApp(TrainingConfig.model_validate(data), settings=settings, source=LONG_SOURCE)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.plan is not None, timeout=15)
        await pilot.pause(0.3)
        assert app.screen.has_class("-narrow") and app.screen.has_class("-short")

        # Title bar: cut with an ellipsis, its start intact.
        title = painted(app, "#title-bar")[0]
        assert title.startswith("lora-tui · a-config-file-with") and title.endswith("…"), title

        # Problems title: 3 errors (no checkpoint, images, output folder) and the warm-up warning do not fit.
        side_title = painted(app, "#problems-title")[-1]
        assert side_title.startswith("Problems · 3 errors") and side_title.endswith("…"), side_title

        # Footer: compact, the most used keys whole (F1 and ^n among them; the views say Min/Adv), the rest
        # behind a "…".
        footer = footer_row(app)
        for key in ("^q Quit", "f5 Start", "f2 Min", "f3 Adv", "f4 Run", "f1 Help", "^n Notes", "^p palette"):
            assert key in footer, footer
        assert "…" in footer and "Save" not in footer, footer
        # While a job runs, Stop joins them (check_action shows it) and still nothing is cut.
        app.job_running = True
        await wait_for(pilot, lambda: "f9 Stop" in footer_row(app), timeout=5)
        footer = footer_row(app)
        assert all(key in footer for key in ("f5 Start", "f9 Stop", "f4 Run", "^q Quit", "^p palette")), footer
        app.job_running = False
        await wait_for(pilot, lambda: "f9 Stop" not in footer_row(app), timeout=5)

        # Problems: a summary line instead of a second copy of each field message.
        side = words(app, "#side")
        assert "F5 is refused" in side and "Tab to this panel" in side, side
        assert "✖ Checkpoint" not in side and app.query_one("#problems").size.height == 0
        # The messages stay under the fields.
        assert app.query_one_optional("#msg-pretrained_model_name_or_path") is not None

        # Empty inputs show what empty means.
        app.query_one("#f-pretrained_model_name_or_path").scroll_visible(animate=False)
        await pilot.pause(0.2)
        assert "path to .safetensors or Diffusers folder" in painted(app, "#f-pretrained_model_name_or_path")[0]

        # Max train steps: the demo's 0 shows as unset, with what unset does.
        editor = app.query_one("#f-max_train_steps")
        assert app.config.max_train_steps == 0 and editor.value == ""
        editor.scroll_visible(animate=False)
        await pilot.pause(0.2)
        assert painted(app, editor)[0] == "unset · Epochs set the steps"

        # The same config saved as kohya_ss JSON and loaded back (0 → None) looks the same.
        path = tmp_path / "same.json"
        path.write_text(json.dumps(config_to_dict(app.config)), encoding="utf-8")
        assert app.load_file(path)
        await pilot.pause(0.3)
        assert app.config.max_train_steps is None
        editor = app.query_one("#f-max_train_steps")
        editor.scroll_visible(animate=False)
        await pilot.pause(0.2)
        assert editor.value == "" and painted(app, editor)[0] == "unset · Epochs set the steps"
        # Typing 0 means unset too: the model holds None, as a kohya_ss file's 0 loads.
        await type_into(pilot, app, "max_train_steps", "0")
        assert app.config.max_train_steps is None and not app.field_errors
        await type_into(pilot, app, "max_train_steps", "120")
        assert app.config.max_train_steps == 120
        # A number the model needs says so when erased (and is refused, with its message under it).
        await type_into(pilot, app, "epoch", "")
        assert "epoch" in app.field_errors and painted(app, "#f-epoch")[0] == "required"
        await type_into(pilot, app, "epoch", "2")
        assert not app.field_errors

        # Every dialog fits 80 columns, its border whole: F1 help wraps its text rather than cutting it.
        await open_dialog(pilot, app, "f1", "notes-dialog")
        notes = app.screen.query_one("#notes-list")
        help_text = str(notes.get_option_at_index(0).prompt)
        assert " ".join(help_text.split()) in words(app, notes)
        await pilot.press("escape")
        # The picker: a preset name too long for the list ends in "…" after its origin.
        long_name = "SDXL - LoRA kudou-reira dadaptadam v1.1 from the shared drive of the team, copy 2"
        settings.presets_dir.mkdir(parents=True, exist_ok=True)
        (settings.presets_dir / f"{long_name}.json").write_text(json.dumps(config_to_dict(app.config)))
        await open_dialog(pilot, app, "ctrl+o", "open-dialog")
        entry = next(line.strip() for line in painted(app, app.screen.query_one("#open-list")) if "SDXL" in line)
        assert entry.startswith("user     SDXL - LoRA kudou-reira") and entry.endswith("…"), entry
        await pilot.press("escape")
        for key, dialog_id in (("ctrl+s", "save-dialog"), ("ctrl+n", "notes-dialog")):
            await wait_for(pilot, lambda: app.screen.id == "_default", timeout=5)
            await open_dialog(pilot, app, key, dialog_id)
            await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id == "_default", timeout=5)

        # The Advanced form's narrow editors: a placeholder too long for the box ends in "…".
        await pilot.press("f3")
        await pilot.pause(0.3)
        await app.query_one("AdvancedForm").show_section("Folders")
        await pilot.pause(0.3)
        shown = painted(app, "#f-dataset_config")[0]
        assert shown.startswith("unset · path") and shown.endswith("…"), shown

        # At 120x40 the full list comes back, and every key fits without a "…".
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.5)
        assert not app.screen.has_class("-short")
        side = words(app, "#side")
        assert "✖ Checkpoint" in side and "F5 is refused" not in side, side
        footer = footer_row(app)
        assert "Help" in footer and "Notes" in footer and "…" not in footer, footer
