"""The bundled trainer end to end on tiny models: real processes, real files, real diffusers loading.

Torch-importing processes are few and shared: one SDXL run through `accelerate launch` (TOML), the same TOML
through plain python, one SD1.5 run (command line only), one interrupted run, and one checking process
(`lora_check.py`) that loads every LoRA into diffusers. Bad-input runs fail before torch is imported.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SD = REPO / "sd-scripts"
PHOTOS = REPO / "lora_tui" / "demo" / "photos"
ACCELERATE = Path(sys.executable).with_name("accelerate")
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")

KOHYA_KEY = re.compile(r"^lora_(unet|te|te1|te2)_[A-Za-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)$")


def _run(argv, cwd=None, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout)


def _lora(path: Path):
    """(tensor shapes/values as lists, metadata) read without torch: safetensors header + raw bytes."""
    import struct
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    return header, meta, raw[8 + n:]


def _scalar(header, data, key) -> float:
    import struct
    h = header[key]
    a, b = h["data_offsets"]
    fmt = {"F32": "<f", "F16": "<e", "F64": "<d"}[h["dtype"]]
    return struct.unpack(fmt, data[a:b])[0]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """4 real photos in `img/2_demo person/` with one caption each."""
    root = tmp_path_factory.mktemp("data") / "img"
    sub = root / "2_demo person"
    sub.mkdir(parents=True)
    photos = sorted(p for p in PHOTOS.iterdir() if p.suffix == ".jpg")[:4]
    assert len(photos) == 4
    for p in photos:
        shutil.copy(p, sub / p.name)
        (sub / (p.stem + ".txt")).write_text(f"demo person, {p.stem}\n")
    return root


def _toml(path: Path, ckpt: Path, data: Path, out: Path, **extra) -> Path:
    lines = ["[model_arguments]", f'pretrained_model_name_or_path = "{ckpt}"',
             "[dataset_arguments]", f'train_data_dir = "{data}"', 'resolution = "64,64"',
             'caption_extension = ".txt"', "cache_latents = true", "enable_bucket = true",
             "min_bucket_reso = 64", "max_bucket_reso = 128", "bucket_reso_steps = 32",
             "[training_arguments]", f'output_dir = "{out}"', 'output_name = "demo"', "max_train_epochs = 3",
             "train_batch_size = 1", "learning_rate = 0.002", "text_encoder_lr = 0.001", 'mixed_precision = "bf16"',
             "save_every_n_epochs = 1", "seed = 1", 'network_module = "networks.lora"', "network_dim = 4",
             "network_alpha = 2", "a_key_sd_scripts_does_not_know = 3"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def sdxl_run(tmp_path_factory, tiny_sdxl_ckpt, dataset):
    """SDXL, TOML with sections, bf16 asked for on a CPU box, launched as the app launches it."""
    d = tmp_path_factory.mktemp("sdxl_run")
    toml = _toml(d / "config.toml", tiny_sdxl_ckpt, dataset, d / "out", clip_skip=2)  # ignored on SDXL
    t = time.time()
    r = _run([ACCELERATE, "launch", "--num_cpu_threads_per_process", "1", SD / "sdxl_train_network.py",
              "--config_file", toml])
    return r, d / "out", time.time() - t, toml


@pytest.fixture(scope="session")
def sdxl_python_run(sdxl_run, tmp_path_factory):
    """The same TOML through plain python (config path without `.toml`), with command-line overrides
    (CLI > TOML) and `save_state`."""
    _, _, _, toml = sdxl_run
    out = tmp_path_factory.mktemp("sdxl_py") / "out"
    return _run([sys.executable, SD / "sdxl_train_network.py", "--config_file", str(toml)[:-5],
                 "--output_name", "demo_py", "--output_dir", out, "--save_state"]), out


@pytest.fixture(scope="session")
def sd15_run(tmp_path_factory, tiny_sd15_ckpt, dataset):
    """SD1.5 from the command line only, with LoCon (conv_dim) and a text-encoder LoRA."""
    out = tmp_path_factory.mktemp("sd15_run") / "out"
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--output_dir", out, "--output_name", "sd15", *SD15_ARGV])
    return r, out


OPTIMIZER_CASES = [
    ["--optimizer_type", "AdamW", "--lr_scheduler", "cosine", "--lr_warmup_steps", "1"],
    ["--optimizer_type", "adamw8bit", "--lr_scheduler", "linear"],
    ["--optimizer_type", "Adafactor"],
    ["--optimizer_type", "Adafactor", "--optimizer_args", "relative_step=False", "scale_parameter=False",
     "warmup_init=False", "--lr_scheduler", "constant_with_warmup", "--lr_warmup_steps", "0.5"],
    ["--optimizer_type", "Prodigy", "--optimizer_args", "weight_decay=0.01", "d0=0.01"],
    ["--optimizer_type", "SGDNesterov", "--lr_scheduler", "polynomial", "--lr_scheduler_power", "2"],
    ["--optimizer_type", "torch.optim.Adam", "--optimizer_args", "betas=0.8,0.9", "--lr_scheduler",
     "cosine_with_restarts", "--lr_scheduler_num_cycles", "2"],
    ["--optimizer_type", "NoSuchOpt"],
]


SD15_ARGV = ["--resolution", "64", "--caption_extension", ".txt", "--cache_latents", "--max_train_steps", "12",
             "--learning_rate", "2e-3", "--network_module", "networks.lora", "--network_dim", "3",
             "--network_alpha", "1.5", "--network_args", "conv_dim=2", "conv_alpha=1", "--save_precision", "fp16",
             "--seed", "3", "--optimizer_type", "AdamW", "--lr_scheduler", "cosine_with_restarts",
             "--lr_warmup_steps", "2"]


@pytest.fixture(scope="session")
def sd2_run(tmp_path_factory, tiny_sd2_ckpt, dataset):
    """SD2.x with --v2 --v_parameterization from the command line."""
    out = tmp_path_factory.mktemp("sd2_run") / "out"
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd2_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--caption_extension", ".txt", "--cache_latents",
              "--output_dir", out, "--output_name", "sd2", "--max_train_steps", "6", "--learning_rate", "2e-3",
              "--network_module", "networks.lora", "--network_dim", "4", "--network_alpha", "2", "--seed", "5",
              "--v2", "--v_parameterization"])
    return r, out


HAVE_LYCORIS = importlib.util.find_spec("lycoris") is not None
LYCORIS_LOCON = {"algo": "locon", "conv_dim": "2", "conv_alpha": "1"}


@pytest.fixture(scope="session")
def lycoris_run(tmp_path_factory, tiny_sdxl_ckpt, dataset):
    """SDXL with network_module lycoris.kohya (LoCon), or None without the lycoris-lora package."""
    if not HAVE_LYCORIS:
        return None
    out = tmp_path_factory.mktemp("lycoris_run") / "out"
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--pretrained_model_name_or_path", tiny_sdxl_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--caption_extension", ".txt", "--cache_latents",
              "--output_dir", out, "--output_name", "ly", "--max_train_steps", "6", "--learning_rate", "1e-3",
              "--network_module", "lycoris.kohya", "--network_dim", "4", "--network_alpha", "2", "--seed", "2",
              "--network_args", *[f"{k}={v}" for k, v in LYCORIS_LOCON.items()]])
    return r, out


@pytest.fixture(scope="session")
def checks(sdxl_run, sd15_run, sd2_run, lycoris_run, tiny_sdxl_ckpt, tiny_sd15_ckpt, tiny_sd2_ckpt,
           tmp_path_factory):
    """One process: loader round trips, diffusers loading of both LoRAs, full-size module counts."""
    spec = {"roundtrip": [{"family": "sdxl", "ckpt": str(tiny_sdxl_ckpt)},
                          {"family": "sd1", "ckpt": str(tiny_sd15_ckpt)},
                          {"family": "sd2", "ckpt": str(tiny_sd2_ckpt)}],
            "loras": [{"family": "sdxl", "ckpt": str(tiny_sdxl_ckpt), "lora": str(sdxl_run[1] / "demo.safetensors")},
                      {"family": "sd1", "ckpt": str(tiny_sd15_ckpt), "lora": str(sd15_run[1] / "sd15.safetensors")},
                      {"family": "sd2", "ckpt": str(tiny_sd2_ckpt), "lora": str(sd2_run[1] / "sd2.safetensors")}],
            "counts": True, "optimizers": OPTIMIZER_CASES,
            "features": {"sd1": str(tiny_sd15_ckpt), "sdxl": str(tiny_sdxl_ckpt)}}
    if lycoris_run is not None and lycoris_run[0].returncode == 0:
        spec["lycoris"] = [{"family": "sdxl", "ckpt": str(tiny_sdxl_ckpt), "lora": str(lycoris_run[1] / "ly.safetensors"),
                            "network_args": LYCORIS_LOCON, "dim": 4, "alpha": 2}]
    f = tmp_path_factory.mktemp("checks") / "spec.json"
    f.write_text(json.dumps(spec))
    r = _run([sys.executable, Path(__file__).with_name("lora_check.py"), f])
    assert r.returncode == 0, r.stderr[-3000:]
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


# ------------------------------------------------------------------ SDXL run
def test_sdxl_run_succeeds_with_progress_lines(sdxl_run):
    r, out, wall, _ = sdxl_run
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mixed_precision bf16 needs a GPU" in r.stderr
    assert "unknown key 'a_key_sd_scripts_does_not_know' ignored" in r.stderr
    # sd-scripts' tqdm line (after the last carriage return) and our machine-readable lines
    bars = [seg for seg in re.split(r"[\r\n]", r.stderr) if seg.startswith("steps:")]
    m = re.match(r"steps:\s+(\d+)%\|[^|]*\|\s*(\d+)/(\d+) \[([0-9:]+)<([0-9:?]+),\s*([0-9.?]+)(it/s|s/it)"
                 r"(?:, (.*))?\]", bars[-1])
    assert m and m.group(2) == m.group(3) == "24" and m.group(8).startswith("avr_loss="), bars[-1]
    prog = [json.loads(ln.split(" ", 1)[1]) for ln in r.stdout.splitlines() if ln.startswith("LORA_TUI_PROGRESS ")]
    assert [p["step"] for p in prog] == list(range(1, 25))
    assert prog[-1]["total"] == 24 and prog[-1]["epochs"] == 3 and prog[-1]["epoch"] == 3
    assert all(p["loss"] > 0 for p in prog)
    saved = [json.loads(ln.split(" ", 1)[1]) for ln in r.stdout.splitlines() if ln.startswith("LORA_TUI_SAVED ")]
    assert [Path(s["path"]).name for s in saved] == ["demo-000001.safetensors", "demo-000002.safetensors",
                                                     "demo.safetensors"]
    assert "epoch 3/3" in r.stdout and "model saved." in r.stdout


def test_sdxl_epoch_files_and_nothing_else(sdxl_run):
    _, out, _, _ = sdxl_run
    assert sorted(p.name for p in out.iterdir()) == ["demo-000001.safetensors", "demo-000002.safetensors",
                                                     "demo.safetensors"]


def test_sdxl_lora_keys_are_kohya_format(sdxl_run):
    _, out, _, _ = sdxl_run
    header, meta, data = _lora(out / "demo.safetensors")
    keys = list(header)
    assert keys and all(KOHYA_KEY.match(k) for k in keys), [k for k in keys if not KOHYA_KEY.match(k)][:5]
    assert {k.split("_")[1] for k in keys} == {"unet", "te1", "te2"}
    assert all("_text_model_encoder_layers_" in k for k in keys if k.startswith("lora_te"))
    assert any(k.startswith("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.") for k in keys)
    assert any(k.startswith("lora_unet_middle_block_1_") for k in keys)
    assert any(k.startswith("lora_unet_output_blocks_0_1_transformer_blocks_1_ff_net_2.") for k in keys)
    assert not any("down_blocks" in k or "up_blocks" in k for k in keys)
    for k in keys:
        if k.endswith("lora_down.weight"):
            assert header[k]["shape"][0] == 4, k
        if k.endswith(".alpha"):
            assert header[k]["shape"] == [] and _scalar(header, data, k) == 2.0
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2"
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["ss_mixed_precision"] == "no" and meta["ss_num_epochs"] == "3" and meta["ss_steps"] == "24"
    assert json.loads(meta["ss_dataset_dirs"]) == {"2_demo person": {"n_repeats": 2, "img_count": 4}}
    assert meta["ss_clip_skip"] == "None"  # the TOML's clip_skip 2 does nothing on SDXL: no value is claimed
    assert re.fullmatch(r"[0-9a-f]{64}", meta["sshs_model_hash"])
    import hashlib
    assert hashlib.sha256(data).hexdigest() == meta["sshs_model_hash"]


def test_sdxl_lora_loads_into_diffusers_and_reproduces_training(checks):
    res = checks["loras"][0]
    assert res["our_missing"] == [] and res["our_unexpected"] == []
    bad = [m for m in res["logs"] if re.search(r"unexpected|missing|not found|No LoRA keys", m, re.I)]
    assert bad == []
    assert res["max_abs_ours_vs_diffusers"] < 1e-5
    assert res["max_abs_emb_ours_vs_diffusers"] < 1e-5
    assert res["max_abs_lora_effect"] > 1e-3 and res["max_abs_emb_lora_effect"] > 1e-3


def test_same_toml_python_and_accelerate_give_the_same_lora(sdxl_run, sdxl_python_run):
    r, out = sdxl_python_run
    assert r.returncode == 0, r.stderr[-3000:]
    a_header, _, a = _lora(sdxl_run[1] / "demo.safetensors")
    b_header, b_meta, b = _lora(out / "demo_py.safetensors")
    assert a_header == b_header and a == b
    assert b_meta["ss_output_name"] == "demo_py"
    assert sorted(p.name for p in out.iterdir()) == [
        "demo_py-000001-state", "demo_py-000001.safetensors", "demo_py-000002-state", "demo_py-000002.safetensors",
        "demo_py-state", "demo_py.safetensors"]
    assert json.loads((out / "demo_py-000001-state" / "train_state.json").read_text())["current_step"] == 8


def test_resume_continues_and_reproduces_the_uninterrupted_run(sdxl_run, sdxl_python_run, tmp_path):
    _, out = sdxl_python_run
    _, _, _, toml = sdxl_run
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--config_file", toml, "--output_name", "demo_res",
              "--output_dir", tmp_path, "--resume", out / "demo_py-000001-state"])
    assert r.returncode == 0, r.stderr[-3000:]
    prog = [json.loads(ln.split(" ", 1)[1]) for ln in r.stdout.splitlines() if ln.startswith("LORA_TUI_PROGRESS ")]
    assert prog[0]["step"] == 9 and prog[0]["epoch"] == 2 and prog[-1]["step"] == 24  # the count continues
    a_header, _, a = _lora(out / "demo_py.safetensors")
    b_header, b_meta, b = _lora(tmp_path / "demo_res.safetensors")
    assert a_header == b_header and a == b  # optimizer, scheduler and RNG states all restored
    assert b_meta["ss_steps"] == "24"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_res-000002.safetensors", "demo_res.safetensors"]


# ------------------------------------------------------------------ SD1.5 run
def test_sd15_lora_keys_and_diffusers_round_trip(sd15_run, checks):
    r, out = sd15_run
    assert r.returncode == 0, r.stderr[-3000:]
    header, meta, data = _lora(out / "sd15.safetensors")
    keys = list(header)
    assert all(KOHYA_KEY.match(k) for k in keys)
    assert {k.split("_")[1] for k in keys} == {"unet", "te"}
    assert all(k.startswith("lora_te_text_model_encoder_layers_") for k in keys if k.startswith("lora_te"))
    assert any(k.startswith("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.") for k in keys)
    assert any(k.startswith("lora_unet_mid_block_attentions_0_proj_in.") for k in keys)
    assert any(k.startswith("lora_unet_down_blocks_0_resnets_0_conv1.") for k in keys)  # conv_dim → LoCon
    assert not any("input_blocks" in k for k in keys)
    assert all(h["dtype"] == "F16" for h in header.values())  # save_precision fp16, alpha included
    for k in keys:
        if k.endswith("lora_down.weight"):
            conv3 = len(header[k]["shape"]) == 4 and header[k]["shape"][2] == 3
            assert header[k]["shape"][0] == (2 if conv3 else 3), k
    assert _scalar(header, data, "lora_unet_mid_block_attentions_0_proj_in.alpha") == 1.5
    assert meta["ss_base_model_version"] == "sd_v1"
    assert json.loads(meta["ss_network_args"])["conv_dim"] == "2"
    res = checks["loras"][1]
    bad = [m for m in res["logs"] if re.search(r"unexpected|missing|not found|No LoRA keys", m, re.I)]
    assert bad == [] and res["our_missing"] == [] and res["our_unexpected"] == []
    assert res["max_abs_ours_vs_diffusers"] < 1e-3  # fp16 file: both sides read the same fp16 values
    assert res["max_abs_lora_effect"] > 1e-3


def test_sd2_v_parameterization_lora_keys_and_diffusers_round_trip(sd2_run, checks):
    r, out = sd2_run
    assert r.returncode == 0, r.stderr[-3000:]
    header, meta, _ = _lora(out / "sd2.safetensors")
    keys = list(header)
    assert all(KOHYA_KEY.match(k) for k in keys) and {k.split("_")[1] for k in keys} == {"unet", "te"}
    assert all(k.startswith("lora_te_text_model_encoder_layers_") for k in keys if k.startswith("lora_te"))
    # SD2's proj_in/proj_out are Linear layers (use_linear_projection): 2-D LoRA weights, diffusers-style names
    assert header["lora_unet_mid_block_attentions_0_proj_in.lora_down.weight"]["shape"] == [4, 64]
    assert not any("input_blocks" in k for k in keys)
    assert (meta["ss_v2"], meta["ss_base_model_version"], meta["modelspec.architecture"],
            meta["modelspec.prediction_type"]) == ("True", "sd_v2_v", "stable-diffusion-v2-768-v/lora", "v")
    res = checks["loras"][2]
    bad = [m for m in res["logs"] if re.search(r"unexpected|missing|not found|No LoRA keys", m, re.I)]
    assert bad == [] and res["our_missing"] == [] and res["our_unexpected"] == []
    assert res["max_abs_ours_vs_diffusers"] < 1e-5 and res["max_abs_emb_ours_vs_diffusers"] < 1e-5
    assert res["max_abs_lora_effect"] > 1e-3 and res["max_abs_emb_lora_effect"] > 1e-3


# ------------------------------------------------------------------ loader and network self-checks
def test_single_file_checkpoints_round_trip_bit_exact(checks):
    for rt in checks["roundtrip"]:
        for name, c in rt["components"].items():
            assert c["n"] > 0 and c["mismatched"] == [] and c["extra"] == [], (rt["family"], name, c)
    assert [rt["family"] for rt in checks["roundtrip"]] == ["sdxl", "sd1", "sd2"]


def test_full_size_module_and_parameter_counts(checks):
    c = checks["counts"]
    # spec sd_scripts_interface.md §5.2.4 and the published parameter counts
    assert (c["sdxl"]["te"], c["sdxl"]["unet"], c["sdxl"]["unet_conv"]) == (264, 722, 788)
    assert (c["sd1"]["te"], c["sd1"]["unet"], c["sd1"]["unet_conv"]) == (72, 192, 278)
    assert (c["sd2"]["te"], c["sd2"]["unet"]) == (138, 192)
    assert c["sdxl"]["unet_params"] == 2_567_463_684 and c["sdxl"]["te_params"] == [123_060_480, 694_659_840]
    assert c["sd1"]["unet_params"] == 859_520_964 and c["sd1"]["te_params"] == [123_060_480]


# ------------------------------------------------------------------ signals
def test_sigint_finishes_step_saves_and_exits_130(tmp_path, tiny_sdxl_ckpt, dataset):
    out = tmp_path / "out"
    toml = _toml(tmp_path / "c.toml", tiny_sdxl_ckpt, dataset, out, network_train_unet_only=True)
    p = subprocess.Popen([sys.executable, str(SD / "sdxl_train_network.py"), "--config_file", str(toml),
                          "--max_train_epochs", "500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=ENV, start_new_session=True)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.startswith("LORA_TUI_PROGRESS ") and json.loads(line.split(" ", 1)[1])["step"] >= 3:
            break
    os.killpg(p.pid, signal.SIGINT)  # what the app does: signal the whole group
    rest, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    # A stopped run is saved under sd-scripts' step-save name, never as the finished `demo.safetensors`.
    # (an epoch file `demo-000001` may be there too when the signal came after the first epoch: a loaded machine)
    saved = sorted(out.glob("demo-step*.safetensors"))
    assert len(saved) == 1 and not (out / "demo.safetensors").exists(), list(out.iterdir())
    header, meta, _ = _lora(saved[0])
    assert saved[0].name == f"demo-step{int(meta['ss_steps']):08d}.safetensors"
    assert err.count(f"interrupted: saved {saved[0]}") == 1, err[-2000:]
    assert header and all(k.startswith("lora_unet_") for k in header)  # network_train_unet_only: no lora_te*
    assert 3 <= int(meta["ss_steps"]) < 500 * 8
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


# ------------------------------------------------------------------ bad input
def _assert_clean_failure(r, out: Path, *needles):
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    for n in needles:
        assert n in r.stderr, r.stderr[-2000:]
    assert not out.exists() or not any(out.iterdir())


def test_missing_checkpoint(tmp_path, dataset):
    out = tmp_path / "out"
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--pretrained_model_name_or_path", tmp_path / "no.safetensors",
              "--train_data_dir", dataset, "--resolution", "64", "--output_dir", out])
    _assert_clean_failure(r, out, "pretrained_model_name_or_path", "does not exist")


def test_wrong_family(tmp_path, dataset, tiny_sd15_ckpt, tiny_sdxl_ckpt):
    out = tmp_path / "out"
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--output_dir", out])
    _assert_clean_failure(r, out, "SD1.x checkpoint", "train_network.py")
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sdxl_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--output_dir", out])
    _assert_clean_failure(r, out, "SDXL checkpoint", "sdxl_train_network.py")


def test_unsupported_options_are_named(tmp_path, dataset, tiny_sdxl_ckpt):
    out = tmp_path / "out"
    toml = _toml(tmp_path / "c.toml", tiny_sdxl_ckpt, dataset, out, deepspeed=True, huggingface_repo_id="me/x",
                 save_model_as="diffusers")
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--config_file", toml])
    _assert_clean_failure(r, out, "save_model_as", "deepspeed", "huggingface_repo_id", "not supported")
    listed = json.loads((SD / "lora_trainer" / "unsupported_options.json").read_text())
    assert "deepspeed" in listed["options"] and "diffusers" not in listed["values"]["save_model_as"]["allowed"]


def test_bad_network_and_optimizer_args_are_named(tmp_path, dataset, tiny_sdxl_ckpt):
    out = tmp_path / "out"
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--pretrained_model_name_or_path", tiny_sdxl_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--output_dir", out,
              "--network_args", "conv_dim=two", "--optimizer_args", "betas"])
    _assert_clean_failure(r, out, "network_args: conv_dim='two' is not a number",
                          "optimizer_args: 'betas' is not key=value")
    assert "Traceback" not in r.stderr


def test_network_weights_that_are_not_a_lora_name_the_option_and_file(tmp_path, dataset, tiny_sdxl_ckpt):
    # A text file under a .safetensors name: safetensors alone says "header too large", naming nothing.
    out, bad = tmp_path / "out", tmp_path / "notes.safetensors"
    bad.write_text("this is not a LoRA file, just some notes\n" * 20)
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--pretrained_model_name_or_path", tiny_sdxl_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--output_dir", out, "--network_weights", bad])
    _assert_clean_failure(r, out, f"ERROR: network_weights: {bad} could not be read as a .safetensors LoRA file")
    assert "Traceback" not in r.stderr


def test_empty_dataset(tmp_path, tiny_sdxl_ckpt):
    out = tmp_path / "out"
    (tmp_path / "img" / "10_nothing").mkdir(parents=True)
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--pretrained_model_name_or_path", tiny_sdxl_ckpt,
              "--train_data_dir", tmp_path / "img", "--resolution", "64", "--output_dir", out])
    _assert_clean_failure(r, out, "No data found", "train_data_dir")


def test_missing_config_file(tmp_path):
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--config_file", tmp_path / "none.toml"])
    assert r.returncode == 1 and "none.toml not found" in r.stderr


# ------------------------------------------------------------------ continuing from a LoRA, samples, loss options
def test_network_weights_samples_and_loss_options(tmp_path, sd15_run, tiny_sd15_ckpt, dataset):
    _, out15 = sd15_run
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("demo person, photo --w 64 --h 64 --s 2 --d 7\n# a comment\n"
                       "demo person --n blurry --w 64 --h 72 --s 2 --ss euler_a --l 5\n")
    out = tmp_path / "out"
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--caption_extension", ".txt", "--cache_latents",
              "--output_dir", out, "--output_name", "cont", "--max_train_epochs", "1", "--learning_rate", "1e-3",
              "--network_weights", out15 / "sd15.safetensors", "--dim_from_weights",
              "--sample_prompts", prompts, "--sample_every_n_epochs", "1", "--sample_at_first",
              "--min_snr_gamma", "5", "--noise_offset", "0.05", "--seed", "3"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"load network weights from {out15 / 'sd15.safetensors'}: missing 0, unexpected 0" in r.stdout
    samples = sorted(p.name for p in (out / "sample").iterdir())
    assert len(samples) == 4 and all(n.startswith("cont_e00000") and n.endswith(".png") for n in samples)
    assert [n for n in samples if n.endswith("_7.png")] == [samples[0], samples[2]]  # --d 7 names the seed
    from PIL import Image
    with Image.open(out / "sample" / samples[1]) as im:
        assert im.size == (64, 72)
    header, meta, _ = _lora(out / "cont.safetensors")
    base_header, _, _ = _lora(out15 / "sd15.safetensors")
    assert set(header) == set(base_header)  # same modules, ranks taken from the file (dim_from_weights)
    assert meta["ss_min_snr_gamma"] == "5.0" and meta["ss_noise_offset"] == "0.05"
    assert meta["ss_network_dim"] == "None"  # sd-scripts records the option as given: not given here


def test_dataset_config_with_two_datasets_and_reg_images(tmp_path, tiny_sdxl_ckpt, dataset):
    sub = next(dataset.iterdir())
    reg = tmp_path / "reg"
    reg.mkdir()
    for p in sorted(sub.glob("*.jpg"))[:2]:
        shutil.copy(p, reg / p.name)
    cfg = tmp_path / "ds.toml"
    cfg.write_text(f"""
