"""Keys after a new user's trial: Escape closes the Keys panel, F3 puts the cursor in the first field of the
section, and ctrl+f (or / outside a text box) reaches the Advanced filter, listed in the footer."""
from __future__ import annotations

from textual.widgets import HelpPanel, Input, OptionList

from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, screen_text, wait_for


async def test_escape_closes_the_keys_panel(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        focused = app.focused
        await app.run_action("show_help_panel")
        await wait_for(pilot, lambda: bool(app.screen.query(HelpPanel)))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.screen.query(HelpPanel), timeout=3)
        assert app.focused is focused
        await pilot.press("escape")  # nothing to close: harmless
        assert app.is_running


async def test_f3_focuses_a_field_and_filter_has_keys(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.view == "advanced" and app.focused is not None)
        first = app.focused
        assert "field-editor" in first.classes and first.id.startswith("f-")
        if isinstance(first, Input):
            before = first.value
            await pilot.press("end", "7")
            assert first.value == before + "7"  # typed right away, not lost
        assert "Filter fields" in screen_text(app)  # the footer shows ctrl+f
        await pilot.press("ctrl+f")
        await wait_for(pilot, lambda: app.focused is app.query_one("#adv-filter"))
        await pilot.press(*"network_dim")
        await wait_for(pilot, lambda: app.query_one_optional("#f-network_dim") is not None)
        # / in a text box is a character; on the section list it goes to the filter.
        app.query_one("#adv-filter", Input).value = "output_dir"
        await wait_for(pilot, lambda: app.query_one_optional("#f-output_dir") is not None)
        box = app.query_one("#f-output_dir", Input)
        box.focus()
        await pilot.press("end", "/")
        assert box.value.endswith("/") and app.focused is box
        app.query_one("#sections", OptionList).focus()
        await pilot.press("slash")
        await wait_for(pilot, lambda: app.focused is app.query_one("#adv-filter"))
