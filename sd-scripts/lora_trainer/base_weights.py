"""`base_weights` (+ `base_weights_multiplier`): LoRA files merged into the frozen model weights before the network
is made, as sd-scripts' `train_network.py` does through `create_network_from_weights(...).merge_to(...)`.

Each module of a file adds `multiplier × up·down × alpha/rank` to the weight of the layer it names (the rule of
sd-scripts' `LoRAInfModule.merge_to`: Linear `up @ down`; 1×1 conv the same on squeezed kernels; k×k conv
`conv2d(down.permute(1,0,2,3), up).permute(1,0,2,3)`). The multiplier of file i is base_weights_multiplier[i],
1.0 when that list is shorter.
"""
from __future__ import annotations

import torch
from torch import nn

from .args import OptionError


def lora_delta(down: torch.Tensor, up: torch.Tensor, scale: float) -> torch.Tensor:
    """ΔW = up·down·scale in the wrapped layer's weight shape (Linear [out, in]; Conv2d [out, in, k, k])."""
    down, up = down.float(), up.float()
    if down.dim() == 2:
        return (up @ down) * scale
    if down.shape[2:] == (1, 1):
        return (up.squeeze(3).squeeze(2) @ down.squeeze(3).squeeze(2))[:, :, None, None] * scale
    return nn.functional.conv2d(down.permute(1, 0, 2, 3), up).permute(1, 0, 2, 3) * scale


def layer_table(unet, text_encoders: list, family: str) -> dict[str, nn.Module]:
    """{kohya module name: layer} for every layer a networks.lora file can name (3×3 convs included)."""
    from .network import _te_targets, _unet_targets

    prefixes = ["lora_te"] if len(text_encoders) == 1 else ["lora_te1", "lora_te2"]
    table = {name: mod for prefix, te in zip(prefixes, text_encoders) for name, mod in _te_targets(te, prefix)}
    table.update({name: mod for name, mod, _ in _unet_targets(unet, family, True)})
    return table


def merge_base_weights(args, unet, text_encoders: list, family: str, log) -> int:
    """Merge every `args.base_weights` file into the models in place; returns the number of layers changed.
    Raises OptionError naming the file when it holds no LoRA (lora_down/lora_up) modules, e.g. a LyCORIS
    LoHa/LoKr file, or a module whose shape does not fit its layer."""
    from .saving import read_lora

    mults = list(args.base_weights_multiplier or [])
    table = layer_table(unet, text_encoders, family)
    changed = 0
    for i, path in enumerate(args.base_weights or []):
        m = float(mults[i]) if i < len(mults) else 1.0
        sd = read_lora(path)
        names = sorted({k[: -len(".lora_down.weight")] for k in sd if k.endswith(".lora_down.weight")})
        if not names:
            raise OptionError(f"base_weights: {path} holds no lora_down/lora_up modules (this trainer merges "
                              f"networks.lora / LoCon files only)")
        unknown = 0
        with torch.no_grad():
            for name in names:
                layer = table.get(name)
                if layer is None:
                    unknown += 1
                    continue
                down, up = sd[name + ".lora_down.weight"], sd[name + ".lora_up.weight"]
                rank = down.shape[0]
                alpha = float(sd[name + ".alpha"]) if name + ".alpha" in sd else float(rank)
                delta = lora_delta(down, up, alpha / rank)
                if delta.shape != layer.weight.shape:
                    raise OptionError(f"base_weights: {path}: {name} has shape {tuple(delta.shape)}, the model's "
                                      f"layer {tuple(layer.weight.shape)}; is the file for another model family?")
                layer.weight.add_((m * delta).to(layer.weight.dtype))
                changed += 1
        log(f"merging module: {path} with multiplier {m} ({len(names) - unknown} modules"
            + (f", {unknown} not in this model" if unknown else "") + ")")
    return changed
