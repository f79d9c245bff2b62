"""A plan that fails (a bug, injected here) never leaves the Problems panel saying "no problems": it shows an
error, and F5 is refused."""
from __future__ import annotations

from lora_tui.ui.app import LoraApp, default_config

from ui_helpers import SIZE, static_text, valid_sdxl_setup, wait_for


async def test_failed_planning_is_an_error_in_the_panel(settings, tmp_path, monkeypatch):
    cfg = default_config().model_copy(update=valid_sdxl_setup(tmp_path))
    app = LoraApp(config=cfg, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        title = app.query_one("#problems-title")
        await wait_for(pilot, lambda: app.plan is not None and not app.all_problems(), timeout=15)
        assert "none" in static_text(title), static_text(title)

        import lora_tui.plan

        def broken(*args, **kwargs):
            raise ZeroDivisionError("injected")

        monkeypatch.setattr(lora_tui.plan, "make_plan", broken)
        assert app.apply_edit("network_dim", str(app.config.network_dim + 8))
        await wait_for(pilot, lambda: "1 error" in static_text(title), timeout=15)
        problems = app.all_problems()
        assert [p.severity for p in problems] == ["error"] and "planning failed" in problems[0].message
        assert "injected" in problems[0].message
        await pilot.press("f5")
        await wait_for(pilot, lambda: any("Not started" in n.message for n in app._notifications), timeout=10)
        assert app.job is None
