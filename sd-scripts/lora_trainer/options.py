"""Option checks that need no model, run before anything loads so a typo fails in a second: `validate`, and
the `key=value` list options (`network_args`) read again where they are used.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .args import OptionError, check_unsupported


def key_values(option: str, items) -> dict[str, str]:
    """`key=value` strings of a list option → {key: value} (both stripped); OptionError names `option`."""
    kv = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise OptionError(f"{option}: {item!r} is not key=value")
        kv[key.strip()] = value.strip()
    return kv


LORA_NETWORK_ARGS = {"conv_dim": int, "conv_alpha": float, "rank_dropout": float, "module_dropout": float,
                     "loraplus_lr_ratio": float, "loraplus_unet_lr_ratio": float,
                     "loraplus_text_encoder_lr_ratio": float}
# block-wise keys: comma lists (or lr-weight presets) checked against the model's block count (network_blocks.py)
LORA_BLOCK_ARGS = ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "down_lr_weight",
                   "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold")


def network_args(args) -> dict[str, str]:
    """`network_args` as {key: value}; for networks.lora only the keys of `LORA_NETWORK_ARGS` (each a number)
    and `LORA_BLOCK_ARGS`.
    OptionError names the bad key and the supported ones."""
    kv = key_values("network_args", args.network_args)
    if args.network_module == "lycoris.kohya":
        return kv  # LyCORIS reads its own keys (algo, preset, ...)
    if args.network_module == "networks.lora_flux":
        from .flux_network import flux_network_options
        flux_network_options(kv)  # its own keys (train_blocks, split_qkv, ...), checked here
        return kv
    if args.network_module == "networks.lora_sd3":
        from .sd3_network import sd3_network_options
        sd3_network_options(kv)  # its own keys (emb_dims, split_qkv, ...), checked here
        return kv
    bad = sorted(set(kv) - set(LORA_NETWORK_ARGS) - set(LORA_BLOCK_ARGS))
    if bad:
        raise OptionError(f"network_args: {', '.join(bad)} not supported by this trainer "
                          f"(supported: {', '.join(sorted(set(LORA_NETWORK_ARGS) | set(LORA_BLOCK_ARGS)))})")
    for key, value in kv.items():
        if key not in LORA_NETWORK_ARGS:
            continue  # block-wise lists: options.block_problems / network_blocks.py
        try:
            LORA_NETWORK_ARGS[key](value)
        except ValueError:
            raise OptionError(f"network_args: {key}={value!r} is not a number "
                              f"({'an integer' if LORA_NETWORK_ARGS[key] is int else 'e.g. 0.1'})") from None
    return kv


def feature_problems(args) -> list[str]:
    """Checks of the training features that need no model: resize_interpolation's name, face_crop_aug_range's
    "min,max" form, fp8_base's need for mixed precision (sd-scripts asserts fp16/bf16) and its network."""
    msgs = []
    from .resize import check_interpolation
    bad = check_interpolation(args.resize_interpolation)
    if bad:
        msgs.append(bad)
    if args.face_crop_aug_range:
        try:
            lo, hi = (float(x) for x in str(args.face_crop_aug_range).split(","))
        except ValueError:
            msgs.append(f"face_crop_aug_range {args.face_crop_aug_range!r}: give two numbers \"min,max\", e.g. "
                        f"\"2.0,4.0\"")
    if args.fp8_base or args.fp8_base_unet:
        # (the Flux and SD3 families cast per call in their own fp8 mode: flux_train._fp8_forward)
        if (args.mixed_precision or "no") == "no" and args.network_module not in ("networks.lora_flux",
                                                                                   "networks.lora_sd3"):
            msgs.append("fp8_base needs mixed_precision fp16 or bf16 (as sd-scripts); set mixed_precision")
        if args.network_module == "lycoris.kohya":
            msgs.append("fp8_base with lycoris.kohya is not supported by this trainer (LyCORIS reads the base "
                        "weights itself); use networks.lora or turn fp8_base off")
    if args.base_weights_multiplier and not args.base_weights:
        msgs.append("base_weights_multiplier is set without base_weights; give the LoRA files to merge")
    for f in args.base_weights or []:
        if not Path(f).is_file():
            msgs.append(f"base_weights: {f} does not exist")
    return msgs


def block_problems(args, script: str) -> list[str]:
    """The block-wise network_args of networks.lora checked against the family the script trains (25 blocks for
    SD1.x/2.x, 23 for SDXL), before any model loads."""
    if args.network_module in ("lycoris.kohya", "networks.lora_flux"):
        return []
    try:
        kv = network_args(args)
    except OptionError:
        return []  # reported by validate's own network_args check
    try:
        if not any(k in kv for k in LORA_BLOCK_ARGS):
            return []
        from .network_blocks import block_plan
        conv_dim = int(kv["conv_dim"]) if "conv_dim" in kv else None
        conv_alpha = float(kv["conv_alpha"]) if "conv_alpha" in kv else None
        block_plan(kv, script == "sdxl_train_network", int(args.network_dim or 4), args.network_alpha, conv_dim,
                   conv_alpha)
    except OptionError as e:
        return [str(e)]
    return []


