"""`networks.lora_sd3`: LoRA for SD3 / SD3.5 on diffusers' `SD3Transformer2DModel`, named and saved as sd-scripts'
`networks/lora_sd3.py` names them on SD3's MMDiT (`SingleDiTBlock` children), so the files load in ComfyUI and kohya.

MMDiT fuses q, k, v; diffusers keeps them apart. A kohya module over a fused layer is one LoRA whose up rows are
split over the diffusers layers (`flux_network.FluxLoRAModule`):
- `joint_blocks_N_x_block_attn_qkv` → `transformer_blocks.N.attn.to_q|to_k|to_v`, `..._x_block_attn2_qkv` → `attn2.*`
  (SD3.5 Medium), `..._context_block_attn_qkv` → `attn.add_q_proj|add_k_proj|add_v_proj`
- one-to-one: `x_block_attn_proj` → `attn.to_out.0`, `x_block_attn2_proj` → `attn2.to_out.0`, `x_block_mlp_fc1|fc2` →
  `ff.net.0.proj|ff.net.2`, `x_block_adaLN_modulation_1` → `norm1.linear`; context: `attn.to_add_out`,
  `ff_context.*`, `norm1_context.linear` (the last block's context block has only qkv and adaLN: SD3's pre-only block)
- `emb_dims` [context_embedder, t_embedder, x_embedder, y_embedder, final_mod, final_linear]: `context_embedder`,
  `t_embedder_mlp_0|2` → `time_text_embed.timestep_embedder.linear_1|2`, `y_embedder_mlp_0|2` →
  `time_text_embed.text_embedder.linear_1|2`, `final_layer_adaLN_modulation_1` → `norm_out.linear`,
  `final_layer_linear` → `proj_out`. The x_embedder is a Conv2d patch embedding: not implemented (its dim must be 0).
Two layers hold SD3's (shift, scale) rows as diffusers' (scale, shift): the last block's context adaLN and the final
adaLN; their LoRA keeps kohya's row order in the file and applies the halves swapped.

Text encoders: `lora_te1_` CLIP-L, `lora_te2_` CLIP-G (`self_attn.{q,k,v,out}_proj`, `mlp.fc1|fc2`), `lora_te3_` T5 with
`train_t5xxl=True`. Default alpha 1 (`network_alpha` unset), scale alpha / rank, up zero-initialised.
"""
from __future__ import annotations

import torch
from torch import nn

from .args import OptionError
from .flux_network import FluxLoRAModule, _t5_targets, parse_block_selection
from .network import _te_targets

SD3_NETWORK_ARGS = {
    "context_attn_dim": int, "context_mlp_dim": int, "context_mod_dim": int, "x_attn_dim": int, "x_mlp_dim": int,
    "x_mod_dim": int, "emb_dims": str, "train_block_indices": str, "rank_dropout": float, "module_dropout": float,
    "split_qkv": str, "train_t5xxl": str, "verbose": str,
    "conv_dim": int, "conv_alpha": float,  # accepted as sd-scripts does; the MMDiT blocks have no convolutions
}
# kohya's type_dims: the first identifier pair both of whose parts are in the name picks the dim
_TYPE_DIMS = [("context_attn_dim", ("context_block", "attn")), ("context_mlp_dim", ("context_block", "mlp")),
              ("context_mod_dim", ("context_block", "adaLN_modulation")), ("x_attn_dim", ("x_block", "attn")),
              ("x_mlp_dim", ("x_block", "mlp")), ("x_mod_dim", ("x_block", "adaLN_modulation"))]


