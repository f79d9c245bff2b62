"""Values a kohya_ss file holds for settings its LoRA type, family or noise type does not use: kept in the
model (switching back brings them into the command), and each one reported in ``LoadResult.notes`` with the
field, the value and why it is not used. Keys we cannot hold are reported with their value and why."""
from __future__ import annotations

import json

from config_helpers import LORA_FIXTURES, SHARED
from lora_tui.config.kohya_json import config_from_dict, config_to_dict, load_config_file
from lora_tui.plan.network import network_args
from lora_tui.plan.launch import toml_dict

AI_NOW = SHARED / "fixtures" / "kohya_presets" / "SDXL - LoRA AI_Now ADamW v1.0.json"


def _note(notes: list[str], field: str) -> str:
    hits = [n for n in notes if n.startswith(f"{field}: ")]
    assert len(hits) == 1, (field, notes)
    return hits[0]


def test_standard_preset_with_conv_dim_keeps_and_reports_it():
    raw = json.loads(AI_NOW.read_text(encoding="utf-8"))
    assert raw["LoRA_type"] == "Standard" and raw["conv_dim"] == 32  # the real fixture, as kohya_ss saved it
    result = load_config_file(AI_NOW)
    cfg = result.config
    assert cfg.conv_dim == 32 and cfg.conv_alpha == 32  # kept: the model holds it
    assert not any(a.startswith("conv_dim=") for a in network_args(cfg))  # Standard LoRA has no conv layers
    note = _note(result.notes, "conv_dim")
    assert "32" in note and "not used" in note and "'Standard'" in note and "Kohya LoCon" in note
    assert "32" in _note(result.notes, "conv_alpha")
    # switching the LoRA type brings the kept value into the command
    locon = cfg.model_copy(update={"LoRA_type": "Kohya LoCon"})
    assert "conv_dim=32" in network_args(locon) and "conv_alpha=32" in network_args(locon)


def test_small_json_every_unused_value_is_named_with_the_reason():
    result = config_from_dict({
        "LoRA_type": "Standard", "conv_dim": 16, "use_cp": True, "train_on_input": False, "factor": 4,
        "sdxl": False, "sdxl_no_half_vae": True, "noise_offset_type": "Multires", "noise_offset": 0.05,
        "multires_noise_iterations": 6, "constrain": 0.0, "rank_dropout": 0.0,
    })
    cfg, notes = result.config, result.notes
    assert (cfg.conv_dim, cfg.use_cp, cfg.train_on_input, cfg.factor) == (16, True, False, 4)
    assert cfg.sdxl_no_half_vae is True and cfg.noise_offset == 0.05
    for field in ("conv_dim", "use_cp", "train_on_input", "factor"):
        note = _note(notes, field)
        assert "LoRA_type 'Standard'" in note and "not used" in note, note
    # a field of another family is validation's to report (once, while it stays set), not the loader's too
    assert not [n for n in notes if "sdxl_no_half_vae" in n]
    assert "noise_offset_type is 'Multires'" in _note(notes, "noise_offset")
    # kohya_ss's own defaults (0 = unset, off) and values that are used are not reported
    assert not [n for n in notes if n.startswith(("constrain: ", "rank_dropout: ", "multires_noise_iterations: "))]
    # what is reported does not reach the command; what is not reported and set does
    toml, _ = toml_dict(cfg)
    assert "noise_offset" not in toml and "sdxl_no_half_vae" not in toml and toml["multires_noise_iterations"] == 6
    assert not any(a.split("=")[0] in ("conv_dim", "use_cp", "train_on_input", "factor") for a in network_args(cfg))


def test_used_values_are_not_reported():
    result = config_from_dict({"LoRA_type": "Kohya LoCon", "conv_dim": 16, "conv_alpha": 8})
    assert not [n for n in result.notes if "not used" in n], result.notes
    assert "conv_dim=16" in network_args(result.config)


def test_ignored_keys_with_a_value_are_named_with_value_and_reason():
    result = config_from_dict({
        "LoRA_type": "Standard", "conv_dims": "32", "conv_alphas": "", "no_token_padding": True,
        "stop_text_encoder_training_pct": 50, "network_args": "conv_dim=4", "save_as_bool": False,
    })
    notes = result.notes
    assert "32" in _note(notes, "conv_dims") and "conv_dim" in _note(notes, "conv_dims")
    assert "not carried over" in _note(notes, "no_token_padding")
    assert "50" in _note(notes, "stop_text_encoder_training_pct")
    assert "conv_dim=4" in _note(notes, "network_args") and "LoRA_type" in _note(notes, "network_args")
    # empty legacy values and GUI bookkeeping stay in the one grouped note
    grouped = [n for n in notes if n.startswith("ignored (no effect in lora-tui): ")]
    assert grouped == ["ignored (no effect in lora-tui): conv_alphas, save_as_bool"], notes


def test_every_fixture_reports_each_value_its_command_drops():
    """Over the real LoRA files: a value reported as not used never reaches the TOML or network_args."""
    reported = 0
    for path in LORA_FIXTURES:
        result = load_config_file(path)
        cfg = result.config
        toml, _ = toml_dict(cfg)
        args = {a.split("=")[0] for a in network_args(cfg)}
        for note in result.notes:
            if " not used: " not in note:
                continue
            field = note.split(":")[0]
            reported += 1
            assert field not in toml and field not in args, (path.name, note)
    assert reported > 20


def test_own_json_round_trip_repeats_only_the_unused_notes():
    first = load_config_file(AI_NOW)
    again = config_from_dict(config_to_dict(first.config))
    assert again.notes and all(" not used: " in n for n in again.notes), again.notes
    assert again.config == first.config


def test_preset_over_the_form_reports_only_what_the_preset_sets():
    from lora_tui.config.model import TrainingConfig

    form = TrainingConfig(LoRA_type="Standard", use_cp=True)  # the form's own hidden value: not the import's news
    result = config_from_dict({"conv_dim": 16}, base=form)
    assert result.config.conv_dim == 16 and result.config.use_cp is True
    assert "'Standard'" in _note(result.notes, "conv_dim")
    assert not [n for n in result.notes if n.startswith("use_cp: ")]


def test_a_field_of_another_family_is_reported_once():
    """The trial saw sdxl_no_half_vae three times for an SD1.5 file (load note, launch note, validate warning)."""
    from lora_tui.config.app_settings import AppSettings
    from lora_tui.plan.rules import validate

    for name in ("sd15 - LoKr v1.1.json", "flux1D - adamw8bit fp8.json"):
        result = load_config_file(SHARED / "fixtures" / "kohya_presets" / name)
        assert result.config.sdxl_no_half_vae is True
        said = [n for n in result.notes + toml_dict(result.config)[1] if "sdxl_no_half_vae" in n]
        said += [p.message for p in validate(result.config, None, AppSettings()) if "sdxl_no_half_vae" in p.message]
        assert len(said) == 1 and "applies to SDXL only" in said[0], said
