"""kohya_ss JSON in and out: real fixtures, messy types, legacy keys, round trips."""
from __future__ import annotations

import json

import pytest

from config_helpers import FIXTURES, LORA_FIXTURES, OTHER_KINDS, PRESETS, non_default_values
from lora_tui.config.kohya_json import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config_file,
    save_config_file,
)
from lora_tui.config.model import TrainingConfig, all_field_meta


def test_there_are_63_fixtures():
    assert len(FIXTURES) == 63
    assert {p.name for p in FIXTURES} >= set(OTHER_KINDS) and len(LORA_FIXTURES) == 45


@pytest.mark.parametrize("name", sorted(OTHER_KINDS))
def test_other_kinds_of_kohya_file_are_refused_by_name(name):
    """Textual Inversion, DreamBooth, Fine-tuning configs and a metadata file would load as a default LoRA run
    with their settings dropped: the loader refuses each, saying what the file is."""
    path = next(p for p in FIXTURES if p.name == name)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    err = info.value
    assert err.field == ""
    kind = OTHER_KINDS[name]
    if kind == "metadata":
        assert "metadata file" in err.message and "not a training config" in err.message
    else:
        assert f"kohya_ss {kind} config" in err.message and "LoRA networks only" in err.message


def test_other_tab_keys_in_a_lora_file_do_not_refuse_it():
    # the LoRA keys decide: a LoRA file carrying a stray TI/DreamBooth key loads, the key reported as unknown
    for extra in ({"token_string": "sks"}, {"learning_rate_te": 1e-5}, {"train_dir": "/x"}):
        for lora_key in ({"LoRA_type": "Standard"}, {"network_dim": 8}, {"unet_lr": 1e-4}):
            result = config_from_dict({**lora_key, **extra})
            assert any(next(iter(extra)) in n for n in result.notes), result.notes
    # a partial dict of settings is a LoRA config too
    assert config_from_dict({"sdxl": True, "stop_text_encoder_training_pct": 0}).config.sdxl


@pytest.mark.parametrize("path", LORA_FIXTURES, ids=lambda p: p.stem)
def test_fixture_loads_and_round_trips(path):
    result = load_config_file(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    cfg = result.config
    # every key we know was taken (after kohya's legacy renames)
    if "lora_network_weights" in raw and not raw.get("network_weights"):
        assert cfg.network_weights == raw["lora_network_weights"]
    if raw.get("LoRA_type") and raw["LoRA_type"] != "LoCon":
        assert cfg.LoRA_type == raw["LoRA_type"]
    # JSON -> model -> JSON is stable, and our own JSON loads without a single coercion; the only notes are the
    # values kept for another LoRA type/family/noise type, the same ones the kohya_ss file gave
    first = config_to_dict(cfg)
    again = config_from_dict(first)
    assert sorted(again.notes) == sorted(n for n in result.notes if " kept, not used: " in n)
    assert config_to_dict(again.config) == first
    assert list(first) == sorted(first) and len(first) == len(all_field_meta())


def test_messy_values_are_coerced_with_a_note():
    result = config_from_dict({
        "clip_skip": "1", "max_train_epochs": "", "sdxl_cache_text_encoder_outputs": "true", "lr_warmup": None,
        "seed": "12345", "learning_rate": "5e-05", "gradient_accumulation_steps": 2.0, "max_token_length": "225",
        "max_resolution": "768x768", "min_timestep": False,
    })
    cfg, notes = result.config, "\n".join(result.notes)
    assert cfg.clip_skip == 1 and isinstance(cfg.clip_skip, int)
    assert cfg.max_train_epochs is None
    assert cfg.sdxl_cache_text_encoder_outputs is True
    assert cfg.lr_warmup == 10 and "lr_warmup" in result.defaulted  # null = not in the file, as kohya_ss reads it
    assert cfg.seed == 12345 and cfg.learning_rate == 5e-05 and cfg.gradient_accumulation_steps == 2
    assert cfg.max_token_length == 225 and cfg.max_resolution == "768,768" and cfg.min_timestep == 0
    for key in ("clip_skip", "max_train_epochs", "sdxl_cache_text_encoder_outputs", "lr_warmup", "seed",
                "learning_rate", "max_token_length", "max_resolution", "min_timestep"):
        assert f"{key}:" in notes, key


def test_legacy_keys_and_values():
    result = config_from_dict({"lora_network_weights": "/w/a.safetensors", "xformers": True, "LoRA_type": "LoCon",
                               "use_wandb": "True", "save_as_bool": False, "my_new_option": 3})
    cfg, notes = result.config, "\n".join(result.notes)
    assert cfg.network_weights == "/w/a.safetensors" and "lora_network_weights" in notes
    assert cfg.xformers == "xformers" and cfg.LoRA_type == "LyCORIS/LoCon" and cfg.log_with == "wandb"
    assert "unknown keys ignored: my_new_option" in notes
    assert "save_as_bool" in notes  # known GUI key, reported as having no effect


def test_unreadable_value_names_the_field():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"train_batch_size": "two"})
    assert err.value.field == "train_batch_size" and "two" in str(err.value)
    with pytest.raises(ConfigError) as err:
        config_from_dict({"network_dim": 8.5})
    assert err.value.field == "network_dim"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"mixed_precision": "fp64"})
    assert err.value.field == "mixed_precision"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"max_resolution": "big"})
    assert err.value.field == "max_resolution"


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"epoch": 3,', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_file(bad)
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="JSON object"):
        load_config_file(bad)


