"""Long messages wrap instead of being cut in a terminal of 80-120 columns (e.g. over SSH): a field's message in
the Minimal and Advanced forms, the failure box and the run's log pane. Each test reads the text painted inside
the widget's region of the screen, so a line cut by the widget's height or width fails it."""
from __future__ import annotations

import pytest

from lora_tui.ui.app import LoraApp
from lora_tui.ui.forms import AdvancedForm, section_of

from ui_helpers import screen_text, type_into, wait_for


def painted(app, widget) -> str:
    """The words painted inside `widget`'s content region, lines joined by single spaces."""
    r = widget.content_region
    lines = screen_text(app).split("\n")[r.y:r.bottom]
    return " ".join(" ".join(line[r.x:r.right] for line in lines).split())


@pytest.mark.parametrize("view, size", [("minimal", (100, 30)), ("advanced", (120, 30))])
async def test_a_long_field_message_is_painted_whole(settings, tmp_path, view, size):
    # A trial saw "pick the checkpoint file or" and no more: the message's height was one line short.
    name = "pretrained_model_name_or_path"
    missing = tmp_path / "models" / "checkpoints" / "sdxl" / "some_long_model_name_v1.safetensors"
    app = LoraApp(settings=settings)
    async with app.run_test(size=size) as pilot:
        if view == "advanced":
            await pilot.press("f3")
            await wait_for(pilot, lambda: app.view == "advanced")
            await app.query_one(AdvancedForm).show_section(section_of(name))
        await type_into(pilot, app, name, str(missing))
        await wait_for(pilot, lambda: app.query_one_optional(f"#msg-{name}") is not None
                       and "does not exist" in str(app.query_one(f"#msg-{name}").render()))
        label = app.query_one(f"#msg-{name}")
        label.scroll_visible(animate=False)
        await pilot.pause(0.1)
        shown = painted(app, label)
        assert shown.startswith("base model '")
        assert shown.endswith("pick the checkpoint file or Diffusers folder")
        assert "".join(shown.split()) == "".join(str(label.render()).split())  # nothing in between is lost
