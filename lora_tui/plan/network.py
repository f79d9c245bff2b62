"""The LoRA type as sd-scripts takes it: ``network_module`` and ``network_args`` for a config.

kohya_ss' lora_gui.py ``train_model`` turns the form's LoRA type into these two options (minus its bugs here); the
launch writes them to the TOML, the rules check that the trainer's Python can import the module. This is a plan of
the launch, not a fact about a field, so it lives in the plan layer, reading the fields' ``net_arg`` metadata.
"""
from __future__ import annotations

from typing import Any, Optional

from lora_tui.config.model import TrainingConfig, family


_STD_BLOCK_ARGS = ("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold", "block_dims",
                   "block_alphas", "conv_block_dims", "conv_block_alphas")
_FLUX_DIM_ARGS = ("img_attn_dim", "img_mlp_dim", "img_mod_dim", "single_dim", "txt_attn_dim", "txt_mlp_dim",
                  "txt_mod_dim", "single_mod_dim", "in_dims", "train_double_block_indices",
                  "train_single_block_indices")
# LyCORIS algorithms: the network_args each one always carries, in kohya_ss' order (lora_gui.py `train_model`).
_LYCORIS: dict[str, tuple[str, tuple[str, ...]]] = {
    "LyCORIS/LoCon": ("locon", ("preset", "conv_dim", "conv_alpha", "use_tucker", "rank_dropout", "bypass_mode",
                                "dora_wd", "module_dropout", "use_scalar", "rank_dropout_scale", "algo",
                                "train_norm")),
    "LyCORIS/LoHa": ("loha", ("preset", "conv_dim", "conv_alpha", "use_tucker", "rank_dropout", "bypass_mode",
                              "dora_wd", "module_dropout", "use_scalar", "rank_dropout_scale", "algo", "train_norm")),
    "LyCORIS/LoKr": ("lokr", ("preset", "conv_dim", "conv_alpha", "use_tucker", "rank_dropout", "bypass_mode",
                              "dora_wd", "module_dropout", "factor", "use_cp", "use_scalar", "decompose_both",
                              "rank_dropout_scale", "algo", "train_norm")),
    "LyCORIS/BOFT": ("boft", ("preset", "conv_dim", "conv_alpha", "module_dropout", "use_tucker", "rank_dropout",
                              "rank_dropout_scale", "algo", "train_norm")),
    "LyCORIS/Diag-OFT": ("diag-oft", ("preset", "conv_dim", "conv_alpha", "module_dropout", "use_tucker",
                                      "rank_dropout", "rank_dropout_scale", "constraint", "rescaled", "algo",
                                      "train_norm")),
    "LyCORIS/DyLoRA": ("dylora", ("preset", "conv_dim", "conv_alpha", "use_tucker", "block_size", "rank_dropout",
                                  "module_dropout", "algo", "train_norm")),
    "LyCORIS/GLoRA": ("glora", ("preset", "conv_dim", "conv_alpha", "use_tucker", "rank_dropout", "module_dropout",
                                "rank_dropout_scale", "algo", "train_norm")),
    "LyCORIS/iA3": ("ia3", ("preset", "conv_dim", "conv_alpha", "train_on_input", "algo")),
    "LyCORIS/Native Fine-Tuning": ("full", ("preset", "rank_dropout", "module_dropout", "rank_dropout_scale",
                                            "algo", "train_norm")),
}
_NET_ARG_FIELD = {"preset": "LyCORIS_preset", "constraint": "constrain", "block_size": "unit"}


def network_module(cfg: TrainingConfig) -> str:
    """The ``network_module`` for ``cfg.LoRA_type`` (kohya_ss' `train_model`), e.g. ``networks.lora``."""
    t = cfg.LoRA_type
    if t in ("Standard", "Kohya LoCon"):
        fam = family(cfg)
        if fam == "sd3":
            return "networks.lora_sd3"
        if fam == "flux1":
            return "networks.lora_flux"
        return "networks.lora"
    if t in _LYCORIS:
        return "lycoris.kohya"
    return {
        "LoRA-FA": "networks.lora_fa", "Kohya DyLoRA": "networks.dylora", "Kohya LoHa": "networks.loha",
        "Kohya LoKr": "networks.lokr", "Flux1": "networks.lora_flux", "Flux1 OFT": "networks.oft_flux",
    }[t]


def network_args(cfg: TrainingConfig) -> list[str]:
    """The ``network_args`` list for ``cfg`` (kohya_ss' `train_model`, minus its bugs): one ``key=value`` string per
    argument, never re-split on spaces (a LyCORIS preset path with a space stays one token); unset (None)
    values are left out."""
    out: list[str] = []

    def add(key: str, value: Any, when: bool = True) -> None:
        if when and value is not None and value != "":
            # str(): sd-scripts and LyCORIS parse the value themselves ("True"/"False", "0.1", "8").
            out.append(f"{key}={value}")

    def truthy(key: str, field: Optional[str] = None) -> None:
        v = getattr(cfg, field or key)
        add(key, v, bool(v))

    t = cfg.LoRA_type
    if t in ("Standard", "Kohya LoCon", "LoRA-FA"):
        if t == "Kohya LoCon":
            add("conv_dim", cfg.conv_dim)
            add("conv_alpha", cfg.conv_alpha)
        for k in _STD_BLOCK_ARGS + ("rank_dropout", "module_dropout"):
            truthy(k)
    elif t == "Kohya DyLoRA":
        for k in ("conv_dim", "conv_alpha") + _STD_BLOCK_ARGS + ("unit", "rank_dropout", "module_dropout"):
            truthy(k)
    elif t in _LYCORIS:
        algo, keys = _LYCORIS[t]
        for k in keys:
            if k == "algo":
                out.append(f"algo={algo}")
            else:
                add(k, getattr(cfg, _NET_ARG_FIELD.get(k, k)))
    elif t in ("Kohya LoHa", "Kohya LoKr"):
        if cfg.conv_dim and cfg.conv_dim > 0:
            add("conv_dim", int(cfg.conv_dim))
            alpha = cfg.conv_alpha
            add("conv_alpha", int(alpha) if float(alpha).is_integer() else alpha)
        if cfg.use_tucker:
            add("use_tucker", True)
        if t == "Kohya LoKr" and cfg.factor != -1:
            add("factor", int(cfg.factor))
        for k in ("rank_dropout", "module_dropout"):
            v = getattr(cfg, k)
            add(k, v, bool(v and v > 0))
    elif t == "Flux1":
        if cfg.train_lora_ggpo:
            truthy("ggpo_sigma")
            truthy("ggpo_beta")
        for k in _FLUX_DIM_ARGS:
            truthy(k)
        if cfg.split_mode:
            out.append("train_blocks=single")
        if cfg.split_qkv:
            out.append("split_qkv=True")
        if cfg.train_t5xxl and family(cfg) == "flux1":
            out.append("train_t5xxl=True")
        for k in ("rank_dropout", "module_dropout"):
            v = getattr(cfg, k)
            add(k, v, bool(v and v > 0))
    elif t == "Flux1 OFT":
        if cfg.enable_all_linear:
            out.append("enable_all_linear=True")
    for k in ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio"):
        truthy(k)
    return out
