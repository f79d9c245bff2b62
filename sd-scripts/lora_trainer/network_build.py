"""Making the trained network from the options, as sd-scripts' `train_network.py` does with its network module's
`create_network` / `create_network_from_weights`: networks.lora (with block-wise ranks and LR weights, LoRA+) or
lycoris.kohya, with ranks from `network_weights` when `dim_from_weights` is set.
"""
from __future__ import annotations

from dataclasses import dataclass

from .args import OptionError
from .options import network_args


@dataclass
class BuiltNetwork:
    """The network and the figures the run reports and saves: `network_dim`/`network_alpha` as sd-scripts
    records them (the raw options: `None` when not given, e.g. with ranks from the weights file) and the
    weights file read, if any."""
    net: object
    network_dim: int | None
    network_alpha: float | None
    weights_sd: dict | None


def build_network(args, family: str, unet, text_encoders: list, weights_sd: dict | None = None) -> BuiltNetwork:
    """The network for `args` over the loaded models (not yet applied); `weights_sd` is the network_weights file
    when already read. Raises OptionError for network_args LyCORIS or the block rules reject (naming them);
    dim_from_weights without network_weights is ignored with a warning (sd-scripts crashes on it)."""
    from .saving import dims_from_weights, module_dims_from_weights, read_lora

    na = network_args(args)
    network_dim = int(args.network_dim) if args.network_dim is not None else 4
    network_alpha = args.network_alpha
    conv_dim = int(na["conv_dim"]) if "conv_dim" in na else None
    conv_alpha = float(na["conv_alpha"]) if "conv_alpha" in na else None
    train_unet = not args.network_train_text_encoder_only
    train_te = not args.network_train_unet_only
    if weights_sd is None and args.network_weights:
        weights_sd = read_lora(args.network_weights)
    if args.dim_from_weights and weights_sd is None:
        # sd-scripts crashes here (it opens a None path); kohya_ss presets of a second training phase carry the
        # switch without the file, so train at network_dim instead and say so
        from .console import warn
        warn("dim_from_weights without network_weights: ignored, the network takes network_dim")
    recorded_dim = args.network_dim
    if args.network_module == "lycoris.kohya":
        from .lycoris_network import LycorisNetwork
        kw = dict(na)
        if weights_sd is not None and args.dim_from_weights:
            # LyCORIS makes its modules from one dim/alpha pair per kind: take them from the file
            network_dim, network_alpha, cdim, calpha = dims_from_weights(weights_sd)
            if cdim is not None:
                kw["conv_dim"], kw["conv_alpha"] = str(cdim), str(calpha)
        try:
            net = LycorisNetwork(unet, text_encoders, family, network_dim, network_alpha, train_unet=train_unet,
                                 train_te=train_te, network_args=kw, dropout=args.network_dropout)
        except (KeyError, ValueError, TypeError) as e:  # LyCORIS checks its keys only here (algo=typo: KeyError)
            raise OptionError(f"network_args {' '.join(args.network_args or [])}: lycoris.kohya cannot build "
                              f"the network ({type(e).__name__}: {e}); check algo, preset and the other "
                              f"keys") from None
        return BuiltNetwork(net, recorded_dim, args.network_alpha, weights_sd)

    from .network import LoRANetwork
    from .network_blocks import block_plan
    module_dims = None
    blocks = None
    if weights_sd is not None and args.dim_from_weights:
        module_dims = module_dims_from_weights(weights_sd)
    else:
        blocks = block_plan(na, family == "sdxl", network_dim, 1.0 if network_alpha is None else network_alpha,
                            conv_dim, conv_alpha)
    net = LoRANetwork(unet, text_encoders, family, network_dim, network_alpha, train_unet=train_unet,
                      train_te=train_te, conv_dim=conv_dim, conv_alpha=conv_alpha, dropout=args.network_dropout,
                      rank_dropout=float(na["rank_dropout"]) if "rank_dropout" in na else None,
                      module_dropout=float(na["module_dropout"]) if "module_dropout" in na else None,
                      blocks=blocks, module_dims=module_dims)
    net.loraplus = tuple(float(na[k]) if k in na else None
                         for k in ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio"))
    return BuiltNetwork(net, recorded_dim, args.network_alpha, weights_sd)
