"""`networks.lora_flux`: LoRA for Flux.1 on diffusers' `FluxTransformer2DModel`, named and saved as sd-scripts'
`networks/lora_flux.py` names them on BFL's model, so the files load in ComfyUI, kohya and diffusers.

BFL fuses layers that diffusers keeps apart; a kohya module over a fused BFL layer is one LoRA here whose up
rows are split over the diffusers layers, in BFL's order:
- `double_blocks_N_img_attn_qkv` → `attn.to_q|to_k|to_v`, `..._txt_attn_qkv` → `attn.add_q_proj|add_k_proj|add_v_proj`
- `single_blocks_N_linear1` → `attn.to_q|to_k|to_v` + `proj_mlp`
and one-to-one: `img_mod_lin` → `norm1.linear`, `img_attn_proj` → `attn.to_out.0`, `img_mlp_0|2` →
`ff.net.0.proj|ff.net.2` (txt: `norm1_context.linear`, `attn.to_add_out`, `ff_context...`), `single_blocks_N_linear2`
→ `proj_out`, `single_blocks_N_modulation_lin` → `norm.linear`; with `in_dims`: `img_in` → `x_embedder`,
`txt_in` → `context_embedder`, `time_in|vector_in|guidance_in_in_layer|out_layer` → `time_text_embed.*.linear_1|2`.
Text encoders: `lora_te1_` CLIP-L (`self_attn.{q,k,v,out}_proj`, `mlp.fc1|fc2`, with `text_model_`), `lora_te3_` T5
(`SelfAttention.q|k|v|o`, `DenseReluDense.wi_0|wi_1|wo`), T5 only with `train_t5xxl=True`.

`split_qkv=True` trains one down-projection per part (kohya's `split_dims`); the file still holds kohya's merged
form: down = the parts' downs stacked `[n·r, in]`, up block-diagonal `[Σout, n·r]`, alpha unchanged.
Default alpha is 1 (`network_alpha` unset), scale = alpha / rank; up zero-initialised, down Kaiming-uniform(√5).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .args import OptionError
from .network import _te_targets

NUM_DOUBLE_BLOCKS, NUM_SINGLE_BLOCKS = 19, 38  # sd-scripts checks block indices against Flux.1's counts

FLUX_NETWORK_ARGS = {
    "train_blocks": str, "split_qkv": str, "train_t5xxl": str, "verbose": str, "in_dims": str,
    "train_double_block_indices": str, "train_single_block_indices": str,
    "img_attn_dim": int, "txt_attn_dim": int, "img_mlp_dim": int, "txt_mlp_dim": int, "img_mod_dim": int,
    "txt_mod_dim": int, "single_dim": int, "single_mod_dim": int, "rank_dropout": float, "module_dropout": float,
    "conv_dim": int, "conv_alpha": float,  # accepted as sd-scripts does; Flux.1 has no convolutions
}
# kohya's type_dims: the first identifier set all of whose parts are in the name picks the dim
_TYPE_DIMS = [("img_attn_dim", ("img_attn",)), ("txt_attn_dim", ("txt_attn",)), ("img_mlp_dim", ("img_mlp",)),
              ("txt_mlp_dim", ("txt_mlp",)), ("img_mod_dim", ("img_mod",)), ("txt_mod_dim", ("txt_mod",)),
              ("single_dim", ("single_blocks", "linear")), ("single_mod_dim", ("modulation",))]


def _bool(kv, key) -> bool:
    # sd-scripts: True only for the exact string "True"
    return kv.get(key) == "True"


def parse_block_selection(option: str, text: str, total: int) -> list[bool]:
    """"all", "none"/"", or comma-separated indices and ranges ("0-3,7") → a mask of `total` blocks, as
    sd-scripts' `parse_block_selection`; OptionError names `option` for a bad index."""
    text = text.strip()
    if text == "all":
        return [True] * total
    if text in ("none", ""):
        return [False] * total
    sel = [False] * total
    for part in text.split(","):
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-"))
            else:
                a = b = int(part)
        except ValueError:
            raise OptionError(f"network_args: {option}={text!r}: {part!r} is not an index or a range like 0-3") from None
        if not (0 <= a <= b < total):
            raise OptionError(f"network_args: {option}={text!r}: indices run from 0 to {total - 1}")
        for i in range(a, b + 1):
            sel[i] = True
    return sel


