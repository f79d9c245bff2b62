#!/usr/bin/env python
"""GPU benchmark of Flux.1 LoRA training (issue 15): the bundled `flux_train_network.py` against kohya sd-scripts'
`flux_train_network.py` on the same work, in the same call on the same GPU.

Work: full-size Flux.1-dev architecture with random weights (no download: the four single files users download,
written in their BFL / ldm / HF layouts from the trainer's bundled configs), 16 images 1024x1024 in one
`10_name` folder with captions, LoRA dim 16 / alpha 16, U-Net (transformer) only, cached latents and text-encoder
outputs, AdamW lr 1e-4, bf16, SDPA, seed 42, `timestep_sampling sigmoid`, `model_prediction_type raw`,
`guidance_scale 1.0`; batch 1 and 4, with and without gradient checkpointing, and with `fp8_base`. Both trainers
get the same TOML (`--config_file`) and the same tokenizers (written offline into `tokenizer_cache_dir`: CLIP-L
from the bundled BPE, a word-level stand-in for T5: the benchmark caches the text-encoder outputs, so the token
ids only have to be valid).

Measured per run (each trainer in its own process): steady-state images/s from the wall-clock times of the
progress lines between step `--from` and the last step; peak GPU memory of the process (NVML polling every 50 ms,
the same probe for both trainers); the share of the GPU's bf16 peak (transformer forward FLOPs per image counted
with torch's FlopCounterMode on the meta device, ×2 for forward + backward-to-activations: the frozen weights get
no weight gradients); the last avr_loss of each.

kohya's code is NOT part of this repository: put an sd-scripts checkout in a git-ignored folder (default
`benchmarks/kohya-sd-scripts/`, ignored by .gitignore) with its Python packages importable by `--kohya-python`,
and carry it to the GPU machine. Without it the kohya runs are reported as skipped.

Usage (GPU machine): `python benchmarks/flux_train_speed.py --out DIR [--runs b1,b4,b4_gc,b1_fp8] [--steps 40]`
CPU smoke test: `python benchmarks/flux_train_speed.py --tiny --out /tmp/x` (tiny Flux, 64 px, few steps).
Results: DIR/results.json (one entry per run, written after each run), DIR/summary.md, DIR/<run>.log.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SD = REPO / "sd-scripts"
sys.path.insert(0, str(SD))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
BF16_PEAK = {"H100": 989e12, "H200": 989e12}  # dense bf16 tensor-core peak (SXM) by card name
RUNS = {  # name: (batch, gradient checkpointing, fp8_base)
    "b1": (1, False, False), "b4": (4, False, False), "b1_gc": (1, True, False), "b4_gc": (4, True, False),
    "b1_fp8": (1, False, True), "b4_gc_fp8": (4, True, True)}


# ----------------------------------------------------------------------------- inputs
def make_models(folder: Path, tiny: bool) -> dict[str, Path]:
    """The four single files (+ tokenizers) in `folder`; full size from the bundled configs, random bf16 weights."""
    paths = {"transformer": folder / "flux1-dev.safetensors", "ae": folder / "ae.safetensors",
             "clip_l": folder / "clip_l.safetensors", "t5xxl": folder / "t5xxl_fp16.safetensors",
             "tokenizer_cache_dir": folder / "tokenizers"}
    if all(p.exists() for p in paths.values()):
        return paths
    import torch

    from lora_trainer import flux_models as fm
    from lora_trainer.tokenizers import clip_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    if tiny:
        comps, cfgs = fm.build_tiny_flux(seed=0)
        p = fm.save_tiny_flux(folder, comps, cfgs)
        for k in ("transformer", "ae", "clip_l", "t5xxl"):
            p[k].rename(paths[k])
        vocab = cfgs["t5xxl"]["vocab_size"]
    else:
        from diffusers import AutoencoderKL, FluxTransformer2DModel
        from safetensors.torch import save_file
        from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

        from lora_trainer import ldm_layout

        cfg = {c: json.loads((fm.FLUX_CONFIG_DIR / c / "config.json").read_text())
               for c in ("transformer", "vae", "text_encoder", "text_encoder_2")}
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(0)

        def write(path, sd):
            tmp = path.with_suffix(".tmp")
            save_file({k: v.detach().to("cpu", torch.bfloat16).contiguous() for k, v in sd.items()}, str(tmp))
            os.replace(tmp, path)

        with torch.device(dev):
            tr = FluxTransformer2DModel.from_config(cfg["transformer"]).to(torch.bfloat16)
        write(paths["transformer"], fm.diffusers_to_bfl(tr.state_dict(), cfg["transformer"]))
        del tr
        with torch.device(dev):
            ae = AutoencoderKL.from_config(cfg["vae"])
        write(paths["ae"], {k[len("first_stage_model."):]: v
                            for k, v in ldm_layout.vae_to_ldm(ae.state_dict(), cfg["vae"]).items()})
        del ae
        with torch.device(dev):
            clip = CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"]))
        write(paths["clip_l"], ldm_layout.clip_to_ldm(clip.state_dict(), ""))
        del clip
        with torch.device(dev):
            t5 = T5EncoderModel(T5Config(**cfg["text_encoder_2"])).to(torch.bfloat16)
        write(paths["t5xxl"], {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"})
        del t5
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        vocab = 32128
    fm.save_tiny_t5_tokenizer(paths["tokenizer_cache_dir"], vocab)
    clip_tokenizer().save_pretrained(str(paths["tokenizer_cache_dir"] / "openai_clip-vit-large-patch14"))
    return paths


def make_dataset(root: Path, n: int, size: int) -> Path:
    """`n` smooth random RGB images of size x size in `root/10_name`, each with a caption file."""
    import numpy as np
    from PIL import Image

    sub = root / "10_name"
    sub.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        p = sub / f"{i:03d}.png"
        if not p.exists():
            small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(small).resize((size, size), Image.BICUBIC).save(p)
            (sub / f"{i:03d}.txt").write_text("a photo of name, portrait\n")
    return root


def write_toml(path: Path, models: dict, data: Path, out: Path, res: int, batch: int, gc: bool, fp8: bool,
               steps: int, t5_len: int) -> Path:
    lines = [f'pretrained_model_name_or_path = "{models["transformer"]}"', f'ae = "{models["ae"]}"',
             f'clip_l = "{models["clip_l"]}"', f't5xxl = "{models["t5xxl"]}"',
             f'tokenizer_cache_dir = "{models["tokenizer_cache_dir"]}"', f'train_data_dir = "{data}"',
             f'resolution = "{res},{res}"', 'caption_extension = ".txt"', "cache_latents = true",
             "cache_text_encoder_outputs = true", "network_train_unet_only = true", f'output_dir = "{out}"',
             'output_name = "bench"', f"max_train_steps = {steps}", f"train_batch_size = {batch}",
             "learning_rate = 0.0001", 'optimizer_type = "AdamW"', 'mixed_precision = "bf16"',
             'save_precision = "bf16"', "sdpa = true", "seed = 42", 'network_module = "networks.lora_flux"',
             "network_dim = 16", "network_alpha = 16", 'timestep_sampling = "sigmoid"',
             'model_prediction_type = "raw"', "guidance_scale = 1.0", f"t5xxl_max_token_length = {t5_len}",
             "max_data_loader_n_workers = 0", f"gradient_checkpointing = {'true' if gc else 'false'}",
             f"fp8_base = {'true' if fp8 else 'false'}"]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- measuring
class GpuMemory(threading.Thread):
    """Peak GPU memory used by process `pid` and its children (NVML, polled); 0 without a GPU."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self):
        try:
            import psutil
            import pynvml
            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # noqa: BLE001 - no NVML: no memory figure
            return
        while not self.stop.is_set():
            try:
                pids = {self.pid} | {c.pid for c in psutil.Process(self.pid).children(recursive=True)}
            except psutil.Error:
                break
            used = 0
            for h in handles:
                for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
                    if p.pid in pids and p.usedGpuMemory:
                        used += p.usedGpuMemory
            self.peak = max(self.peak, used)
            time.sleep(0.05)


