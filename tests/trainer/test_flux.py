"""Flux.1 in the bundled trainer, end to end on a tiny Flux model built in the test: the single-file layouts
round-trip through the loaders, `flux_train_network.py` trains through `accelerate launch` with a kohya
`--config_file`, and the LoRA has kohya's key set, loads into diffusers' FluxPipeline and matches our network;
networks.lora_flux options change what they should. Three torch processes in all (build, train, check).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SD = REPO / "sd-scripts"
PHOTOS = REPO / "lora_tui" / "demo" / "photos"
ACCELERATE = Path(sys.executable).with_name("accelerate")
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
CHECK = Path(__file__).with_name("flux_check.py")


def _run(argv, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=ENV, timeout=timeout)


def _check(*argv) -> dict:
    r = _run([sys.executable, CHECK, *argv])
    line = [x for x in r.stdout.splitlines() if x.startswith("FLUX_CHECK ")]
    assert r.returncode == 0 and line, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(line[-1][len("FLUX_CHECK "):])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("flux_model")
    return d, _check("build", d)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    model, _ = tiny
    root = tmp_path_factory.mktemp("flux_run")
    sub = root / "img" / "2_demo person"
    sub.mkdir(parents=True)
    for p in sorted(p for p in PHOTOS.iterdir() if p.suffix == ".jpg")[:2]:
        shutil.copy(p, sub / p.name)
        (sub / (p.stem + ".txt")).write_text("a photo of sks person\n")
    toml = root / "config.toml"
    toml.write_text("\n".join([
        "[model_arguments]", f'pretrained_model_name_or_path = "{model / "flux1-tiny.safetensors"}"',
        f'ae = "{model / "ae.safetensors"}"', f'clip_l = "{model / "clip_l.safetensors"}"',
        f't5xxl = "{model / "t5xxl_tiny.safetensors"}"', f'tokenizer_cache_dir = "{model / "tokenizers"}"',
        "[dataset_arguments]", f'train_data_dir = "{root / "img"}"', 'resolution = "64,64"',
        'caption_extension = ".txt"', "cache_latents = true", "enable_bucket = true", "bucket_reso_steps = 64",
        "min_bucket_reso = 64", "max_bucket_reso = 128",
        "[training_arguments]", f'output_dir = "{root / "out"}"', 'output_name = "flux_demo"',
        "max_train_steps = 3", "learning_rate = 0.001", "seed = 1", 'network_module = "networks.lora_flux"',
        "network_dim = 4", "t5xxl_max_token_length = 16", "apply_t5_attn_mask = true", "guidance_scale = 1.0",
        'timestep_sampling = "sigmoid"', 'model_prediction_type = "raw"', "fp8_base = true", 'mixed_precision = "bf16"',  # sd-scripts needs it with fp8; on a CPU: fp32
        "gradient_checkpointing = true", "cache_text_encoder_outputs = true"]) + "\n")
    r = _run([ACCELERATE, "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", SD / "flux_train_network.py",
              "--config_file", toml])
    return root, r


def test_single_files_round_trip(tiny):
    _, res = tiny
    assert res["roundtrip"] == {"transformer": True, "ae": True, "clip_l": True, "t5xxl": True}
    assert res["comfy_roundtrip"] == {"transformer": True, "ae": True, "clip_l": True, "t5xxl": True}
    assert res["kinds"] == {"transformer": "transformer", "ae": "ae", "clip_l": "clip_l", "t5xxl": "t5xxl"}
    err = res["missing_tokenizer_error"]
    assert "tokenizer_cache_dir" in err and "google/t5-v1_1-xxl" in err and "spiece.model" in err


def test_flux_lora_trains_and_loads_in_diffusers(tiny, trained):
    model, _ = tiny
    root, r = trained
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "fp8 base:" in r.stdout and "LORA_TUI_SAVED" in r.stdout
    lora = root / "out" / "flux_demo.safetensors"
    res = _check("check", model, lora)
    assert res["unet_names_equal"] and res["te1_pattern"] and res["te1_names"] == 12 and res["other_names"] == []
    assert res["per_module_keys"] and res["up_nonzero"]
    assert res["qkv_up_shape"] == [3 * 32, 4] and res["linear1_up_shape"] == [3 * 32 + 4 * 32, 4]
    assert res["meta"] == {"ss_network_module": "networks.lora_flux", "ss_base_model_version": "flux1",
                           "modelspec.architecture": "flux-1-dev/lora", "ss_timestep_sampling": "sigmoid",
                           "ss_model_prediction_type": "raw", "ss_guidance_scale": "1.0", "ss_network_dim": "4",
                           "ss_network_alpha": "1"}
    assert res["diffusers_problems"] == []
    assert res["diffusers_changes"] > 0 and res["diffusers_te_changes"] > 0
    assert res["ours_vs_diffusers"] < 1e-5 and res["ours_vs_diffusers_te"] < 1e-5
    assert res["load_missing_unexpected"] == [0, 0]
    o = res["options"]
    assert o["split_linear1"] == [[4 * 4, 32], [224, 4 * 4], True] and o["split_roundtrip"]
    assert o["single_only"] == ["single", "text"]
    assert o["t5"] == 3 and o["img_attn_dim0"] is False and o["single_dim8"] == [8, 160]
    assert o["in_dims"] == ["lora_unet_img_in", "lora_unet_time_in_in_layer", "lora_unet_time_in_out_layer",
                            "lora_unet_txt_in"]
    assert o["double_idx"] == ["1"] and o["alpha"] == 2.0


def test_flux_refusals_before_loading(tmp_path):
    """Wrong or missing Flux inputs fail in a second, naming the option (no torch model load)."""
    r = _run([sys.executable, SD / "flux_train_network.py", "--pretrained_model_name_or_path", tmp_path / "no.safetensors",
              "--output_dir", tmp_path, "--train_data_dir", tmp_path, "--network_module", "networks.lora",
              "--blocks_to_swap", "8", "--model_type", "chroma", "--network_args", "train_blocks=some"])
    assert r.returncode == 1
    err = r.stderr
    for needle in ("ae is not set", "clip_l is not set", "t5xxl is not set", "networks.lora_flux",
                   "blocks_to_swap", "model_type"):
        assert needle in err, err


def test_flux_preflight_reports_findings_by_field(tiny, tmp_path):
    """`--preflight` (what the app runs before Start): findings on their options, nothing loaded or written."""
    model, _ = tiny
    r = _run([sys.executable, SD / "flux_train_network.py", "--preflight",
              "--pretrained_model_name_or_path", model / "flux1-tiny.safetensors", "--ae", model / "ae.safetensors",
              "--clip_l", model / "t5xxl_tiny.safetensors", "--t5xxl", tmp_path / "none.safetensors",
              "--train_data_dir", tmp_path, "--output_dir", tmp_path / "out", "--network_module", "networks.lora_flux",
              "--bucket_reso_steps", "32", "--enable_bucket", "--noise_offset", "0.1"])
    lines = [json.loads(x.split(" ", 1)[1]) for x in r.stdout.splitlines() if x.startswith("LORA_TUI_PREFLIGHT")]
    assert r.returncode == 1 and lines[-1]["ok"] is False, r.stdout + r.stderr
    by = {(f["field"], f["severity"]) for f in lines[:-1]}
    assert {("bucket_reso_steps", "error"), ("clip_l", "error"), ("t5xxl", "error"),
            ("noise_offset", "warning")} <= by, lines
    assert not (tmp_path / "out").exists()


def test_flux_preflight_passes_the_trained_config_and_names_bad_ones(trained):
    """`flux_train_network.py --preflight` on the TOML that trained above: no error; with a missing ae file and an
    unknown optimizer keyword: both named on their options, nothing written (issue 13's preflight, Flux.1 too)."""
    root, _ = trained
    toml = root / "config.toml"
    r = _run([sys.executable, SD / "flux_train_network.py", "--config_file", toml, "--preflight"])
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("LORA_TUI_PREFLIGHT_DONE"), r.stdout + r.stderr
    r = _run([sys.executable, SD / "flux_train_network.py", "--config_file", toml, "--ae", root / "none.safetensors",
              "--optimizer_args", "foo=1", "--output_dir", root / "pre_out", "--preflight"])
    lines = [json.loads(ln.split(" ", 1)[1]) for ln in r.stdout.splitlines() if ln.startswith("LORA_TUI_PREFLIGHT ")]
    assert r.returncode == 1 and {f["field"] for f in lines if f["severity"] == "error"} >= {"ae", "optimizer_args"}, \
        r.stdout + r.stderr
    assert not (root / "pre_out").exists()
