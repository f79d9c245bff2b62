"""`network_module = "lycoris.kohya"`: LyCORIS networks (LoCon, LoHa, LoKr, ...) from the `lycoris-lora` package,
behind the small interface the trainer uses for its own `networks.lora`.

LyCORIS names its modules from the module tree it is given; with diffusers/transformers models that tree differs
from sd-scripts' in two places, so names are rewritten to what sd-scripts writes (spec sd_scripts_interface.md
§5.2): text encoders get the `text_model` level back (transformers ≥ 5.6 flattened it), and SDXL UNet paths use
the original `input_blocks/middle_block/output_blocks` layout. SD1/SD2 UNet names are diffusers paths in both.
"""
from __future__ import annotations

import torch
from torch import nn

from .ldm_layout import unet_path_to_ldm
from .network import _te_module_name


def _diffusers_preset(presets: dict, name: str) -> str:
    """The name of a built-in LyCORIS preset adapted to diffusers UNets: without the `TimestepEmbedding` class
    target. sd-scripts' UNet has no such class (its time embedding is a plain Sequential, reached only by the
    `time_embedding.linear_*` name targets), and with diffusers' class both targets would name the same layers
    (LyCORIS stops on the duplicate). A preset file path is passed through unchanged."""
    if name not in presets:
        return name
    cfg = dict(presets[name])
    cfg["unet_target_module"] = [m for m in cfg.get("unet_target_module", []) if m != "TimestepEmbedding"]
    ours = f"lora_tui_{name}"
    presets[ours] = cfg  # LyCORIS looks presets up by name in this table only
    return ours


