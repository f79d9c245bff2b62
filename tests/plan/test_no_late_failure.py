"""Failures that used to come after Start (model loaded, latents cached) and are now reported before it (issue 13
§3, app side): no accelerate for the trainer's Python, an accelerate config file with keys the installed
accelerate does not know, the `python` setting ignored by the launch, log_with without logging_dir, a training
option typed into optimizer_args, a Windows path on Linux."""
from __future__ import annotations

import subprocess
import sys

import pytest
import tomllib

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.model import TrainingConfig
from lora_tui.plan.accelerate_config import cluster_config_keys
from lora_tui.plan.launch import build_launch, toml_dict
from lora_tui.plan.rules import validate
from lora_tui.plan.rules_launch import launch_problems
from lora_tui.plan.trainer_packages import package_location


@pytest.fixture
def bare_python(tmp_path):
    """A real interpreter without site-packages (so without accelerate): this venv's Python run with -S, in a
    folder of its own with no accelerate script beside it."""
    path = tmp_path / "bare" / "bin" / "python"
    path.parent.mkdir(parents=True)
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n', encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def _hf_env(tmp_path, yaml_text):
    d = tmp_path / "hf" / "accelerate"
    d.mkdir(parents=True)
    (d / "default_config.yaml").write_text(yaml_text, encoding="utf-8")
    return {"HF_HOME": str(tmp_path / "hf")}, d / "default_config.yaml"


def test_no_accelerate_for_the_trainers_python_is_an_error_naming_it(bare_python):
    found = [p for p in launch_problems(TrainingConfig(), AppSettings(python=bare_python), env={})
             if "accelerate" in p.message]
    assert [(p.field, p.severity) for p in found] == [("", "error")], found
    assert bare_python in found[0].message and "has no accelerate" in found[0].message
    # and through validate, as the app and `lora-tui validate` show it
    assert any(bare_python in p.message and p.severity == "error"
               for p in validate(TrainingConfig(), None, AppSettings(python=bare_python)))
    # this venv has accelerate: no such error
    assert not [p for p in launch_problems(TrainingConfig(), AppSettings(), env={}) if "accelerate package" in p.message]


def test_a_python_setting_that_does_not_exist_is_an_error_naming_it(tmp_path):
    missing = str(tmp_path / "nope" / "python3")
    found = launch_problems(TrainingConfig(), AppSettings(python=missing), env={})
    assert [(p.field, p.severity) for p in found] == [("", "error")]
    assert missing in found[0].message and "does not exist" in found[0].message


def test_accelerate_config_with_keys_this_accelerate_does_not_know_is_an_error_naming_the_file(tmp_path):
    env, path = _hf_env(tmp_path, "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_processes: 1\n"
                                  "mixed_precision: fp16\nipex_config: {}\nuse_mps_device: false\n")
    found = [p for p in launch_problems(TrainingConfig(), AppSettings(), env=env) if "does not know" in p.message]
    assert [(p.field, p.severity) for p in found] == [("extra_accelerate_launch_args", "error")], found
    assert str(path) in found[0].message and "ipex_config, use_mps_device" in found[0].message
    # The installed accelerate's own loader refuses exactly this file, and the keys read from its source are its
    # dataclass's (the test may import accelerate; lora_tui never does).
    import dataclasses

    from accelerate.commands.config.config_args import ClusterConfig

    with pytest.raises(ValueError, match=r"unknown keys \(\['ipex_config', 'use_mps_device'\]\)"):
        ClusterConfig.from_yaml_file(str(path))
    keys = cluster_config_keys(package_location("", "accelerate"))
    assert keys == {f.name for f in dataclasses.fields(ClusterConfig)} | {"fp16", "dynamo_backend"}


def test_a_known_accelerate_config_passes_and_one_without_distributed_type_is_an_error(tmp_path):
    env, path = _hf_env(tmp_path, "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_processes: 1\n"
                                  "mixed_precision: bf16\ndynamo_config: {}\nfp16: false\ngpu_ids: all\n")
    assert launch_problems(TrainingConfig(), AppSettings(), env=env, gpu_count=None) == []
    path.write_text("compute_environment: LOCAL_MACHINE\nmixed_precision: bf16\n", encoding="utf-8")
    found = launch_problems(TrainingConfig(), AppSettings(), env=env, gpu_count=None)
    assert [(p.field, p.severity) for p in found] == [("extra_accelerate_launch_args", "error")]
    assert "distributed_type" in found[0].message and str(path) in found[0].message


