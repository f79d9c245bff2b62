"""Keys typed in one burst (tmux send-keys, a macro, a fast typist over SSH) take effect in the order typed.

In Textual 8.2.8 a bound editing key (backspace, end, ...) bubbles up to the App before it runs, while a printable
key is inserted at once, so in a burst the printable keys overtook the bound ones (`end backspace backspace 3 2`
on "5e-05" left "5e-05"). `ui.inputs.OrderedInput` runs its own bindings in order; these tests post the keys the
way the terminal driver does (all queued before any is handled) and check what lands.
"""
from __future__ import annotations

from textual import events

from lora_tui.ui.app import LoraApp
from lora_tui.ui.fields import FieldRow
from ui_helpers import SIZE, wait_for

_CHARS = {"backspace": "\x7f", "delete": "\x1b[3~", "space": " "}


def post_burst(app, *keys: str) -> None:
    """Queue Key events for `keys` on the app without yielding between them, as the driver's input thread does
    for one read of the terminal (the parser emits every key of the read before the app handles any)."""
    for key in keys:
        char = key if len(key) == 1 else _CHARS.get(key)
        app.post_message(events.Key(key, char))


async def focused_field(pilot, app, name: str):
    widget = app.query_one(f"#f-{name}")
    widget.focus()
    await pilot.pause()
    return widget


async def test_a_burst_of_editing_and_printable_keys_lands_in_order(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        field = await focused_field(pilot, app, "text_encoder_lr")
        assert field.value == "5e-05"
        post_burst(app, "end", "backspace", "backspace", "3", "2")
        await wait_for(pilot, lambda: field.value != "5e-05", timeout=5)
        await pilot.pause(0.1)
        assert field.value == "5e-32"
        assert app.config.text_encoder_lr == 5e-32
        assert "text_encoder_lr" not in app.field_errors


async def test_a_burst_with_cursor_moves_edits_where_the_cursor_is(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        field = await focused_field(pilot, app, "network_dim")
        assert field.value == "16"
        # "16" → home, delete "1", type 3 before "6" → "36"; end, backspace "6", type 2 → "32"; left, left, type 1
        post_burst(app, "home", "delete", "3", "end", "backspace", "2", "left", "left", "1")
        await wait_for(pilot, lambda: app.config.network_dim == 132, timeout=5)
        assert field.value == "132"
        assert field.cursor_position == 1


async def test_a_burst_through_an_invalid_intermediate_value_keeps_every_key(settings):
    # The field goes through "" and "a" (refused: an error message row is mounted under it) and back to a number
    # within one burst: the re-validation and the message row must not eat or reorder keys.
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        field = await focused_field(pilot, app, "network_alpha")
        keys = ["end"] + ["backspace"] * len(field.value) + ["a", "backspace", "8", "home", "4"]
        post_burst(app, *keys)
        await wait_for(pilot, lambda: field.value == "48", timeout=5)
        await pilot.pause(0.3)
        assert field.value == "48"
        assert app.config.network_alpha == 48.0
        assert "network_alpha" not in app.field_errors
        assert app.query_one("#row-network_alpha", FieldRow).query_one_optional("#msg-network_alpha") is None


async def test_pilot_typing_without_pauses_lands(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await focused_field(pilot, app, "output_name")
        await pilot.press("end", *["backspace"] * 20, *"face_v2", "home", *"my_", "end", "backspace", "3")
        await pilot.pause()
        assert app.query_one("#f-output_name").value == "my_face_v3"
        assert app.config.output_name == "my_face_v3"


async def focused_filter(pilot, app):
    """The Advanced form shown and its filter box focused; returns the box."""
    await app.show_view("advanced")
    await pilot.pause()
    filt = app.query_one("#adv-filter")
    filt.focus()
    await pilot.pause()
    return filt


async def test_a_burst_in_the_advanced_filter_lands_in_order(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        filt = await focused_filter(pilot, app)
        post_burst(app, *"netx", "backspace", *"work_d", "left", "backspace", "_")
        await wait_for(pilot, lambda: filt.value.endswith("d"), timeout=5)
        await pilot.pause(0.1)
        assert filt.value == "network_d"
        assert filt.cursor_position == len("network_")


async def test_keys_after_tab_in_a_burst_go_to_the_next_field(settings):
    # Tab is the Screen's binding: it used to reach the App after the digits behind it had gone into the field
    # being left.
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        lr = await focused_field(pilot, app, "text_encoder_lr")
        post_burst(app, "end", "backspace", "4", "tab", "end", "backspace", "backspace", "3", "2", "shift+tab", "1")
        await wait_for(pilot, lambda: app.config.network_dim == 32, timeout=5)
        await wait_for(pilot, lambda: lr.value == "5e-041", timeout=5)
        assert app.query_one("#f-network_dim").value == "32"
        assert app.focused is lr
        assert app.config.text_encoder_lr == 5e-41


async def test_the_app_starts_in_the_first_field_and_a_burst_from_there_lands(settings):
    # At start the focus is on the first Minimal field (as after F2), not on the form's scroll container, which
    # would swallow printable keys typed before the first Tab.
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "f-pretrained_model_name_or_path")
        post_burst(app, *"/m.safetensors", "home", "tab", "end", *"_x", "shift+tab", "end", "backspace")
        await wait_for(pilot, lambda: app.query_one("#f-train_data_dir").value == "_x", timeout=5)
        await wait_for(pilot, lambda: app.query_one("#f-pretrained_model_name_or_path").value == "/m.safetensor")
        assert app.focused.id == "f-pretrained_model_name_or_path"


async def test_letters_typed_right_after_emptying_the_filter_are_kept(settings):
    # Emptying the filter mounts the section's rows again; that used to empty the box once more, dropping the
    # letters typed meanwhile ("network" became "twork" on a busy machine).
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        filt = await focused_filter(pilot, app)
        post_burst(app, *"epoch", *["backspace"] * 5, *"network")
        await wait_for(pilot, lambda: "“network”" in str(app.query_one("#adv-head").render()), timeout=10)
        await pilot.pause(0.2)
        assert filt.value == "network", filt.value
        assert "“network”" in str(app.query_one("#adv-head").render())