[general]
caption_extension = ".txt"
enable_bucket = true
min_bucket_reso = 64
max_bucket_reso = 128
bucket_reso_steps = 32
[[datasets]]
resolution = 64
batch_size = 2
  [[datasets.subsets]]
  image_dir = "{sub}"
  num_repeats = 2
  flip_aug = true
  [[datasets.subsets]]
  image_dir = "{reg}"
  is_reg = true
  class_tokens = "person"
[[datasets]]
resolution = [96, 64]
  [[datasets.subsets]]
  image_dir = "{sub}"
  shuffle_caption = true
""")
    out = tmp_path / "out"
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--pretrained_model_name_or_path", tiny_sdxl_ckpt,
              "--dataset_config", cfg, "--output_dir", out, "--output_name", "dc", "--max_train_epochs", "1",
              "--cache_latents", "--network_train_unet_only", "--seed", "1"])
    assert r.returncode == 0, r.stderr[-3000:]
    # dataset 1: 4×2 train + 8 balanced reg = 16 samples in 8 batches of 2; dataset 2: 4 samples, batch 1
    assert "num train images * repeats / 学習画像の数×繰り返し回数: 12" in r.stdout
    assert "num reg images / 正則化画像の数: 2" in r.stdout
    assert "batch size per device / バッチサイズ: 2, 1" in r.stdout
    _, meta, _ = _lora(out / "dc.safetensors")
    assert meta["ss_steps"] == meta["ss_max_train_steps"]
    # with a dataset_config sd-scripts describes each dataset in ss_datasets (no top-level ss_bucket_info)
    assert "ss_bucket_info" not in meta and "ss_resolution" not in meta
    datasets = json.loads(meta["ss_datasets"])
    assert [d["batch_size_per_device"] for d in datasets] == [2, 1]
    resos = {tuple(b["resolution"]) for d in datasets for b in d["bucket_info"]["buckets"].values()}
    assert (64, 64) in resos and any(w * h <= 96 * 64 and (w, h) != (64, 64) for w, h in resos)
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace("flip_aug = true", "flip_agu = true"))
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--pretrained_model_name_or_path", tiny_sdxl_ckpt,
              "--dataset_config", bad, "--output_dir", tmp_path / "out2"])
    _assert_clean_failure(r, tmp_path / "out2", "unknown key 'flip_agu'")


def test_optimizers_and_schedulers_through_the_trainer(checks):
    rows = {" ".join(r["argv"]): r for r in checks["optimizers"]}
    assert all(r["ok"] and r["moved"] > 0 for k, r in rows.items() if "NoSuchOpt" not in k), rows
    adamw = rows["--optimizer_type AdamW --lr_scheduler cosine --lr_warmup_steps 1"]
    assert adamw["optimizer"] == "torch.optim.adamw.AdamW" and adamw["lrs"][-1] == 0.0  # cosine reaches 0
    assert rows["--optimizer_type adamw8bit --lr_scheduler linear"]["optimizer"] == \
        "bitsandbytes.optim.adamw.AdamW8bit"
    af = rows["--optimizer_type Adafactor"]
    assert af["scheduler"] == "AdafactorSchedule" and "relative_step=True" in af["optimizer"]
    warm = [r for k, r in rows.items() if "constant_with_warmup" in k][0]
    assert warm["lrs"] == [0.005, 0.01, 0.01, 0.01]  # a float warm-up is a fraction of the steps
    assert [r for k, r in rows.items() if k.startswith("--optimizer_type SGDNesterov")][0]["optimizer"] == \
        "torch.optim.sgd.SGD(momentum=0.9)"  # sd-scripts' ss_optimizer: nesterov=True is not an optimizer_arg
    bad = rows["--optimizer_type NoSuchOpt"]
    assert not bad["ok"] and "NoSuchOpt" in bad["error"]


# ------------------------------------------------------------------ long captions, ZT-SNR, ip-noise, TensorBoard
def test_long_captions_windows_and_stitching(checks):
    f = checks["features"]
    for fam, width in (("sd1", 32), ("sdxl", 80)):
        row = f[fam]
        assert row["shape75"] == [3, 77, width] and row["shape150"] == [1, 152, width]
        assert row["shape225"] == [3, 227, width]  # BOS + 3 × 75 + last
        assert row["head_equal"]  # window 1 is the ordinary encoding
        assert row["tail_ignored_at_75"] and row["tail_seen_at_225"] > 1e-3  # words past token 75 now count
    x = f["sdxl"]
    assert x["pooled_first_window"] and x["tok2_pad_is_not_eos"]
    assert x["tok2_empty_window_gets_eos"] and x["tok2_cut_window_ends_eos"]  # sd-scripts' SD2/SDXL fix-ups


def test_zero_terminal_snr_and_ip_noise(checks):
    z = checks["features"]["ztsnr"]
    assert z["last_before"] > 1e-3 and z["last_after"] == 0.0 and z["first_rel_change"] < 1e-6
    assert z["decreasing"] and z["cumprod_consistent"] < 1e-5
    ip = checks["features"]["ip_noise"]
    assert abs(ip["std"] - 0.5) < 0.02  # γ·randn added to the noise that makes the noisy latents
    assert all(0 <= s <= 0.52 for s in ip["std_random"]) and len({round(s, 3) for s in ip["std_random"]}) > 1


def test_new_options_train_and_log_to_tensorboard(tmp_path, sd15_run, tiny_sd15_ckpt, dataset):
    """The SD1.5 run again with max_token_length 225, zero_terminal_snr, ip_noise_gamma and TensorBoard logs:
    it trains, the LoRA differs from the plain run (same seed), the logs hold sd-scripts' scalars."""
    _, out15 = sd15_run
    out, logs = tmp_path / "out", tmp_path / "logs"
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--output_dir", out, "--output_name", "sd15", *SD15_ARGV,
              "--max_token_length", "225", "--zero_terminal_snr", "--ip_noise_gamma", "0.1",
              "--logging_dir", logs, "--log_prefix", "run_", "--log_config"])
    assert r.returncode == 0, r.stderr[-3000:]
    header, meta, data = _lora(out / "sd15.safetensors")
    base_header, _, base_data = _lora(out15 / "sd15.safetensors")
    assert set(header) == set(base_header) and data != base_data
    assert (meta["ss_max_token_length"], meta["ss_zero_terminal_snr"], meta["ss_ip_noise_gamma"]) == \
        ("225", "True", "0.1")
    runs = list(logs.iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("run_") and (runs[0] / "network_train").is_dir()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    scalars = {}
    for ev in (runs[0] / "network_train").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(ev))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = [e.step for e in acc.Scalars(tag)]
    assert scalars["loss/current"] == list(range(1, 13)) and scalars["loss/average"] == list(range(1, 13))
    assert scalars["lr/unet"] == list(range(1, 13)) and scalars["lr/textencoder"] == list(range(1, 13))
    assert scalars["loss/epoch"] == [1, 2]  # 8 batches per epoch: 12 steps end in epoch 2
    assert list((runs[0] / "network_train").rglob("hparams.yml"))  # log_config
    # log_with without logging_dir: logs go to <output_dir>/logs (sd-scripts stops there); the preflight agrees
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--output_dir", tmp_path / "out2",
              "--log_with", "tensorboard", "--preflight"])
    assert r.returncode == 0 and '"ok": true' in r.stdout.splitlines()[-1], r.stdout + r.stderr[-2000:]
    assert not (tmp_path / "out2").exists()  # the preflight writes nothing


