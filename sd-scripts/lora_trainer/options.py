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


LORA_NETWORK_ARGS = {"conv_dim": int, "conv_alpha": float, "rank_dropout": float, "module_dropout": float}


def network_args(args) -> dict[str, str]:
    """`network_args` as {key: value}; for networks.lora only the keys of `LORA_NETWORK_ARGS`, each a number.
    OptionError names the bad key and the supported ones."""
    kv = key_values("network_args", args.network_args)
    if args.network_module == "lycoris.kohya":
        return kv  # LyCORIS reads its own keys (algo, preset, ...)
    if args.network_module == "networks.lora_flux":
        from .flux_network import flux_network_options
        flux_network_options(kv)  # its own keys (train_blocks, split_qkv, ...), checked here
        return kv
    bad = sorted(set(kv) - set(LORA_NETWORK_ARGS))
    if bad:
        raise OptionError(f"network_args: {', '.join(bad)} not supported by this trainer "
                          f"(supported: {', '.join(sorted(LORA_NETWORK_ARGS))})")
    for key, value in kv.items():
        try:
            LORA_NETWORK_ARGS[key](value)
        except ValueError:
            raise OptionError(f"network_args: {key}={value!r} is not a number "
                              f"({'an integer' if LORA_NETWORK_ARGS[key] is int else 'e.g. 0.1'})") from None
    return kv


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
    if args.cache_latents and args.random_crop:  # color_aug is refused outright (unsupported_options.json)
        msgs.append("cache_latents cannot be combined with random_crop; turn one off")
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
    elif args.network_module == "networks.lora_flux":
        msgs.append(f"network_module networks.lora_flux is for Flux.1 (flux_train_network.py), not {script}.py; "
                    f"use networks.lora")
    if args.bucket_reso_steps % step_div and args.enable_bucket:
        msgs.append(f"bucket_reso_steps {args.bucket_reso_steps} must be a multiple of {step_div}")
    from .precision import full_precision_problems
    from .tracking import logging_problems
    msgs += logging_problems(args) + full_precision_problems(args)
    if msgs:
        raise OptionError("\n".join(msgs))