def test_loading_sets_every_field_and_says_which_took_defaults():
    start = TrainingConfig(network_dim=128, output_name="old")
    result = config_from_dict({"epoch": 4})
    assert result.config.network_dim == 8 and result.config.output_name == "last"
    missing = [n for n in result.notes if "not in the file took defaults" in n]
    assert len(missing) == 1 and "epoch," not in missing[0]
    assert "network_dim" in result.defaulted and "epoch" not in result.defaulted
    assert len(result.defaulted) == len(all_field_meta()) - 1
    # applying a preset over the current form keeps what the preset does not mention
    over = config_from_dict({"epoch": 4}, base=start)
    assert over.config.network_dim == 128 and over.config.epoch == 4
    assert any("kept from the form" in n for n in over.notes)


def test_every_field_non_default_survives_save_and_load(tmp_path):
    values = non_default_values()
    cfg = TrainingConfig(**values)
    defaults = TrainingConfig()
    for name in values:
        assert getattr(cfg, name) != getattr(defaults, name), name
    path = save_config_file(cfg, tmp_path / "all.json")
    loaded = load_config_file(path)
    assert all(" kept, not used: " in n for n in loaded.notes), loaded.notes  # no coercion, nothing dropped
    assert loaded.config == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["all.json"]  # no temp file left behind


def test_save_keeps_unicode_and_unset_numbers(tmp_path):
    cfg = TrainingConfig(output_name="кот_v1", sample_prompts="café", max_train_epochs=None, max_grad_norm=0)
    path = save_config_file(cfg, tmp_path / "sub" / "c.json")
    text = path.read_bytes().decode("utf-8")
    data = json.loads(text)
    assert "кот_v1" in text and data["max_grad_norm"] == 0.0
    # kohya_ss reads null as "keep the form's value" (1600 steps): unset step/epoch limits are saved as its 0
    assert data["max_train_epochs"] == 0 and data["max_train_steps"] == 0 and data["noise_offset"] is None
    assert load_config_file(path).config == cfg


def test_windows_paths_round_trip_through_json(tmp_path):
    cfg = TrainingConfig(output_dir="E:\\AI\\Kohya\\Dev\\01\\XL\\model", train_data_dir="D:\\xdata\\img")
    loaded = load_config_file(save_config_file(cfg, tmp_path / "w.json")).config
    assert loaded.output_dir == "E:\\AI\\Kohya\\Dev\\01\\XL\\model" and loaded.train_data_dir == "D:\\xdata\\img"


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_our_presets_load_cleanly(path):
    result = load_config_file(path)
    assert all("not in the file took defaults" in n for n in result.notes), result.notes


def test_additional_parameters_that_a_field_holds_move_into_it():
    """edgLoRAXL: the TOML said max_grad_norm = 1.0 while the argv ended with --max_grad_norm=0, which sd-scripts
    uses (the command line wins over --config_file). Loading moves the value into the field, with a note."""
    from lora_tui.plan.launch import toml_dict

    path = next(p for p in FIXTURES if p.name == "SDXL - edgLoRAXL.json")
    result = load_config_file(path)
    assert result.config.max_grad_norm == 0.0 and result.config.additional_parameters == ""
    assert toml_dict(result.config)[0]["max_grad_norm"] == 0.0
    assert any(n.startswith("max_grad_norm: 0.0 moved in from additional_parameters ('--max_grad_norm=0')")
               for n in result.notes), result.notes
    # list options become the field's text; an option without a field stays in the argv
    kudou = load_config_file(next(p for p in FIXTURES if p.name == "SDXL - LoRA kudou-reira prodigy v4.0.json"))
    assert (kudou.config.lr_scheduler_type, kudou.config.lr_scheduler_args) == ("CosineAnnealingLR", "T_max=30")
    assert kudou.config.additional_parameters == "--network_train_unet_only"
    # a file value that the argv overrides is named in the note
    r = config_from_dict({"max_grad_norm": 2.5, "additional_parameters": "--log_prefix=x --max_grad_norm 0.5"})
    assert r.config.max_grad_norm == 0.5 and r.config.additional_parameters == "--log_prefix=x"
    note = next(n for n in r.notes if n.startswith("max_grad_norm:"))
    assert "replacing the file's 2.5" in note and "command line win" in note
    # left in the argv: an option given twice, a value of the wrong type, a field the launch derives
    for text in ("--max_grad_norm=1 --max_grad_norm=0", "--max_grad_norm=abc", "--learning_rate=1e-3"):
        r = config_from_dict({"additional_parameters": text})
        assert r.config.additional_parameters == text and not any("moved in" in n for n in r.notes)
