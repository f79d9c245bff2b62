"""The refusal toast counts the errors the panel lists: refused field values and the plan's errors together
(a new user's trial saw "4 errors" in the panel and "Not started: 1 error")."""
from __future__ import annotations

import re

from lora_tui.ui.app import LoraApp

from ui_helpers import SIZE, wait_for


async def test_refusal_counts_every_error_in_the_panel(settings):
    app = LoraApp(settings=settings)  # the face preset without a checkpoint or folders: plan errors
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.plan is not None, timeout=15)
        assert app.apply_edit("learning_rate", "abc") is False
        await pilot.press("f5")
        await wait_for(pilot, lambda: any("Not started" in n.message for n in app._notifications), timeout=10)
        panel_errors = sum(1 for p in app.all_problems() if p.severity == "error")
        assert panel_errors >= 2
        message = next(n.message for n in app._notifications if "Not started" in n.message)
        assert int(re.search(r"Not started: (\d+) error", message).group(1)) == panel_errors
        assert app.job is None
