"""`networks.lora`, the module name sd-scripts configs give as `network_module`.

The implementation lives in `lora_trainer.network`; this module exists so that `network_module =
"networks.lora"` names something real, as it does in kohya's sd-scripts.
"""
from lora_trainer.network import LoRAModule, LoRANetwork  # noqa: F401


def create_network(multiplier, network_dim, network_alpha, vae, text_encoder, unet, neuron_dropout=None, **kwargs):
    """kohya's factory signature: build a `LoRANetwork` over `unet` and `text_encoder` (one model or a list).
    `family` ("sd1"/"sd2"/"sdxl") may be given in kwargs; with two text encoders it defaults to "sdxl"."""
    tes = list(text_encoder) if isinstance(text_encoder, (list, tuple)) else [text_encoder]
    family = kwargs.pop("family", "sdxl" if len(tes) == 2 else "sd1")
    conv_dim = int(kwargs["conv_dim"]) if kwargs.get("conv_dim") else None
    conv_alpha = float(kwargs["conv_alpha"]) if kwargs.get("conv_alpha") else None
    net = LoRANetwork(unet, tes, family, int(network_dim or 4), network_alpha, conv_dim=conv_dim,
                      conv_alpha=conv_alpha, dropout=neuron_dropout)
    net.set_multiplier(multiplier)
    return net
