"""A value the config keeps but its launch leaves out (another LoRA type's field, the other noise_offset_type's
noise settings) never reaches the trainer, so validation must not hold it against the run: found in a fresh
user's trial, where three kohya_ss presets were refused for an adaptive_noise_scale that kohya_ss ignores under
Multires noise."""
from __future__ import annotations

from pathlib import Path

import pytest

from lora_tui.config.kohya_json import ConfigError, load_config_file
from lora_tui.plan.rules import validate
from plan_helpers import make_cfg

PRESETS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "kohya_presets"


def _kept_fields(notes: list[str]) -> set[str]:
    return {n.split(":", 1)[0] for n in notes if " kept, not used: " in n}


def test_no_fixture_gets_an_error_on_a_value_its_load_notes_call_unused(settings):
    checked = loaded_count = 0
    for path in sorted(PRESETS.glob("*.json")):
        try:
            loaded = load_config_file(path)
        except ConfigError:
            continue  # a DreamBooth/TI/fine-tuning file: the loader refuses it (tests/config covers which)
        loaded_count += 1
        kept = _kept_fields(loaded.notes)
        checked += bool(kept)
        named = [p for p in validate(loaded.config, None, settings) if p.field in kept]
        assert not named, (path.name, named)
    assert loaded_count >= 40 and checked >= 3  # the fixtures do hold such values (GLoRA, LoKR and LoKr keep adaptive_noise_scale)


@pytest.mark.parametrize("name", ["sd15 - GLoRA v1.0.json", "sd15 - LoKR v1.0.json", "sd15 - LoKr v1.1.json"])
def test_multires_preset_keeps_adaptive_noise_scale_without_an_error(name, settings):
    loaded = load_config_file(PRESETS / name)
    assert loaded.config.noise_offset_type == "Multires" and loaded.config.adaptive_noise_scale
    assert "adaptive_noise_scale" in _kept_fields(loaded.notes)
    assert not [p for p in validate(loaded.config, None, settings) if "adaptive_noise_scale" in p.message]


def test_the_same_values_are_checked_when_used(settings):
    multires = make_cfg(noise_offset_type="Multires", adaptive_noise_scale=0.005, noise_offset=5.0)
    assert not [p for p in validate(multires, None, settings) if p.field in ("adaptive_noise_scale", "noise_offset")]
    original = multires.model_copy(update={"noise_offset_type": "Original", "noise_offset": 0})
    assert [p for p in validate(original, None, settings)
            if p.field == "adaptive_noise_scale" and p.severity == "error"]
    original = original.model_copy(update={"noise_offset": 5.0})
    assert [p for p in validate(original, None, settings) if p.field == "noise_offset" and p.severity == "error"]
