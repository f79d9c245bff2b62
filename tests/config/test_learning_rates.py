"""The learning rate on screen is the one that trains (issue 14): sd-scripts' rule (unet_lr / text_encoder_lr
override learning_rate where set) in the model, the loader, the launch and `lora-tui print`."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from config_helpers import REPO, tomllib

from lora_tui.config.kohya_json import config_from_dict
from lora_tui.config.model import TrainingConfig
from lora_tui.config.rates import lr_hint, minimal_lr_field, rates_in_force
from lora_tui.plan.launch import toml_dict


def _print(tmp_path, data: dict, *sets: str) -> dict:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    args = [sys.executable, "-m", "lora_tui", "print", "--json", str(path)]
    for s in sets:
        args += ["--set", s]
    r = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.stdout, r.stderr
    return json.loads(r.stdout)


def test_print_trains_the_unet_at_the_files_only_learning_rate(tmp_path):
    # A kohya file with learning_rate only: before, unet_lr took the default 0.0001 and beat it.
    info = _print(tmp_path, {"LoRA_type": "Standard", "sdxl": True, "learning_rate": 0.0002})
    toml = tomllib.loads(info["config_toml"])
    assert toml["learning_rate"] == 0.0002 and toml["unet_lr"] == 0.0002
    assert info["learning_rates"]["unet"] == {"rate": 0.0002, "from": "learning_rate"}
    assert info["settings"]["unet_lr"] is None  # unset, not 0.0001


def test_print_keeps_a_files_unet_lr_without_a_false_alarm(tmp_path):
    info = _print(tmp_path, {"LoRA_type": "Standard", "sdxl": True, "unet_lr": 0.0003, "text_encoder_lr": 5e-5})
    toml = tomllib.loads(info["config_toml"])
    assert toml["unet_lr"] == 0.0003 and toml["learning_rate"] == 0.0001
    assert info["learning_rates"]["unet"] == {"rate": 0.0003, "from": "unet_lr"}
    assert info["learning_rates"]["text_encoder"] == {"rate": 5e-5, "from": "text_encoder_lr"}
    lr_problems = [p for p in info["problems"] if p["field"] in ("learning_rate", "unet_lr", "text_encoder_lr")]
    assert lr_problems == []


def test_print_text_names_the_rates_in_force(tmp_path):
    path = tmp_path / "demo_like.json"
    path.write_text(json.dumps({"LoRA_type": "Standard", "sdxl": True, "learning_rate": 0.0005, "unet_lr": 0.0005,
                                "text_encoder_lr": 0.0}), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "lora_tui", "print", str(path), "--set", "unet_lr=1e-4"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    lines = r.stdout.splitlines()
    rates = lines[lines.index("# learning rates") + 1]
    assert rates == "U-Net 0.0001 (unet_lr) · text encoder not trained"


# (learning_rate, unet_lr, text_encoder_lr) → (U-Net rate, its source, TE rate, its source)
CASES = [
    ((1e-4, None, None), (1e-4, "learning_rate", 1e-4, "learning_rate")),
    ((1e-4, 5e-4, None), (5e-4, "unet_lr", 1e-4, "learning_rate")),
    ((1e-4, None, 5e-5), (1e-4, "learning_rate", 5e-5, "text_encoder_lr")),
    ((1e-4, None, 0.0), (1e-4, "learning_rate", 0.0, "")),      # text_encoder_lr 0: U-Net only
    ((1e-4, 0.0, 5e-5), (0.0, "", 5e-5, "text_encoder_lr")),    # unet_lr 0: text encoder only
    ((5e-4, 0.0, 0.0), (5e-4, "learning_rate", 5e-4, "learning_rate")),  # both 0 = both unset (kohya_ss)
]


@pytest.mark.parametrize("given,expected", CASES)
def test_rates_in_force_match_what_the_launch_writes(given, expected):
    lr, unet, te = given
    cfg = TrainingConfig(sdxl=True, learning_rate=lr, unet_lr=unet, text_encoder_lr=te)
    r = rates_in_force(cfg)
    assert (r.unet.rate, r.unet.source, r.text_encoder.rate, r.text_encoder.source) == expected
    toml, _ = toml_dict(cfg)
    # What sd-scripts does with that TOML: a written rate wins, an omitted one falls back to learning_rate, and a
    # network_train_*_only switch leaves the other part untrained.
    u = 0.0 if toml.get("network_train_text_encoder_only") else toml.get("unet_lr", toml["learning_rate"])
    t = 0.0 if toml.get("network_train_unet_only") else toml.get("text_encoder_lr", [toml["learning_rate"]])[0]
    assert (u, t) == (expected[0], expected[2])
    # the Minimal row edits the field the U-Net's rate comes from; the hints name the rates in force
    assert minimal_lr_field(cfg) == ("unet_lr" if unet is not None and expected[1] != "learning_rate"
                                     else "learning_rate")
    hints = " ".join(lr_hint(cfg, n) for n in ("learning_rate", "unet_lr", "text_encoder_lr"))
    for part, rate in (("U-Net", expected[0]), ("text encoder", expected[2])):
        assert (f"{rate:g}" in hints) if rate else (f"the {part} is not trained" in hints), (part, hints)


def test_a_file_without_unet_lr_leaves_it_unset():
    assert TrainingConfig().unet_lr is None
    res = config_from_dict({"LoRA_type": "Standard", "learning_rate": 0.0002})
    assert res.config.unet_lr is None and "unet_lr" in res.defaulted
    assert minimal_lr_field(res.config) == "learning_rate"
    assert lr_hint(res.config, "learning_rate").startswith("in force for the U-Net")
    assert lr_hint(res.config, "unet_lr") == "empty: the U-Net trains at learning_rate 0.0002"
    file_unet = config_from_dict({"LoRA_type": "Standard", "unet_lr": 0.0003}).config
    assert minimal_lr_field(file_unet) == "unet_lr"
    assert lr_hint(file_unet, "learning_rate") == ("not used: the U-Net trains at unet_lr 0.0003, the text encoder "
                                                   "trains at text_encoder_lr 0.0001")
    assert lr_hint(file_unet, "unet_lr") == "in force: the U-Net trains at 0.0003, not at learning_rate 0.0001"