def sd3_network_options(kv: dict[str, str]) -> dict:
    """networks.lora_sd3 `network_args` → typed options; OptionError naming the key for anything unknown or
    malformed (checked before any model loads)."""
    bad = sorted(set(kv) - set(SD3_NETWORK_ARGS))
    if bad:
        raise OptionError(f"network_args: {', '.join(bad)} not supported by this trainer for networks.lora_sd3 "
                          f"(supported: {', '.join(sorted(SD3_NETWORK_ARGS))})")
    o: dict = {}
    for key, typ in SD3_NETWORK_ARGS.items():
        if key not in kv or typ is str:
            continue
        try:
            o[key] = typ(kv[key])
        except ValueError:
            raise OptionError(f"network_args: {key}={kv[key]!r} is not a number") from None
    for key in ("split_qkv", "train_t5xxl", "verbose"):
        o[key] = kv.get(key) == "True"  # sd-scripts: True only for the exact string "True"
    if "emb_dims" in kv:
        s = kv["emb_dims"].strip().strip("[]")
        try:
            dims = [int(x) for x in s.split(",")]
        except ValueError:
            dims = []
        if len(dims) != 6:
            raise OptionError(f"network_args: emb_dims={kv['emb_dims']!r}: give 6 integers [context, t, x, y, "
                              f"final_mod, final_linear]")
        if dims[2]:
            raise OptionError("network_args: emb_dims: the x_embedder (Conv2d patch embedding) LoRA is not "
                              "implemented by this trainer; give 0 as its (third) dim")
        o["emb_dims"] = dims
    if "train_block_indices" in kv:
        o["train_block_indices"] = parse_block_selection("train_block_indices", kv["train_block_indices"], 999)
    return o


class SwappedLoRAModule(FluxLoRAModule):
    """A LoRA over one diffusers layer whose output rows are SD3's with the two halves exchanged (the file keeps
    SD3's order; the update is applied with the halves swapped)."""

    def _forward(self, j, off, x):
        base = self._org_forwards[j](x)
        if self.training and self.module_dropout and torch.rand(()) < self.module_dropout:
            return base
        if x.dtype != self.lora_down.weight.dtype and not torch.is_autocast_enabled(x.device.type):
            x = x.to(self.lora_down.weight.dtype)
        h = self.lora_down(x)
        if self.training and self.dropout:
            h = nn.functional.dropout(h, p=self.dropout)
        scale = self.scale
        if self.training and self.rank_dropout:
            shape = (h.shape[0],) + (1,) * (h.dim() - 2) + (h.shape[-1],)
            h = h * (torch.rand(shape, device=h.device) > self.rank_dropout).to(h.dtype)
            scale = scale / (1.0 - self.rank_dropout)
        a, b = self.lora_up.weight.chunk(2, dim=0)
        u = nn.functional.linear(h, torch.cat([b, a], dim=0)) * (self.multiplier * scale)
        return base + u.to(base.dtype)


