"""Text that comes from the user, a file or the trainer is shown as typed, never read as Textual markup: one
"[key=value]" in it raised MarkupError and ended the app (a trial's crash on scale_weight_norms' tqdm postfix).
The Run view's live line and toasts are in test_loss_plot.py; here the form filter, the load picker's message and
a question dialog."""
from __future__ import annotations

from lora_tui.ui.app import LoraApp
from lora_tui.ui.dialogs import ChoiceDialog
from ui_helpers import SIZE, screen_text, wait_for

TYPED = "[x=1] [/b]"


async def test_filter_picker_and_dialog_show_bracketed_text_as_is(settings, tmp_path):
    from lora_tui.config.kohya_json import save_config_file

    app = LoraApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        odd = tmp_path / "[x=1 face.json"  # a file name reaches the title bar
        save_config_file(app.config, odd)
        assert app.load_file(odd)
        await pilot.pause()
        assert "lora-tui · [x=1 face.json · sdxl" in str(app.query_one("#title-bar").render())
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.view == "advanced")
        await pilot.press("ctrl+f")
        await pilot.press(*TYPED)
        await wait_for(pilot, lambda: TYPED in str(app.query_one("#adv-head").render()), timeout=5)
        await pilot.press("escape", "ctrl+o")
        await wait_for(pilot, lambda: app.screen.id == "open-dialog", timeout=5)
        await pilot.press(*"[x=1", "enter")  # a filter that matches no preset
        await wait_for(pilot, lambda: "“[x=1”" in str(app.screen.query_one("#open-msg").render()), timeout=5)
        # a path that does not exist is said so, not taken for the highlighted preset
        await pilot.press(*("backspace",) * 4, *f"/nope/{TYPED}.json", "enter")
        await wait_for(pilot, lambda: f"“/nope/{TYPED}.json”: no such file."
                       in str(app.screen.query_one("#open-msg").render()), timeout=5)
        assert app.screen.id == "open-dialog" and app.source == odd.name  # nothing else was loaded
        await pilot.press("escape")
        app.push_screen(ChoiceDialog(f"Replace /data/{TYPED}/face.safetensors?",
                                     [("new", "Use “k[x=1_2”"), ("other", "Use “char[v2]_2”")]))
        await pilot.pause()
        assert f"/data/{TYPED}/face" in str(app.screen.query_one(".dialog-question").render())
        # output names quoted on buttons: "[x=" ended the app, "[v2]" vanished as a style tag
        assert [str(b.label) for b in app.screen.query("Button")] == ["Use “k[x=1_2”", "Use “char[v2]_2”"]
        assert "Use “char[v2]_2”" in screen_text(app)
        assert app.is_running