STEP_RE = re.compile(r"steps:\s+\d+%.*?\|\s*(\d+)/(\d+)")
LOSS_RE = re.compile(r"avr_loss=([0-9.]+)")


def run_one(argv: list[str], env: dict, log_path: Path, from_step: int, timeout: float) -> dict:
    """Run one trainer process; images/s from the wall clock of its step counter (tqdm on stderr, both trainers)."""
    t0 = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
    mem = GpuMemory(proc.pid)
    mem.start()
    seen: dict[int, float] = {}
    loss = None
    buf = b""
    with open(log_path, "wb") as log:
        while True:
            chunk = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
            if not chunk:
                break
            log.write(chunk)
            buf += chunk
            now = time.time()
            parts = re.split(rb"[\r\n]", buf)
            buf = parts.pop()
            for raw in parts:
                line = raw.decode("utf-8", "replace")
                m = STEP_RE.search(line)
                if m:
                    seen.setdefault(int(m.group(1)), now)
                lm = LOSS_RE.search(line)
                if lm:
                    loss = float(lm.group(1))
            if now - t0 > timeout:
                proc.kill()
                break
    rc = proc.wait()
    mem.stop.set()
    mem.join(1)
    last = max(seen) if seen else 0
    ips_steps = None
    if last > from_step and from_step in seen:
        ips_steps = (last - from_step) / (seen[last] - seen[from_step])
    return {"rc": rc, "wall_s": round(time.time() - t0, 1), "last_step": last, "steps_per_s": ips_steps,
            "peak_gib": round(mem.peak / 2**30, 2) if mem.peak else None, "avr_loss": loss}


