"""The Minimal form for SD3 / SD3.5 (issue 16): choosing SD3 in the family choice writes `sd3_checkbox` (and clears
`sdxl`/`v2`/`v_parameterization`/`flux1_checkbox`, as kohya_ss's model picker does), shows SD3's fields (the
checkpoint and its three text-encoder files, the tokenizer folder, the weighting scheme, with the common ones), the
header names SD3, and what is typed there is what the TOML Start writes says. `lora-tui --demo sd3` opens on that
form with the demo's files filled in."""
from __future__ import annotations

from lora_tui.config.app_settings import AppSettings
from lora_tui.demo import demo_config, demo_files
from lora_tui.ui.app import LoraApp
from lora_tui.ui.forms import MINIMAL_FAMILIES, SD3_FORM, minimal_fields
from ui_helpers import SIZE, choose, static_text, toml_of, type_into, wait_for


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


async def test_choosing_sd3_shows_its_fields_and_typed_values_reach_the_toml(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.config.sdxl is True and editors(app) == minimal_fields()
        # from Flux.1 (so that choosing SD3 must also clear flux1_checkbox)
        await pick_family(pilot, app, "Flux.1")
        await wait_for(pilot, lambda: app.config.flux1_checkbox and "Flux.1 LoRA" in head(app), timeout=5)
        before = app.config.model_dump()
        await pick_family(pilot, app, "SD3 / SD3.5")
        await wait_for(pilot, lambda: editors(app) == list(SD3_FORM), timeout=5)
        assert (app.config.sd3_checkbox, app.config.flux1_checkbox, app.config.sdxl, app.config.v2,
                app.config.v_parameterization) == (True, False, False, False, False)
        assert "SD3 LoRA" in head(app) and "Flux.1" not in head(app)
        assert "sd3_train_network.py" in static_text(app.query_one("#minimal-family"))
        assert app.query_one("#minimal-family-choice").value == "sd3"
        after = app.config.model_dump()
        changed = {k for k in after if after[k] != before[k]}
        assert changed == {"flux1_checkbox", "sd3_checkbox"}  # every other value kept

        # typed in the SD3 form → the TOML sd3_train_network.py gets (the SD3 fields under sd-scripts' names)
        for name, text in [("pretrained_model_name_or_path", "/m/sd3.5_medium.safetensors"),
                           ("sd3_clip_l", "/m/clip_l.safetensors"), ("clip_g", "/m/clip_g.safetensors"),
                           ("sd3_t5xxl", "/m/t5xxl_fp16.safetensors"), ("tokenizer_cache_dir", "/m/tokenizers"),
                           ("network_dim", "24")]:
            await type_into(pilot, app, name, text)
        await choose(pilot, app, "weighting_scheme", "mode")
        await wait_for(pilot, lambda: app.config.weighting_scheme == "mode" and app.config.network_dim == 24)
        toml = toml_of(app)
        assert {k: toml[k] for k in ("pretrained_model_name_or_path", "clip_l", "clip_g", "t5xxl",
                                     "tokenizer_cache_dir", "weighting_scheme", "network_dim")} == {
            "pretrained_model_name_or_path": "/m/sd3.5_medium.safetensors", "clip_l": "/m/clip_l.safetensors",
            "clip_g": "/m/clip_g.safetensors", "t5xxl": "/m/t5xxl_fp16.safetensors",
            "tokenizer_cache_dir": "/m/tokenizers", "weighting_scheme": "mode", "network_dim": 24}
        assert toml["network_module"] == "networks.lora_sd3" and "sdxl" not in toml

        # back to SDXL: the 16 fields again, the SD3 values kept in the model (F3 shows them)
        await pick_family(pilot, app, "SDXL")
        await wait_for(pilot, lambda: editors(app) == minimal_fields() and "SDXL LoRA" in head(app), timeout=5)
        assert (app.config.sd3_checkbox, app.config.sdxl) == (False, True)
        assert app.config.clip_g == "/m/clip_g.safetensors" and "clip_g" not in toml_of(app)


async def test_sd3_demo_opens_on_the_minimal_form_with_the_sd3_fields_filled(tmp_path):
    settings = AppSettings(state_dir=tmp_path / "state", presets_dir=tmp_path / "presets",
                           cache_dir=tmp_path / "cache")
    files = demo_files(settings, "sd3")  # the paths only: the form shows them whether or not they were built
    app = LoraApp(demo_config(files), demo=True, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: editors(app) == list(SD3_FORM))
        assert app.view == "minimal" and "SD3 LoRA" in head(app)
        shown = {name: app.query_one(f"#f-{name}").value for name in SD3_FORM}
        assert shown["pretrained_model_name_or_path"] == str(files.checkpoint)
        # the demo checkpoint holds its text encoders: the three file fields stay empty
        assert (shown["sd3_clip_l"], shown["clip_g"], shown["sd3_t5xxl"]) == ("", "", "")
        assert shown["tokenizer_cache_dir"] == str(files.tokenizer_cache_dir)
        assert shown["train_data_dir"] == str(files.train_data_dir) and shown["output_name"] == "demo_sd3_lora"
        # the tokenizer folder is a field now, not an argv option
        assert "tokenizer_cache_dir" not in app.config.additional_parameters
        assert toml_of(app)["tokenizer_cache_dir"] == str(files.tokenizer_cache_dir)
