"""A key pressed again while its dialog is open never opens that dialog twice: ctrl+q twice at the quit question
raised Textual's `DuplicateIds` and killed the app. Every dialog key is pressed over every dialog (the check is one
mechanism, `LoraApp.push_screen`, so one sweep covers them all)."""
from __future__ import annotations

from collections import Counter

from lora_tui.run.jobs import start_job
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, fake, type_into, wait_for

# The keys that open a dialog (or may: F5 and ctrl+q depend on the state) and stay available over an open one.
DIALOG_KEYS = ("ctrl+q", "ctrl+n", "f1", "ctrl+o", "ctrl+s", "f5")


def stack_ids(app) -> list[str]:
    return [screen.id or "" for screen in app.screen_stack]


def no_duplicates(app) -> bool:
    return all(n == 1 for screen_id, n in Counter(stack_ids(app)).items() if screen_id)


async def close_dialogs(pilot, app) -> None:
    while len(app.screen_stack) > 1:
        await pilot.press("escape")
        await pilot.pause()


async def test_ctrl_q_twice_at_the_unsaved_edits_question_keeps_one_dialog(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "output_name", "edited")
        await wait_for(pilot, lambda: app.modified)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.screen.id == "quit-unsaved-dialog")
        await pilot.press("ctrl+q")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.is_running and stack_ids(app).count("quit-unsaved-dialog") == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(app.screen_stack) == 1)
        assert app.is_running and app.config.output_name == "edited"


async def test_ctrl_q_twice_while_a_job_runs_keeps_one_quit_question(settings, tmp_path):
    job = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), settings=settings)
    app = LoraApp(settings=settings, attach_job=job)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.job_running)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.screen.id == "quit-dialog")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.is_running and stack_ids(app).count("quit-dialog") == 1
        await pilot.click("#choice-cancel")
        await wait_for(pilot, lambda: len(app.screen_stack) == 1)
        assert app.is_running and app.job_running
        await pilot.press("f9", "f9")  # end the fake trainer (SIGINT, then SIGTERM)
        await wait_for(pilot, lambda: not app.job_running, timeout=20)


async def test_every_dialog_key_pressed_again_over_every_dialog(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "output_name", "edited")  # so ctrl+q asks instead of quitting
        await wait_for(pilot, lambda: app.modified)
        opened = set()
        for opener in DIALOG_KEYS:
            await close_dialogs(pilot, app)
            app.query_one("#f-output_name").focus()  # F1 has a field to explain
            await pilot.press(opener)
            await pilot.pause(0.3)  # F5 plans in a worker before it refuses or asks
            if len(app.screen_stack) == 1:
                continue  # this key opened nothing here (F5 refused: the form has errors)
            opened.add(app.screen.id)
            for again in DIALOG_KEYS:
                await pilot.press(again)
                await pilot.press(again)
                await pilot.pause()
                assert app.is_running, (opener, again)
                assert no_duplicates(app), (opener, again, stack_ids(app))
        await close_dialogs(pilot, app)
        assert app.is_running
        assert {"quit-unsaved-dialog", "notes-dialog", "open-dialog", "save-dialog"} <= opened
