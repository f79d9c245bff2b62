"""Optimizer and LR-scheduler factories with sd-scripts' rules (`library/train_util.py`: `get_optimizer`,
`get_scheduler_fix`, `get_optimizer_train_eval_fn`): `optimizer_type`/`optimizer_args`, `use_8bit_adam`,
`use_lion_optimizer`, `lr_scheduler*`, `lr_decay_steps`, `lr_scheduler_type`/`lr_scheduler_args`.

Schedulers come from transformers' `get_scheduler` table (`TYPE_TO_SCHEDULER_FUNCTION`, as sd-scripts), plus
diffusers' `piecewise_constant`; `lr_scheduler_type` names any torch.optim.lr_scheduler class or a dotted class
path. Missing optional packages and bad arguments raise OptionError naming the option.

Differences from sd-scripts, on purpose: a `key=value` whose value is not a Python literal is taken as the text
(sd-scripts stops with a SyntaxError); errors are OptionError messages instead of assertions and tracebacks.
"""
from __future__ import annotations

import ast
import importlib

from .args import OptionError
from .options import key_values

# sd-scripts' optimizer_type names (lower case) → (module, class); `None` module: bitsandbytes.optim
_BNB = {"adamw8bit": "AdamW8bit", "sgdnesterov8bit": "SGD8bit", "lion8bit": "Lion8bit",
        "pagedadamw8bit": "PagedAdamW8bit", "pagedlion8bit": "PagedLion8bit", "pagedadamw": "PagedAdamW",
        "pagedadamw32bit": "PagedAdamW32bit", "ademamix8bit": "AdEMAMix8bit",
        "pagedademamix8bit": "PagedAdEMAMix8bit"}
_DADAPT = {"dadaptation": "experimental.DAdaptAdamPreprint", "dadaptadampreprint": "experimental.DAdaptAdamPreprint",
           "dadaptadagrad": "DAdaptAdaGrad", "dadaptadam": "DAdaptAdam", "dadaptadan": "DAdaptAdan",
           "dadaptadanip": "experimental.DAdaptAdanIP", "dadaptlion": "DAdaptLion", "dadaptsgd": "DAdaptSGD"}
_SCHEDULE_FREE = {"adamwschedulefree": "AdamWScheduleFree", "sgdschedulefree": "SGDScheduleFree",
                  "radamschedulefree": "RAdamScheduleFree"}
# the packages behind them (pip names), for the messages
_PACKAGES = {"bitsandbytes": "bitsandbytes", "lion_pytorch": "lion-pytorch", "dadaptation": "dadaptation",
             "prodigyopt": "prodigyopt", "schedulefree": "schedulefree"}


