"""F1 shows the focused field's help in a dialog, so it is readable without a mouse (the editor's tooltip is the
same text)."""
from __future__ import annotations

from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, wait_for


def dialog_text(app) -> str:
    from textual.widgets import OptionList

    opts = app.screen.query_one("#notes-list", OptionList)
    return "\n".join(str(opts.get_option_at_index(i).prompt) for i in range(opts.option_count))


async def test_f1_shows_the_focused_fields_help_and_escape_closes_it(settings):
    from lora_tui.ui.fields import FieldRow

    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await wait_for(pilot, lambda: app.query("#f-network_alpha"))
        editor = app.query_one("#f-network_alpha")
        editor.focus()
        await wait_for(pilot, lambda: app.focused is editor)
        await pilot.press("f1")
        await wait_for(pilot, lambda: app.screen.id == "notes-dialog")
        text = dialog_text(app)
        assert "network_alpha" in text and "sd-scripts" in text.lower()
        row = next(a for a in editor.ancestors if isinstance(a, FieldRow))
        assert text.replace("\n", " ") == row.spec.help.replace("\n\n", " ").strip()
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id != "notes-dialog")
        assert app.focused is editor


async def test_f1_without_a_focused_field_says_how_to_get_one(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        app.set_focus(None)
        await pilot.press("f1")
        await pilot.pause()
        assert app.screen.id != "notes-dialog"
        assert any("F1 shows the focused field's help" in str(n.message) for n in app._notifications)


async def test_f1_on_the_advanced_section_list_explains_it_and_the_highlighted_section(settings):
    from textual.widgets import OptionList

    from lora_tui.ui.fields import field_spec
    from lora_tui.ui.forms import sections

    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.focused is not None and app.focused.has_class("field-editor"))
        nav = app.query_one("#sections", OptionList)
        nav.focus()
        await pilot.press("down")
        await wait_for(pilot, lambda: nav.highlighted == 1)
        await pilot.press("f1")
        await wait_for(pilot, lambda: app.screen.id == "notes-dialog")
        section = list(sections())[1]
        assert app.screen.title_text.startswith(f"{section} · ")
        text = dialog_text(app)
        assert text.startswith("Section list: ↑/↓ shows a section, Enter or Tab goes to its fields")
        first = next(n for n in sections()[section] if app.field_applies(n))
        assert f"{field_spec(first).label} ({first}): " in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id != "notes-dialog")
        assert app.focused is nav
        assert not any("move to a field first" in str(n.message) for n in app._notifications)


async def test_f1_for_epoch_says_it_is_written_as_max_train_epochs(settings):
    # It said "not written to the TOML" although the launch writes it as max_train_epochs (issue 14).
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.query("#f-epoch"))
        editor = app.query_one("#f-epoch")
        editor.focus()
        await wait_for(pilot, lambda: app.focused is editor)
        await pilot.press("f1")
        await wait_for(pilot, lambda: app.screen.id == "notes-dialog")
        text = dialog_text(app)
        assert "TOML key: max_train_epochs" in text and "not written" not in text
