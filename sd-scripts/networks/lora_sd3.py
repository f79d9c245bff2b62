"""`networks.lora_sd3`, the module name sd-scripts' SD3 configs give as `network_module`.

The implementation lives in `lora_trainer.sd3_network`; this module exists so that `network_module =
"networks.lora_sd3"` names something real, as it does in kohya's sd-scripts.
"""
from lora_trainer.sd3_network import SD3LoRANetwork, kohya_sd3_to_diffusers, sd3_network_options  # noqa: F401


def create_network(multiplier, network_dim, network_alpha, vae, text_encoders, mmdit, neuron_dropout=None, **kwargs):
    """kohya's factory signature: an `SD3LoRANetwork` over the diffusers SD3 transformer `mmdit` and
    `text_encoders` ([CLIP-L, CLIP-G, T5]); `kwargs` are the network_args strings (split_qkv, emb_dims, ...)."""
    opts = sd3_network_options({k: str(v) for k, v in kwargs.items()})
    net = SD3LoRANetwork(mmdit, list(text_encoders), int(network_dim or 4), network_alpha, opts,
                         dropout=neuron_dropout)
    net.set_multiplier(multiplier)
    return net
