"""Small things a new user hit (issue 14, "Also reported"): the steps panel while a field holds a refused value,
the load dialog's completion and filter."""
from __future__ import annotations

from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, static_text, type_into, valid_sdxl_setup, wait_for


def summary(app) -> str:
    return static_text(app.query_one("#plan-summary"))


async def test_the_steps_panel_says_a_refused_value_stops_the_count(settings, tmp_path):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        for name, value in valid_sdxl_setup(tmp_path).items():
            assert app.apply_edit(name, value)
        assert app.apply_edit("max_train_steps", None) and app.apply_edit("epoch", 2)
        await wait_for(pilot, lambda: "2 epochs" in summary(app) or "epochs: 2" in summary(app)
                       or " 2 epoch" in summary(app), timeout=15)
        counted = summary(app)
        await type_into(pilot, app, "epoch", "two")
        await wait_for(pilot, lambda: "epoch" in app.field_errors)
        await wait_for(pilot, lambda: summary(app) != counted)
        assert "Epochs “two”" in summary(app) and "not valid" in summary(app)
        await pilot.pause(0.5)  # a re-plan of the last valid config must not bring the old count back
        assert "Epochs “two”" in summary(app)
        await type_into(pilot, app, "epoch", "3")
        await wait_for(pilot, lambda: "not valid" not in summary(app) and summary(app) not in ("…", counted),
                       timeout=15)


async def test_the_load_dialog_takes_the_grey_completion_on_enter_and_filters_presets(settings, tmp_path):
    from lora_tui.config.kohya_json import save_config_file
    from lora_tui.config.model import TrainingConfig

    saved = tmp_path / "configs" / "my_char_lora.json"
    saved.parent.mkdir()
    save_config_file(TrainingConfig(sdxl=True, output_name="from_the_file"), saved)
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.id == "open-dialog")
        lst = app.screen.query_one("#open-list")
        everything = lst.option_count
        await pilot.press(*"sd15")  # the preset list filters as you type
        await wait_for(pilot, lambda: 0 < lst.option_count < everything)
        shown = [str(lst.get_option_at_index(i).prompt) for i in range(lst.option_count)]
        assert all("sd15" in text for text in shown), shown
        inp = app.screen.query_one("#open-path")
        inp.value = ""
        await pilot.press(*f"{saved.parent}/my_c")
        await wait_for(pilot, lambda: inp._suggestion == str(saved))  # the grey completion
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id != "open-dialog")
        await wait_for(pilot, lambda: app.config.output_name == "from_the_file" and app.config_path == saved)


async def test_only_the_focused_dialog_button_and_the_focused_row_stand_out(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "output_name", "edited")
        rows = [app.query_one("#row-output_name"), app.query_one("#row-train_data_dir")]
        await wait_for(pilot, lambda: rows[0].styles.background != rows[1].styles.background)  # the focused row
        await pilot.press("ctrl+q")  # unsaved edits: asks, Cancel (the default) focused
        await wait_for(pilot, lambda: app.screen.id == "quit-unsaved-dialog")
        quit_button, cancel = app.screen.query_one("#choice-quit"), app.screen.query_one("#choice-cancel")
        await wait_for(pilot, lambda: cancel.has_focus)
        assert cancel.styles.background != quit_button.styles.background
        await pilot.press("left")
        await wait_for(pilot, lambda: quit_button.has_focus)
        # the default button (Cancel) no longer looks chosen: it looks as the other buttons did
        await wait_for(pilot, lambda: cancel.styles.background != quit_button.styles.background)
        unfocused_before = cancel.styles.background
        await pilot.press("right")
        await wait_for(pilot, lambda: cancel.has_focus)
        assert quit_button.styles.background == unfocused_before
        await pilot.press("escape")


