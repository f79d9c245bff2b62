"""`fp8_base` / `fp8_base_unet`: the frozen U-Net (and, with fp8_base, the text encoders) keep their Linear and
Conv2d weights in float8_e4m3fn and each layer upcasts its weight to the input's dtype in its own forward, as
sd-scripts' experimental fp8 mode does (it stores the whole model in fp8 and lets autocast upcast per op).

Two steps, because the LoRA modules capture each layer's `forward` when applied and the models are moved to their
device/dtype afterwards: `prepare` (before the LoRA is applied) swaps the layers' classes for subclasses whose
forward upcasts, `store` (after the models' final `.to(device, dtype)`) converts their weights to fp8. Norm layers
and embeddings stay in the compute dtype (small; a difference from sd-scripts, listed in
docs/trainer_differences.md).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FP8 = torch.float8_e4m3fn


class Fp8Linear(nn.Linear):
    """A Linear whose weight may be stored in fp8: upcast to the input's dtype for the product."""

    def forward(self, x):
        w = self.weight if self.weight.dtype == x.dtype else self.weight.to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, w, b)


class Fp8Conv2d(nn.Conv2d):
    """A Conv2d whose weight may be stored in fp8: upcast to the input's dtype for the convolution."""

    def forward(self, x):
        w = self.weight if self.weight.dtype == x.dtype else self.weight.to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        return self._conv_forward(x, w, b)


_SWAP = {nn.Linear: Fp8Linear, nn.Conv2d: Fp8Conv2d}


def fp8_models(args, unet, text_encoders: list) -> list[nn.Module]:
    """The models fp8 applies to: the U-Net, plus the text encoders unless `fp8_base_unet` (sd-scripts keeps
    them in the compute dtype then). Empty without fp8_base/fp8_base_unet."""
    if not (getattr(args, "fp8_base", False) or getattr(args, "fp8_base_unet", False)):
        return []
    return [unet] + ([] if getattr(args, "fp8_base_unet", False) else list(text_encoders))


def prepare(models: list[nn.Module]) -> int:
    """Swap every plain Linear/Conv2d of `models` for its upcasting subclass; returns how many."""
    n = 0
    for model in models:
        for mod in model.modules():
            cls = _SWAP.get(type(mod))
            if cls is not None:
                mod.__class__ = cls
                n += 1
    return n


def store(models: list[nn.Module]) -> int:
    """Convert the weights of the swapped layers to float8_e4m3fn (biases stay); returns the bytes saved."""
    saved = 0
    with torch.no_grad():
        for model in models:
            for mod in model.modules():
                if isinstance(mod, (Fp8Linear, Fp8Conv2d)) and mod.weight.dtype != FP8:
                    w = mod.weight
                    saved += w.numel() * (w.element_size() - 1)
                    mod.weight = nn.Parameter(w.to(FP8), requires_grad=False)
    return saved
