"""additional_parameters against the launched script's options (found in a fresh user's trial: `--foo 3` and
`--lr_warmup_steps=abc` passed validation, then the trainer stopped with a usage dump). Checked against the
bundled trainer's real argparse parser, which refuses exactly what validation calls an error."""
from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys
from pathlib import Path

import pytest
from plan_helpers import make_cfg

from lora_tui.config.app_settings import AppSettings
from lora_tui.plan.rules import validate
from lora_tui.plan.rules_argv import argv_problems, trainer_options

REPO = Path(__file__).resolve().parents[2]
SPEC_ARGS = REPO.parent / "shared" / "spec" / "sd_scripts_args.json"

CASES = [
    "--foo 3", "--lr_warmup_steps=abc", "--lr_warmup_steps 0.1", "--lr_warmup_steps 10", "--max_grad_norm 2",
    "--max_grad_norm x", "--max_grad_norm", "--seed 1 2", "--seed 1.5", "--seed -3", "--cache_latents",
    "--cache_latents true", "--cache_latents=1", "--max_grad 0.5", "--lr 1", "--max_grad_nrm 3",
    "--noise_offset 0.05 --seed 7", "--base_weights a.safetensors b.safetensors",
    "--base_weights=a.safetensors b.safetensors", "--base_weights_multiplier 0.5 x", "--channels_last",
    "--caption_prefix -x", "--network_args conv_dim=4 conv_alpha=1",
]


def _argv_errors(cfg, settings):
    return [p for p in validate(cfg, None, settings) if p.field == "additional_parameters" and p.severity == "error"]


def _bundled_parser_accepts(tokens):
    sys.path.insert(0, str(REPO / "sd-scripts"))
    try:
        from lora_trainer.args import build_parser
    finally:
        sys.path.pop(0)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            build_parser("train_network").parse_args(tokens)
    except SystemExit:
        return False
    return True


def test_errors_are_exactly_what_the_bundled_trainer_refuses():
    settings = AppSettings()  # the bundled trainer
    for text in CASES:
        # argv_problems alone: the bundled trainer refuses some options later, at start-up (another rule)
        errors = [p for p in argv_problems(make_cfg(additional_parameters=text), settings) if p.severity == "error"]
        assert bool(errors) != _bundled_parser_accepts(shlex.split(text)), (text, errors)


def test_unknown_option_is_named_with_the_closest_known_ones():
    settings = AppSettings()
    [err] = _argv_errors(make_cfg(additional_parameters="--max_grad_nrm 3"), settings)
    assert "--max_grad_nrm" in err.message and "closest: --max_grad_norm" in err.message
    [err] = _argv_errors(make_cfg(additional_parameters="--foo 3"), settings)
    assert "--foo" in err.message and "train_network.py" in err.message and "remove it" in err.message
    [err] = _argv_errors(make_cfg(additional_parameters="--lr_warmup_steps=abc"), settings)
    assert "--lr_warmup_steps" in err.message and "'abc'" in err.message


def test_a_wrong_value_gets_no_second_message_about_the_config_file():
    problems = [p for p in validate(make_cfg(additional_parameters="--seed 1 2"), None, AppSettings())
                if p.field == "additional_parameters"]
    assert len(problems) == 1 and problems[0].severity == "error"


def test_upstream_sd_scripts_uses_the_spec_options_without_the_bundled_switches(settings):
    spec = json.loads(SPEC_ARGS.read_text(encoding="utf-8"))
    for flags in ({}, {"sdxl": True}):
        cfg = make_cfg(**flags)
        script = "sdxl_train_network" if flags else "train_network"
        assert set(trainer_options(cfg, settings)) == set(spec[script])
    assert _argv_errors(make_cfg(additional_parameters="--channels_last"), settings)
    assert not _argv_errors(make_cfg(additional_parameters="--channels_last"), AppSettings())
    # a flux option is no option of the SD1.x script
    [err] = _argv_errors(make_cfg(additional_parameters="--t5xxl_max_token_length 512"), settings)
    assert "train_network.py" in err.message


@pytest.mark.parametrize("text", ["--max_grad 0.5"])
def test_an_abbreviated_option_works_with_a_warning(text):
    found = [p for p in validate(make_cfg(additional_parameters=text), None, AppSettings())
             if p.field == "additional_parameters"]
    assert [p.severity for p in found] == ["warning", "warning"] and "--max_grad_norm in full" in found[0].message
    # read as argparse reads it, the prefix is max_grad_norm, whose TOML value the command line overrides
    assert "max_grad_norm = 1.0" in found[1].message and "uses the command line's 0.5" in found[1].message


def _argv_warnings(text):
    return [p.message for p in validate(make_cfg(additional_parameters=text), None, AppSettings())
            if p.field == "additional_parameters" and p.severity == "warning"]


def test_an_option_given_twice_gets_one_warning_naming_the_value_argparse_keeps():
    text = "--max_grad_norm 0 --max_grad_norm 2"
    [msg] = _argv_warnings(text)
    assert "twice" in msg and "sd-scripts uses 2," in msg and "max_grad_norm = 1.0" in msg
    assert "uses 0" not in msg and "uses the command line's 0" not in msg
    # the trainer's own parser agrees: the last value is the one it runs with
    sys.path.insert(0, str(REPO / "sd-scripts"))
    try:
        from lora_trainer.args import build_parser
    finally:
        sys.path.pop(0)
    assert build_parser("train_network").parse_args(shlex.split(text)).max_grad_norm == 2.0
    # the last value equal to the config's: still one warning (the first value is dead text)
    [msg] = _argv_warnings("--max_grad_norm 0 --max_grad_norm 1")
    assert "sd-scripts uses 1: keep one --max_grad_norm" in msg
    # given once, the override warning names that value
    [msg] = _argv_warnings("--max_grad_norm 0")
    assert "uses the command line's 0" in msg
    assert not _argv_warnings("--log_prefix a")