# ------------------------------------------------------------------ full_fp16 / full_bf16
def _floats(header, data, key) -> list[float]:
    """A tensor's values from raw safetensors bytes (F32/F16/BF16) without torch."""
    import struct
    h = header[key]
    a, b = h["data_offsets"]
    raw = data[a:b]
    if h["dtype"] == "BF16":  # the top half of a float32
        return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
    fmt = {"F32": "f", "F16": "e"}[h["dtype"]]
    return list(struct.unpack(f"<{len(raw) // struct.calcsize(fmt)}{fmt}", raw))


def test_full_half_precision_refused_without_gpu(tmp_path, tiny_sd15_ckpt, dataset):
    if Path("/proc/driver/nvidia").exists():
        pytest.skip("a GPU is present: test_full_half_precision_on_gpu covers it")
    out = tmp_path / "out"
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--output_dir", out,
              "--mixed_precision", "bf16", "--full_bf16"])
    _assert_clean_failure(r, out, "full_bf16 needs a CUDA GPU")
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--output_dir", out, "--full_fp16"])
    _assert_clean_failure(r, out, "full_fp16 needs mixed_precision fp16")  # before torch is imported


def test_full_fp16_gradients_unscale_through_the_trainers_scaler_patch(checks):
    f = checks["features"]["fp16_unscale"]
    assert not f["plain"]["ok"] and "FP16" in f["plain"]["error"]  # why sd-scripts patches the scaler
    p = f["patched"]
    assert p["ok"] and p["grad"] == [2.0] * 4 and p["dtype"] == "torch.float16" and all(v < 1 for v in p["w"])


