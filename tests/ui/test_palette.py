"""The command palette (ctrl+p) lists each of our actions once, with the notes (ctrl+n) and field help (F1);
Textual's useful entries (Theme, Keys) stay, its duplicate Quit does not."""
from __future__ import annotations

from textual.command import CommandList, CommandPalette

from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, wait_for


def palette_titles(app) -> list[str]:
    """The entries the open palette lists (the first line of each option: its title)."""
    options = app.screen.query_one(CommandList)
    return [str(options.get_option_at_index(i).prompt).split("\n")[0].strip() for i in range(options.option_count)]


async def open_palette(pilot, app) -> list[str]:
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
    await wait_for(pilot, lambda: app.screen.query_one(CommandList).option_count > 5)
    await pilot.pause(0.3)  # all providers have answered
    return palette_titles(app)


async def test_palette_lists_every_action_once(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        titles = await open_palette(pilot, app)
        for wanted in ("Start training", "Load preset or config file", "Save config as JSON", "Minimal form",
                       "Advanced form", "Run view", "Load notes", "Field help", "Quit", "Theme", "Keys"):
            assert wanted in titles, titles
        assert len(titles) == len(set(titles)), titles  # no entry twice (Textual's Quit was a second one)


async def test_load_notes_and_field_help_run_from_the_palette(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await open_palette(pilot, app)
        await pilot.press(*"Load notes")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id == "notes-dialog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id != "notes-dialog")

        editor = app.query_one("#f-network_alpha")
        editor.focus()
        await wait_for(pilot, lambda: app.focused is editor)
        await open_palette(pilot, app)
        await pilot.press(*"Field help")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id == "notes-dialog")
        assert app.screen.title_text.endswith("(network_alpha)")  # the focused field's help, as F1 shows it
