"""A value given on the command line wins over everything the file says (issue 14 item 6): `--set` is applied after
the file's legacy renames, legacy derivations and additional_parameters moves. Also what loading does with nulls,
missing machine-local paths and the derived network_train_*_only switches."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from config_helpers import REPO, tomllib

from lora_tui.cli import load_input
from lora_tui.config.kohya_json import LEGACY_RENAMES, MACHINE_LOCAL_PATHS, config_from_dict
from lora_tui.config.model import TrainingConfig, field_meta

# A value of each renamed field's type that the file's legacy key holds, and another one the command line sets.
_FILE_AND_SET = {"str": ("/from/the/file", "/from/the/command/line"), "bool": (True, "false")}


@pytest.mark.parametrize("old,new", sorted(LEGACY_RENAMES.items()))
def test_set_wins_over_every_legacy_key(tmp_path, old, new):
    kind = field_meta(new).kind
    in_file, typed = _FILE_AND_SET[kind]
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps({"LoRA_type": "Standard", old: in_file}), encoding="utf-8")
    for given in (typed, ""):  # a value, and the empty one (`--set network_weights=`: unset it)
        cfg, notes = load_input(str(path), sets=[f"{new}={given}"])
        want = {"str": given, "bool": given == "true"}[kind]
        assert getattr(cfg, new) == want, (old, given)
        assert f"{old}: legacy key ignored, {new} is given on the command line" in notes
    # without --set the legacy key is still renamed (kohya_ss's update_my_data)
    cfg, notes = load_input(str(path))
    assert getattr(cfg, new) == in_file and f"{old}: legacy key renamed to {new}" in notes


def test_print_set_empty_network_weights_wins_over_lora_network_weights(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"LoRA_type": "Standard", "sdxl": True,
                                "lora_network_weights": str(tmp_path / "old_lora.safetensors")}), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "lora_tui", "print", "--json", str(path), "--set", "network_weights="],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    info = json.loads(r.stdout)
    assert info["settings"]["network_weights"] == ""
    assert "network_weights" not in tomllib.loads(info["config_toml"])
    assert "network_weights: set to '' from the command line" in info["notes"]


def test_set_wins_over_legacy_derivations_and_argv_moves():
    data = {"LoRA_type": "Standard", "use_8bit_adam": True, "use_wandb": "True",
            "additional_parameters": "--max_grad_norm=0 --network_train_unet_only"}
    res = config_from_dict(data, overrides={"optimizer": "Lion", "log_with": "", "max_grad_norm": "0.5"})
    cfg, notes = res.config, "\n".join(res.notes)
    assert cfg.optimizer == "Lion" and cfg.log_with == "" and cfg.max_grad_norm == 0.5
    # the argv option that would have beaten the --set value is gone from the argv, with a note
    assert cfg.additional_parameters == "--network_train_unet_only"
    assert "'--max_grad_norm=0' dropped, max_grad_norm is given on the command line" in notes
    # and a --set replaces an unreadable file value before it is read
    fixed = config_from_dict({"LoRA_type": "Standard", "network_dim": "lots"}, overrides={"network_dim": "16"})
    assert fixed.config.network_dim == 16


def test_a_null_for_a_setting_that_cannot_be_unset_is_missing():
    res = config_from_dict({"LoRA_type": "Standard", "lr_warmup": None, "epoch": None, "seed": None})
    assert res.config.lr_warmup == 10 and res.config.epoch == 1  # the defaults, as for a missing key
    assert res.config.seed is None  # an optional number: null is unset, as we save it
    assert {"lr_warmup", "epoch"} <= set(res.defaulted) and "seed" not in res.defaulted
    assert "lr_warmup: null read as not in the file (kohya_ss keeps the form's value for a null)" in res.notes
    base = TrainingConfig(lr_warmup=5)
    assert config_from_dict({"LoRA_type": "Standard", "lr_warmup": None}, base=base).config.lr_warmup == 5


def test_missing_machine_local_paths_keep_the_forms_values_and_the_notes_count_right():
    form = TrainingConfig(**{name: f"/mine/{name}" for name in MACHINE_LOCAL_PATHS}, reg_data_dir="/mine/reg")
    res = config_from_dict({"LoRA_type": "Standard", "output_dir": "/file/out"}, local=form)
    for name in MACHINE_LOCAL_PATHS:
        assert getattr(res.config, name) == ("/file/out" if name == "output_dir" else f"/mine/{name}")
    assert res.config.reg_data_dir == ""  # not a machine-local path: a training setting, it takes the default
    kept = [n for n in res.notes if "machine-local" in n]
    assert kept == ["3 machine-local paths not in the file were kept from the form: pretrained_model_name_or_path, "
                    "train_data_dir, logging_dir"]
    assert "output_dir" not in res.defaulted and "train_data_dir" not in res.defaulted
    assert "reg_data_dir" in res.defaulted
    # plurals: one setting missing
    every = {m: getattr(TrainingConfig(), m) for m in TrainingConfig.model_fields if m != "seed"}
    one = config_from_dict(every)
    assert "1 setting not in the file took its default: seed" in one.notes
    assert not [n for n in one.notes if "1 settings" in n]
    assert "1 setting not in the file kept from the form: seed" in config_from_dict(every, base=form).notes


def test_network_train_switches_in_a_file_are_explained_not_called_unknown():
    res = config_from_dict({"LoRA_type": "Standard", "text_encoder_lr": 0, "network_train_unet_only": True,
                            "network_train_text_encoder_only": False})
    notes = "\n".join(res.notes)
    assert "unknown keys" not in notes
    assert "network_train_unet_only: True kept: lora-tui writes it from text_encoder_lr 0" in notes
    lost = config_from_dict({"LoRA_type": "Standard", "text_encoder_lr": 1e-4, "network_train_unet_only": True})
    assert any(n.startswith("network_train_unet_only: True not carried over") for n in lost.notes)
