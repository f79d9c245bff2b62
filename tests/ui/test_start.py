"""Start refuses while an error stands: the problem is listed, the panel is focused (and, folded on a short screen,
unfolded), nothing is launched (no job, no TOML, no JSON)."""
from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, painted, type_into, wait_for


def problems_text(app) -> list[str]:
    panel = app.query_one("#problems", OptionList)
    return [str(panel.get_option_at_index(i).prompt) for i in range(panel.option_count)]


def side_words(app) -> str:
    """The side panel's painted words, wrapped lines joined."""
    return " ".join(" ".join(painted(app, "#side")).split())


def nothing_launched(settings, out: Path) -> bool:
    return not list(Path(settings.state_dir).glob("jobs/*")) and not list(out.glob("*"))


async def refused_start(pilot, app) -> None:
    await pilot.press("f5")
    await wait_for(pilot, lambda: app.focused is app.query_one("#problems"), timeout=10)
    await pilot.pause(0.3)
    assert app.job is None and not app.job_running


async def test_start_with_empty_checkpoint_path_is_refused(settings, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cfg = load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config
    app = LoraApp(cfg, settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:  # SSH size: the list is folded to a summary until focused
        assert app.apply_edit("output_dir", str(out))
        assert app.config.pretrained_model_name_or_path == ""
        await wait_for(pilot, lambda: app.plan is not None, timeout=15)
        await pilot.pause(0.2)
        assert "F5 is refused" in side_words(app) and "✖ Checkpoint" not in side_words(app)
        await refused_start(pilot, app)
        texts = problems_text(app)
        assert any("Checkpoint" in t and "✖" in t for t in texts), texts
        # The refusal unfolds the list (painted, not only present) and drops the summary line.
        assert "✖ Checkpoint" in side_words(app) and "F5 is refused" not in side_words(app)
        # The field carries its own message, and Enter on the problem goes there.
        assert "checkpoint" in str(app.query_one("#msg-pretrained_model_name_or_path").render())
        panel = app.query_one("#problems", OptionList)
        panel.highlighted = next(i for i, t in enumerate(texts) if "Checkpoint" in t)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.focused is not None
                       and app.focused.id == "f-pretrained_model_name_or_path")
    assert nothing_launched(settings, out)


async def test_start_with_missing_image_folder_is_refused(settings, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    cfg = load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config
    app = LoraApp(cfg, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        assert app.apply_edit("output_dir", str(out))
        assert app.apply_edit("pretrained_model_name_or_path", str(ckpt))
        await type_into(pilot, app, "train_data_dir", "/no/such/folder")
        await refused_start(pilot, app)
        texts = problems_text(app)
        assert any("Image folder" in t and "✖" in t for t in texts), texts
        assert app.query_one_optional("#msg-train_data_dir") is not None
        # Start from the Run view also brings the panel back.
        await pilot.press("f4")
        await pilot.pause()
        await refused_start(pilot, app)
        assert app.view == "minimal"
    assert nothing_launched(settings, out)