@pytest.mark.skipif(not Path("/proc/driver/nvidia").exists(), reason="needs an NVIDIA GPU")
@pytest.mark.parametrize("prec", ["fp16", "bf16"])
def test_full_half_precision_on_gpu(tmp_path, tiny_sd15_ckpt, dataset, prec):
    """full_fp16 / full_bf16: the LoRA weights train in half precision (the file keeps their dtype when
    save_precision is unset) and stay finite; fp16 goes through the grad scaler (unscaling fp16 gradients)."""
    runs = {}
    for full in (False, True):
        out = tmp_path / f"out_{full}"
        r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
                  "--train_data_dir", dataset, "--resolution", "64", "--caption_extension", ".txt",
                  "--output_dir", out, "--output_name", "h", "--max_train_steps", "6", "--learning_rate", "1e-3",
                  "--network_dim", "4", "--seed", "1", "--mixed_precision", prec, "--max_grad_norm", "1.0"]
                 + ([f"--full_{prec}"] if full else []))
        assert r.returncode == 0, r.stderr[-3000:]
        assert (f"enable full {prec} training." in r.stdout) == full
        runs[full] = _lora(out / "h.safetensors")
    half, _, data = runs[True]
    assert {h["dtype"] for h in half.values()} == {"F16" if prec == "fp16" else "BF16"}
    assert {h["dtype"] for h in runs[False][0].values()} == {"F32"}
    ups = [k for k in half if k.endswith("lora_up.weight")]
    vals = [v for k in ups for v in _floats(half, data, k)]
    assert all(math.isfinite(v) for v in vals) and any(v != 0 for v in vals)  # trained (up starts at 0)


