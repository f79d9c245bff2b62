"""Tab goes from widget to widget a user can see: the forms' scroll containers are no Tab stops of their own
(an invisible stop between the Advanced filter and the fields swallowed the keys typed after two Tabs)."""
from __future__ import annotations

from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, wait_for


async def test_two_tabs_lead_from_the_advanced_filter_to_the_first_field(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.focused is not None and app.focused.has_class("field-editor"))
        first = app.focused
        app.query_one("#adv-filter").focus()
        await pilot.pause()
        await pilot.press("tab")
        await wait_for(pilot, lambda: app.focused.id == "sections")
        await pilot.press("tab")
        await wait_for(pilot, lambda: app.focused is first)


async def test_shift_tab_from_the_first_minimal_field_leaves_the_form(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "f-pretrained_model_name_or_path")
        await pilot.press("shift+tab")
        await pilot.pause()
        assert app.focused is not app.query_one("#minimal")  # the form itself takes no focus


async def test_start_up_focus_moves_to_the_first_field_from_wherever_auto_focus_put_it(settings):
    # In a real terminal Textual's auto-focus ran after the form's first frame and put the focus on the hidden
    # Run view's queue list, where typed keys went nowhere; the form's start-up focus must win from any
    # non-field widget.
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.query_one("#queue").focus()
        await pilot.pause()
        assert app.focused.id == "queue"
        app.query_one("#minimal")._initial_focus()
        await pilot.pause()
        assert app.focused.id == "f-pretrained_model_name_or_path"
        await pilot.press(*"xyz")
        assert app.query_one("#f-pretrained_model_name_or_path").value.endswith("xyz")