def flux_network_options(kv: dict[str, str]) -> dict:
    """networks.lora_flux `network_args` → typed options; OptionError naming the key for anything unknown or
    malformed (checked before any model loads)."""
    bad = sorted(set(kv) - set(FLUX_NETWORK_ARGS))
    if bad:
        raise OptionError(f"network_args: {', '.join(bad)} not supported by this trainer for networks.lora_flux "
                          f"(supported: {', '.join(sorted(FLUX_NETWORK_ARGS))})")
    o: dict = {}
    for key, typ in FLUX_NETWORK_ARGS.items():
        if key not in kv or typ is str:
            continue
        try:
            o[key] = typ(kv[key])
        except ValueError:
            raise OptionError(f"network_args: {key}={kv[key]!r} is not a number") from None
    tb = kv.get("train_blocks", "all")
    if tb not in ("all", "single", "double"):
        raise OptionError(f"network_args: train_blocks={tb!r}: use all, single or double")
    o["train_blocks"] = tb
    o["split_qkv"] = _bool(kv, "split_qkv")
    o["train_t5xxl"] = _bool(kv, "train_t5xxl")
    o["verbose"] = _bool(kv, "verbose")
    if "in_dims" in kv:
        s = kv["in_dims"].strip().strip("[]")
        try:
            dims = [int(x) for x in s.split(",")]
        except ValueError:
            dims = []
        if len(dims) != 5:
            raise OptionError(f"network_args: in_dims={kv['in_dims']!r}: give 5 integers [img, time, vector, "
                              f"guidance, txt]")
        o["in_dims"] = dims
    for key, total in (("train_double_block_indices", NUM_DOUBLE_BLOCKS),
                       ("train_single_block_indices", NUM_SINGLE_BLOCKS)):
        if key in kv:
            o[key] = parse_block_selection(key, kv[key], total)
    return o


class FluxLoRAModule(nn.Module):
    """One kohya LoRA module over one or more diffusers Linear layers (`parts`, whose outputs make up the fused
    BFL layer in order). Shapes: down [rank, in] (split: n × [rank, in]), up [Σ out, rank] (split: n × [out_j,
    rank]); the update of part j is `up[rows_j] @ down(x) · multiplier · alpha / rank`."""

    def __init__(self, lora_name: str, parts: list[nn.Linear], rank: int, alpha: float | None, split: bool = False,
                 dropout: float | None = None, rank_dropout: float | None = None,
                 module_dropout: float | None = None):
        super().__init__()
        self.lora_name = lora_name
        self.dims = [p.out_features for p in parts]
        self.split = split and len(parts) > 1
        in_f = parts[0].in_features
        if self.split:
            self.lora_down = nn.ModuleList([nn.Linear(in_f, rank, bias=False) for _ in parts])
            self.lora_up = nn.ModuleList([nn.Linear(rank, d, bias=False) for d in self.dims])
        else:
            self.lora_down = nn.Linear(in_f, rank, bias=False)
            self.lora_up = nn.Linear(rank, sum(self.dims), bias=False)
        downs = list(self.lora_down) if self.split else [self.lora_down]
        ups = list(self.lora_up) if self.split else [self.lora_up]
        for m in downs:
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
        for m in ups:
            nn.init.zeros_(m.weight)
        alpha = rank if alpha is None or float(alpha) == 0 else float(alpha)
        self.register_buffer("alpha", torch.tensor(float(alpha)))
        self.rank, self.scale, self.multiplier = rank, alpha / rank, 1.0
        self.dropout, self.rank_dropout, self.module_dropout = dropout, rank_dropout, module_dropout
        self._parts = list(parts)  # not registered: the base weights are not the LoRA's
        self._org_forwards: list = []

    def apply_to(self) -> None:
        offs = [sum(self.dims[:j]) for j in range(len(self.dims))]
        for j, part in enumerate(self._parts):
            org = part.forward
            self._org_forwards.append(org)
            part.forward = self._make_forward(j, offs[j], org)

    def remove(self) -> None:
        for part in self._parts:
            if "forward" in part.__dict__:
                del part.forward
        self._org_forwards = []

    def _make_forward(self, j: int, off: int, org):
        # the base forward is looked up per call: fp8_base replaces it after the LoRA is applied
        def forward(x):
            return self._forward(j, off, x)
        return forward

    def _forward(self, j, off, x):
        base = self._org_forwards[j](x)
        if self.training and self.module_dropout and torch.rand(()) < self.module_dropout:
            return base
        down = self.lora_down[j] if self.split else self.lora_down
        if x.dtype != down.weight.dtype and not torch.is_autocast_enabled(x.device.type):
            x = x.to(down.weight.dtype)
        h = down(x)
        if self.training and self.dropout:
            h = nn.functional.dropout(h, p=self.dropout)
        scale = self.scale
        if self.training and self.rank_dropout:
            shape = (h.shape[0],) + (1,) * (h.dim() - 2) + (h.shape[-1],)
            h = h * (torch.rand(shape, device=h.device) > self.rank_dropout).to(h.dtype)
            scale = scale / (1.0 - self.rank_dropout)
        w = self.lora_up[j].weight if self.split else self.lora_up.weight[off:off + self.dims[j]]
        u = nn.functional.linear(h, w) * (self.multiplier * scale)
        return base + u.to(base.dtype)

    def kohya_state(self) -> dict[str, torch.Tensor]:
        """This module's tensors in kohya's file form (split parts merged as sd-scripts' `state_dict` does)."""
        n = self.lora_name
        if not self.split:
            return {f"{n}.lora_down.weight": self.lora_down.weight, f"{n}.lora_up.weight": self.lora_up.weight,
                    f"{n}.alpha": self.alpha}
        down = torch.cat([d.weight for d in self.lora_down], dim=0)
        up = torch.zeros(sum(self.dims), down.shape[0], dtype=down.dtype, device=down.device)
        r, i = self.rank, 0
        for j, u in enumerate(self.lora_up):
            up[i:i + self.dims[j], j * r:(j + 1) * r] = u.weight
            i += self.dims[j]
        return {f"{n}.lora_down.weight": down, f"{n}.lora_up.weight": up, f"{n}.alpha": self.alpha}

    def load_kohya(self, sd: dict) -> list[str]:
        """Load this module's tensors from a kohya file dict; returns the keys it lacked."""
        n = self.lora_name
        d, u = sd.get(f"{n}.lora_down.weight"), sd.get(f"{n}.lora_up.weight")
        if d is None or u is None:
            return [k for k in (f"{n}.lora_down.weight", f"{n}.lora_up.weight") if k not in sd]
        with torch.no_grad():
            if not self.split:
                self.lora_down.weight.copy_(d)
                self.lora_up.weight.copy_(u)
            else:
                r, i = self.rank, 0
                for j, dj in enumerate(d.chunk(len(self.dims), dim=0)):
                    self.lora_down[j].weight.copy_(dj)
                    self.lora_up[j].weight.copy_(u[i:i + self.dims[j], j * r:(j + 1) * r])
                    i += self.dims[j]
        return []


