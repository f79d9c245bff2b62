"""The Minimal form for Flux.1 (issue 15): choosing Flux.1 in the family choice writes `flux1_checkbox` (and clears
`sdxl`/`v2`, as kohya_ss's model picker does), shows Flux's fields (the transformer and its three other model files,
the tokenizer folder, guidance, timestep sampling, prediction type, with the common ones), the header names
Flux.1, and what is typed there is what the TOML Start writes says. `lora-tui --demo flux` opens on that form
with the demo's files filled in."""
from __future__ import annotations

from lora_tui.config.app_settings import AppSettings
from lora_tui.demo import demo_config, demo_files
from lora_tui.ui.app import LoraApp
from lora_tui.ui.forms import FLUX1_FORM, MINIMAL_FAMILIES, minimal_fields
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


async def test_choosing_flux_shows_its_fields_and_typed_values_reach_the_toml(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.config.sdxl is True and editors(app) == minimal_fields()
        before = app.config.model_dump()
        await pick_family(pilot, app, "Flux.1")
        await wait_for(pilot, lambda: editors(app) == list(FLUX1_FORM), timeout=5)
        assert (app.config.flux1_checkbox, app.config.sdxl, app.config.v2) == (True, False, False)
        assert "Flux.1 LoRA" in head(app) and "SDXL" not in head(app)
        assert "flux_train_network.py" in static_text(app.query_one("#minimal-family"))
        assert app.query_one("#minimal-family-choice").value == "flux1"
        after = app.config.model_dump()
        changed = {k for k in after if after[k] != before[k]}
        assert changed == {"sdxl", "flux1_checkbox"}  # every other value kept

        # typed in the Flux form → the TOML flux_train_network.py gets
        for name, text in [("pretrained_model_name_or_path", "/m/flux1-dev.safetensors"),
                           ("ae", "/m/ae.safetensors"), ("clip_l", "/m/clip_l.safetensors"),
                           ("t5xxl", "/m/t5xxl_fp16.safetensors"), ("tokenizer_cache_dir", "/m/tokenizers"),
                           ("guidance_scale", "2.5")]:
            await type_into(pilot, app, name, text)
        await choose(pilot, app, "timestep_sampling", "shift")
        await choose(pilot, app, "model_prediction_type", "raw")
        await wait_for(pilot, lambda: app.config.guidance_scale == 2.5 and app.config.timestep_sampling == "shift"
                       and app.config.model_prediction_type == "raw")
        toml = toml_of(app)
        assert {k: toml[k] for k in ("pretrained_model_name_or_path", "ae", "clip_l", "t5xxl",
                                     "tokenizer_cache_dir", "guidance_scale", "timestep_sampling",
                                     "model_prediction_type")} == {
            "pretrained_model_name_or_path": "/m/flux1-dev.safetensors", "ae": "/m/ae.safetensors",
            "clip_l": "/m/clip_l.safetensors", "t5xxl": "/m/t5xxl_fp16.safetensors",
            "tokenizer_cache_dir": "/m/tokenizers", "guidance_scale": 2.5, "timestep_sampling": "shift",
            "model_prediction_type": "raw"}
        assert toml["network_module"] == "networks.lora_flux" and "sdxl" not in toml

        # back to SDXL: the 16 fields again, the Flux values kept in the model (F3 shows them)
        await pick_family(pilot, app, "SDXL")
        await wait_for(pilot, lambda: editors(app) == minimal_fields() and "SDXL LoRA" in head(app), timeout=5)
        assert (app.config.flux1_checkbox, app.config.sdxl) == (False, True)
        assert app.config.ae == "/m/ae.safetensors" and "ae" not in toml_of(app)


async def test_flux_demo_opens_on_the_minimal_form_with_the_flux_fields_filled(tmp_path):
    settings = AppSettings(state_dir=tmp_path / "state", presets_dir=tmp_path / "presets",
                           cache_dir=tmp_path / "cache")
    files = demo_files(settings, "flux")  # the paths only: the form shows them whether or not they were built
    app = LoraApp(demo_config(files), demo=True, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: editors(app) == list(FLUX1_FORM))
        assert app.view == "minimal" and "Flux.1 LoRA" in head(app)
        shown = {name: app.query_one(f"#f-{name}").value for name in FLUX1_FORM}
        assert shown["pretrained_model_name_or_path"] == str(files.checkpoint)
        assert (shown["ae"], shown["clip_l"], shown["t5xxl"]) == (str(files.ae), str(files.clip_l), str(files.t5xxl))
        assert shown["tokenizer_cache_dir"] == str(files.tokenizer_cache_dir)
        assert shown["train_data_dir"] == str(files.train_data_dir) and shown["output_name"] == "demo_flux_lora"
        # the tokenizer folder is a field now, not an argv option
        assert "tokenizer_cache_dir" not in app.config.additional_parameters
        assert toml_of(app)["tokenizer_cache_dir"] == str(files.tokenizer_cache_dir)
