#!/usr/bin/env python
"""GPU benchmark of SD3.5 Medium LoRA training (issue 16): the bundled `sd3_train_network.py` against kohya
sd-scripts' `sd3_train_network.py` on the same work, in the same call on the same GPU. No figures are recorded until
it has run on a GPU machine.

Work: full-size SD3.5 Medium architecture with random weights (no download: one single-file checkpoint with the
MMDiT, the 16-channel VAE and CLIP-L / CLIP-G / T5-XXL inside, in the layout Stability's files use, from the
trainer's own configs), 16 images 1024x1024 in one `10_name` folder with captions, LoRA dim 16 / alpha 16, MMDiT only,
cached latents and text-encoder outputs, AdamW lr 1e-4, bf16, SDPA, seed 42; batch 1 and 4, with and without gradient
checkpointing. Both trainers get the same TOML (`--config_file`) and the same tokenizers (written offline into
`tokenizer_cache_dir`: CLIP-L/CLIP-G from the bundled BPE, a word-level stand-in for T5; the outputs are cached, so
the token ids only have to be valid).

Measured per run, as `flux_train_speed.py` measures (its `run_one`, `GpuMemory`, `summarize` are reused): steady
images/s from the wall-clock times of the step counter between step `--from` and the last step, the process's peak
GPU memory (NVML), the share of the GPU's bf16 peak (MMDiT forward FLOPs per image on the meta device × 2), the last
avr_loss.

kohya's code is NOT part of this repository: put an sd-scripts checkout in `benchmarks/kohya-sd-scripts/` (git-ignored)
with its packages importable by `--kohya-python`; without it the kohya runs are reported as skipped.

Usage (GPU machine): `python benchmarks/sd3_train_speed.py --out DIR [--runs b1,b4,b4_gc] [--steps 40]`
CPU smoke test: `python benchmarks/sd3_train_speed.py --tiny --out /tmp/x` (tiny SD3.5 Medium shape, 64 px).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SD = REPO / "sd-scripts"
sys.path.insert(0, str(SD))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from flux_train_speed import BF16_PEAK, make_dataset, run_one, summarize  # noqa: E402

RUNS = {"b1": (1, False), "b4": (4, False), "b1_gc": (1, True), "b4_gc": (4, True)}  # name: (batch, checkpointing)
# SD3.5 Medium (stabilityai/stable-diffusion-3.5-medium transformer/config.json values)
SD35M = {"sample_size": 128, "patch_size": 2, "in_channels": 16, "num_layers": 24, "attention_head_dim": 64,
         "num_attention_heads": 24, "joint_attention_dim": 4096, "caption_projection_dim": 1536,
         "pooled_projection_dim": 2048, "out_channels": 16, "pos_embed_max_size": 384,
         "dual_attention_layers": list(range(13)), "qk_norm": "rms_norm"}


def make_models(folder: Path, tiny: bool) -> dict[str, Path]:
    """The checkpoint (text encoders inside) and the tokenizer folder in `folder`."""
    paths = {"checkpoint": folder / "sd3.5_medium_random.safetensors", "tokenizer_cache_dir": folder / "tokenizers"}
    if all(p.exists() for p in paths.values()):
        return paths
    import torch

    from lora_trainer import sd3_models as sm
    from lora_trainer.flux_models import save_tiny_t5_tokenizer
    from lora_trainer.tokenizers import clip_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    if tiny:
        comps, cfgs = sm.build_tiny_sd3(seed=0)
        vocab = cfgs["t5xxl"]["vocab_size"]
    else:
        from diffusers import AutoencoderKL, SD3Transformer2DModel
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

        from lora_trainer.flux_models import FLUX_CONFIG_DIR

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(0)
        cfgs = {"transformer": SD35M, "vae": sm.FULL_CONFIGS["vae"], "clip_l": sm.FULL_CONFIGS["clip_l"],
                "clip_g": sm.FULL_CONFIGS["clip_g"],
                "t5xxl": json.loads((FLUX_CONFIG_DIR / "text_encoder_2" / "config.json").read_text())}
        with torch.device(dev):
            comps = {"transformer": SD3Transformer2DModel(**SD35M).to(torch.bfloat16),
                     "vae": AutoencoderKL(**{k: v for k, v in cfgs["vae"].items() if not k.startswith("_")}),
                     "clip_l": CLIPTextModelWithProjection(CLIPTextConfig(**cfgs["clip_l"])).to(torch.bfloat16),
                     "clip_g": CLIPTextModelWithProjection(CLIPTextConfig(**cfgs["clip_g"])).to(torch.bfloat16),
                     "t5xxl": T5EncoderModel(T5Config(**{k: v for k, v in cfgs["t5xxl"].items()
                                                         if not k.startswith("_")})).to(torch.bfloat16)}
        comps = {k: v.to("cpu") for k, v in comps.items()}
        vocab = 32128
    # the configs go into the file's metadata (our loaders take them; kohya's reads the tensor shapes)
    written = sm.save_tiny_sd3(folder, comps, cfgs, include_text_encoders=True)
    os.replace(written["checkpoint"], paths["checkpoint"])
    save_tiny_t5_tokenizer(paths["tokenizer_cache_dir"], vocab)
    for name in ("openai_clip-vit-large-patch14", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"):
        clip_tokenizer().save_pretrained(str(paths["tokenizer_cache_dir"] / name))
    return paths


def write_toml(path: Path, models: dict, data: Path, out: Path, res: int, batch: int, gc: bool, steps: int,
               t5_len: int) -> Path:
    lines = [f'pretrained_model_name_or_path = "{models["checkpoint"]}"',
             f'tokenizer_cache_dir = "{models["tokenizer_cache_dir"]}"', f'train_data_dir = "{data}"',
             f'resolution = "{res},{res}"', 'caption_extension = ".txt"', "cache_latents = true",
             "cache_text_encoder_outputs = true", "network_train_unet_only = true", f'output_dir = "{out}"',
             'output_name = "bench"', f"max_train_steps = {steps}", f"train_batch_size = {batch}",
             "learning_rate = 0.0001", 'optimizer_type = "AdamW"', 'mixed_precision = "bf16"',
             'save_precision = "bf16"', "sdpa = true", "seed = 42", 'network_module = "networks.lora_sd3"',
             "network_dim = 16", "network_alpha = 16", 'weighting_scheme = "logit_normal"', "training_shift = 3.0",
             f"t5xxl_max_token_length = {t5_len}", "max_data_loader_n_workers = 0",
             f"gradient_checkpointing = {'true' if gc else 'false'}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def forward_flops_per_image(res: int, t5_len: int, tiny: bool) -> float:
    """MMDiT forward FLOPs for one image at `res` px (meta device, FlopCounterMode)."""
    import torch
    from diffusers import SD3Transformer2DModel
    from torch.utils.flop_counter import FlopCounterMode

    from lora_trainer import sd3_models as sm

    cfg = sm.tiny_sd3_configs()["transformer"] if tiny else SD35M
    with torch.device("meta"):
        tr = SD3Transformer2DModel(**cfg)
        kw = dict(hidden_states=torch.zeros(1, 16, res // 8, res // 8),
                  encoder_hidden_states=torch.zeros(1, 77 + t5_len, cfg["joint_attention_dim"]),
                  pooled_projections=torch.zeros(1, cfg["pooled_projection_dim"]), timestep=torch.zeros(1),
                  return_dict=False)
        with FlopCounterMode(display=False) as fc:
            tr(**kw)
    return float(fc.get_total_flops())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", default="b1,b4,b4_gc")
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    ap.add_argument("--from", dest="from_step", type=int, default=10, help="first step of the timed window")
    ap.add_argument("--kohya", type=Path, default=REPO / "benchmarks" / "kohya-sd-scripts")
    ap.add_argument("--kohya-python", default=sys.executable)
    ap.add_argument("--python", default=sys.executable, help="Python of the bundled trainer")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test on the tiny SD3.5 Medium shape at 64 px")
    ap.add_argument("--timeout-s", type=float, default=900)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    res, n_img, t5_len = (64, 4, 16) if a.tiny else (1024, 16, 256)
    if a.tiny:
        a.steps, a.from_step = min(a.steps, 6), 2
    models = make_models(a.out / "models", a.tiny)
    data = make_dataset(a.out / "img", n_img, res)
    flops = 2 * forward_flops_per_image(res, t5_len, a.tiny)
    card = ""
    try:
        card = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    peak = next((v for k, v in BF16_PEAK.items() if k in card), None)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    if a.tiny:
        env["OMP_NUM_THREADS"] = "1"
    kohya_ok = (a.kohya / "sd3_train_network.py").is_file()
    results = []
    for name in [r for r in a.runs.split(",") if r]:
        batch, gc = RUNS[name]
        for who in ("ours", "kohya"):
            entry = {"run": name, "trainer": who, "batch": batch, "gradient_checkpointing": gc, "card": card}
            if who == "kohya" and not kohya_ok:
                entry["skipped"] = f"no kohya sd-scripts checkout at {a.kohya}"
                results.append(entry)
                continue
            out = a.out / f"{name}_{who}"
            toml = write_toml(a.out / f"{name}_{who}.toml", models, data, out, res, batch, gc, a.steps, t5_len)
            script = (SD if who == "ours" else a.kohya) / "sd3_train_network.py"
            py = a.python if who == "ours" else a.kohya_python
            r = run_one([py, str(script), "--config_file", str(toml)], env, a.out / f"{name}_{who}.log",
                        a.from_step, a.timeout_s)
            entry.update(r)
            if r["steps_per_s"]:
                entry["images_per_s"] = round(r["steps_per_s"] * batch, 3)
                if peak:
                    entry["share_of_bf16_peak"] = round(entry["images_per_s"] * flops / peak, 3)
            results.append(entry)
            (a.out / "results.json").write_text(json.dumps(results, indent=1))
            print(json.dumps(entry), flush=True)
    (a.out / "summary.md").write_text(summarize(results, card))
    print((a.out / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
