"""Sample images for SD3 runs (`sample_prompts`, `sample_every_n_*`, `sample_at_first`) through diffusers'
`StableDiffusion3Pipeline` over the training modules (the LoRA is active). Prompt files and inline options as in
`sampling.py` (`--n` negative prompt, `--l` CFG scale, default 5.0, `--s` steps, default 20); sizes are rounded down
to multiples of 16. The sampler is flow-matching Euler (shift 3.0) whatever `sample_sampler` says (sd-scripts' SD3
sampling ignores it too).
"""
from __future__ import annotations

import time
from pathlib import Path

from .sampling import read_prompts


def sd3_sample_images(trainer, epoch: int | None, step: int) -> list[Path]:
    """Render every prompt with the current weights; RNG states are restored afterwards."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    args = trainer.args
    path = args.sample_prompts
    if not path or not Path(path).is_file():
        print(f"ERROR: sample_prompts: {path} not found; no samples", flush=True)
        return []
    prompts = read_prompts(path)
    m = trainer.model
    if m.pipeline is None:
        sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
        m.pipeline = StableDiffusion3Pipeline(
            scheduler=sched, vae=m.vae, text_encoder=m.text_encoders[0], tokenizer=m.tokenizers[0],
            text_encoder_2=m.text_encoders[1], tokenizer_2=m.tokenizers[1], text_encoder_3=m.text_encoders[2],
            tokenizer_3=m.tokenizers[2], transformer=m.transformer)
    pipe = m.pipeline
    pipe.set_progress_bar_config(disable=True)
    net = trainer.network
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
    was_training = net.training
    net.eval()
    dev = trainer.acc.device
    homes = [(x, next(x.parameters()).device) for x in (m.vae, *m.text_encoders)]
    for x, _ in homes:
        x.to(dev)
    out_dir = Path(args.output_dir) / "sample"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for i, pr in enumerate(prompts):
            w = max(64, int(pr.get("width", 512)) // 16 * 16)
            h = max(64, int(pr.get("height", 512)) // 16 * 16)
            seed = pr.get("seed")
            gen = torch.Generator(device="cpu").manual_seed(int(seed)) if seed is not None else None
            with torch.no_grad(), trainer.acc.autocast():
                img = pipe(prompt=pr["prompt"], negative_prompt=pr.get("negative_prompt") or None, width=w, height=h,
                           num_inference_steps=int(pr.get("sample_steps", 20)),
                           guidance_scale=float(pr.get("scale", 5.0)), generator=gen,
                           max_sequence_length=trainer.t5_max_len).images[0]
            tag = f"e{epoch:06d}" if epoch is not None else f"{step:06d}"
            prefix = f"{args.output_name}_" if args.output_name else ""
            ts = time.strftime("%Y%m%d%H%M%S")
            f = out_dir / f"{prefix}{tag}_{i:02d}_{ts}{'_' + str(seed) if seed is not None else ''}.png"
            img.save(f)
            written.append(f)
            print(f"sample image: {f}", flush=True)
    finally:
        for x, d in homes:
            x.to(d)
        net.train(was_training)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng)
    return written