# ------------------------------------------------------------------ lycoris.kohya
@pytest.mark.skipif(not HAVE_LYCORIS, reason="lycoris-lora is not installed")
def test_lycoris_locon_sdxl_keys_and_diffusers_round_trip(lycoris_run, checks):
    r, out = lycoris_run
    assert r.returncode == 0, r.stderr[-3000:]
    assert "import network module: lycoris.kohya" in r.stdout
    header, meta, _ = _lora(out / "ly.safetensors")
    keys = list(header)
    assert all(KOHYA_KEY.match(k) for k in keys) and {k.split("_")[1] for k in keys} == {"unet", "te1", "te2"}
    assert all("_text_model_encoder_layers_" in k for k in keys if k.startswith("lora_te"))
    assert any(k.startswith("lora_unet_input_blocks_") for k in keys) and not any("down_blocks" in k for k in keys)
    assert any(k.startswith("lora_unet_output_blocks_") and "_in_layers_2." in k for k in keys)  # LoCon on resnets
    assert meta["ss_network_module"] == "lycoris.kohya" and json.loads(meta["ss_network_args"])["algo"] == "locon"
    res = checks["lycoris"][0]
    bad = [m for m in res["logs"] if re.search(r"unexpected|missing|not found|No LoRA keys", m, re.I)]
    assert bad == [] and res["our_missing"] == [] and res["our_unexpected"] == []
    assert res["max_abs_ours_vs_diffusers"] < 1e-5 and res["max_abs_emb_ours_vs_diffusers"] < 1e-5
    assert res["max_abs_lora_effect"] > 1e-3 and res["max_abs_emb_lora_effect"] > 1e-3


