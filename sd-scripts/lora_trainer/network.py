"""`networks.lora`: LoRA modules attached to diffusers/transformers models, named and saved in kohya's format.

Which layers, names, shapes, init and forward follow spec sd_scripts_interface.md §5:
- UNet: every Linear / 1×1 Conv2d inside a `Transformer2DModel`; with `conv_dim` also the 3×3 convs (at
  `conv_dim`/`conv_alpha`) and the Linear/1×1 children (at `network_dim`/`network_alpha`) of `ResnetBlock2D`,
  `Downsample2D`, `Upsample2D`.
- Text encoders: `self_attn.{q,k,v,out}_proj` and `mlp.fc1/fc2` of each encoder layer.
- Names: `lora_unet_` + module path (diffusers path for SD1/2, original SAI block path for SDXL, §5.2.3),
  `lora_te_` / `lora_te1_` / `lora_te2_` + `text_model_encoder_layers_<i>_...` (the `text_model.` level is added
  back for transformers ≥ 5.6, whose `CLIPTextModel` dropped it; trainer_feasibility.md pitfall 2).
- Each module saves `<name>.lora_down.weight`, `<name>.lora_up.weight`, `<name>.alpha`; `scale = alpha / rank`,
  alpha 0/None → rank; `lora_down` kaiming-uniform, `lora_up` zeros.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .ldm_layout import unet_path_to_ldm

UNET_ATTN_CONTAINERS = {"Transformer2DModel"}
UNET_CONV_CONTAINERS = {"ResnetBlock2D", "Downsample2D", "Upsample2D"}


class LoRAModule(nn.Module):
    """A rank-`rank` update `up(down(x)) * multiplier * alpha / rank` added to one Linear or Conv2d's output.

    Shapes: Linear(in→out): down [rank, in], up [out, rank]; Conv2d k×k: down [rank, in, k, k] (same stride and
    padding as the wrapped conv), up [out, rank, 1, 1]."""

    def __init__(self, lora_name: str, org: nn.Module, rank: int, alpha: float | None, dropout: float | None = None,
                 rank_dropout: float | None = None, module_dropout: float | None = None):
        super().__init__()
        self.lora_name = lora_name
        if isinstance(org, nn.Conv2d):
            self.lora_down = nn.Conv2d(org.in_channels, rank, org.kernel_size, org.stride, org.padding, bias=False)
            self.lora_up = nn.Conv2d(rank, org.out_channels, 1, 1, bias=False)
        else:
            self.lora_down = nn.Linear(org.in_features, rank, bias=False)
            self.lora_up = nn.Linear(rank, org.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)
        alpha = rank if alpha is None or float(alpha) == 0 else float(alpha)
        self.register_buffer("alpha", torch.tensor(float(alpha)))
        self.rank = rank
        self.scale = alpha / rank
        self.multiplier = 1.0
        self.dropout, self.rank_dropout, self.module_dropout = dropout, rank_dropout, module_dropout
        self._org = [org]  # a list, so the wrapped layer is not registered (its weights are not saved)
        self._org_forward = None

    def apply_to(self) -> None:
        org = self._org[0]
        self._org_forward = org.forward
        org.forward = self.forward

    def remove(self) -> None:
        if self._org_forward is not None:
            del self._org[0].forward
            self._org_forward = None

    def forward(self, x):
        base = self._org_forward(x)
        if self.training and self.module_dropout and torch.rand(()) < self.module_dropout:
            return base
        # Kernel launches dominate a GPU step (measured on an H200, docs/performance.md): skip casts and
        # multiplies that do nothing. Under autocast the matmuls pick their dtype themselves.
        if x.dtype != self.lora_down.weight.dtype and not torch.is_autocast_enabled(x.device.type):
            x = x.to(self.lora_down.weight.dtype)
        h = self.lora_down(x)
        if self.training and self.dropout:
            h = nn.functional.dropout(h, p=self.dropout)
        scale = self.scale
        if self.training and self.rank_dropout:
            if h.dim() == 4 and isinstance(self.lora_down, nn.Conv2d):
                shape = (h.shape[0], h.shape[1], 1, 1)
            else:
                shape = (h.shape[0],) + (1,) * (h.dim() - 2) + (h.shape[-1],)
            mask = (torch.rand(shape, device=h.device) > self.rank_dropout).to(h.dtype)
            h = h * mask
            scale = scale / (1.0 - self.rank_dropout)
        u = self.lora_up(h)
        k = self.multiplier * scale
        if k != 1.0:
            u = u * k
        if u.dtype != base.dtype:
            u = u.to(base.dtype)
        return base + u


def _te_module_name(prefix: str, path: str) -> str:
    if not path.startswith("text_model."):
        path = "text_model." + path
    return f"{prefix}_{path}".replace(".", "_")


def _te_targets(te: nn.Module, prefix: str):
    for path, mod in te.named_modules():
        parts = path.split(".")
        if isinstance(mod, nn.Linear) and len(parts) >= 2 and parts[-2] in ("self_attn", "mlp") \
                and parts[-1] in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2") and "layers" in parts:
            yield _te_module_name(prefix, path), mod


def _unet_targets(unet: nn.Module, family: str, conv: bool):
    cfg = dict(unet.config)
    seen = set()
    for cpath, container in unet.named_modules():
        cls = type(container).__name__
        is_attn = cls in UNET_ATTN_CONTAINERS
        if not (is_attn or (conv and cls in UNET_CONV_CONTAINERS)):
            continue
        for child, mod in container.named_modules():
            if not isinstance(mod, (nn.Linear, nn.Conv2d)) or id(mod) in seen:
                continue
            if child == "Conv2d_0":  # diffusers' alias of Downsample2D.conv; the real name is "conv"
                child = "conv"
            seen.add(id(mod))
            path = f"{cpath}.{child}"
            is_kxk = isinstance(mod, nn.Conv2d) and mod.kernel_size != (1, 1)
            name_path = unet_path_to_ldm(path, cfg) if family == "sdxl" else path
            yield "lora_unet_" + name_path.replace(".", "_"), mod, is_kxk


def param_groups_of(modules: list, lr: float | None, loraplus_ratio: float | None, name: str) -> list[dict]:
    """The optimizer groups of `modules` at `lr`, as sd-scripts' `assemble_params`: with a LoRA+ ratio the
    `lora_up` parameters go to a second group (`<name> plus`) at lr × ratio; a group with lr 0/None or no
    parameters is left out."""
    plain, plus = [], []
    for m in modules:
        for pname, p in m.named_parameters():
            (plus if loraplus_ratio is not None and "lora_up" in pname else plain).append(p)
    out = []
    for ps, glr, gname in ((plain, lr, name), (plus, None if lr is None else lr * (loraplus_ratio or 0),
                                                f"{name} plus")):
        if ps and glr:
            out.append({"params": ps, "lr": glr, "name": gname})
    return out


class LoRANetwork(nn.Module):
    """All LoRA modules of one model. `state_dict()` is exactly the kohya file content (before dtype casts).

    Raises ValueError when a name would repeat (a naming bug, never silently merged)."""

    def __init__(self, unet, text_encoders: list, family: str, network_dim: int, network_alpha: float | None,
                 train_unet: bool = True, train_te: bool = True, conv_dim: int | None = None,
                 conv_alpha: float | None = None, dropout: float | None = None, rank_dropout: float | None = None,
                 module_dropout: float | None = None, blocks=None, module_dims: dict | None = None):
        """`blocks`: a `network_blocks.BlockPlan` (per-block U-Net ranks/alphas; a rank of 0 makes no module).
        `module_dims`: {kohya module name: (rank, alpha)} as read by `dim_from_weights` — then exactly those
        modules are made (3×3 convs included), as sd-scripts' `create_network_from_weights`."""
        super().__init__()
        self.te_modules: list[LoRAModule] = []
        self.unet_modules: list[LoRAModule] = []
        self.loraplus: tuple[float | None, float | None, float | None] = (None, None, None)
        self.block_lr_weight = blocks.lr_weight if blocks is not None else None
        self.is_sdxl = family == "sdxl"
        kw = {"dropout": dropout, "rank_dropout": rank_dropout, "module_dropout": module_dropout}
        if train_te:
            prefixes = ["lora_te"] if len(text_encoders) == 1 else ["lora_te1", "lora_te2"]
            for prefix, te in zip(prefixes, text_encoders):
                for name, mod in _te_targets(te, prefix):
                    if module_dims is not None:
                        if name in module_dims:
                            self.te_modules.append(LoRAModule(name, mod, *module_dims[name], **kw))
                    else:
                        self.te_modules.append(LoRAModule(name, mod, network_dim, network_alpha, **kw))
        if train_unet:
            with_conv = module_dims is not None or (conv_dim is not None and conv_dim > 0) \
                or (blocks is not None and blocks.conv_dims is not None)
            for name, mod, is_kxk in _unet_targets(unet, family, with_conv):
                if module_dims is not None:
                    rank, alpha = module_dims.get(name, (None, None))
                elif blocks is not None:
                    from .network_blocks import block_index
                    i = block_index(name, self.is_sdxl)
                    if not is_kxk:
                        rank, alpha = blocks.dims[i], blocks.alphas[i]
                    elif blocks.conv_dims is not None:
                        rank, alpha = blocks.conv_dims[i], blocks.conv_alphas[i]
                    else:
                        rank = alpha = None
                elif is_kxk:
                    rank, alpha = conv_dim, 1.0 if conv_alpha is None else conv_alpha
                else:
                    rank, alpha = network_dim, network_alpha
                if rank:  # rank 0 / None: no module here (a block switched off, a layer not in the file)
                    self.unet_modules.append(LoRAModule(name, mod, int(rank), alpha, **kw))
        for m in self.te_modules + self.unet_modules:
            if hasattr(self, m.lora_name):
                raise ValueError(f"duplicate LoRA module name {m.lora_name}")
            self.add_module(m.lora_name, m)

    def apply_to(self) -> None:
        for m in self.te_modules + self.unet_modules:
            m.apply_to()

    def remove(self) -> None:
        for m in self.te_modules + self.unet_modules:
            m.remove()

    def set_multiplier(self, multiplier: float) -> None:
        for m in self.te_modules + self.unet_modules:
            m.multiplier = multiplier

    def param_groups(self, te_lrs: list[float | None], unet_lr: float | None, default_lr: float):
        """Optimizer groups: text encoders (one group per TE when two different LRs are given), then UNet (one
        group per block with block LR weights, `unet_block<i>`). A group whose lr is 0 is left out, as sd-scripts
        does; its modules keep their zero update but are saved. LoRA+ splits each group (`param_groups_of`)."""
        groups = []
        te_ratio = self.loraplus[2] or self.loraplus[0]
        unet_ratio = self.loraplus[1] or self.loraplus[0]
        if self.te_modules:
            lrs = [default_lr if lr is None else lr for lr in (te_lrs or [None])]
            if len(lrs) > 1 and lrs[0] != lrs[1]:
                for prefix, lr in (("lora_te1_", lrs[0]), ("lora_te2_", lrs[1])):
                    mods = [m for m in self.te_modules if m.lora_name.startswith(prefix)]
                    groups += param_groups_of(mods, lr, te_ratio, "textencoder")
            else:
                groups += param_groups_of(self.te_modules, lrs[0], te_ratio, "textencoder")
        if self.unet_modules:
            lr = default_lr if unet_lr is None else unet_lr
            if self.block_lr_weight is None:
                groups += param_groups_of(self.unet_modules, lr, unet_ratio, "unet")
            else:
                from .network_blocks import block_index
                by_block: dict[int, list] = {}
                for m in self.unet_modules:
                    by_block.setdefault(block_index(m.lora_name, self.is_sdxl), []).append(m)
                for i, mods in by_block.items():
                    groups += param_groups_of(mods, lr * self.block_lr_weight[i], unet_ratio, f"unet_block{i}")
        return groups

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
        """Non-strict load of a kohya LoRA state dict (`--network_weights`); returns (missing, unexpected)."""
        sd = {k: v for k, v in state_dict.items() if not k.endswith(".alpha")}
        res = self.load_state_dict(sd, strict=False)
        missing = [k for k in res.missing_keys if not k.endswith(".alpha")]
        return missing, list(res.unexpected_keys)
