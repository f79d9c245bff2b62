"""Hyper-parameters of the tiny random demo/test models (same classes and block layout as the real ones,
scaled down so a 64 px CPU training step takes well under a second).

te2 is wider than te1 on purpose: diffusers tells SDXL's two text encoders apart by hidden size when loading a
single file (trainer_feasibility.md, pitfall 4). Both keep CLIP's full 49408-token vocabulary so the real
tokenizer works.
"""
from __future__ import annotations

from .tokenizers import VOCAB_SIZE

_TE1 = {"architectures": ["CLIPTextModel"], "hidden_act": "quick_gelu", "hidden_size": 32, "intermediate_size": 64,
        "num_attention_heads": 4, "num_hidden_layers": 3, "max_position_embeddings": 77, "vocab_size": VOCAB_SIZE,
        "projection_dim": 32, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "layer_norm_eps": 1e-05,
        "model_type": "clip_text_model"}
_TE2 = dict(_TE1, architectures=["CLIPTextModelWithProjection"], hidden_act="gelu", hidden_size=48,
            intermediate_size=96, projection_dim=48)
_VAE = {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [8, 16, 32, 32],
        "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 8,
        "sample_size": 64}
_UNET_COMMON = {"_class_name": "UNet2DConditionModel", "act_fn": "silu", "block_out_channels": [32, 64],
                "layers_per_block": 2, "in_channels": 4, "out_channels": 4, "norm_num_groups": 32,
                "sample_size": 8, "flip_sin_to_cos": True, "freq_shift": 0, "downsample_padding": 1,
                "center_input_sample": False, "mid_block_scale_factor": 1, "norm_eps": 1e-05}


def tiny_configs(family: str) -> dict[str, dict]:
    """Component configs ({"unet", "vae", "text_encoder"[, "text_encoder_2"]}) for `family` "sdxl", "sd1" or
    "sd2"."""
    if family == "sdxl":
        unet = dict(_UNET_COMMON, down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                    up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], transformer_layers_per_block=[1, 2],
                    attention_head_dim=[2, 4], cross_attention_dim=_TE1["hidden_size"] + _TE2["hidden_size"],
                    addition_embed_type="text_time", addition_time_embed_dim=8,
                    projection_class_embeddings_input_dim=_TE2["projection_dim"] + 6 * 8,
                    use_linear_projection=True)
        return {"unet": unet, "vae": dict(_VAE, scaling_factor=0.13025), "text_encoder": dict(_TE1),
                "text_encoder_2": dict(_TE2)}
    if family == "sd1":
        unet = dict(_UNET_COMMON, down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], attention_head_dim=4,
                    cross_attention_dim=_TE1["hidden_size"], use_linear_projection=False)
        return {"unet": unet, "vae": dict(_VAE, scaling_factor=0.18215), "text_encoder": dict(_TE1)}
    if family == "sd2":
        # SD2.x: OpenCLIP-H text encoder (gelu; stored as `cond_stage_model.model.*`), linear proj_in/proj_out
        # and per-block head sizes in the UNet
        te = dict(_TE1, hidden_act="gelu")
        unet = dict(_UNET_COMMON, down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], attention_head_dim=[2, 4],
                    cross_attention_dim=te["hidden_size"], use_linear_projection=True)
        return {"unet": unet, "vae": dict(_VAE, scaling_factor=0.18215), "text_encoder": te}
    raise ValueError(f"no tiny configuration for family {family!r} (use sdxl, sd1 or sd2)")