def test_the_python_setting_runs_accelerate_launch_even_without_an_accelerate_script_beside_it(bare_python,
                                                                                              tmp_path):
    # Before: no `accelerate` beside the configured Python → lora-tui's own venv accelerate (or PATH's) ran the
    # trainer with another interpreter, silently.
    launch = build_launch(TrainingConfig(output_dir=str(tmp_path)), AppSettings(python=bare_python))
    assert launch.argv[:3] == [bare_python, "-m", "accelerate.commands.launch"]
    # The command really runs that interpreter: the bare one has no accelerate, so it says so (not another's).
    ran = subprocess.run(launch.argv[:3] + ["--help"], capture_output=True, text=True, timeout=60)
    assert ran.returncode != 0 and "No module named 'accelerate'" in ran.stderr


def test_log_with_without_logging_dir_gets_output_dir_logs_with_a_note(tmp_path):
    for tracker in ("tensorboard", "all", "wandb"):
        data, notes = toml_dict(TrainingConfig(output_dir=str(tmp_path), log_with=tracker))
        assert data["logging_dir"] == str(tmp_path / "logs")
        assert any(n.startswith(f"logging_dir: {tmp_path / 'logs'}") and tracker in n for n in notes), notes
    launch = build_launch(TrainingConfig(output_dir=str(tmp_path), log_with="tensorboard"), AppSettings())
    assert tomllib.loads(launch.toml_text)["logging_dir"] == str(tmp_path / "logs")
    # a logging_dir given is kept; no tracker, no folder
    data, _ = toml_dict(TrainingConfig(output_dir=str(tmp_path), log_with="tensorboard", logging_dir="/x/logs"))
    assert data["logging_dir"] == "/x/logs"
    assert "logging_dir" not in toml_dict(TrainingConfig(output_dir=str(tmp_path)))[0]


@pytest.mark.parametrize("arg,where", [
    ("network_train_unet_only=True", "set text_encoder_lr to 0"),
    ("--network_train_unet_only", "set text_encoder_lr to 0"),
    ("max_grad_norm=0", "max_grad_norm field"),
    ("--gradient_checkpointing", "gradient_checkpointing field"),
])
def test_a_training_option_in_optimizer_args_says_where_it_goes(arg, where):
    cfg = TrainingConfig(optimizer="AdamW", optimizer_args=f"weight_decay=0.01 {arg}")
    found = [p for p in validate(cfg, None, AppSettings()) if p.field == "optimizer_args"]
    assert [p.severity for p in found] == ["error"], found
    assert f"'{arg}' is a training option" in found[0].message and where in found[0].message
    # optimizer keywords stay quiet
    cfg = TrainingConfig(optimizer="AdamW", optimizer_args="weight_decay=0.01 betas=0.9,0.99")
    assert not [p for p in validate(cfg, None, AppSettings()) if p.field == "optimizer_args"]


def test_a_windows_path_on_linux_is_a_warning_suggesting_slashes():
    cfg = TrainingConfig(train_data_dir="C:\\data\\img", output_dir="D:\\out")
    found = {p.field: p for p in validate(cfg, None, AppSettings()) if "'\\'" in p.message}
    assert set(found) == {"train_data_dir", "output_dir"}, found
    assert found["train_data_dir"].severity == "warning"
    assert "'C:/data/img'" in found["train_data_dir"].message


def test_a_bare_python_name_is_looked_up_in_path(tmp_path, monkeypatch, bare_python):
    monkeypatch.setenv("PATH", f"{tmp_path / 'bare' / 'bin'}{__import__('os').pathsep}/usr/bin:/bin")
    launch = build_launch(TrainingConfig(output_dir=str(tmp_path)), AppSettings(python="python"))
    assert launch.argv[:3] == [bare_python, "-m", "accelerate.commands.launch"]
    found = launch_problems(TrainingConfig(), AppSettings(python="no-such-python-here"), env={})
    assert [(p.field, p.severity) for p in found] == [("", "error")] and "not found in PATH" in found[0].message
