"""Helpers for the app's Pilot tests (a module of its own: `conftest` is a shared name across test folders)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

FAKE = Path(__file__).resolve().parents[1] / "fake_trainers"
SIZE = (120, 40)


def fake(name: str, *args: object) -> list[str]:
    """argv running the fake trainer ``name`` (a file in tests/fake_trainers) with this interpreter."""
    return [sys.executable, str(FAKE / name), *map(str, args)]


async def wait_for(pilot, condition, timeout: float = 10.0, step: float = 0.05) -> float:
    """Pump the app until ``condition()`` is true; return the seconds it took. Fails the test on timeout."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(step)
    return time.monotonic() - start


def screen_text(app) -> str:
    """The current screen as plain text (what a user sees, without colours)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def static_text(widget) -> str:
    """The plain text a Static/Label currently shows (markup removed)."""
    return str(widget.render())


async def type_into(pilot, app, name: str, text: str) -> None:
    """Focus the editor of field ``name`` (`#f-<name>`, an Input) and replace its text by typing ``text``."""
    widget = app.query_one(f"#f-{name}")
    widget.focus()
    await pilot.pause()
    await pilot.press("end", *["backspace"] * len(widget.value))
    if text:
        await pilot.press(*text)
    await pilot.pause()


async def choose(pilot, app, name: str, value: str) -> None:
    """Pick ``value`` in the Select of field ``name`` with the keyboard (open, type to search, Enter)."""
    widget = app.query_one(f"#f-{name}")
    widget.focus()
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()
    await pilot.press(*value, "enter")
    await pilot.pause()


async def toggle(pilot, app, name: str) -> None:
    """Toggle the Checkbox of field ``name`` with the space key."""
    app.query_one(f"#f-{name}").focus()
    await pilot.pause()
    await pilot.press("space")
    await pilot.pause()


def toml_of(app) -> dict:
    """The TOML Start would write for the app's current config, parsed back."""
    import tomllib

    from lora_tui.plan.launch import toml_text

    return tomllib.loads(toml_text(app.config))
