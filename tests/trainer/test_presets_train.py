"""Every LoRA preset of ../shared/fixtures/kohya_presets for SD1.x/2.x/SDXL/Flux.1 trains 2 steps with the bundled
trainer on a tiny model of its family, through the launch the app builds (`build_launch` / its TOML and
argv), with paths, size, steps and precision overridden and the optimizer, scheduler, network, loss and noise
settings kept; each leaves a LoRA file. A preset the trainer cannot train must be refused by the app's
validation before launch (listed in EXPECTED_REFUSALS with the reason), and the trainer's `--preflight` must
pass for every preset that trains. Cheap: one Python process runs every launch through `main(script, argv)`
(tests/trainer/preset_driver.py), at 64 px.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.kohya_json import ConfigError, load_config_file
from lora_tui.config.model import family, script_name
from lora_tui.plan.dataset import scan_dataset
from lora_tui.plan.launch import build_launch, write_launch_files
from lora_tui.plan.rules import validate

REPO = Path(__file__).resolve().parents[2]
PRESETS = REPO.parent / "shared" / "fixtures" / "kohya_presets"
PHOTOS = REPO / "lora_tui" / "demo" / "photos"

# preset file name → why the app refuses it before launch (aim: none)
EXPECTED_REFUSALS: dict[str, str] = {}
# presets waiting for trainer features: none now (scale_weight_norms with lycoris.kohya and masked_loss landed)
PENDING: dict[str, str] = {}

# what the test changes in each preset: where things are, how big and how long, and precision
OVERRIDES = {
    "train_data_dir": None, "reg_data_dir": "", "dataset_config": "", "output_dir": None, "output_name": None,
    "logging_dir": None, "max_resolution": "64,64", "enable_bucket": True, "min_bucket_reso": 64,
    "max_bucket_reso": 128, "bucket_reso_steps": 64, "bucket_no_upscale": False, "max_train_steps": 2,
    "max_train_epochs": None, "epoch": 1, "train_batch_size": 1, "gradient_accumulation_steps": 1,
    "mixed_precision": "no", "full_fp16": False, "full_bf16": False, "xformers": "none", "num_processes": 1,
    "num_machines": 1, "gpu_ids": "", "multi_gpu": False, "num_cpu_threads_per_process": 1,
    "max_data_loader_n_workers": 0, "persistent_data_loader_workers": False, "sample_prompts": "",
    "sample_every_n_steps": 0, "sample_every_n_epochs": 0, "sample_at_first": False,
    "save_every_n_epochs": 0, "save_every_n_steps": 0, "save_state": False, "save_state_on_train_end": False,
    "resume": "", "network_weights": "", "seed": 1, "cache_latents_to_disk": False, "torch_compile": False,
    "extra_accelerate_launch_args": "", "huggingface_repo_id": "",
}


# the preflight on bad settings (SD1.5, run in the same driver process): case → argv added to a good launch
PREFLIGHT_CASES = {
    "pre:optimizer_args": ["--optimizer_type", "AdamW", "--optimizer_args", "network_train_unet_only=True"],
    "pre:dadapt_args": ["--optimizer_type", "DAdaptAdam", "--optimizer_args", "no_such_arg=1"],
    "pre:min_lr": ["--lr_scheduler", "cosine_with_min_lr"],
    "pre:scheduler_name": ["--lr_scheduler", "cosine_annealing"],
    "pre:scheduler_type": ["--lr_scheduler_type", "NoSuchLR"],
    "pre:warmup_constant": ["--lr_warmup_steps", "3"],
    "pre:tracker_config": ["--log_with", "wandb", "--log_tracker_config", "{root}/missing.toml"],
    "pre:refused": ["--huggingface_repo_id", "me/x"],
    "pre:prompts": ["--sample_prompts", "{root}/missing.txt"],
    "pre:no_images": ["--train_data_dir", "{root}/pre_out"],
    "pre:argparse": ["--network_dim", "four"],
    "pre:lycoris_algo": ["--network_module", "lycoris.kohya", "--network_args", "algo=lohaa"],
    "pre:good": ["--optimizer_type", "AdamWScheduleFree", "--lr_scheduler", "warmup_stable_decay",
                 "--lr_decay_steps", "0.5", "--log_with", "all", "--logging_dir", "{root}/pre_logs"],
    # sd-scripts' other optimizers and schedulers: each built with its arguments and stepped once
    "pre:ok_dadapt_min_lr": ["--optimizer_type", "DAdaptAdam", "--learning_rate", "1", "--optimizer_args",
                             "decouple=True", "betas=0.9,0.99", "--lr_scheduler", "cosine_with_min_lr",
                             "--lr_scheduler_min_lr_ratio", "0.1", "--lr_warmup_steps", "0.1"],
    "pre:ok_lion_inverse_sqrt": ["--optimizer_type", "Lion", "--lr_scheduler", "inverse_sqrt",
                                 "--lr_warmup_steps", "2", "--lr_scheduler_timescale", "4"],
    "pre:ok_sgd_sf_piecewise": ["--optimizer_type", "SGDScheduleFree", "--lr_scheduler", "piecewise_constant",
                                "--lr_scheduler_args", "step_rules='1:10,0.1:20,0.01'"],
    "pre:ok_radam_sf": ["--optimizer_type", "RAdamScheduleFree"],
    "pre:ok_dotted_scheduler": ["--optimizer_type", "torch.optim.Adam", "--lr_scheduler_type",
                                "torch.optim.lr_scheduler.StepLR", "--lr_scheduler_args", "step_size=1",
                                "gamma=0.5"],
    "pre:ok_adafactor_relative": ["--optimizer_type", "Adafactor", "--lr_scheduler", "cosine"],
    "pre:ok_8bit_flag": ["--use_8bit_adam", "--lr_scheduler", "polynomial", "--lr_scheduler_power", "2"],
    "pre:ok_dadaptation": ["--optimizer_type", "DAdaptation", "--learning_rate", "1"],
}
# case → (exit code, {field: severity} the findings must hold)
PREFLIGHT_EXPECT = {
    "pre:optimizer_args": (1, {"optimizer_args": "error"}), "pre:dadapt_args": (1, {"optimizer_args": "error"}),
    "pre:min_lr": (1, {"lr_scheduler": "error"}), "pre:scheduler_name": (1, {"lr_scheduler": "error"}),
    "pre:scheduler_type": (1, {"lr_scheduler_type": "error"}),
    "pre:warmup_constant": (1, {"lr_warmup_steps": "error"}),
    "pre:tracker_config": (1, {"log_tracker_config": "error"}), "pre:refused": (1, {"huggingface_repo_id": "error"}),
    "pre:prompts": (1, {"sample_prompts": "error"}), "pre:no_images": (1, {"train_data_dir": "error"}),
    "pre:argparse": (2, {}), "pre:good": (0, {}),
    "pre:lycoris_algo": (1, {"network_args": "error"}),
    **{k: (0, {}) for k in PREFLIGHT_CASES if k.startswith("pre:ok_")},
}


def lora_presets() -> list[Path]:
    """The LoRA presets of the SD1.x/2.x/SDXL/Flux.1 families (sd3 presets and other kinds of file excluded)."""
    out = []
    for p in sorted(PRESETS.glob("*.json")):
        try:
            cfg = load_config_file(p).config
        except ConfigError:
            continue  # DreamBooth / TI / fine-tuning: not a LoRA preset
        if family(cfg) in ("sd1", "sd2", "sdxl", "flux1"):
            out.append(p)
    return out


def _dataset(root: Path) -> Path:
    sub = root / "img" / "1_demo person"
    sub.mkdir(parents=True)
    for p in sorted(x for x in PHOTOS.iterdir() if x.suffix == ".jpg")[:2]:
        shutil.copy(p, sub / p.name)
        (sub / (p.stem + ".txt")).write_text(f"demo person, {p.stem}\n")
    return root / "img"


@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory) -> Path:
    """A tiny Flux.1 in its four single files and a T5 tokenizer (make_demo_checkpoint.py --family flux)."""
    d = tmp_path_factory.mktemp("tiny_flux")
    r = subprocess.run([sys.executable, str(REPO / "sd-scripts" / "make_demo_checkpoint.py"), "--family", "flux",
                        str(d)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    return d


@pytest.fixture(scope="module")
def preset_runs(tmp_path_factory, tiny_sd15_ckpt, tiny_sdxl_ckpt, tiny_sd2_ckpt, tiny_flux):
    """Each preset: the app's validation problems, its launch, and the driver's result for it."""
    root = tmp_path_factory.mktemp("presets")
    data = _dataset(root)
    ckpt = {"sd1": tiny_sd15_ckpt, "sd2": tiny_sd2_ckpt, "sdxl": tiny_sdxl_ckpt,
            "flux1": tiny_flux / "flux1-tiny.safetensors"}
    flux_files = {"ae": str(tiny_flux / "ae.safetensors"), "clip_l": str(tiny_flux / "clip_l.safetensors"),
                  "t5xxl": str(tiny_flux / "t5xxl_tiny.safetensors"), "t5xxl_max_token_length": 16,
                  "additional_parameters": f"--tokenizer_cache_dir {tiny_flux / 'tokenizers'}",
                  "mixed_precision": "bf16"}  # fp8_base needs it (sd-scripts); the trainer trains fp32 on a CPU
    settings = AppSettings(sd_scripts_dir=REPO / "sd-scripts", python=sys.executable)
    rows, spec = {}, []
    for i, path in enumerate(lora_presets()):
        cfg = load_config_file(path).config
        fam = family(cfg)
        out = root / f"out{i:02d}"
        values = dict(OVERRIDES, pretrained_model_name_or_path=str(ckpt[fam]), train_data_dir=str(data),
                      output_dir=str(out), output_name=f"p{i:02d}",
                      logging_dir=str(root / "logs" / f"p{i:02d}") if cfg.logging_dir else "",
                      **(flux_files if fam == "flux1" else {}))
        for k, v in values.items():
            if k in type(cfg).model_fields:
                setattr(cfg, k, v)
        errors = [p for p in validate(cfg, scan_dataset(cfg), settings) if p.severity == "error"]
        row = {"family": fam, "errors": [f"{p.field}: {p.message}" for p in errors], "out": out, "i": i}
        rows[path.name] = row
        if errors:
            continue
        out.mkdir(parents=True)
        launch = write_launch_files(build_launch(cfg, settings, cwd=root), cfg)
        at = next(j for j, a in enumerate(launch.argv) if a.endswith(script_name(cfg)))
        spec.append({"name": path.name, "script": script_name(cfg).removesuffix(".py"),
                     "argv": launch.argv[at + 1:], "log": str(root / f"log{i:02d}.txt")})
    base = ["--pretrained_model_name_or_path", str(tiny_sd15_ckpt), "--train_data_dir", str(data), "--resolution",
            "64", "--output_dir", str(root / "pre_out")]
    for name, argv in PREFLIGHT_CASES.items():
        argv = [a.replace("{root}", str(root)) for a in argv]
        spec.append({"name": name, "script": "train_network", "argv": base + argv, "preflight_only": True,
                     "log": str(root / f"pre-{len(spec)}.txt")})
        rows[name] = {"errors": [], "out": root / "pre_out", "i": -1}
    f = root / "spec.json"
    f.write_text(json.dumps(spec))
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("preset_driver.py")), str(f)],
                       capture_output=True, text=True, env=env, cwd=root, timeout=900)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and line, r.stderr[-4000:]
    cpu = [ln for ln in r.stdout.splitlines() if ln.startswith("CPU ")]
    print(f"\npreset driver: {cpu[-1][4:] if cpu else '?'} s CPU")
    for res in json.loads(line[-1][len("RESULT "):]):
        rows[res["name"]].update(res)
        rows[res["name"]]["log_text"] = Path(next(s["log"] for s in spec if s["name"] == res["name"])).read_text()
    return rows


def test_there_are_the_45_lora_presets():
    names = [p.name for p in lora_presets()]
    assert len(names) >= 44, names


def test_every_lora_preset_trains_or_is_refused_before_launch(preset_runs):
    failed = {}
    for name, row in preset_runs.items():
        if name.startswith("pre:"):
            continue
        if name in PENDING:
            continue
        if name in EXPECTED_REFUSALS:
            assert row["errors"], f"{name} is listed as refused ({EXPECTED_REFUSALS[name]}) but validates"
            continue
        if row["errors"]:
            failed[name] = ("refused by validate", row["errors"])
            continue
        loras = sorted(p.name for p in row["out"].glob(f"p{row['i']:02d}.*") if p.suffix in (".safetensors", ".ckpt",
                                                                                              ".pt"))
        if row.get("rc") != 0 or not loras:
            failed[name] = (row.get("rc"), row.get("log_text", "")[-1500:])
    assert not failed, json.dumps(failed, indent=1, default=str)


def test_wandb_presets_log_offline_under_output_dir_logs(preset_runs):
    """log_with wandb without logging_dir: the run logs to <output_dir>/logs (WANDB_DIR), offline here."""
    rows = [r for n, r in preset_runs.items() if "kudou-reira" in n and r.get("rc") == 0]
    assert len(rows) == 3
    for r in rows:
        assert list((r["out"] / "logs").glob("*/wandb/offline-run-*")), r["log_text"][-1500:]


def test_a_preset_the_preflight_passes_trains(preset_runs):
    """"validate OK means the run starts training", pending presets included: a preset whose preflight reports no
    error must train (one that cannot train must be named by the preflight, i.e. before launch)."""
    late = {n: r.get("log_text", "")[-800:] for n, r in preset_runs.items()
            if not n.startswith("pre:") and r.get("preflight_rc") == 0 and r.get("rc") != 0}
    assert not late, late
    rows = [r for n, r in preset_runs.items() if "seconds" in r]
    print(f"\n{len(rows)} presets: {sum(r['seconds'] for r in rows):.1f} s training, "
          f"{sum(r['preflight_s'] for r in rows):.1f} s preflight (wall, one process)")


def test_preflight_passes_for_every_preset_that_trains(preset_runs):
    bad = {n: r["preflight"] for n, r in preset_runs.items()
           if not n.startswith("pre:") and r.get("rc") == 0
           and (r.get("preflight_rc") != 0 or any(f["severity"] == "error" for f in r["preflight"]))}
    assert not bad, bad


def test_preflight_names_the_field_of_each_bad_setting_and_writes_nothing(preset_runs):
    for name, (rc, fields) in PREFLIGHT_EXPECT.items():
        row = preset_runs[name]
        got = {f["field"]: f["severity"] for f in row["preflight"]}
        assert row["preflight_rc"] == rc and all(got.get(k) == v for k, v in fields.items()), (name, row)
        if rc != 2:  # argparse errors print usage only, as a run does
            assert row["preflight_done"] == [{**row["preflight_done"][0], "ok": rc == 0}]
            assert all(f["message"] and f["severity"] in ("error", "warning") for f in row["preflight"])
    good = preset_runs["pre:good"]["out"]
    assert not good.exists() and not (good.parent / "pre_logs").exists()