def literal_kwargs(option: str, items) -> dict:
    """`key=value` strings (sd-scripts' `optimizer_args` / `lr_scheduler_args`) as keyword arguments: each
    value through `ast.literal_eval` (`True`, `0.9,0.99` → a tuple, `'text'`), never `eval`; a value that is no
    literal stays the text. OptionError names `option` for an item without `=`."""
    kw = {}
    for key, value in key_values(option, items).items():
        try:
            kw[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            kw[key] = value
    return kw


def optimizer_kwargs(args) -> dict:
    """`optimizer_args` as keyword arguments (see `literal_kwargs`)."""
    return literal_kwargs("optimizer_args", args.optimizer_args)


def optimizer_type(args) -> str:
    """The optimizer name sd-scripts resolves: `use_8bit_adam` → AdamW8bit, `use_lion_optimizer` → Lion, empty →
    AdamW; case kept (a dotted class path needs it). OptionError when both a switch and optimizer_type are set."""
    name = (args.optimizer_type or "").strip()
    if getattr(args, "use_8bit_adam", False):
        if getattr(args, "use_lion_optimizer", False) or name:
            raise OptionError("use_8bit_adam cannot be combined with use_lion_optimizer or optimizer_type; "
                              "use optimizer_type alone")
        return "AdamW8bit"
    if getattr(args, "use_lion_optimizer", False):
        if name:
            raise OptionError("use_lion_optimizer cannot be combined with optimizer_type; use optimizer_type alone")
        return "Lion"
    return name or "AdamW"


def is_schedule_free(args) -> bool:
    """sd-scripts' `is_schedulefree_optimizer`: the optimizer name ends with "schedulefree"."""
    return optimizer_type(args).lower().endswith("schedulefree")


def _import(module: str, option_value: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        pkg = _PACKAGES.get(top)
        hint = f" (pip install {pkg} into the trainer's Python)" if pkg else ""
        raise OptionError(f"optimizer_type {option_value} needs the {pkg or top} package, which cannot be "
                          f"imported: {e}{hint}") from None


def optimizer_class(args):
    """(class, extra keyword arguments sd-scripts adds outside `optimizer_args`) for the resolved optimizer
    type, without building it. OptionError when the class cannot be found or imported."""
    import torch

    name = optimizer_type(args)
    low = name.lower()
    if low == "lion":
        return getattr(_import("lion_pytorch", name), "Lion"), {}
    if low in _BNB:
        mod = _import("bitsandbytes.optim", name)
        cls = getattr(mod, _BNB[low], None)
        if cls is None:
            raise OptionError(f"optimizer_type {name}: this bitsandbytes has no {_BNB[low]}; upgrade bitsandbytes")
        return cls, ({"nesterov": True} if low == "sgdnesterov8bit" else {})
    if low == "sgdnesterov":
        return torch.optim.SGD, {"nesterov": True}
    if low.startswith("dadapt"):
        if low not in _DADAPT:
            raise OptionError(f"optimizer_type {name}: unknown D-Adaptation optimizer (DAdaptation, "
                              f"DAdaptAdamPreprint, DAdaptAdaGrad, DAdaptAdam, DAdaptAdan, DAdaptAdanIP, "
                              f"DAdaptLion, DAdaptSGD)")
        path = _DADAPT[low]
        mod = _import("dadaptation." + path.rpartition(".")[0] if "." in path else "dadaptation", name)
        return getattr(mod, path.rpartition(".")[2]), {}
    if low == "prodigy":
        return _import("prodigyopt", name).Prodigy, {}
    if low == "adafactor":
        from transformers.optimization import Adafactor
        return Adafactor, {}
    if low == "adamw":
        return torch.optim.AdamW, {}
    if low in _SCHEDULE_FREE:
        return getattr(_import("schedulefree", name), _SCHEDULE_FREE[low]), {}
    # any other optimizer: a torch.optim class, or a dotted path module.Class (case as written)
    if "." in name:
        mod_name, _, attr = name.rpartition(".")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:
            raise OptionError(f"optimizer_type {name}: cannot import {mod_name} ({e})") from None
    else:
        mod, attr = torch.optim, name
    cls = getattr(mod, attr, None)
    if not isinstance(cls, type):
        raise OptionError(f"optimizer_type {name}: not a known optimizer (AdamW, AdamW8bit, Lion, Lion8bit, "
                          f"SGDNesterov, SGDNesterov8bit, PagedAdamW, PagedAdamW8bit, PagedAdamW32bit, "
                          f"PagedLion8bit, DAdaptation..., Prodigy, Adafactor, AdamWScheduleFree, SGDScheduleFree, "
                          f"RAdamScheduleFree, a torch.optim class or a dotted path module.Class)")
    return cls, {}


def make_optimizer(args, groups) -> tuple[object, str, bool]:
    """The optimizer over `groups` (torch param-group dicts, each with "lr") as sd-scripts' `get_optimizer`
    builds it. Returns (optimizer, its `ss_optimizer` name, whether it is Adafactor with relative_step).

    Adafactor (sd-scripts' defaults): `relative_step` True unless given; `warmup_init=True` forces it on; with
    it, `learning_rate` becomes the AdafactorSchedule's initial lr, the groups' own lrs are dropped and
    `args.lr_scheduler` becomes "adafactor:<lr>" (so `make_scheduler` picks AdafactorSchedule), as sd-scripts
    rewrites them. SGDNesterov(8bit): momentum 0.9 unless given, nesterov=True. A schedule-free optimizer is
    put in train mode. OptionError for a missing package or arguments the class rejects."""
    name = optimizer_type(args)
    low = name.lower()
    kw = optimizer_kwargs(args)
    cls, extra = optimizer_class(args)
    lr = float(args.learning_rate) if args.learning_rate is not None else None
    relative = False
    if low in ("sgdnesterov", "sgdnesterov8bit"):
        kw.setdefault("momentum", 0.9)
    if low == "adafactor":
        kw.setdefault("relative_step", True)
        if not kw["relative_step"] and kw.get("warmup_init", False):
            kw["relative_step"] = True  # sd-scripts: warmup_init needs relative_step
        relative = bool(kw["relative_step"])
        if relative:
            for g in groups:
                g.pop("lr", None)
            args.lr_scheduler = f"adafactor:{lr}"
            lr = None
    try:
        opt = cls(groups, lr=lr, **extra, **kw)
    except (TypeError, ValueError, RuntimeError, AssertionError) as e:
        shown = " ".join(args.optimizer_args or []) or "(none)"
        raise OptionError(f"optimizer_args {shown}: optimizer_type {name} ({cls.__module__}.{cls.__name__}) "
                          f"refuses them: {e}") from None
    if hasattr(opt, "train") and callable(opt.train):
        opt.train()  # schedule-free optimizers start in train mode (sd-scripts)
    return opt, optimizer_name(cls, kw), relative


def optimizer_name(cls, kw) -> str:
    """`module.Class(key=value,...)`, the `ss_optimizer` metadata value (sd-scripts: the `optimizer_args` as
    used, without the keywords it adds on its own such as nesterov)."""
    s = f"{cls.__module__}.{cls.__name__}"
    if kw:
        s += "(" + ",".join(f"{k}={v}" for k, v in kw.items()) + ")"
    return s


def train_eval_fns(optimizer, args):
    """(train, eval) callables of a schedule-free optimizer (sd-scripts' `get_optimizer_train_eval_fn`): eval
    before sampling and saving, train after. No-ops for other optimizers."""
    if not is_schedule_free(args):
        return (lambda: None), (lambda: None)
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it
    return inner.train, inner.eval


class ConstantLogScheduler:
    """sd-scripts' dummy scheduler for schedule-free optimizers: `step()` does nothing, `get_last_lr()` reports
    the groups' lrs (for logging only)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def step(self) -> None:
        pass

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _steps(value, total: int):
    """A warm-up/decay step count: a float is a fraction of `total` (sd-scripts), an int as is, None stays."""
    if value is None:
        return None
    return int(value * total) if isinstance(value, float) else int(value)


def make_scheduler(args, optimizer, total_steps: int, adafactor_relative: bool = False):
    """The LR scheduler for `optimizer` over `total_steps` scheduler steps (max_train_steps × processes, as
    sd-scripts counts them), following sd-scripts' `get_scheduler_fix`: a schedule-free optimizer gets the
    logging-only `ConstantLogScheduler`; `lr_scheduler_type` builds that class (torch.optim.lr_scheduler or a
    dotted path) with `lr_scheduler_args`; "adafactor" gives transformers' AdafactorSchedule; otherwise
    transformers' scheduler of that name with lr_warmup_steps, lr_decay_steps, lr_scheduler_num_cycles,
    lr_scheduler_power, lr_scheduler_timescale, lr_scheduler_min_lr_ratio, as sd-scripts passes them.
    OptionError names the option that does not fit."""
    if is_schedule_free(args):
        return ConstantLogScheduler(optimizer)
    name = args.lr_scheduler or "constant"
    if adafactor_relative and not name.startswith("adafactor"):
        name = f"adafactor:{args.learning_rate}"
    T = int(total_steps)
    warmup = _steps(args.lr_warmup_steps, T)
    decay = _steps(getattr(args, "lr_decay_steps", 0), T)
    cycles = getattr(args, "lr_scheduler_num_cycles", 1)
    cycles = 1 if cycles is None else cycles
    power = getattr(args, "lr_scheduler_power", 1)
    power = 1.0 if power is None else float(power)
    timescale = getattr(args, "lr_scheduler_timescale", None)
    min_lr_ratio = getattr(args, "lr_scheduler_min_lr_ratio", None)
    kw = literal_kwargs("lr_scheduler_args", getattr(args, "lr_scheduler_args", None))

    def no_warmup(what: str) -> None:
        if warmup:
            raise OptionError(f"lr_warmup_steps must be 0 with {what} (it takes no warm-up)")

    def build(fn, what: str, **fixed):
        try:
            return fn(optimizer, **fixed, **kw)
        except (TypeError, ValueError, KeyError, AssertionError) as e:
            shown = " ".join(getattr(args, "lr_scheduler_args", None) or []) or "(none)"
            raise OptionError(f"{what} cannot be built with lr_scheduler_args {shown}: {e}") from None

    stype = (getattr(args, "lr_scheduler_type", None) or "").strip()
    if stype:
        import torch
        if "." in stype:
            mod_name, _, attr = stype.rpartition(".")
            try:
                mod = importlib.import_module(mod_name)
            except ImportError as e:
                raise OptionError(f"lr_scheduler_type {stype}: cannot import {mod_name} ({e})") from None
        else:
            mod, attr = torch.optim.lr_scheduler, stype
        cls = getattr(mod, attr, None)
        if not isinstance(cls, type):
            raise OptionError(f"lr_scheduler_type {stype}: no such scheduler class (a torch.optim.lr_scheduler "
                              f"class such as CosineAnnealingLR, or a dotted path module.Class)")
        no_warmup(f"lr_scheduler_type {stype}")
        return build(cls, f"lr_scheduler_type {stype}")

    if name.startswith("adafactor"):
        from transformers.optimization import Adafactor, AdafactorSchedule
        if type(getattr(optimizer, "optimizer", optimizer)) is not Adafactor:
            raise OptionError("lr_scheduler adafactor needs optimizer_type Adafactor (with relative_step)")
        _, _, initial = name.partition(":")
        if not initial:
            raise OptionError("lr_scheduler adafactor needs Adafactor with relative_step=True (its default); "
                              "with relative_step=False pick another lr_scheduler (constant_with_warmup)")
        no_warmup("the adafactor scheduler (Adafactor with relative_step)")
        return AdafactorSchedule(optimizer, float(initial))

    if name == "piecewise_constant":
        from diffusers.optimization import get_piecewise_constant_schedule
        if "step_rules" not in kw:
            raise OptionError("lr_scheduler piecewise_constant needs step_rules in lr_scheduler_args, e.g. "
                              "step_rules='1:10,0.1:20,0.01'")
        return build(get_piecewise_constant_schedule, "lr_scheduler piecewise_constant")

    from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION, SchedulerType
    try:
        st = SchedulerType(name)
    except ValueError:
        known = sorted([s.value for s in SchedulerType] + ["piecewise_constant", "adafactor"])
        raise OptionError(f"lr_scheduler {name!r} is not a known scheduler ({', '.join(known)}); or set "
                          f"lr_scheduler_type to a scheduler class") from None
    fn = TYPE_TO_SCHEDULER_FUNCTION[st]
    name = f"lr_scheduler {name}"
    if st == SchedulerType.CONSTANT:
        no_warmup("lr_scheduler constant (use constant_with_warmup)")
        return build(fn, name)
    warmup = warmup or 0
    if st == SchedulerType.CONSTANT_WITH_WARMUP:
        return build(fn, name, num_warmup_steps=warmup)
    if st == SchedulerType.INVERSE_SQRT:
        return build(fn, name, num_warmup_steps=warmup, timescale=timescale)
    if st == SchedulerType.COSINE_WITH_RESTARTS:
        return build(fn, name, num_warmup_steps=warmup, num_training_steps=T, num_cycles=cycles)
    if st == SchedulerType.POLYNOMIAL:
        return build(fn, name, num_warmup_steps=warmup, num_training_steps=T, power=power)
    if st == SchedulerType.COSINE_WITH_MIN_LR:
        if min_lr_ratio is None and "min_lr" not in kw and "min_lr_rate" not in kw:
            raise OptionError("lr_scheduler cosine_with_min_lr needs lr_scheduler_min_lr_ratio (e.g. 0.1: the "
                              "lowest lr as a fraction of learning_rate)")
        return build(fn, name, num_warmup_steps=warmup, num_training_steps=T, num_cycles=cycles / 2,
                     min_lr_rate=min_lr_ratio)
    if st in (SchedulerType.LINEAR, SchedulerType.COSINE):
        return build(fn, name, num_warmup_steps=warmup, num_training_steps=T)
    decay = decay or 0
    if st == SchedulerType.WARMUP_STABLE_DECAY:
        stable = T - warmup - decay
        if stable < 0:
            raise OptionError(f"lr_decay_steps: warm-up {warmup} + decay {decay} steps exceed the {T} training "
                              f"steps of warmup_stable_decay")
        return build(fn, name, num_warmup_steps=warmup, num_stable_steps=stable, num_decay_steps=decay,
                     num_cycles=cycles / 2, min_lr_ratio=min_lr_ratio if min_lr_ratio is not None else 0.0)
    return build(fn, name, num_warmup_steps=warmup, num_training_steps=T, num_decay_steps=decay)
