"""`networks.lora_flux`, the module name sd-scripts' Flux.1 configs give as `network_module`.

The implementation lives in `lora_trainer.flux_network`; this module exists so that `network_module =
"networks.lora_flux"` names something real, as it does in kohya's sd-scripts.
"""
from lora_trainer.flux_network import FluxLoRAModule, FluxLoRANetwork, flux_network_options  # noqa: F401


def create_network(multiplier, network_dim, network_alpha, ae, text_encoders, flux, neuron_dropout=None, **kwargs):
    """kohya's factory signature: a `FluxLoRANetwork` over the diffusers `flux` transformer and
    `text_encoders` ([CLIP-L, T5]); `kwargs` are the network_args strings (train_blocks, split_qkv, ...)."""
    opts = flux_network_options({k: str(v) for k, v in kwargs.items()})
    net = FluxLoRANetwork(flux, list(text_encoders), int(network_dim or 4), network_alpha, opts,
                          dropout=neuron_dropout)
    net.set_multiplier(multiplier)
    return net
