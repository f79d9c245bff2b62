"""TOML and argv built from the model (spec §4-§5 minus kohya_ss's bugs), checked against sd-scripts' options."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from config_helpers import LORA_FIXTURES, PRESETS, REPO, non_default_values, sd_scripts_args, tomllib
from lora_tui.config.app_settings import AppSettings
from lora_tui.config.kohya_json import config_from_dict, load_config_file
from lora_tui.config.model import TrainingConfig, script_name
from lora_tui.plan.launch import (
    LaunchError,
    accelerate_options,
    build_launch,
    child_env,
    toml_dict,
    toml_text,
    write_launch_files,
)

from lora_tui.config.sd_scripts import BUNDLED_ONLY_OPTIONS, BUNDLED_ONLY_SCRIPTS  # noqa: E402
from lora_tui.plan.rules import validate  # noqa: E402

ARGS = sd_scripts_args()
NOW = datetime(2026, 11, 29, 10, 11, 12)


def assert_accepted(cfg: TrainingConfig) -> dict:
    """The TOML parses, and every key is an option of the chosen script with the type argparse would give."""
    data = tomllib.loads(toml_text(cfg))
    opts = ARGS[script_name(cfg)]
    for key, value in data.items():
        if key in BUNDLED_ONLY_OPTIONS and script_name(cfg) in BUNDLED_ONLY_SCRIPTS:
            assert value is True, key  # our trainer's own switches (tests/config/test_bundled_switches.py)
            continue
        assert key in opts, f"{key} is not an option of {script_name(cfg)}"
        opt = opts[key]
        values = value if opt["nargs"] in ("*", "+") else [value]
        if opt["nargs"] in ("*", "+"):
            assert isinstance(value, list), key
        for v in values:
            if opt["action"] == "_StoreTrueAction":
                assert v is True, key
            elif opt["type"] == "int":
                assert isinstance(v, int) and not isinstance(v, bool), key
            elif opt["type"] == "float":
                assert isinstance(v, float), key
            elif opt["type"] == "int_or_float":
                assert isinstance(v, (int, float)) and not isinstance(v, bool), key
            else:
                assert isinstance(v, str), key
    return data


@pytest.mark.parametrize("path", LORA_FIXTURES + PRESETS, ids=lambda p: p.stem)
def test_every_fixture_gives_a_toml_the_script_accepts(path):
    cfg = load_config_file(path).config
    data = assert_accepted(cfg)
    assert isinstance(data["resolution"], str)
    assert data["network_module"]


def test_every_family_with_every_field_set_gives_accepted_keys():
    values = non_default_values()
    for k in ("optimizer_args", "lr_scheduler_args", "additional_parameters", "extra_accelerate_launch_args"):
        values[k] = ""
    for flags in ({}, {"v2": True}, {"sdxl": True}, {"flux1_checkbox": True}, {"sd3_checkbox": True}):
        v = {**values, "sdxl": False, "flux1_checkbox": False, "sd3_checkbox": False, "v2": False, **flags}
        for lora_type in ("Standard", "LyCORIS/LoKr", "Flux1"):
            assert_accepted(TrainingConfig(**dict(v, LoRA_type=lora_type)))


def test_locon_preset_over_a_standard_form_sets_all_five():
    form = TrainingConfig(LoRA_type="Standard", network_dim=8, network_alpha=1, sdxl=True)
    preset = {"LoRA_type": "LyCORIS/LoCon", "network_dim": 32, "network_alpha": 16, "conv_dim": 8, "conv_alpha": 4}
    cfg = config_from_dict(preset, base=form).config
    assert (cfg.LoRA_type, cfg.network_dim, cfg.network_alpha, cfg.conv_dim, cfg.conv_alpha) == (
        "LyCORIS/LoCon", 32, 16, 8, 4)
    data = tomllib.loads(toml_text(cfg))
    assert data["network_module"] == "lycoris.kohya"
    assert data["network_dim"] == 32 and data["network_alpha"] == 16.0
    assert "conv_dim=8" in data["network_args"] and "conv_alpha=4" in data["network_args"]


def test_windows_paths_round_trip_through_the_toml():
    cfg = TrainingConfig(output_dir="E:\\AI\\Kohya\\Dev\\01\\XL\\model", train_data_dir="D:\\xdata\\img",
                         sdxl=True)
    data = tomllib.loads(toml_text(cfg))
    assert data["output_dir"] == "E:\\AI\\Kohya\\Dev\\01\\XL\\model"
    assert data["train_data_dir"] == "D:\\xdata\\img"


def test_prodigy_batch_epoch_dim_are_exact():
    cfg = TrainingConfig(optimizer="Prodigy", train_batch_size=3, epoch=7, network_dim=48, sdxl=True)
    data = tomllib.loads(toml_text(cfg))
    assert data["optimizer_type"] == "Prodigy"
    assert data["train_batch_size"] == 3 and type(data["train_batch_size"]) is int
    assert data["max_train_epochs"] == 7 and "max_train_steps" not in data
    assert data["network_dim"] == 48 and type(data["network_dim"]) is int


def test_zero_epoch_and_step_limits_are_not_written():
    cfg = config_from_dict({"epoch": 12, "max_train_epochs": 0, "max_train_steps": 0}).config
    data = tomllib.loads(toml_text(cfg))
    assert data["max_train_epochs"] == 12 and "max_train_steps" not in data
    assert all(data.get(k) != 0 for k in ("max_train_epochs", "max_train_steps", "epoch"))
    # explicit limits win over `epoch`
    data = tomllib.loads(toml_text(TrainingConfig(epoch=12, max_train_steps=500)))
    assert data["max_train_steps"] == 500 and "max_train_epochs" not in data
    data = tomllib.loads(toml_text(TrainingConfig(epoch=12, max_train_epochs=3)))
    assert data["max_train_epochs"] == 3


def test_sdxl_only_key_on_sd15_is_dropped_with_a_note():
    cfg = config_from_dict({"sdxl": False, "sdxl_cache_text_encoder_outputs": True, "sdxl_no_half_vae": True}).config
    data, notes = toml_dict(cfg)
    assert "cache_text_encoder_outputs" not in data and "no_half_vae" not in data
    # said once, by validation (a launch note too was noise)
    assert not any(n.startswith(("sdxl_cache_text_encoder_outputs:", "sdxl_no_half_vae:")) for n in notes)
    warned = {p.field for p in validate(cfg, None, AppSettings()) if "applies to SDXL only" in p.message}
    assert warned == {"sdxl_cache_text_encoder_outputs", "sdxl_no_half_vae"}
    cfg.sdxl = True
    data, _ = toml_dict(cfg)
    assert data["cache_text_encoder_outputs"] is True and data["no_half_vae"] is True


def test_typed_zero_is_written_and_empty_is_not():
    cfg = TrainingConfig(max_grad_norm=0, prior_loss_weight=0, noise_offset=None, scale_weight_norms=None)
    data = tomllib.loads(toml_text(cfg))
    assert data["max_grad_norm"] == 0.0 and data["prior_loss_weight"] == 0.0
    assert "noise_offset" not in data and "scale_weight_norms" not in data
    # 0 = "off" for these in both kohya_ss and sd-scripts: kept in the model, not written
    data = tomllib.loads(toml_text(TrainingConfig(seed=0, save_every_n_steps=0, sample_every_n_epochs=0)))
    assert not {"seed", "save_every_n_steps", "sample_every_n_epochs"} & set(data)


def test_learning_rates_and_train_parts():
    data = tomllib.loads(toml_text(TrainingConfig(learning_rate=3e-4, unet_lr=None, text_encoder_lr=None)))
    assert data["unet_lr"] == 3e-4 and data["text_encoder_lr"] == [3e-4, 3e-4]
    data = tomllib.loads(toml_text(TrainingConfig(unet_lr=1e-4, text_encoder_lr=0)))
    assert data["network_train_unet_only"] is True and "text_encoder_lr" not in data
    data = tomllib.loads(toml_text(TrainingConfig(unet_lr=0, text_encoder_lr=1e-5)))
    assert data["network_train_text_encoder_only"] is True and "unet_lr" not in data
    data = tomllib.loads(toml_text(TrainingConfig(flux1_checkbox=True, LoRA_type="Flux1", text_encoder_lr=1e-5,
                                                  t5xxl_lr=2e-6)))
    assert data["text_encoder_lr"] == [1e-5, 2e-6]


def test_warmup_ratio_or_steps():
    assert tomllib.loads(toml_text(TrainingConfig(lr_warmup=10)))["lr_warmup_steps"] == 0.1
    data, notes = toml_dict(TrainingConfig(lr_warmup=10, lr_warmup_steps=25))
    assert data["lr_warmup_steps"] == 25 and type(data["lr_warmup_steps"]) is int and notes
    assert "lr_warmup_steps" not in tomllib.loads(toml_text(TrainingConfig(lr_warmup=0)))
    data, notes = toml_dict(TrainingConfig(lr_warmup=10, lr_scheduler="constant"))
    assert "lr_warmup_steps" not in data and any(n.startswith("lr_warmup:") for n in notes)


def test_v2_flag_only_for_sd2():
    assert tomllib.loads(toml_text(TrainingConfig(v2=True)))["v2"] is True
    cfg = TrainingConfig(v2=True, sdxl=True)
    data, notes = toml_dict(cfg)
    assert "v2" not in data and not any(n.startswith("v2:") for n in notes)
    assert [p.severity for p in validate(cfg, None, AppSettings()) if p.field == "v2"] == ["error"]


def test_argument_strings_split_with_shell_rules():
    cfg = TrainingConfig(optimizer_args='betas=0.9,0.99 weight_decay=0.01 "eps=1e-8"',
                         lr_scheduler_args="T_max=100", additional_parameters='--caption_separator "; " --v2')
    data = tomllib.loads(toml_text(cfg))
    assert data["optimizer_args"] == ["betas=0.9,0.99", "weight_decay=0.01", "eps=1e-8"]
    assert data["lr_scheduler_args"] == ["T_max=100"]
    launch = build_launch(cfg, AppSettings(), now=NOW)
    assert launch.argv[-3:] == ["--caption_separator", "; ", "--v2"]
    with pytest.raises(LaunchError) as err:
        toml_text(TrainingConfig(optimizer_args='betas="0.9'))
    assert err.value.field == "optimizer_args"


def test_noise_offset_type_selects_its_keys():
    cfg = TrainingConfig(noise_offset=0.05, multires_noise_iterations=6, multires_noise_discount=0.3)
    data = tomllib.loads(toml_text(cfg))
    assert data["noise_offset"] == 0.05 and "multires_noise_iterations" not in data
    cfg.noise_offset_type = "Multires"
    data = tomllib.loads(toml_text(cfg))
    assert "noise_offset" not in data and data["multires_noise_iterations"] == 6


def test_kohya_minimal_bugs_are_absent():
    preset = load_config_file(REPO / "presets" / "sdxl-face-lora.json").config
    # 1. the Minimal "Learning rate" reaches the U-Net rate
    preset.learning_rate = 3e-4
    data = tomllib.loads(toml_text(preset))
    assert data["unet_lr"] == 3e-4
    # 2. the attention choice is written
    assert data["sdpa"] is True
    preset.xformers = "xformers"
    assert tomllib.loads(toml_text(preset))["xformers"] is True
    # 3. max-norm regularisation is off, and 4. the epochs drive the steps (no silent 1600)
    assert "scale_weight_norms" not in data and TrainingConfig().scale_weight_norms is None
    assert "max_train_steps" not in data and data["max_train_epochs"] == preset.epoch


def test_argv_shape_and_accelerate_flags_once(tmp_path):
    cfg = TrainingConfig(sdxl=True, output_dir=str(tmp_path / "out dir"), num_cpu_threads_per_process=3,
                         extra_accelerate_launch_args="--num_processes=2 --dynamo_backend no", gpu_ids="0,1")
    settings = AppSettings(sd_scripts_dir=tmp_path / "my sd-scripts")
    launch = build_launch(cfg, settings, now=NOW)
    argv = launch.argv
    assert Path(argv[0]).is_file() and os.access(argv[0], os.X_OK) and argv[1] == "launch"
    assert argv[argv.index("--num_cpu_threads_per_process") + 1] == "3"
    flags = [a.split("=")[0] for a in argv if a.startswith("--")]
    assert len(flags) == len(set(flags)), argv
    assert "--num_processes=2" in argv and "--gpu_ids" in argv
    script = str(tmp_path / "my sd-scripts" / "sdxl_train_network.py")
    assert argv[argv.index(script) + 1:] == ["--config_file", str(tmp_path / "out dir" / "config_lora-20261129-101112.toml")]
    assert launch.json_path == tmp_path / "out dir" / "last_20261129-101112.json"
    assert accelerate_options(TrainingConfig())[:4] == ["--dynamo_backend", "no", "--mixed_precision", "fp16"]


def test_accelerate_found_next_to_the_interpreter_without_activation(tmp_path):
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    for name in ("python", "accelerate"):
        (bindir / name).write_text("#!/bin/sh\n")
        (bindir / name).chmod(0o755)
    launch = build_launch(TrainingConfig(output_dir=str(tmp_path)), AppSettings(python=str(bindir / "python")),
                          now=NOW)
    assert launch.argv[:2] == [str(bindir / "accelerate"), "launch"]


def test_compile_keeps_inductor_cache_in_the_app_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    settings = AppSettings(cache_dir=tmp_path / "cache")
    plain = build_launch(TrainingConfig(output_dir=str(tmp_path)), settings, now=NOW)
    assert "TORCHINDUCTOR_CACHE_DIR" not in plain.env
    for field in ("torch_compile", "torch_compile_resnets"):
        launch = build_launch(TrainingConfig(output_dir=str(tmp_path), **{field: True}), settings, now=NOW)
        assert launch.env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "torchinductor")
    from lora_tui.cli import describe  # what `lora-tui print` shows: the same variable
    shown = describe(TrainingConfig(output_dir=str(tmp_path), torch_compile_resnets=True), settings)["env"]
    assert shown == {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache" / "torchinductor")}
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")  # the user's own choice stays
    mine = build_launch(TrainingConfig(output_dir=str(tmp_path), torch_compile=True), settings, now=NOW)
    assert mine.env["TORCHINDUCTOR_CACHE_DIR"] == "/elsewhere"


def test_child_env():
    env = child_env({"PATH": "/bin", "TEXTUAL_DRIVER": "x", "TEXTUAL": "1", "HOME": "/h", "LINES": "24",
                     "COLUMNS": "80"})
    assert env["PYTHONUNBUFFERED"] == "1" and env["NO_COLOR"] == "1" and env["COLUMNS"] == "200"
    assert "LINES" not in env
    assert not [k for k in env if k.startswith("TEXTUAL")] and env["HOME"] == "/h"


def test_launch_files_are_written_atomically_and_never_overwrite(tmp_path):
    cfg = TrainingConfig(sdxl=True, output_dir=str(tmp_path), output_name="кот_v1", sample_prompts="café\n")
    first = write_launch_files(build_launch(cfg, AppSettings(), now=NOW), cfg)
    second = write_launch_files(build_launch(cfg, AppSettings(), now=NOW), cfg)
    assert first.toml_path.name == "config_lora-20261129-101112.toml"
    assert second.toml_path.name == "config_lora-20261129-101112-1.toml"
    assert second.json_path.name == "кот_v1_20261129-101112-1.json"
    assert str(second.toml_path) in second.argv
    data = tomllib.loads(second.toml_path.read_text(encoding="utf-8"))
    assert data["output_name"] == "кот_v1"
    assert Path(data["sample_prompts"]).read_text(encoding="utf-8") == "café\n"
    assert load_config_file(second.json_path).config == cfg
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
