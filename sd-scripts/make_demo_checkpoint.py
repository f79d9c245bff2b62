#!/usr/bin/env python
"""Write a tiny randomly initialised SDXL (or SD1.x) checkpoint as ONE single-file `.safetensors` in the
original key layout (`model.diffusion_model.*`, `conditioner.embedders.0/1.*` or `cond_stage_model.*`,
`first_stage_model.*`), readable by the same loader as a real checkpoint.

The tiny component configs go into the safetensors metadata (`lora_tui_diffusers_config`) so the loader can
rebuild the right shapes; a real checkpoint has no such entry and gets the bundled full-size configs.

With `--family flux`, OUT is a folder: a tiny Flux.1 in the four single-file layouts users download
(flux1-tiny.safetensors in BFL layout, ae.safetensors, clip_l.safetensors, t5xxl_tiny.safetensors) and a small
T5 tokenizer under OUT/tokenizers (give it as `tokenizer_cache_dir`).

With `--family sd3`, OUT is a folder: a tiny SD3.5 Medium-shaped model as one single file (sd3_tiny.safetensors:
MMDiT, VAE and the three text encoders, as sd3.5 "incl. clips" files are) and the T5 tokenizer under OUT/tokenizers.

Usage: make_demo_checkpoint.py [--family sdxl|sd1|sd2|flux|sd3] [--seed N] OUT
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", choices=["sdxl", "sd1", "sd2", "flux", "sd3"], default="sdxl")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("out", type=Path)
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    torch.set_num_threads(1)
    if a.family == "flux":
        from lora_trainer.flux_models import make_tiny_flux
        paths = make_tiny_flux(a.out, seed=a.seed)
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
        return 0
    if a.family == "sd3":
        from lora_trainer.sd3_models import make_tiny_sd3
        paths = make_tiny_sd3(a.out, seed=a.seed)
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
        return 0
    from lora_trainer.demo_model import build_tiny_components, save_original_layout

    comps, cfgs = build_tiny_components(a.family, seed=a.seed)
    save_original_layout(a.out, a.family, comps, cfgs)
    print(f"wrote {a.out} ({a.family}, {a.out.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