def forward_flops_per_image(res: int, t5_len: int, tiny: bool) -> float:
    """Transformer forward FLOPs for one image at `res` px (meta device, FlopCounterMode)."""
    import torch
    from diffusers import FluxTransformer2DModel
    from torch.utils.flop_counter import FlopCounterMode

    from lora_trainer import flux_models as fm

    cfg = fm.tiny_flux_configs()["transformer"] if tiny else \
        json.loads((fm.FLUX_CONFIG_DIR / "transformer" / "config.json").read_text())
    with torch.device("meta"):
        tr = FluxTransformer2DModel(**{k: v for k, v in cfg.items() if not k.startswith("_")})
        n = (res // 16) ** 2
        kw = dict(hidden_states=torch.zeros(1, n, 64), encoder_hidden_states=torch.zeros(1, t5_len, cfg["joint_attention_dim"]),
                  pooled_projections=torch.zeros(1, cfg["pooled_projection_dim"]), timestep=torch.zeros(1),
                  img_ids=torch.zeros(n, 3), txt_ids=torch.zeros(t5_len, 3),
                  guidance=torch.zeros(1) if cfg.get("guidance_embeds") else None, return_dict=False)
        with FlopCounterMode(display=False) as fc:
            tr(**kw)
    return float(fc.get_total_flops())


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    ap.add_argument("--from", dest="from_step", type=int, default=10, help="first step of the timed window")
    ap.add_argument("--kohya", type=Path, default=REPO / "benchmarks" / "kohya-sd-scripts")
    ap.add_argument("--kohya-python", default=sys.executable)
    ap.add_argument("--python", default=sys.executable, help="Python of the bundled trainer")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test on a tiny Flux at 64 px")
    ap.add_argument("--timeout-s", type=float, default=900)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    res, n_img, t5_len = (64, 4, 16) if a.tiny else (1024, 16, 512)
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
    kohya_ok = (a.kohya / "flux_train_network.py").is_file()
    results = []
    for name in [r for r in a.runs.split(",") if r]:
        batch, gc, fp8 = RUNS[name]
        for who in ("ours", "kohya"):
            entry = {"run": name, "trainer": who, "batch": batch, "gradient_checkpointing": gc, "fp8_base": fp8,
                     "card": card}
            if who == "kohya" and not kohya_ok:
                entry["skipped"] = f"no kohya sd-scripts checkout at {a.kohya}"
                results.append(entry)
                continue
            out = a.out / f"{name}_{who}"
            toml = write_toml(a.out / f"{name}_{who}.toml", models, data, out, res, batch, gc, fp8, a.steps, t5_len)
            script = SD / "flux_train_network.py" if who == "ours" else a.kohya / "flux_train_network.py"
            py = a.python if who == "ours" else a.kohya_python
            argv_run = [py, str(script), "--config_file", str(toml)]
            r = run_one(argv_run, env, a.out / f"{name}_{who}.log", a.from_step, a.timeout_s)
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


def summarize(results: list[dict], card: str) -> str:
    """Markdown: per run ours vs kohya images/s, ratio, peak memory, share of the bf16 peak, last avr_loss."""
    lines = [f"GPU: {card or 'none'}", "",
             "| run | ours images/s | kohya images/s | ratio | ours peak GiB | kohya peak GiB | ours share of bf16 "
             "peak | ours / kohya last avr_loss |", "|---|---|---|---|---|---|---|---|"]
    by = {(r["run"], r["trainer"]): r for r in results}
    for name in dict.fromkeys(r["run"] for r in results):
        o, k = by.get((name, "ours"), {}), by.get((name, "kohya"), {})
        oi, ki = o.get("images_per_s"), k.get("images_per_s")
        ratio = f"{oi / ki:.2f}x" if oi and ki else "-"
        lines.append(f"| {name} | {oi or o.get('rc', '-')} | {ki or k.get('skipped') or k.get('rc', '-')} | {ratio} | "
                     f"{o.get('peak_gib', '-')} | {k.get('peak_gib', '-')} | {o.get('share_of_bf16_peak', '-')} | "
                     f"{o.get('avr_loss', '-')} / {k.get('avr_loss', '-')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
