"""The noise and the loss of one training step, with sd-scripts' options for them (spec
sd_scripts_interface.md §4.2): noise_offset (random strength, adaptive scale) and multires noise; l2/l1/huber/
smooth_l1 loss with its huber_c schedule, min_snr_gamma, v-prediction scaling and debiased estimation.

Both run inside `Trainer._forward_loss`, which `speed.FastPath` captures in a CUDA graph; see there.
"""
from __future__ import annotations

import math
import random

from .args import OptionError


def sample_noise(args, latents):
    """Noise like `latents` (B, C, H, W) for the options in `args`."""
    import torch

    noise = torch.randn_like(latents)
    if args.noise_offset:
        off = float(args.noise_offset)
        if args.noise_offset_random_strength:
            off = torch.rand(1, device=latents.device).item() * off
        if args.adaptive_noise_scale:
            off = (off + args.adaptive_noise_scale * latents.mean(dim=(2, 3), keepdim=True).abs()).clamp(min=0)
        noise = noise + off * torch.randn(latents.shape[0], latents.shape[1], 1, 1, device=latents.device)
    if args.multires_noise_iterations:
        b, c, h, w = noise.shape
        up = torch.nn.Upsample(size=(h, w), mode="bilinear")
        d = float(args.multires_noise_discount)
        for i in range(int(args.multires_noise_iterations)):
            r = random.random() * 2 + 2
            wi, hi = max(1, int(w / (r ** i))), max(1, int(h / (r ** i)))
            noise = noise + up(torch.randn(b, c, hi, wi, device=noise.device)) * d ** i
            if wi == 1 or hi == 1:
                break
        noise = noise / noise.std()
    return noise

def diffusion_loss(args, pred, target, timesteps, weights, snr_table, noise_scheduler, mask=None):
    """Mean loss (0-dim float32) of `pred` against `target` (B, C, H, W), each sample weighted by `weights` (B,)
    and by its timestep's SNR from `snr_table` (1000,: the schedule's SNR before zero_terminal_snr);
    `noise_scheduler` gives the alphas for the huber_c "snr" schedule. `mask` (B, 1, H', W') in [0, 1], at image
    size, multiplies the element-wise loss after an area resize to the latent size (sd-scripts'
    `apply_masked_loss`). OptionError for an unknown loss_type."""
    import torch

    pred, target = pred.float(), target.float()
    lt = args.loss_type or "l2"
    if lt == "l2":
        el = (pred - target) ** 2
    elif lt == "l1":
        el = (pred - target).abs()
    elif lt in ("huber", "smooth_l1"):
        c = huber_c(args, timesteps, noise_scheduler).view(-1, 1, 1, 1)
        d2 = (pred - target) ** 2
        el = 2 * c * (torch.sqrt(d2 + c ** 2) - c) if lt == "huber" else 2 * (torch.sqrt(d2 + c ** 2) - c)
    else:
        raise OptionError(f"loss_type {lt!r}: use l2, l1, huber or smooth_l1")
    if mask is not None:
        el = el * torch.nn.functional.interpolate(mask.float(), size=el.shape[2:], mode="area")
    loss = el.mean(dim=(1, 2, 3)) * weights
    snr = snr_table[timesteps]
    if args.min_snr_gamma:
        g = float(args.min_snr_gamma)
        w = torch.clamp(snr, max=g) / (snr + 1 if args.v_parameterization else snr)
        loss = loss * w
    clipped = torch.clamp(snr, max=1000)
    if args.scale_v_pred_loss_like_noise_pred:
        loss = loss * (clipped / (clipped + 1))
    if args.v_pred_like_loss:
        loss = loss + loss * float(args.v_pred_like_loss) / (clipped / (clipped + 1))
    if args.debiased_estimation_loss:
        loss = loss / (clipped + 1 if args.v_parameterization else torch.sqrt(clipped))
    return loss.mean()

def huber_c(args, timesteps, noise_scheduler):
    """Huber c per sample (B,) for `timesteps` (B,): huber_schedule constant, exponential or snr."""
    import torch

    hc, hs = float(args.huber_c), float(args.huber_scale)
    sched = args.huber_schedule or "snr"
    if sched == "constant":
        return torch.full_like(timesteps, hc * hs, dtype=torch.float32)
    if sched == "exponential":
        alpha = -math.log(hc) / 1000
        return hs * torch.exp(-alpha * timesteps.float())
    ac = noise_scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    sigma = ((1 - ac) / ac) ** 0.5
    return (1 - hc) / (1 + sigma) ** 2 + hc
