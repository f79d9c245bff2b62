"""SD3 / SD3.5 in the bundled trainer, end to end on a tiny SD3.5 Medium-shaped model built in the test: the single
files (text encoders inside, and apart) round-trip through the loaders, `sd3_train_network.py` trains through
`accelerate launch` with a kohya `--config_file`, and the LoRA has kohya's key set, loads into diffusers'
StableDiffusion3Pipeline and matches our network; networks.lora_sd3 options change what they should. Three torch
processes in all (build, train, check).
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
CHECK = Path(__file__).with_name("sd3_check.py")


def _run(argv, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=ENV, timeout=timeout)


def _check(*argv) -> dict:
    r = _run([sys.executable, CHECK, *argv])
    line = [x for x in r.stdout.splitlines() if x.startswith("SD3_CHECK ")]
    assert r.returncode == 0 and line, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(line[-1][len("SD3_CHECK "):])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("sd3_model")
    return d, _check("build", d)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    model, _ = tiny
    root = tmp_path_factory.mktemp("sd3_run")
    sub = root / "img" / "2_demo person"
    sub.mkdir(parents=True)
    for p in sorted(p for p in PHOTOS.iterdir() if p.suffix == ".jpg")[:2]:
        shutil.copy(p, sub / p.name)
        (sub / (p.stem + ".txt")).write_text("a photo of sks person\n")
    prompts = root / "prompts.txt"
    prompts.write_text("a photo of sks person --w 64 --h 64 --s 2 --d 1 --l 4.0 --n blurry\n")
    toml = root / "config.toml"
    toml.write_text("\n".join([
        "[model_arguments]", f'pretrained_model_name_or_path = "{model / "sd3_tiny.safetensors"}"',
        f'tokenizer_cache_dir = "{model / "tokenizers"}"',
        "[dataset_arguments]", f'train_data_dir = "{root / "img"}"', 'resolution = "64,64"',
        'caption_extension = ".txt"', "cache_latents = true", "enable_bucket = true", "bucket_reso_steps = 64",
        "min_bucket_reso = 64", "max_bucket_reso = 128",
        "[training_arguments]", f'output_dir = "{root / "out"}"', 'output_name = "sd3_demo"',
        "max_train_steps = 3", "learning_rate = 0.001", "seed = 1", 'network_module = "networks.lora_sd3"',
        "network_dim = 4", "t5xxl_max_token_length = 16", "apply_t5_attn_mask = true", "apply_lg_attn_mask = true",
        'weighting_scheme = "logit_normal"', "training_shift = 3.0", "fp8_base = true",
        "gradient_checkpointing = true", "clip_l_dropout_rate = 0.3", "t5_dropout_rate = 0.3",
        f'sample_prompts = "{prompts}"', "sample_every_n_steps = 3"]) + "\n")
    r = _run([ACCELERATE, "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", SD / "sd3_train_network.py",
              "--config_file", toml])
    return root, r


def test_single_files_round_trip(tiny):
    _, res = tiny
    parts = {"transformer": True, "vae": True, "clip_l": True, "clip_g": True, "t5xxl": True}
    assert res["roundtrip"] == parts and res["split_roundtrip"] == parts
    assert res["kinds"] == {"checkpoint": "checkpoint"}
    assert res["split_kinds"] == {"checkpoint": "checkpoint", "clip_l": "clip_l", "clip_g": "clip_g",
                                  "t5xxl": "t5xxl"}
    assert res["included"] == ["clip_g", "clip_l", "t5xxl", "vae"] and res["split_included"] == ["vae"]
    assert res["model_type"] == "5-medium"


def test_sd3_lora_trains_and_loads_in_diffusers(tiny, trained):
    model, _ = tiny
    root, r = trained
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "fp8 base:" in r.stdout and "LORA_TUI_SAVED" in r.stdout and "SD3 model type 5-medium" in r.stderr
    # the sample at step 3 went through diffusers' StableDiffusion3Pipeline over the LoRA-patched modules
    assert "sample image:" in r.stdout and len(list((root / "out" / "sample").glob("sd3_demo_000003_00_*_1.png"))) == 1
    res = _check("check", model, root / "out" / "sd3_demo.safetensors")
    assert res["unet_names_equal"] and res["unet_names"] == 19
    assert res["te_pattern"] and res["te_names"] == [12, 12] and res["other_names"] == []
    assert res["per_module_keys"] and res["up_nonzero"] and res["qkv_up_shape"] == [3 * 16, 4]
    assert res["meta"] == {"ss_network_module": "networks.lora_sd3", "ss_base_model_version": "5-medium",
                           "modelspec.architecture": "stable-diffusion-3-5-medium/lora",
                           "ss_weighting_scheme": "logit_normal", "ss_apply_t5_attn_mask": "True",
                           "ss_network_dim": "4", "ss_network_alpha": "1"}
    assert res["diffusers_problems"] == [] and res["diffusers_layers"] == 29
    assert res["diffusers_changes"] > 0 and min(res["diffusers_te_changes"]) > 0
    assert res["ours_vs_diffusers"] < 1e-5 and res["ours_vs_diffusers_te"] < 1e-5
    assert res["load_missing_unexpected"] == [0, 0]
    o = res["options"]
    assert o["split_qkv"] == [[3 * 4, 16], [3 * 16, 3 * 4], True] and o["split_roundtrip"]
    assert o["t5"] == 3 and o["x_attn_dim0"] == [] and o["context_mlp_dim8"] == [8, 16]
    assert o["emb"] == ["lora_unet_context_embedder", "lora_unet_final_layer_adaLN_modulation_1",
                        "lora_unet_final_layer_linear", "lora_unet_t_embedder_mlp_0", "lora_unet_t_embedder_mlp_2",
                        "lora_unet_y_embedder_mlp_0", "lora_unet_y_embedder_mlp_2"]
    assert o["block_idx"] == ["1"] and o["alpha"] == 2.0


def test_sd3_refusals_before_loading(tiny, tmp_path):
    """Wrong or missing SD3 inputs fail in a second, naming the option (no model load): text encoders neither in
    the checkpoint nor given, a Flux file given as clip_g, options this trainer does not implement."""
    model, _ = tiny
    r = _run([sys.executable, SD / "sd3_train_network.py",
              "--pretrained_model_name_or_path", model / "split" / "sd3_tiny.safetensors",
              "--clip_g", model / "split" / "clip_l.safetensors", "--output_dir", tmp_path, "--train_data_dir", tmp_path,
              "--network_module", "networks.lora", "--blocks_to_swap", "8", "--enable_scaled_pos_embed",
              "--network_args", "emb_dims=[1,1,1,1,1,1]"])
    assert r.returncode == 1
    err = r.stderr
    for needle in ("clip_l is not set and", "t5xxl is not set and", "clip_g: ", "is a CLIP-L text encoder",
                   "networks.lora_sd3", "blocks_to_swap", "enable_scaled_pos_embed"):
        assert needle in err, err


def test_sd3_preflight_passes_the_trained_config_and_names_bad_ones(trained):
    """`sd3_train_network.py --preflight` on the TOML that trained above: no error; with a missing t5xxl file and a
    bad bucket step: both named on their options, nothing written."""
    root, _ = trained
    toml = root / "config.toml"
    r = _run([sys.executable, SD / "sd3_train_network.py", "--config_file", toml, "--preflight"])
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("LORA_TUI_PREFLIGHT_DONE"), r.stdout + r.stderr
    r = _run([sys.executable, SD / "sd3_train_network.py", "--config_file", toml, "--t5xxl", root / "none.safetensors",
              "--bucket_reso_steps", "48", "--output_dir", root / "pre_out", "--preflight"])
    lines = [json.loads(ln.split(" ", 1)[1]) for ln in r.stdout.splitlines() if ln.startswith("LORA_TUI_PREFLIGHT ")]
    assert r.returncode == 1 and {f["field"] for f in lines if f["severity"] == "error"} >= {"t5xxl",
                                                                                           "bucket_reso_steps"}, \
        r.stdout + r.stderr
    assert not (root / "pre_out").exists()


def test_app_launch_trains_the_sd3_demo_and_stop_saves(tiny, tmp_path):
    """The app's Start path (`run.launching.launch_config`: plan, the trainer's preflight, accelerate launch of the
    bundled sd3_train_network.py) on the SD3 demo config (`lora-tui --demo sd3`: the SD3 preset at CPU size) over
    the test's tiny model; Stop after a step saves the LoRA under sd-scripts' step-save name."""
    import re
    import time

    from lora_tui.config.app_settings import AppSettings
    from lora_tui.demo import demo_config, demo_files, prepare_demo
    from lora_tui.run.follow import LogFollower
    from lora_tui.run.launching import launch_config

    model, _ = tiny
    settings = AppSettings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    files = demo_files(settings, "sd3")
    files.checkpoint.parent.mkdir(parents=True)
    shutil.copyfile(model / "sd3_tiny.safetensors", files.checkpoint)  # the module's tiny model: no second build
    shutil.copytree(model / "tokenizers", files.tokenizer_cache_dir)
    prepare_demo(settings, log=lambda *a: None, family="sd3")
    cfg = demo_config(files)
    assert cfg.sd3_checkbox and cfg.pretrained_model_name_or_path == str(files.checkpoint)
    job = launch_config(cfg, settings)
    argv = list(job.state.get("argv") or [])
    assert any(Path(a).name == "accelerate" for a in argv) and "launch" in argv, argv
    assert str(SD / "sd3_train_network.py") in argv, argv
    follower = LogFollower(job)
    deadline = time.monotonic() + 240
    while (follower.progress.step or 0) < 1:
        batch = follower.poll()
        assert not batch.ended, "\n".join(job.tail())
        assert time.monotonic() < deadline, "no training step within 240 s:\n" + "\n".join(job.tail())
        time.sleep(0.1)
    result = job.stop(grace_s=120)
    assert result.signals == ["SIGINT"] and result.exited, result.message
    while not follower.poll().ended:
        pass
    log = job.log_path.read_text()
    assert job.state["status"] == "stopped", log[-3000:]
    assert "import network module: networks.lora_sd3" in log and "Traceback" not in log, log[-3000:]
    saved = follower.progress.saved[-1]
    assert re.fullmatch(rf"{re.escape(str(cfg.output_name))}-step\d{{8}}\.safetensors", Path(saved).name), saved
    assert Path(saved).stat().st_size > 1000
