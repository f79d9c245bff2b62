"""Optimizer and LR-scheduler factories: sd-scripts' `optimizer_type`/`optimizer_args` and `lr_scheduler*`
options (spec sd_scripts_interface.md) turned into torch/bitsandbytes/prodigyopt/... optimizers and diffusers
schedulers. Missing optional packages and bad arguments raise OptionError naming the option.
"""
from __future__ import annotations

import ast
import importlib

from .args import OptionError
from .options import key_values


def optimizer_kwargs(args) -> dict:
    """`optimizer_args` as keyword arguments: each value a Python literal where it parses as one, else the string."""
    kw = {}
    for key, value in key_values("optimizer_args", args.optimizer_args).items():
        try:
            kw[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kw[key] = value
    return kw


def make_optimizer(args, groups) -> tuple[object, str, bool]:
    """The optimizer over `groups` (torch param-group dicts, each with "lr"; Adafactor with relative_step drops
    them). Returns (optimizer, its `ss_optimizer` name, whether it is Adafactor with relative_step, which needs
    `make_scheduler(..., adafactor_relative=True)`). Names as sd-scripts' `optimizer_type` (case-insensitive),
    or a dotted class path, or a torch.optim class; SGDNesterov gets momentum 0.9 and nesterov=True by default."""
    import torch

    name = (args.optimizer_type or "").strip()
    if not name:
        name = "AdamW8bit" if args.use_8bit_adam else ("Lion" if args.use_lion_optimizer else "AdamW")
    kw = optimizer_kwargs(args)
    lr = float(args.learning_rate)
    low = name.lower()
    if low == "adamw":
        cls = torch.optim.AdamW
    elif low in ("adamw8bit", "pagedadamw8bit", "pagedadamw", "pagedadamw32bit", "lion8bit", "pagedlion8bit",
                 "sgdnesterov8bit"):
        try:
            import bitsandbytes.optim as bnb
        except Exception as e:
            raise OptionError(f"optimizer_type {name} needs bitsandbytes, which cannot be imported: {e}") from e
        cls = {"adamw8bit": bnb.AdamW8bit, "pagedadamw8bit": bnb.PagedAdamW8bit, "pagedadamw": bnb.PagedAdamW,
               "pagedadamw32bit": bnb.PagedAdamW32bit, "lion8bit": bnb.Lion8bit,
               "pagedlion8bit": bnb.PagedLion8bit, "sgdnesterov8bit": bnb.SGD8bit}[low]
    elif low == "lion":
        try:
            from lion_pytorch import Lion as cls
        except ImportError as e:
            raise OptionError("optimizer_type Lion needs the lion-pytorch package (pip install lion-pytorch)") from e
    elif low == "sgdnesterov":
        cls = torch.optim.SGD
    elif low == "prodigy":
        try:
            from prodigyopt import Prodigy as cls
        except ImportError as e:
            raise OptionError("optimizer_type Prodigy needs prodigyopt (pip install prodigyopt)") from e
    elif low.startswith("dadapt"):
        try:
            import dadaptation
        except ImportError as e:
            raise OptionError(f"optimizer_type {name} needs dadaptation (pip install dadaptation)") from e
        attr = {"dadaptation": "DAdaptAdamPreprint", "dadaptadampreprint": "DAdaptAdamPreprint",
                "dadaptadagrad": "DAdaptAdaGrad", "dadaptadam": "DAdaptAdam", "dadaptadan": "DAdaptAdan",
                "dadaptadanip": "DAdaptAdanIP", "dadaptlion": "DAdaptLion", "dadaptsgd": "DAdaptSGD"}.get(low)
        if attr is None:
            raise OptionError(f"optimizer_type {name}: unknown DAdaptation variant")
        cls = getattr(dadaptation.experimental if attr in ("DAdaptAdamPreprint", "DAdaptAdanIP") else dadaptation,
                      attr, None) or getattr(dadaptation, attr)
    elif low == "adafactor":
        from transformers.optimization import Adafactor as cls
        kw.setdefault("relative_step", True)
        kw.setdefault("scale_parameter", kw["relative_step"])
        kw.setdefault("warmup_init", False)
        if kw["relative_step"]:
            for g in groups:
                g.pop("lr", None)
            opt = cls(groups, lr=None, **kw)
            return opt, optimizer_name(cls, kw), True
    else:
        if "." in name:
            mod, _, attr = name.rpartition(".")
            try:
                cls = getattr(importlib.import_module(mod), attr)
            except (ImportError, AttributeError) as e:
                raise OptionError(f"optimizer_type {name}: cannot import it ({e})") from e
        else:
            cls = getattr(torch.optim, name, None)
            if cls is None:
                raise OptionError(f"optimizer_type {name}: not a known optimizer (AdamW, AdamW8bit, Adafactor, "
                                  f"Prodigy, Lion, SGDNesterov, DAdaptation, or a torch.optim class)")
    if low in ("sgdnesterov", "sgdnesterov8bit"):
        kw.setdefault("momentum", 0.9)
        kw["nesterov"] = True
    try:
        opt = cls(groups, lr=lr, **kw)
    except (TypeError, ValueError, RuntimeError) as e:
        raise OptionError(f"optimizer_type {name} with optimizer_args {args.optimizer_args}: {e}") from e
    return opt, optimizer_name(cls, kw), False


def optimizer_name(cls, kw) -> str:
    """`module.Class(key=value,...)`, the `ss_optimizer` metadata value."""
    s = f"{cls.__module__}.{cls.__name__}"
    if kw:
        s += "(" + ",".join(f"{k}={v}" for k, v in kw.items()) + ")"
    return s


def make_scheduler(args, optimizer, total_steps: int, adafactor_relative: bool = False):
    """The LR scheduler for `optimizer` over `total_steps` scheduler steps (max_train_steps × processes, as
    sd-scripts counts them); a float `lr_warmup_steps` is a fraction of them. Adafactor with relative_step gets
    transformers' AdafactorSchedule. OptionError for a scheduler this trainer does not support."""
    from diffusers.optimization import get_scheduler

    T = total_steps
    name = args.lr_scheduler or "constant"
    if adafactor_relative:
        from transformers.optimization import AdafactorSchedule
        return AdafactorSchedule(optimizer, initial_lr=float(args.learning_rate))
    w = args.lr_warmup_steps or 0
    warmup = int(w * T) if isinstance(w, float) else int(w)
    kw = {}
    if name in ("cosine_with_restarts",):
        kw["num_cycles"] = int(args.lr_scheduler_num_cycles or 1)
    if name == "polynomial":
        kw["power"] = float(args.lr_scheduler_power or 1.0)
    if name == "adafactor" or name.startswith("adafactor:"):
        raise OptionError("lr_scheduler adafactor needs optimizer_type Adafactor with relative_step")
    supported = {"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"}
    if name not in supported:
        raise OptionError(f"lr_scheduler {name!r} not supported by this trainer "
                          f"(supported: {', '.join(sorted(supported))})")
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=T, **kw)