@pytest.mark.skipif(not HAVE_LYCORIS, reason="lycoris-lora is not installed")
def test_lycoris_loha_sd15_keys(tmp_path, tiny_sd15_ckpt, dataset):
    out = tmp_path / "out"
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--caption_extension", ".txt", "--cache_latents",
              "--output_dir", out, "--output_name", "loha", "--max_train_steps", "2", "--network_module",
              "lycoris.kohya", "--network_dim", "4", "--network_args", "algo=loha", "--network_train_unet_only",
              "--scale_weight_norms", "0.0001"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Keys Scaled" in r.stderr  # LyCORIS' own per-algorithm max-norm, as sd-scripts calls it
    header, meta, _ = _lora(out / "loha.safetensors")
    keys = list(header)
    assert keys and all(k.startswith("lora_unet_") for k in keys)  # network_train_unet_only: no lora_te
    assert any(k.endswith(".hada_w1_a") for k in keys) and not any(k.endswith(".lora_down.weight") for k in keys)
    assert any(k.startswith("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.") for k in keys)
    # dim_from_weights: the LoHa's rank read back from the file (no network_dim given), trained on from it
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--caption_extension", ".txt", "--cache_latents",
              "--output_dir", tmp_path / "o2", "--output_name", "loha2", "--max_train_steps", "1",
              "--network_module", "lycoris.kohya", "--network_args", "algo=loha", "--network_train_unet_only",
              "--network_weights", out / "loha.safetensors", "--dim_from_weights"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "missing 0, unexpected 0" in r.stdout
    h2, meta2, _ = _lora(tmp_path / "o2" / "loha2.safetensors")
    assert {k: v["shape"] for k, v in h2.items()} == {k: v["shape"] for k, v in header.items()}
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--caption_extension", ".txt",
              "--output_dir", tmp_path / "o3", "--network_module", "lycoris.kohya", "--network_args", "algo=lohaa"])
    _assert_clean_failure(r, tmp_path / "o3", "network_args algo=lohaa: lycoris.kohya cannot build the network")
    assert "Traceback" not in r.stderr