def unet_targets(tr: nn.Module, emb_dims=None):
    """(kohya name, [diffusers Linear parts], kind, swapped) for the SD3 transformer; kind "block" or the emb_dims
    slot index."""
    n = len(tr.transformer_blocks)
    dual = set(tr.config.dual_attention_layers or ())

    def lin(path):
        return tr.get_submodule(path)
    for i in range(n):
        p, k = f"transformer_blocks.{i}.", f"lora_unet_joint_blocks_{i}_"
        last = i == n - 1
        yield k + "context_block_attn_qkv", [lin(p + f"attn.add_{x}_proj") for x in "qkv"], "block", False
        if not last:
            yield k + "context_block_attn_proj", [lin(p + "attn.to_add_out")], "block", False
            yield k + "context_block_mlp_fc1", [lin(p + "ff_context.net.0.proj")], "block", False
            yield k + "context_block_mlp_fc2", [lin(p + "ff_context.net.2")], "block", False
        yield k + "context_block_adaLN_modulation_1", [lin(p + "norm1_context.linear")], "block", last
        yield k + "x_block_attn_qkv", [lin(p + f"attn.to_{x}") for x in "qkv"], "block", False
        yield k + "x_block_attn_proj", [lin(p + "attn.to_out.0")], "block", False
        if i in dual:
            yield k + "x_block_attn2_qkv", [lin(p + f"attn2.to_{x}") for x in "qkv"], "block", False
            yield k + "x_block_attn2_proj", [lin(p + "attn2.to_out.0")], "block", False
        yield k + "x_block_mlp_fc1", [lin(p + "ff.net.0.proj")], "block", False
        yield k + "x_block_mlp_fc2", [lin(p + "ff.net.2")], "block", False
        yield k + "x_block_adaLN_modulation_1", [lin(p + "norm1.linear")], "block", False
    if emb_dims:
        te = "time_text_embed."
        slots = [[("lora_unet_context_embedder", "context_embedder", False)],
                 [("lora_unet_t_embedder_mlp_0", te + "timestep_embedder.linear_1", False),
                  ("lora_unet_t_embedder_mlp_2", te + "timestep_embedder.linear_2", False)],
                 [],  # x_embedder: a Conv2d (refused unless its dim is 0)
                 [("lora_unet_y_embedder_mlp_0", te + "text_embedder.linear_1", False),
                  ("lora_unet_y_embedder_mlp_2", te + "text_embedder.linear_2", False)],
                 [("lora_unet_final_layer_adaLN_modulation_1", "norm_out.linear", True)],
                 [("lora_unet_final_layer_linear", "proj_out", False)]]
        for slot, pairs in enumerate(slots):
            for name, path, swap in pairs:
                yield name, [lin(path)], slot, swap


class SD3LoRANetwork(nn.Module):
    """All LoRA modules of one SD3 model, kohya's `networks.lora_sd3` layout. `te_modules` (CLIP-L, CLIP-G, then T5
    with train_t5xxl) and `unet_modules`; `state_dict()` is exactly the kohya file content."""

    def __init__(self, transformer, text_encoders: list, network_dim: int, network_alpha: float | None,
                 options: dict, train_unet: bool = True, train_te: bool = True, dropout: float | None = None):
        super().__init__()
        o = options
        self.split_qkv, self.train_t5xxl = o["split_qkv"], o["train_t5xxl"]
        alpha = 1.0 if network_alpha is None else network_alpha  # sd-scripts' lora_sd3 default
        kw = {"dropout": dropout, "rank_dropout": o.get("rank_dropout"), "module_dropout": o.get("module_dropout")}
        self.te_modules: list[FluxLoRAModule] = []
        self.unet_modules: list[FluxLoRAModule] = []
        self.skipped: list[str] = []
        if train_te:
            for prefix, te in (("lora_te1", text_encoders[0]), ("lora_te2", text_encoders[1])):
                for name, mod in _te_targets(te, prefix):
                    self.te_modules.append(FluxLoRAModule(name, [mod], network_dim, alpha, **kw))
            if self.train_t5xxl:
                for name, mod in _t5_targets(text_encoders[2], "lora_te3"):
                    self.te_modules.append(FluxLoRAModule(name, [mod], network_dim, alpha, **kw))
        if train_unet:
            blocks = o.get("train_block_indices")
            for name, parts, kind, swap in unet_targets(transformer, o.get("emb_dims")):
                if kind == "block":
                    dim = network_dim
                    for key, ids in _TYPE_DIMS:
                        if key in o and all(x in name for x in ids):
                            dim = o[key]
                            break
                    if dim and blocks is not None and not blocks[int(name.split("_")[4])]:
                        dim = 0
                else:
                    dim = o["emb_dims"][kind]
                if not dim:
                    self.skipped.append(name)
                    continue
                cls = SwappedLoRAModule if swap else FluxLoRAModule
                split = self.split_qkv and name.endswith("qkv")  # kohya splits the joint blocks' qkv only
                self.unet_modules.append(cls(name, parts, dim, alpha, split=split, **kw))
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
        """Load kohya-form tensors (resume), returning torch's `(missing_keys, unexpected_keys)` result."""
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
        """Load a kohya SD3 LoRA state dict (`--network_weights`); returns (missing, unexpected) keys."""
        missing, known = [], set()
        for m in self.te_modules + self.unet_modules:
            missing += m.load_kohya(sd)
            known |= {f"{m.lora_name}.lora_down.weight", f"{m.lora_name}.lora_up.weight", f"{m.lora_name}.alpha"}
        return missing, sorted(k for k in sd if k not in known)

    def param_groups(self, te_lrs: list[float | None] | None, unet_lr: float | None, default_lr: float):
        """Optimizer groups as sd-scripts' lora_sd3 makes them: text_encoder_lr [CLIP-L, CLIP-G, T5] (one value:
        all three; two: CLIP-L, then CLIP-G and T5), the transformer at unet_lr; a group at lr 0 is left out."""
        groups = []
        lrs = [default_lr if lr is None else lr for lr in (te_lrs or [None])]
        if len(lrs) == 1:
            lrs = lrs * 3
        elif len(lrs) == 2:
            lrs = [lrs[0], lrs[1], lrs[1]]
        for prefix, lr in (("lora_te1_", lrs[0]), ("lora_te2_", lrs[1]), ("lora_te3_", lrs[2])):
            ps = [p for m in self.te_modules if m.lora_name.startswith(prefix) for p in m.parameters()]
            if lr and ps:
                groups.append({"params": ps, "lr": lr, "name": "textencoder"})
        lr = default_lr if unet_lr is None else unet_lr
        if lr and self.unet_modules:
            groups.append({"params": [p for m in self.unet_modules for p in m.parameters()], "lr": lr,
                           "name": "unet"})
        return groups


