"""Sample images during training (`sample_prompts`, `sample_every_n_steps/epochs`, `sample_at_first`,
`sample_sampler`), spec sd_scripts_interface.md §4.18, through the diffusers pipeline that holds the training
modules (the LoRA is active at multiplier 1).

Prompt files: `.txt` (one prompt per line, `#` comments) or `.json` (list of strings or of dicts with
`prompt`, `negative_prompt`, `width`, `height`, `seed`, `scale`, `sample_steps`, `sample_sampler`). Inline
options after a prompt: `--n` negative, `--w`, `--h`, `--d` seed, `--l` CFG scale, `--s` steps, `--ss` sampler.
Defaults: 512×512, 30 steps, CFG 7.5; sizes rounded down to multiples of 8, at least 64. Output:
`<output_dir>/sample/[<output_name>_]<e%06d | %06d>_<idx:02d>_<YYYYmmddHHMMSS>[_<seed>].png`.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

# sd-scripts' sampler names → diffusers scheduler classes (k_* aliases map to the same classes)
SAMPLERS = {
    "ddim": "DDIMScheduler", "pndm": "PNDMScheduler", "lms": "LMSDiscreteScheduler", "k_lms": "LMSDiscreteScheduler",
    "euler": "EulerDiscreteScheduler", "k_euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler", "k_euler_a": "EulerAncestralDiscreteScheduler",
    "dpmsolver": "DPMSolverMultistepScheduler", "dpmsolver++": "DPMSolverMultistepScheduler",
    "dpmsingle": "DPMSolverSinglestepScheduler", "heun": "HeunDiscreteScheduler", "k_heun": "HeunDiscreteScheduler",
    "dpm_2": "KDPM2DiscreteScheduler", "k_dpm_2": "KDPM2DiscreteScheduler",
    "dpm_2_a": "KDPM2AncestralDiscreteScheduler", "k_dpm_2_a": "KDPM2AncestralDiscreteScheduler",
}


def read_prompts(path: str) -> list[dict]:
    """Parse a prompt file into dicts (`prompt`, `negative_prompt`, `width`, `height`, `seed`, `scale`,
    `sample_steps`, `sample_sampler`), as sd-scripts' `load_prompts`: `.txt` lines, `.json` (strings parsed like
    lines, or dicts), `.toml` (`[prompt]` defaults merged into each `[[prompt.subset]]`; sd-scripts raises on a
    key given in both, here the subset's value wins). Raises ValueError naming the file for a bad value."""
    p = Path(path)
    if p.suffix == ".json":
        raw = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(raw, list):
            raise ValueError(f"sample_prompts: {path}: a .json prompt file holds a list")
        return [_line_to_dict(r, path) if isinstance(r, str) else dict(r) for r in raw]
    if p.suffix == ".toml":
        import tomllib
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"sample_prompts: {path} is not valid TOML: {e}") from None
        table = data.get("prompt")
        if not isinstance(table, dict) or not isinstance(table.get("subset"), list):
            raise ValueError(f"sample_prompts: {path}: a .toml prompt file needs [prompt] with [[prompt.subset]] "
                             f"tables (one per image)")
        defaults = {k: v for k, v in table.items() if k != "subset"}
        return [{**defaults, **sub} for sub in table["subset"]]
    return [_line_to_dict(line.strip(), path) for line in p.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def _line_to_dict(line: str, path) -> dict:
    """One prompt line with its inline options (`--n`, `--w`, `--h`, `--d`, `--l`, `--s`, `--ss`) as a dict."""
    parts = re.split(r"\s--", line)
    d = {"prompt": parts[0].strip()}
    for opt in parts[1:]:
        key, _, val = opt.partition(" ")
        val = val.strip()
        try:
            if key == "n":
                d["negative_prompt"] = val
            elif key == "w":
                d["width"] = int(val)
            elif key == "h":
                d["height"] = int(val)
            elif key == "d":
                d["seed"] = int(val)
            elif key == "l":
                d["scale"] = float(val)
            elif key == "s":
                d["sample_steps"] = max(1, min(1000, int(val)))
            elif key == "ss":
                d["sample_sampler"] = val
        except ValueError:
            raise ValueError(f"sample_prompts: {path}: bad value for --{key}: {val!r}") from None
    return d


def sample_images(trainer, epoch: int | None, step: int) -> list[Path]:
    """Render every prompt with the current weights; RNG states are restored afterwards so sampling does not
    change the training run. `epoch` is set for epoch-triggered (and first) samples, else `step` names the file."""
    import diffusers
    import torch

    args = trainer.args
    path = args.sample_prompts
    if not path or not Path(path).is_file():
        print(f"ERROR: sample_prompts: {path} not found; no samples", flush=True)
        return []
    prompts = read_prompts(path)
    pipe = trainer.model.pipeline
    net = trainer.network
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
    was_training = net.training
    net.eval()
    if not trainer.vae_on_device:
        pipe.vae.to(trainer.acc.device)
    pipe.set_progress_bar_config(disable=True)
    base_sched = pipe.scheduler
    out_dir = Path(args.output_dir) / "sample"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for i, pr in enumerate(prompts):
            name = pr.get("sample_sampler") or args.sample_sampler or "ddim"
            cls_name = SAMPLERS.get(name.lower())
            if cls_name is None:
                raise ValueError(f"sample_sampler {name!r}: use one of {', '.join(sorted(SAMPLERS))}")
            kw = {"clip_sample": True} if cls_name == "DDIMScheduler" else {}
            if args.v_parameterization:
                kw["prediction_type"] = "v_prediction"
            pipe.scheduler = getattr(diffusers, cls_name).from_config(base_sched.config, **kw)
            w = max(64, int(pr.get("width", 512)) // 8 * 8)
            h = max(64, int(pr.get("height", 512)) // 8 * 8)
            seed = pr.get("seed")
            gen = torch.Generator(device="cpu").manual_seed(int(seed)) if seed is not None else None
            with torch.no_grad(), trainer.acc.autocast():
                img = pipe(prompt=pr["prompt"], negative_prompt=pr.get("negative_prompt"), width=w, height=h,
                           num_inference_steps=int(pr.get("sample_steps", 30)),
                           guidance_scale=float(pr.get("scale", 7.5)), generator=gen).images[0]
            tag = f"e{epoch:06d}" if epoch is not None else f"{step:06d}"
            prefix = f"{args.output_name}_" if args.output_name else ""
            ts = time.strftime("%Y%m%d%H%M%S")
            f = out_dir / f"{prefix}{tag}_{i:02d}_{ts}{'_' + str(seed) if seed is not None else ''}.png"
            img.save(f)
            written.append(f)
            print(f"sample image: {f}", flush=True)
    finally:
        pipe.scheduler = base_sched
        if not trainer.vae_on_device:
            pipe.vae.to("cpu")
        net.train(was_training)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng)
    return written