class LycorisNetwork(nn.Module):
    """A LyCORIS kohya network over `unet` and `text_encoders` (one or two), with `te_modules`, `unet_modules`,
    `apply_to()`, `param_groups()`, `load_weights()`, `set_multiplier()` and a `state_dict()` holding sd-scripts'
    key names. `network_args` are passed to `lycoris.kohya.create_network` as strings (algo, conv_dim, ...)."""

    def __init__(self, unet, text_encoders: list, family: str, network_dim: int, network_alpha: float | None,
                 train_unet: bool, train_te: bool, network_args: dict[str, str], dropout: float | None = None):
        super().__init__()
        from lycoris import kohya

        kw = dict(network_args)
        kw["preset"] = _diffusers_preset(kohya.PRESET, kw.get("preset", "full"))
        if dropout:
            kw["dropout"] = str(dropout)
        te_arg = text_encoders if len(text_encoders) > 1 else text_encoders[0]
        alpha = network_dim if network_alpha is None else network_alpha
        net = kohya.create_network(1.0, network_dim, alpha, None, te_arg, unet, **kw)
        # plain attributes would register the models as submodules (their weights in state_dict, parameters)
        self._models = (unet, list(text_encoders))
        self.train_unet, self.train_te = train_unet, train_te
        self.te_modules = list(net.text_encoder_loras) if train_te else []
        self.unet_modules = list(net.unet_loras) if train_unet else []
        self.algo = (kw.get("algo") or "lora").lower()
        # sd-scripts' names by the wrapped module's identity
        names: dict[int, str] = {}
        prefixes = ["lora_te"] if len(text_encoders) == 1 else ["lora_te1", "lora_te2"]
        for prefix, te in zip(prefixes, text_encoders):
            for path, mod in te.named_modules():
                if path:
                    names[id(mod)] = _te_module_name(prefix, path)
        cfg = dict(unet.config)
        unet_paths = {id(mod): path for path, mod in unet.named_modules() if path}
        self.to_kohya: dict[str, str] = {}
        for m in self.te_modules + self.unet_modules:
            key = id(m.org_module[0])
            if key in unet_paths:
                p = unet_paths[key]
                # raises ValueError for a layer with no original-layout name (then there is no kohya name)
                target = "lora_unet_" + (unet_path_to_ldm(p, cfg) if family == "sdxl" else p).replace(".", "_")
            elif key in names:
                target = names[key]
            else:
                raise ValueError(f"LyCORIS module {m.lora_name} wraps a layer outside the models")
            self.to_kohya[m.lora_name] = target
        if len(set(self.to_kohya.values())) != len(self.to_kohya):
            raise ValueError("two LyCORIS modules would get the same kohya name")
        self.from_kohya = {v: k for k, v in self.to_kohya.items()}
        self.net = net

    def apply_to(self) -> None:
        unet, tes = self._models
        self.net.apply_to(tes if len(tes) > 1 else tes[0], unet,
                          apply_text_encoder=self.train_te, apply_unet=self.train_unet)

    def set_multiplier(self, multiplier: float) -> None:
        for m in self.te_modules + self.unet_modules:
            m.multiplier = multiplier

    def param_groups(self, te_lrs: list[float | None], unet_lr: float | None, default_lr: float):
        """Groups like `LoRANetwork.param_groups`: text encoders then UNet; an lr of 0 leaves a part out.
        One text-encoder LR (the first given) for both SDXL encoders. LoRA+ ratios (network_args
        loraplus_*lr_ratio, read by LyCORIS) put `lora_up` parameters in a `plus` group, as LyCORIS'
        `prepare_optimizer_params` does."""
        from .network import param_groups_of

        n = self.net
        base = getattr(n, "loraplus_lr_ratio", None)
        te_ratio = getattr(n, "loraplus_text_encoder_lr_ratio", None) or base
        unet_ratio = getattr(n, "loraplus_unet_lr_ratio", None) or base
        te_lr = default_lr if not te_lrs or te_lrs[0] is None else te_lrs[0]
        u_lr = default_lr if unet_lr is None else unet_lr
        return param_groups_of(self.te_modules, te_lr, te_ratio, "textencoder") + \
            param_groups_of(self.unet_modules, u_lr, unet_ratio, "unet")

    def apply_max_norm_regularization(self, max_norm: float, device):
        """`scale_weight_norms` through LyCORIS' own per-module `apply_max_norm` (each algorithm knows its ΔW).
        Returns (modules scaled, mean norm, max norm) as sd-scripts logs them; (0, 0, 0) when none was scaled."""
        import torch

        with torch.no_grad():
            scaled, norms = 0, []
            for m in self.unet_modules + self.te_modules:
                s, norm = m.apply_max_norm(max_norm, device)
                if s is None:
                    continue
                norms.append(float(norm))
                scaled += int(s)
        if scaled == 0:
            return 0, 0.0, 0.0
        return scaled, sum(norms) / len(norms), max(norms)

    def _rename(self, key: str, table: dict[str, str]) -> str:
        head, dot, rest = key.partition(".")
        return table.get(head, head) + dot + rest

    def state_dict(self, *args, **kwargs):
        sd = self.net.state_dict()
        out = {}
        for k, v in sd.items():
            head = k.partition(".")[0]
            if head in self.to_kohya:  # modules of a part that is not trained are left out (sd-scripts)
                out[self._rename(k, self.to_kohya)] = v
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a state dict in sd-scripts' naming (what `state_dict()` gives, e.g. from a saved state)."""
        sd = {self._rename(k, self.from_kohya): v for k, v in state_dict.items()}
        return self.net.load_state_dict(sd, strict=strict, assign=assign)

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
        """Non-strict load of a file in sd-scripts' naming; returns (missing, unexpected) in that naming."""
        sd = {self._rename(k, self.from_kohya): v for k, v in state_dict.items()}
        res = self.net.load_state_dict(sd, strict=False)
        missing = [self._rename(k, self.to_kohya) for k in res.missing_keys
                   if k.partition(".")[0] in self.to_kohya and not k.endswith(".alpha")]
        return missing, [self._rename(k, self.to_kohya) for k in res.unexpected_keys]
