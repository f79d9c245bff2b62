"""Messages from worker threads (a finished plan, a queue tick) that land while the app shuts down, after its
widgets are removed, are dropped: they used to fail on the missing widget (seen as test flakes under load)."""
from __future__ import annotations

from lora_tui.ui.app import LoraApp
from lora_tui.ui.planner import PlanReady
from lora_tui.ui.queue_actions import QueueTicked
from ui_helpers import SIZE


async def test_a_plan_and_a_queue_tick_after_the_widgets_are_gone_are_dropped(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not app.widgets_gone()
        await app.query_one("#main").remove()  # what shutting down does to the default screen
        assert app.widgets_gone()
        app.post_message(PlanReady(app.planner.gen, plan=None))
        app.post_message(QueueTicked(None, []))
        await pilot.pause()
    # leaving run_test re-raises any exception a handler raised
