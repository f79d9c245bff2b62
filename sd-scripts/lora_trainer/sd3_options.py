"""The options `sd3_train_network.py` adds to `sdxl_train_network.py`'s (sd-scripts' `add_dit_training_arguments`
and `sd3_train_utils.add_sd3_training_arguments`, with their defaults and choices), in `args_catalogue.json`'s entry
form. Torch-free: the parser and the app's checks read it.
"""
from __future__ import annotations

from .flux_options import _TRUE, _store

SD3_OPTIONS: dict[str, dict] = {
    # library/sd3_train_utils.py add_sd3_training_arguments
    "clip_l": _store("str"),
    "clip_g": _store("str"),
    "t5xxl": _store("str"),
    "save_clip": dict(_TRUE),  # deprecated in sd-scripts (no effect)
    "save_t5xxl": dict(_TRUE),  # deprecated in sd-scripts (no effect)
    "t5xxl_device": _store("str"),
    "t5xxl_dtype": _store("str"),
    "t5xxl_max_token_length": _store("int", 256),
    "apply_lg_attn_mask": dict(_TRUE),
    "apply_t5_attn_mask": dict(_TRUE),
    "clip_l_dropout_rate": _store("float", 0.0),
    "clip_g_dropout_rate": _store("float", 0.0),
    "t5_dropout_rate": _store("float", 0.0),
    "pos_emb_random_crop_rate": _store("float", 0.0),
    "enable_scaled_pos_embed": dict(_TRUE),
    "training_shift": _store("float", 1.0),
    # library/train_util.py add_dit_training_arguments
    "text_encoder_batch_size": _store("int"),
    "weighting_scheme": _store("str", "uniform", ["sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform"]),
    "logit_mean": _store("float", 0.0),
    "logit_std": _store("float", 1.0),
    "mode_scale": _store("float", 1.29),
    "blocks_to_swap": _store("int"),
}
