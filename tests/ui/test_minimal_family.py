"""The Minimal form is the SDXL face-LoRA view: its model family is a locked, visible field. A config of another
family (an SD1.5 preset) is not shown under SDXL labels: the form says what it is and offers to switch the family
(keeping every other value) or to edit it as it is in the Advanced form. A new form opens on the SDXL defaults."""
from __future__ import annotations

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.ui.app import LoraApp
from lora_tui.ui.forms import minimal_fields
from ui_helpers import SIZE, screen_text, static_text, wait_for

SD15 = BUNDLED_PRESETS / "sd15-character-lora.json"


def editors(app) -> list[str]:
    return [w.id.removeprefix("f-") for w in app.query(".field-editor")]


async def test_new_form_opens_on_sdxl_with_the_family_locked(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.config.sdxl is True and app.config.output_name == "sdxl_face_lora"
        assert editors(app) == minimal_fields()
        assert not app.query_one("#minimal-locked").display
        family = static_text(app.query_one("#minimal-family"))
        assert "SDXL" in family and "sdxl_train_network.py" in family and "locked" in family


async def test_sd15_config_offers_the_switch_and_the_switch_keeps_every_value(settings):
    cfg = load_config_file(SD15).config
    assert cfg.sdxl is False
    app = LoraApp(cfg, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert editors(app) == []  # no SDXL-form fields over an SD1.5 config
        assert app.query_one("#minimal-locked").display
        assert "SD1.x" in static_text(app.query_one("#minimal-locked-text"))
        assert "SD1.x" in static_text(app.query_one("#minimal-family"))
        assert "Switch to SDXL" in screen_text(app)
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "minimal-to-sdxl")
        before = app.config.model_dump()
        await pilot.press("enter")
        await wait_for(pilot, lambda: editors(app) == minimal_fields())
        after = app.config.model_dump()
        assert after.pop("sdxl") is True and before.pop("sdxl") is False
        assert after == before  # only the family changed
        assert not app.query_one("#minimal-locked").display
        assert "SDXL" in static_text(app.query_one("#minimal-family"))
        assert app.query_one("#f-output_name").value == cfg.output_name


async def test_sd15_config_kept_in_the_advanced_form(settings):
    cfg = load_config_file(SD15).config
    app = LoraApp(cfg, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.click("#minimal-to-advanced")
        await wait_for(pilot, lambda: app.view == "advanced")
        assert app.config.model_dump() == cfg.model_dump()
        # A problem on a Minimal field of an SD1.5 config jumps to the Advanced form, not to the Minimal one.
        await pilot.press("f2")
        await wait_for(pilot, lambda: app.view == "minimal")
        await app.focus_field("network_dim")
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "f-network_dim")
        assert app.view == "advanced"
        # Loading an SD1.5 preset over an SDXL form while the Minimal form is shown swaps the rows for the offer.
        await pilot.press("f2")
        await wait_for(pilot, lambda: app.view == "minimal")
        assert app.switch_family("sdxl")
        await wait_for(pilot, lambda: editors(app) == minimal_fields())
        assert app.load_file(SD15, over_current=True)
        await wait_for(pilot, lambda: editors(app) == [] and app.query_one("#minimal-locked").display)