def validate(args, script: str) -> None:
    """Every problem with `args` for `script` ("train_network"/"sdxl_train_network") in one OptionError, one
    line each; turns sample_every_n_* <= 0 off with a warning instead."""
    msgs = check_unsupported(args, script)
    from .lycoris_options import lycoris_problems  # other network modules: unsupported_options.json
    msgs += lycoris_problems(args)
    from .optim import optimizer_kwargs  # here, not at the top: optim imports key_values from this module
    for parse in (network_args, optimizer_kwargs):  # read again where used; here so a typo fails before loading
        try:
            parse(args)
        except OptionError as e:
            msgs.append(str(e))
    msgs += block_problems(args, script)
    if not args.pretrained_model_name_or_path:
        msgs.append("pretrained_model_name_or_path is not set; give a local .safetensors/.ckpt checkpoint")
    if not args.output_dir:
        msgs.append("output_dir is not set; give the folder for the LoRA files")
    if args.noise_offset is None and args.adaptive_noise_scale is not None:
        msgs.append("adaptive_noise_scale needs noise_offset")
    if args.scale_v_pred_loss_like_noise_pred and not args.v_parameterization:
        msgs.append("scale_v_pred_loss_like_noise_pred needs v_parameterization")
    if args.v_pred_like_loss and args.v_parameterization:
        msgs.append("v_pred_like_loss cannot be used with v_parameterization")
    if script == "sdxl_train_network" and args.v2:
        msgs.append("v2 is not valid for SDXL (sdxl_train_network.py)")
    if args.cache_latents and args.random_crop:
        msgs.append("cache_latents cannot be combined with random_crop; turn one off")
    if args.cache_latents and args.color_aug:  # sd-scripts asserts the same: a cached latent has no augmentation
        msgs.append("cache_latents cannot be combined with color_aug; turn one off")
    msgs += feature_problems(args)
    if args.network_weights and not Path(args.network_weights).is_file():
        msgs.append(f"network_weights: {args.network_weights} does not exist")
    if args.resume and not Path(args.resume).is_dir():
        msgs.append(f"resume: {args.resume} is not a folder (give a <name>-state folder written with save_state)")
    for name in ("sample_every_n_steps", "sample_every_n_epochs"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            print(f"WARNING {name} {v} <= 0: no samples on that schedule", file=sys.stderr, flush=True)
            setattr(args, name, None)
    if (args.lr_scheduler or "constant") == "constant" and args.lr_warmup_steps:
        msgs.append("lr_warmup_steps must be 0 with lr_scheduler constant; use constant_with_warmup")
    # flux_train_network.py: the base 64 check runs before Flux's own 32 check (spec Appendix A)
    step_div = 32 if script == "sdxl_train_network" else 64
    if script == "flux_train_network":
        from .flux_train import flux_problems
        msgs += flux_problems(args)
        # the SD/SDXL trainer's features that the Flux family does not run through (its own network, text
        # encoding and loss): refused rather than silently ignored
        for name in ("base_weights", "masked_loss", "alpha_mask", "weighted_captions"):
            if getattr(args, name, None):
                msgs.append(f"{name} is not supported for Flux.1 by this trainer; remove it")
    elif script == "sd3_train_network":
        from .sd3_train import sd3_problems
        msgs += sd3_problems(args)
        step_div = 32  # sd-scripts' SD3 trainer: verify_bucket_reso_steps(32)
        for name in ("base_weights", "masked_loss", "alpha_mask", "weighted_captions"):
            if getattr(args, name, None):  # SD/SDXL features the SD3 family does not run through
                msgs.append(f"{name} is not supported for SD3 by this trainer; remove it")
    elif args.network_module == "networks.lora_flux":
        msgs.append(f"network_module networks.lora_flux is for Flux.1 (flux_train_network.py), not {script}.py; "
                    f"use networks.lora")
    if script != "sd3_train_network" and args.network_module == "networks.lora_sd3":
        msgs.append(f"network_module networks.lora_sd3 is for SD3 (sd3_train_network.py), not {script}.py; "
                    f"use networks.lora")
    if args.bucket_reso_steps % step_div and args.enable_bucket:
        msgs.append(f"bucket_reso_steps {args.bucket_reso_steps} must be a multiple of {step_div}")
    from .precision import full_precision_problems
    from .tracking import logging_problems
    msgs += logging_problems(args) + full_precision_problems(args)
    if msgs:
        raise OptionError("\n".join(msgs))