def _transformer_targets(tr: nn.Module, train_blocks: str, in_dims):
    """(kohya name, [diffusers Linear parts], kind) for the Flux transformer; kind is "block" or an in_dims
    slot index."""
    def lin(path):
        return tr.get_submodule(path)

    if train_blocks in ("all", "double"):
        for i, _ in enumerate(tr.transformer_blocks):
            p = f"transformer_blocks.{i}."
            n = f"lora_unet_double_blocks_{i}_"
            yield n + "img_mod_lin", [lin(p + "norm1.linear")], "block"
            yield n + "img_attn_qkv", [lin(p + f"attn.to_{x}") for x in "qkv"], "block"
            yield n + "img_attn_proj", [lin(p + "attn.to_out.0")], "block"
            yield n + "img_mlp_0", [lin(p + "ff.net.0.proj")], "block"
            yield n + "img_mlp_2", [lin(p + "ff.net.2")], "block"
            yield n + "txt_mod_lin", [lin(p + "norm1_context.linear")], "block"
            yield n + "txt_attn_qkv", [lin(p + f"attn.add_{x}_proj") for x in "qkv"], "block"
            yield n + "txt_attn_proj", [lin(p + "attn.to_add_out")], "block"
            yield n + "txt_mlp_0", [lin(p + "ff_context.net.0.proj")], "block"
            yield n + "txt_mlp_2", [lin(p + "ff_context.net.2")], "block"
    if train_blocks in ("all", "single"):
        for i, _ in enumerate(tr.single_transformer_blocks):
            p = f"single_transformer_blocks.{i}."
            n = f"lora_unet_single_blocks_{i}_"
            yield n + "linear1", [lin(p + f"attn.to_{x}") for x in "qkv"] + [lin(p + "proj_mlp")], "block"
            yield n + "linear2", [lin(p + "proj_out")], "block"
            yield n + "modulation_lin", [lin(p + "norm.linear")], "block"
    if in_dims:
        te = "time_text_embed."
        slots = [[("lora_unet_img_in", "x_embedder")],
                 [("lora_unet_time_in_in_layer", te + "timestep_embedder.linear_1"),
                  ("lora_unet_time_in_out_layer", te + "timestep_embedder.linear_2")],
                 [("lora_unet_vector_in_in_layer", te + "text_embedder.linear_1"),
                  ("lora_unet_vector_in_out_layer", te + "text_embedder.linear_2")],
                 [("lora_unet_guidance_in_in_layer", te + "guidance_embedder.linear_1"),
                  ("lora_unet_guidance_in_out_layer", te + "guidance_embedder.linear_2")],
                 [("lora_unet_txt_in", "context_embedder")]]
        for slot, pairs in enumerate(slots):
            for name, path in pairs:
                try:
                    mod = lin(path)
                except AttributeError:  # schnell: no guidance embedder
                    continue
                yield name, [mod], slot


