"""The options `flux_train_network.py` adds to `sdxl_train_network.py`'s (sd-scripts' `add_dit_training_arguments`
and `flux_train_utils.add_flux_train_arguments`, with their defaults and choices), in `args_catalogue.json`'s
entry form. Torch-free: the parser and the app's checks read it.
"""
from __future__ import annotations


def _store(typ, default=None, choices=None, nargs=None) -> dict:
    return {"action": "_StoreAction", "type": typ, "nargs": nargs, "choices": choices, "default": default}


_TRUE = {"action": "_StoreTrueAction", "type": None, "nargs": 0, "choices": None, "default": False}

FLUX_OPTIONS: dict[str, dict] = {
    # library/flux_train_utils.py add_flux_train_arguments
    "clip_l": _store("str"),
    "t5xxl": _store("str"),
    "ae": _store("str"),
    "controlnet_model_name_or_path": _store("str"),
    "t5xxl_max_token_length": _store("int"),
    "apply_t5_attn_mask": dict(_TRUE),
    "guidance_scale": _store("float", 3.5),
    "timestep_sampling": _store("str", "sigma", ["sigma", "uniform", "sigmoid", "shift", "flux_shift"]),
    "sigmoid_scale": _store("float", 1.0),
    "model_prediction_type": _store("str", "sigma_scaled", ["raw", "additive", "sigma_scaled"]),
    "discrete_flow_shift": _store("float", 3.0),
    "model_type": _store("str", "flux", ["flux", "chroma"]),
    # library/train_util.py add_dit_training_arguments (cache_text_encoder_outputs(_to_disk) and
    # disable_mmap_load_safetensors are in the SDXL catalogue already)
    "text_encoder_batch_size": _store("int"),
    "weighting_scheme": _store("str", "uniform", ["sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform"]),
    "logit_mean": _store("float", 0.0),
    "logit_std": _store("float", 1.0),
    "mode_scale": _store("float", 1.29),
    "blocks_to_swap": _store("int"),
    # flux_train_network.py
    "split_mode": dict(_TRUE),
}


def catalogue_for(script: str, cats: dict) -> dict:
    """The option catalogue of `script` given the loaded `args_catalogue.json` (`cats`)."""
    if script == "flux_train_network" and script not in cats:
        return {**cats["sdxl_train_network"], **FLUX_OPTIONS}
    if script == "sd3_train_network" and script not in cats:
        from .sd3_options import SD3_OPTIONS
        return {**cats["sdxl_train_network"], **SD3_OPTIONS}
    return cats[script]
