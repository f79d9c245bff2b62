"""The Minimal form trains SD1.x, SD2.x and SDXL LoRAs (and Flux.1 and SD3 with their own fields:
tests/ui/test_minimal_flux.py, test_minimal_sd3.py): the same fields under a model family choice that writes the
family fields as kohya_ss's model picker does (SD2.x: `v2`, a 768-v model also `v_parameterization`; SDXL:
`sdxl`), every other value kept, and the header names the family. Every family is offered, so every config opens
on its Minimal form. A new form opens on the SDXL defaults."""
from __future__ import annotations

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.model import FAMILIES, TrainingConfig
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.ui.app import LoraApp
from lora_tui.ui.forms import MINIMAL_FAMILIES, SD3_FORM, minimal_fields
from ui_helpers import SIZE, static_text, wait_for

SD15 = BUNDLED_PRESETS / "sd15-character-lora.json"


def editors(app) -> list[str]:
    return [w.id.removeprefix("f-") for w in app.query(".field-editor")]


def head(app) -> str:
    return static_text(app.query_one("#minimal-head"))


async def pick_family(pilot, app, label: str) -> None:
    """Choose `label` in the family choice with the keyboard, as a user would (focus, Enter, arrows, Enter)."""
    select = app.query_one("#minimal-family-choice")
    select.focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: select.expanded)
    labels = [choice.label for choice in MINIMAL_FAMILIES.values()]
    await pilot.press("home", *["down"] * labels.index(label), "enter")
    await wait_for(pilot, lambda: not select.expanded)


async def test_new_form_opens_on_sdxl_with_the_family_chosen(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.config.sdxl is True and app.config.output_name == "sdxl_face_lora"
        assert editors(app) == minimal_fields()
        assert app.query_one("#minimal-family-choice").value == "sdxl"
        assert "sdxl_train_network.py" in static_text(app.query_one("#minimal-family"))
        assert "SDXL LoRA" in head(app)


async def test_the_family_is_chosen_in_the_form_and_written_as_kohya_does(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        before = app.config.model_dump()
        family_fields = ("sdxl", "v2", "v_parameterization", "flux1_checkbox", "sd3_checkbox")
        for label, sdxl, v2, vpred, name, script in [
                ("SD1.x", False, False, False, "SD1.x LoRA", "· train_network.py"),
                ("SD2.x 768-v", False, True, True, "SD2.x v-pred LoRA", "· train_network.py"),
                ("SD2.x 512 (ε)", False, True, False, "SD2.x LoRA", "· train_network.py"),
                ("SDXL", True, False, False, "SDXL LoRA", "sdxl_train_network.py")]:
            await pick_family(pilot, app, label)
            await wait_for(pilot, lambda: (app.config.sdxl, app.config.v2, app.config.v_parameterization)
                           == (sdxl, v2, vpred) and name in head(app), timeout=5)
            await wait_for(pilot, lambda: editors(app) == minimal_fields())  # the same fields for every family
            assert script in static_text(app.query_one("#minimal-family"))
            after = app.config.model_dump()
            assert {k: v for k, v in after.items() if k not in family_fields} == \
                   {k: v for k, v in before.items() if k not in family_fields}  # every other value kept
        # the TOML Start writes says the same
        from ui_helpers import toml_of

        assert "v2" not in toml_of(app) and "v_parameterization" not in toml_of(app)
        await pick_family(pilot, app, "SD2.x 768-v")
        await wait_for(pilot, lambda: app.config.v_parameterization)
        toml = toml_of(app)
        assert toml["v2"] is True and toml["v_parameterization"] is True


async def test_sd15_config_shows_the_minimal_fields_under_sd1(settings):
    cfg = load_config_file(SD15).config
    assert cfg.sdxl is False
    app = LoraApp(cfg, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert editors(app) == minimal_fields()
        assert app.query_one("#minimal-family-choice").value == "sd1"
        assert "SD1.x LoRA" in head(app) and "SDXL" not in head(app)
        assert app.query_one("#f-output_name").value == cfg.output_name
        # A problem on a Minimal field of an SD1.5 config now jumps to the Minimal form.
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.view == "advanced")
        await app.focus_field("network_dim")
        await wait_for(pilot, lambda: app.view == "minimal" and app.focused is not None
                       and app.focused.id == "f-network_dim")


def test_every_family_is_offered():
    # Every script kohya_ss's Start runs has its Minimal form: no config is left without one.
    assert {choice.family for choice in MINIMAL_FAMILIES.values()} == set(FAMILIES)


async def test_an_sd3_config_opens_on_its_form_and_a_loaded_sd15_preset_keeps_the_fields(settings):
    cfg = TrainingConfig(sd3_checkbox=True, output_name="sd3y")
    app = LoraApp(cfg, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: editors(app) == list(SD3_FORM))
        assert app.query_one("#minimal-family-choice").value == "sd3" and "SD3 LoRA" in head(app)
        assert app.query_one("#f-output_name").value == "sd3y"
        # A problem on a Minimal field of such a config jumps to the Minimal form.
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.view == "advanced")
        await app.focus_field("network_dim")
        await wait_for(pilot, lambda: app.view == "minimal" and app.focused is not None
                       and app.focused.id == "f-network_dim")
        # Loading an SD1.5 preset over it while the Minimal form is shown: the 16 fields, under SD1.x.
        assert app.load_file(SD15, over_current=True)
        await wait_for(pilot, lambda: app.query_one("#minimal-family-choice").value == "sd1"
                       and "SD1.x LoRA" in head(app))
        await wait_for(pilot, lambda: editors(app) == minimal_fields())