def _t5_targets(t5: nn.Module, prefix: str):
    for path, mod in t5.named_modules():
        if type(mod).__name__ in ("T5Attention", "T5DenseGatedActDense"):
            for child, sub in mod.named_modules():
                if isinstance(sub, nn.Linear):
                    yield f"{prefix}_{path}.{child}".replace(".", "_"), sub


class FluxLoRANetwork(nn.Module):
    """All LoRA modules of one Flux.1 model, kohya's `networks.lora_flux` layout. `te_modules` (CLIP-L, then T5
    with train_t5xxl) and `unet_modules`; `state_dict()` is exactly the kohya file content."""

    def __init__(self, transformer, text_encoders: list, network_dim: int, network_alpha: float | None,
                 options: dict, train_unet: bool = True, train_te: bool = True, dropout: float | None = None):
        super().__init__()
        o = options
        self.split_qkv, self.train_t5xxl = o["split_qkv"], o["train_t5xxl"]
        alpha = 1.0 if network_alpha is None else network_alpha  # sd-scripts' lora_flux default
        kw = {"dropout": dropout, "rank_dropout": o.get("rank_dropout"), "module_dropout": o.get("module_dropout")}
        self.te_modules: list[FluxLoRAModule] = []
        self.unet_modules: list[FluxLoRAModule] = []
        self.skipped: list[str] = []
        if train_te:
            for name, mod in _te_targets(text_encoders[0], "lora_te1"):
                self.te_modules.append(FluxLoRAModule(name, [mod], network_dim, alpha, **kw))
            if self.train_t5xxl:
                for name, mod in _t5_targets(text_encoders[1], "lora_te3"):
                    self.te_modules.append(FluxLoRAModule(name, [mod], network_dim, alpha, **kw))
        if train_unet:
            dbl, sgl = o.get("train_double_block_indices"), o.get("train_single_block_indices")
            for name, parts, kind in _transformer_targets(transformer, o["train_blocks"], o.get("in_dims")):
                if kind == "block":
                    dim = network_dim
                    for key, ids in _TYPE_DIMS:
                        if key in o and all(x in name for x in ids):
                            dim = o[key]
                            break
                    if dim and (dbl is not None or sgl is not None):
                        idx = int(name.split("_")[4])
                        if "double" in name and dbl is not None and not dbl[idx]:
                            dim = 0
                        if "single" in name and sgl is not None and not sgl[idx]:
                            dim = 0
                else:
                    dim = o["in_dims"][kind]
                if not dim:
                    self.skipped.append(name)
                    continue
                self.unet_modules.append(FluxLoRAModule(name, parts, dim, alpha, split=self.split_qkv, **kw))
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

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load kohya-form tensors (as `state_dict()` gives them; resume), returning torch's
        `(missing_keys, unexpected_keys)` result."""
        from torch.nn.modules.module import _IncompatibleKeys

        missing, unexpected = self.load_weights(state_dict)
        if strict and (missing or unexpected):
            raise RuntimeError(f"LoRA state: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return _IncompatibleKeys(missing, unexpected)

    def state_dict(self, *args, **kwargs):  # noqa: D102 - kohya's file content, see the class docstring
        sd = {}
        for m in self.te_modules + self.unet_modules:
            sd.update(m.kohya_state())
        return sd

    def load_weights(self, sd: dict) -> tuple[list[str], list[str]]:
        """Load a kohya Flux LoRA state dict (`--network_weights`); returns (missing, unexpected) keys."""
        missing, known = [], set()
        for m in self.te_modules + self.unet_modules:
            missing += m.load_kohya(sd)
            known |= {f"{m.lora_name}.lora_down.weight", f"{m.lora_name}.lora_up.weight", f"{m.lora_name}.alpha"}
        return missing, sorted(k for k in sd if k not in known)

    def param_groups(self, te_lrs: list[float | None] | None, unet_lr: float | None, default_lr: float):
        """Optimizer groups as sd-scripts' lora_flux makes them: CLIP-L at text_encoder_lr[0], T5 at
        text_encoder_lr[1] (one value: both), the transformer at unet_lr; a group at lr 0 is left out."""
        groups = []
        lrs = [default_lr if lr is None else lr for lr in (te_lrs or [None])]
        if len(lrs) == 1:
            lrs = lrs * 2
        for prefix, lr in (("lora_te1_", lrs[0]), ("lora_te3_", lrs[1])):
            ps = [p for m in self.te_modules if m.lora_name.startswith(prefix) for p in m.parameters()]
            if lr and ps:
                groups.append({"params": ps, "lr": lr, "name": "textencoder"})
        lr = default_lr if unet_lr is None else unet_lr
        if lr and self.unet_modules:
            groups.append({"params": [p for m in self.unet_modules for p in m.parameters()], "lr": lr,
                           "name": "unet"})
        return groups