async def test_a_dialog_folds_a_path_at_its_separators_not_inside_a_name(settings):
    from lora_tui.ui.dialogs import ChoiceDialog
    from ui_helpers import screen_text

    path = "/home/someone/training/outputs/characters/my_character_lora_version_two.safetensors"
    app = LoraApp(settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ChoiceDialog(f"{path} already exists: training would overwrite it. Overwrite, or train "
                                     f"under a new output name?", [("cancel", "Cancel")], dialog_id="long-dialog"))
        await wait_for(pilot, lambda: app.screen.id == "long-dialog" and "Overwrite," in screen_text(app))
        from ui_helpers import painted

        rows = [row.strip() for row in painted(app, app.screen.query_one(".dialog-question"))]
        assert "my_character_lora_version_two.safetensors" in "\n".join(rows), rows  # the name on one row
        first = next(row for row in rows if row.startswith("/home/someone"))
        assert first.endswith("/"), rows  # the path's first row ends at a separator


async def test_the_problems_panel_is_planned_again_when_a_run_ends(settings, tmp_path):
    from ui_helpers import run_script_to_end

    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        fields = valid_sdxl_setup(tmp_path)
        for name, value in fields.items():
            assert app.apply_edit(name, value)
        out = f"{fields['output_dir']}/{app.config.output_name}.safetensors"
        await wait_for(pilot, lambda: app.plan is not None and not app.plan.errors, timeout=15)
        assert not any("already exist" in p.message for p in app.plan_problems)
        # a run that writes the LoRA this config names, then ends: the overwrite warning shows with no edit
        await run_script_to_end(pilot, app, settings, tmp_path / "writes.py",
                                f"open({out!r}, 'wb').write(b'a finished LoRA')\n")
        await wait_for(pilot, lambda: any("already exist" in p.message for p in app.plan_problems), timeout=15)


async def test_80x24_shows_a_paths_end_and_gives_the_log_room(settings, tmp_path):
    from lora_tui.run.jobs import start_job
    from ui_helpers import fake, painted

    long_path = tmp_path / "some" / "deeply" / "nested" / "model" / "folders" / "my_checkpoint_v2.safetensors"
    app = LoraApp(settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.apply_edit("pretrained_model_name_or_path", str(long_path))
        assert app.apply_edit("train_data_dir", str(tmp_path / "another" / "long" / "folder" / "of" / "images"))
        # a box narrower than its path shows the path's end (the file name), focused or not
        for name, end in (("pretrained_model_name_or_path", "my_checkpoint_v2.safetensors"), ("train_data_dir", "images")):
            await wait_for(pilot, lambda: painted(app, f"#f-{name}")[0].rstrip().endswith(end))
        # the Run view of a run with a loss plot: the figures keep one line and the log keeps 6 lines or more
        job = start_job(fake("bar_trainer.py", 30), settings=settings)
        job.wait(30)
        app.attach(job)
        await wait_for(pilot, lambda: not app.job_running and app.query_one("#plot-box").display, timeout=15)
        await wait_for(pilot, lambda: app.query_one("#log").scrollable_content_region.height >= 6)
        assert app.query_one("#run-stats").size.height == 1


async def test_a_progress_record_glued_to_a_bar_line_never_shows_raw(settings, tmp_path):
    from ui_helpers import run_script_to_end

    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        # stdout and stderr reaching the log apart (a trainer under accelerate's stderr pipe): the record lands
        # on the bar's open line
        await run_script_to_end(pilot, app, settings, tmp_path / "glued.py", (
            "import sys\n"
            "sys.stdout.write('steps:  50%|#    | 1/2 [00:01<00:01, avr_loss=0.5]'"
            " 'LORA_TUI_PROGRESS {\"step\": 1, \"total\": 2, \"loss\": 0.5}\\n')\n"
            "print('LORA_TUI_PROGRESS {\"step\": 2, \"total\": 2, \"loss\": 0.4}')\n"
            "print('done here')\n"))
        await wait_for(pilot, lambda: any("done here" in line for line in app.query_one("#log").lines))
        shown = list(app.query_one("#log").lines)
        assert not [line for line in shown if "LORA_TUI_" in line], shown
        assert any(line.startswith("steps:  50%") for line in shown), shown