def kohya_sd3_to_diffusers(sd: dict, transformer, text_encoders: list | None = None) -> dict:
    """A kohya SD3 LoRA state dict → diffusers/PEFT names (`transformer.<layer>.lora_A.weight`, `lora_B`; with
    `text_encoders` [CLIP-L, CLIP-G] also `text_encoder.*` / `text_encoder_2.*`), alpha/rank folded into lora_B,
    fused qkv ups split by rows, swapped layers re-ordered. diffusers' `SD3LoraLoaderMixin` reads PEFT names only (it
    has no converter for kohya's SD3 names), so this is how a diffusers pipeline takes one of these files:
    `pipe.load_lora_weights(kohya_sd3_to_diffusers(sd, pipe.transformer, [pipe.text_encoder, pipe.text_encoder_2]))`.
    KeyError for a module name the models do not have."""
    out = {}
    emb = [1] * 6
    names = {}
    paths = {}
    for name, parts, _kind, swap in unet_targets(transformer, emb):
        names[name] = ("transformer", parts, swap)
    paths.update({id(m): p for p, m in transformer.named_modules()})
    for prefix, root, te in zip(("lora_te1", "lora_te2"), ("text_encoder", "text_encoder_2"), text_encoders or []):
        for name, mod in _te_targets(te, prefix):
            names[name] = (root, [mod], False)
        paths.update({id(m): p for p, m in te.named_modules()})
    for key in sd:
        if not key.endswith(".lora_down.weight"):
            continue
        n = key[: -len(".lora_down.weight")]
        if n not in names and not n.startswith("lora_unet_") and not text_encoders:
            continue  # text-encoder modules without the encoders given
        root, parts, swap = names[n]
        down, up = sd[key], sd[f"{n}.lora_up.weight"]
        rank = down.shape[0]
        alpha = float(sd.get(f"{n}.alpha", torch.tensor(float(rank))))
        up = up * (alpha / rank)
        if swap:
            a, b = up.chunk(2, dim=0)
            up = torch.cat([b, a], dim=0)
        i = 0
        for part in parts:
            rows = part.out_features
            out[f"{root}.{paths[id(part)]}.lora_A.weight"] = down
            out[f"{root}.{paths[id(part)]}.lora_B.weight"] = up[i:i + rows].contiguous()
            i += rows
    return out
