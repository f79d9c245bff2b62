"""The TrainingConfig model: fields, metadata, cross-field rules."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from config_helpers import SHARED
from lora_tui.config.model import (
    SECTIONS,
    TrainingConfig,
    all_field_meta,
    family,
    field_meta,
    minimal_fields,
    normalise_resolution,
    script_name,
)
from lora_tui.plan.network import network_args, network_module

UPSTREAM_ONLY = {"train_inpainting", "show_timesteps", "show_timesteps_resolution"}
# Ours, not kohya_ss's: the multi-node accelerate settings (kohya_ss users type them as extra launch args), the
# bundled trainer's speed switches, and sd-scripts' --torch_compile and --tokenizer_cache_dir, which kohya_ss's GUI
# does not offer.
OURS = ("tokenizer_cache_dir", "machine_rank", "main_process_ip", "no_cuda_graphs", "lora_fp32_weights", "channels_last", "unet_autocast",
        "torch_compile", "torch_compile_resnets")


def test_every_catalogue_parameter_is_a_field_with_the_catalogue_type():
    catalogue = json.loads((SHARED / "spec" / "kohya_lora_params.json").read_text(encoding="utf-8"))
    wanted = [p for p in catalogue if "upstream only" not in p["section"] and p["name"] not in UPSTREAM_ONLY
              and p["name"] not in ("hunyuan_image_checkbox", "anima_checkbox", "lumina_checkbox")]
    fields = TrainingConfig.model_fields
    assert [p["name"] for p in wanted] == [f for f in fields if f not in OURS]
    assert list(fields).index("machine_rank") == list(fields).index("main_process_port") + 1
    for p in wanted:
        meta = field_meta(p["name"])
        assert meta.kind == p["type"], p["name"]
        # max_train_steps: no silent 1600; the model path: offline; unet_lr: empty inherits learning_rate, so a
        # file without unet_lr trains the U-Net at its learning_rate (sd-scripts' rule), not at kohya_ss's 0.0001
        if p["name"] not in ("max_train_steps", "pretrained_model_name_or_path", "unet_lr"):
            assert meta.default == p["default"] or (meta.default is None and p["default"] == 0), p["name"]


def test_metadata_is_complete():
    for meta in all_field_meta():
        assert meta.section in SECTIONS, meta.name
        assert meta.label and meta.help, meta.name
        if meta.toml_key:
            assert f"--{meta.toml_key}" in meta.help, meta.name
        if meta.net_arg:
            assert meta.net_arg in meta.help, meta.name
    assert [m.name for m in minimal_fields()][:4] == [
        "pretrained_model_name_or_path", "train_data_dir", "output_name", "output_dir"]
    assert len(minimal_fields()) == 16 and all(m.minimal for m in minimal_fields())
    assert sum(m.minimal for m in all_field_meta()) == 16


def test_defaults_and_unset_numbers():
    cfg = TrainingConfig()
    assert cfg.pretrained_model_name_or_path == ""  # offline app: no Hub id by default
    assert cfg.max_train_steps is None and cfg.epoch == 1 and cfg.network_dim == 8
    cfg.max_train_epochs = None
    cfg.max_grad_norm = 0  # a typed 0 is kept
    assert cfg.max_grad_norm == 0.0 and cfg.max_train_epochs is None


def test_assignment_is_validated():
    cfg = TrainingConfig()
    with pytest.raises(ValidationError, match="not one of"):
        cfg.xformers = "fast"
    with pytest.raises(ValidationError):
        cfg.network_dim = "many"
    with pytest.raises(ValidationError):
        TrainingConfig(no_such_setting=1)
    cfg.network_dim = "48"  # what an Input widget hands over
    assert cfg.network_dim == 48


@pytest.mark.parametrize("given,expected", [
    ("768, 768", "768,768"), ("768x768", "768,768"), ("1024 X 768", "1024,768"), ("512", "512,512"),
    (640, "640,640"), ("1024,1024", "1024,1024"),
])
def test_resolution_is_normalised(given, expected):
    assert normalise_resolution(given) == expected
    assert TrainingConfig(max_resolution=given).max_resolution == expected


@pytest.mark.parametrize("bad", ["", "abc", "512,", "0,512", "1,2,3", "512.5,512"])
def test_bad_resolution_is_refused(bad):
    with pytest.raises(ValidationError):
        TrainingConfig(max_resolution=bad)


@pytest.mark.parametrize("flags,fam,script", [
    ({}, "sd1", "train_network.py"),
    ({"v2": True}, "sd2", "train_network.py"),
    ({"sdxl": True}, "sdxl", "sdxl_train_network.py"),
    ({"flux1_checkbox": True}, "flux1", "flux_train_network.py"),
    ({"sd3_checkbox": True}, "sd3", "sd3_train_network.py"),
    ({"sdxl": True, "flux1_checkbox": True}, "sdxl", "sdxl_train_network.py"),  # kohya_ss priority
])
def test_family_and_script(flags, fam, script):
    cfg = TrainingConfig(**flags)
    assert family(cfg) == fam and script_name(cfg) == script


def test_lora_type_gives_module_and_args():
    cfg = TrainingConfig(LoRA_type="Standard")
    assert network_module(cfg) == "networks.lora" and network_args(cfg) == []
    cfg = TrainingConfig(LoRA_type="Kohya LoCon", conv_dim=8, conv_alpha=4)
    assert network_args(cfg) == ["conv_dim=8", "conv_alpha=4"]
    cfg = TrainingConfig(LoRA_type="LyCORIS/LoCon", conv_dim=8, conv_alpha=4, LyCORIS_preset="/my presets/a.toml")
    args = network_args(cfg)
    assert network_module(cfg) == "lycoris.kohya"
    assert args[:3] == ["preset=/my presets/a.toml", "conv_dim=8", "conv_alpha=4"] and "algo=locon" in args
    assert args.count("use_tucker=False") == 1
    cfg = TrainingConfig(LoRA_type="LyCORIS/DyLoRA", unit=4, constrain=0.5)
    assert "block_size=4" in network_args(cfg) and not any(a.startswith("constraint") for a in network_args(cfg))
    cfg = TrainingConfig(LoRA_type="Standard", sd3_checkbox=True)
    assert network_module(cfg) == "networks.lora_sd3"
    cfg = TrainingConfig(LoRA_type="Flux1", flux1_checkbox=True, split_mode=True, train_t5xxl=True)
    assert network_module(cfg) == "networks.lora_flux"
    assert network_args(cfg) == ["train_double_block_indices=all", "train_single_block_indices=all",
                                 "train_blocks=single", "train_t5xxl=True"]
    cfg = TrainingConfig(LoRA_type="Standard", loraplus_lr_ratio=16, down_lr_weight="0,0,1")
    assert network_args(cfg) == ["down_lr_weight=0,0,1", "loraplus_lr_ratio=16.0"]


def test_config_and_plan_layers_import_no_textual_or_torch():
    # Every module of both layers, so that a new module is checked too.
    code = ("import importlib, pkgutil, sys, lora_tui.config, lora_tui.plan\n"
            "for pkg in (lora_tui.config, lora_tui.plan):\n"
            "    for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'): importlib.import_module(m.name)\n"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('textual','torch','diffusers','transformers',"
            "'accelerate','safetensors')]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
