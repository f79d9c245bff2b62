"""Noise-schedule options of sd-scripts beyond the plain DDPM schedule (spec sd_scripts_interface.md §4.2, §4.4):
zero terminal SNR and input-perturbation noise."""
from __future__ import annotations


def rescale_zero_terminal_snr(scheduler) -> None:
    """Rescale `scheduler`'s betas in place so the last timestep has zero SNR (Lin et al. 2023, "Common Diffusion
    Noise Schedules and Sample Steps are Flawed", Algorithm 1): sqrt(ᾱ) is shifted so its last value is 0 and
    scaled so its first value is unchanged; `betas`, `alphas` and `alphas_cumprod` are replaced (sd-scripts'
    `--zero_terminal_snr`). The SNR table used for loss weighting must be taken before this call (§4.2)."""
    import torch

    s = scheduler.alphas_cumprod.double().sqrt()
    first, last = s[0].clone(), s[-1].clone()
    s = (s - last) * first / (first - last)
    ac = s ** 2
    alphas = torch.cat([ac[:1], ac[1:] / ac[:-1]])
    dtype = scheduler.betas.dtype
    scheduler.betas = (1 - alphas).to(dtype)
    scheduler.alphas = alphas.to(dtype)
    scheduler.alphas_cumprod = ac.to(dtype)


def perturbed_noise(noise, gamma: float, random_strength: bool):
    """The noise that goes into the noisy latents with `ip_noise_gamma` γ: `noise + γ·randn_like(noise)`
    (γ scaled by one U(0,1) draw per batch with `ip_noise_gamma_random_strength`); the loss target keeps the
    unperturbed `noise` (§4.3, §4.4). Stays on the device (no host sync)."""
    import torch

    strength = torch.rand(1, device=noise.device) * gamma if random_strength else gamma
    return noise + strength * torch.randn_like(noise)