def test_save_last_n_epochs_state_prunes_old_states(tmp_path, tiny_sd15_ckpt, dataset):
    out = tmp_path / "out"
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--caption_extension", ".txt", "--cache_latents",
              "--output_dir", out, "--output_name", "st", "--max_train_epochs", "4", "--save_every_n_epochs", "1",
              "--save_state", "--save_last_n_epochs", "2", "--save_last_n_epochs_state", "1",
              "--network_train_unet_only", "--learning_rate", "1e-3"])
    assert r.returncode == 0, r.stderr[-3000:]
    # LoRA files keep the last 2 epochs (plus the final file); states keep the last 1 (plus the final state)
    assert {p.name for p in out.iterdir()} == {"st-000002.safetensors", "st-000003.safetensors",
                                               "st-000003-state", "st-state", "st.safetensors"}
    assert r.stdout.count("removing old state:") == 2


def test_save_last_n_steps_prunes_old_files_and_states(tmp_path, tiny_sd15_ckpt, dataset):
    out = tmp_path / "out"
    r = _run([sys.executable, SD / "train_network.py", "--pretrained_model_name_or_path", tiny_sd15_ckpt,
              "--train_data_dir", dataset, "--resolution", "64", "--caption_extension", ".txt", "--cache_latents",
              "--output_dir", out, "--output_name", "st", "--max_train_steps", "8", "--save_every_n_steps", "2",
              "--save_state", "--save_last_n_steps", "3", "--network_train_unet_only", "--learning_rate", "1e-3"])
    assert r.returncode == 0, r.stderr[-3000:]
    # saves at steps 2, 4, 6 (8 is the final file); at step 6 the last 3 steps are 4..6, so step 2 goes, and the
    # states follow save_last_n_steps (sd-scripts' fallback when save_last_n_steps_state is unset)
    assert {p.name for p in out.iterdir()} == {"st-step00000004.safetensors", "st-step00000006.safetensors",
                                               "st-step00000004-state", "st-step00000006-state", "st-state",
                                               "st.safetensors"}
