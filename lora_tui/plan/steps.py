"""The step count the trainer will run, counted as sd-scripts counts it (its datasets' repeats and reg
balancing, buckets, ``train_network.py``'s epoch/step arithmetic), not as kohya_ss' GUI estimates it (``train_model``: no
buckets, a flat ×2 for reg).

Precedence of the length of training: ``max_train_epochs`` (sd-scripts overrides the steps with it), then
``max_train_steps``, then our ``epoch`` field (the launch writes it as the epoch count), else the trainer's own
default of 1600 steps.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from lora_tui.config.model import normalise_resolution
from lora_tui.plan.buckets import BucketChooser, adjust_min_max
from lora_tui.plan.dataset import DatasetGroup, DatasetScan
from lora_tui.plan.wording import counted

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig

TRAINER_DEFAULT_STEPS = 1600

StepSource = Literal["max_train_epochs", "max_train_steps", "epoch", "trainer_default"]


@dataclass
class DatasetSteps:
    """One dataset's share: ``batch_size``, ``resolution`` (W, H), ``buckets`` {(w, h): samples per epoch},
    ``batches`` = Σ ceil(samples / batch_size)."""

    batch_size: int
    resolution: tuple[int, int]
    buckets: dict[tuple[int, int], int]
    batches: int


@dataclass
class StepPlan:
    """What the trainer will do, in its own numbers.

    ``images``: training image files; ``repeats_images``: Σ images × repeats of training subsets (sd-scripts'
    "num train images * repeats"); ``reg_images``: Σ images × repeats of regularisation subsets before balancing
    (sd-scripts' "num reg images"); ``reg_samples``: regularisation samples per epoch after balancing to
    ``repeats_images`` (sd-scripts' ``DreamBoothDataset``); ``batches_per_epoch``: Σ over datasets and buckets of ceil(samples / batch) (the
    dataloader length L); ``steps_per_epoch``: ceil(ceil(L / processes) / grad accumulation); ``epochs``: epochs
    the trainer runs; ``max_train_steps``: optimizer steps; ``lr_warmup_steps``: warm-up steps of the LR scheduler
    (a percentage is applied to max_train_steps × processes, as sd-scripts does); ``source``: which field set the
    length; ``summary``: one sentence for the user; ``notes``: further sentences (trainer default, ...).
    """

    images: int = 0
    repeats_images: int = 0
    reg_images: int = 0
    reg_samples: int = 0
    batches_per_epoch: int = 0
    steps_per_epoch: int = 0
    epochs: int = 0
    max_train_steps: int = 0
    lr_warmup_steps: int = 0
    num_processes: int = 1
    gradient_accumulation_steps: int = 1
    source: StepSource = "trainer_default"
    datasets: list[DatasetSteps] = field(default_factory=list)
    summary: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        """The numbers ``lora-tui print --json`` shows under ``steps``."""
        return {
            "images": self.images,
            "repeats_images": self.repeats_images,
            "reg_images": self.reg_images,
            "batches_per_epoch": self.batches_per_epoch,
            "epochs": self.epochs,
            "max_train_steps": self.max_train_steps,
            "lr_warmup_steps": self.lr_warmup_steps,
        }


def _int(v: Any, default: int) -> int:
    try:
        if v is None or v == "" or isinstance(v, bool):
            return default
        return int(v)
    except (TypeError, ValueError, OverflowError):
        return default


def _pos(v: Any) -> int | None:
    """A positive int, or None for unset/0/garbage (kohya's 0 means unset for these fields)."""
    n = _int(v, 0)
    return n if n > 0 else None


def parse_resolution(value: Any) -> tuple[int, int] | None:
    """``"1024,768"`` / ``"768"`` / 768 / [w, h] → (W, H), read as the config model reads ``max_resolution``
    (:func:`~lora_tui.config.model.normalise_resolution`); None when unset or unreadable."""
    if value is None:
        return None
    try:
        w, h = normalise_resolution(value).split(",")
    except (ValueError, OverflowError, TypeError):  # inf, NaN, garbage: validation reports the value
        return None
    return int(w), int(h)


def _ds_value(group: DatasetGroup, key: str, cfg: TrainingConfig, cfg_name: str | None = None) -> Any:
    v = group.toml.get(key)
    if v is not None:
        return v
    return getattr(cfg, cfg_name or key, None)


def dataset_steps(group: DatasetGroup, cfg: TrainingConfig) -> tuple[DatasetSteps, int, int, int, int]:
    """Buckets and batches of one dataset: (DatasetSteps, train images, train samples, reg samples raw,
    reg samples after balancing)."""
    batch = max(1, _int(_ds_value(group, "batch_size", cfg, "train_batch_size"), 1))
    reso = parse_resolution(_ds_value(group, "resolution", cfg, "max_resolution")) or (512, 512)
    enable = bool(_ds_value(group, "enable_bucket", cfg))
    step = max(1, _int(_ds_value(group, "bucket_reso_steps", cfg), 64))
    lo = _int(_ds_value(group, "min_bucket_reso", cfg), 256)
    hi = _int(_ds_value(group, "max_bucket_reso", cfg), 1024)
    lo, hi = adjust_min_max(lo, hi, step)
    chooser = BucketChooser(reso, enable, lo, hi, step, bool(_ds_value(group, "bucket_no_upscale", cfg)))

    # Occurrences per image size: train images with their repeats, reg images balanced below.
    sizes: Counter[tuple[int, int]] = Counter()
    n_images = n_train = n_reg_raw = 0
    reg: list[tuple[Any, int]] = []
    for sub in group.subsets:
        r = sub.repeats(cfg)
        if sub.is_reg:
            n_reg_raw += len(sub.images) * r
            if sub.images:
                reg.append((sub.listing, r))
            continue
        n_images += len(sub.images)
        n_train += len(sub.images) * r
        for wh, count in sub.listing.size_counts().items():
            sizes[wh] += count * r
    n_reg_used = 0
    if reg and n_train > 0:
        n_reg_used = _balance_reg(reg, n_train, sizes)

    buckets: Counter[tuple[int, int]] = Counter()
    for (w, h), count in sizes.items():
        try:
            b = chooser.bucket(w, h)
        except ValueError:
            b = reso
        buckets[b] += count
    batches = sum(math.ceil(c / batch) for c in buckets.values())
    return DatasetSteps(batch, reso, dict(sorted(buckets.items())), batches), n_images, n_train, n_reg_raw, n_reg_used


def _balance_reg(reg: list[tuple[Any, int]], target: int, sizes: Counter) -> int:
    """Adds reg occurrences to ``sizes`` the way sd-scripts balances them to ``target`` (``DreamBoothDataset``): each reg image with
    its subset's repeats, in order, until the total reaches the target (the rest unused); if all are used and it
    is still short, one more repeat per image, cycling. Returns the reg occurrences."""
    total = sum(len(listing.images) * r for listing, r in reg)
    if total < target:
        # Every reg image is used; then +1 per image, cycling in registration order.
        for listing, r in reg:
            for wh, count in listing.size_counts().items():
                sizes[wh] += count * r
        full, rest = divmod(target - total, sum(len(listing.images) for listing, _ in reg))
        for listing, _ in reg:
            if full:
                for wh, count in listing.size_counts().items():
                    sizes[wh] += count * full
            for im in listing.images[:rest]:
                sizes[(im.width, im.height)] += 1
            rest -= min(rest, len(listing.images))
        return target
    n = 0
    for listing, r in reg:
        for im in listing.images:
            sizes[(im.width, im.height)] += r
            n += r
            if n >= target:
                return n
    return n


def plan_steps(cfg: TrainingConfig, scan: DatasetScan, num_processes: int | None = None) -> StepPlan:
    """The step plan for ``cfg`` over ``scan``.

    ``num_processes``: accelerate processes (None → ``cfg.num_processes``, default 1). Never raises; with no
    images the counts are 0 and ``summary`` says so. Sources: sd-scripts ``train_util`` / ``train_network``
    (``train_network.py``): L = Σ buckets ceil(count / batch); with ``max_train_epochs`` E, steps = E × ceil(L / P / G);
    epochs = ceil(steps / ceil(ceil(L / P) / G)); warm-up ratio r → int(r × steps × P).
    """
    P = max(1, _int(num_processes if num_processes is not None else getattr(cfg, "num_processes", 1), 1))
    G = max(1, _int(getattr(cfg, "gradient_accumulation_steps", 1), 1))
    plan = StepPlan(num_processes=P, gradient_accumulation_steps=G)
    for group in scan.datasets:
        ds, n_img, n_train, n_reg_raw, n_reg_used = dataset_steps(group, cfg)
        plan.datasets.append(ds)
        plan.images += n_img
        plan.repeats_images += n_train
        plan.reg_images += n_reg_raw
        plan.reg_samples += n_reg_used
        plan.batches_per_epoch += ds.batches
    L = plan.batches_per_epoch
    per_epoch = math.ceil(math.ceil(L / P) / G) if L else 0
    plan.steps_per_epoch = per_epoch

    max_epochs = _pos(getattr(cfg, "max_train_epochs", None))
    max_steps = _pos(getattr(cfg, "max_train_steps", None))
    epoch = _pos(getattr(cfg, "epoch", None))
    if max_epochs is not None:
        plan.source = "max_train_epochs"
        plan.max_train_steps = max_epochs * math.ceil(L / P / G) if L else 0
    elif max_steps is not None:
        plan.source = "max_train_steps"
        plan.max_train_steps = max_steps
    elif epoch is not None:
        plan.source = "epoch"
        plan.max_train_steps = epoch * math.ceil(L / P / G) if L else 0
    else:
        plan.source = "trainer_default"
        plan.max_train_steps = TRAINER_DEFAULT_STEPS
        plan.notes.append(f"No epochs or steps are set, so the trainer's own default applies: "
                          f"{TRAINER_DEFAULT_STEPS} steps.")
    plan.epochs = -(-plan.max_train_steps // per_epoch) if per_epoch else 0  # integer ceil: no float overflow

    if max_steps is not None and max_epochs is not None:
        plan.notes.append(f"max_train_epochs {max_epochs} overrides max_train_steps {max_steps} (sd-scripts does "
                          f"this).")
    elif max_steps is not None and epoch is not None and per_epoch and epoch != plan.epochs:
        plan.notes.append(f"max_train_steps {max_steps} sets the length, so 'epoch' {epoch} is not used "
                          f"({counted(plan.epochs, 'epoch')} will run); clear max_train_steps to train by epochs.")
    if max_epochs is not None and epoch is not None and epoch != max_epochs:
        # A loaded kohya_ss file often sets Max train epochs; the Minimal form shows only Epochs.
        plan.notes.append(f"max_train_epochs {max_epochs} (Advanced form) sets the length, so Epochs {epoch} is not "
                          f"used; clear max_train_epochs to train by Epochs.")

    plan.lr_warmup_steps = warmup_steps(cfg, plan.max_train_steps, P)
    plan.summary = _summary(plan, scan, cfg)
    return plan


def warmup_steps(cfg: TrainingConfig, max_train_steps: int, num_processes: int = 1) -> int:
    """Scheduler warm-up steps: ``lr_warmup_steps`` when > 0, else ``lr_warmup`` percent as the ratio
    ``lr_warmup / 100`` turned into steps by sd-scripts as int(ratio × max_train_steps × processes) (``train_util.get_scheduler_fix``;
    kohya_ss' ``train_model`` passes the percentage). 0 for the ``constant`` scheduler, which takes none (the launch does not write it)."""
    if str(getattr(cfg, "lr_scheduler", "") or "") == "constant":
        return 0
    steps = getattr(cfg, "lr_warmup_steps", None)
    try:
        steps_f = float(steps) if steps not in (None, "") else 0.0
    except (TypeError, ValueError, OverflowError):
        steps_f = 0.0
    if not math.isfinite(steps_f):
        return 0  # validation reports the value
    if steps_f > 0:
        if steps_f < 1:  # a fraction typed into the steps field: sd-scripts takes floats as ratios
            try:
                return int(steps_f * max_train_steps * num_processes)
            except OverflowError:
                return 0  # a step count past any float: validation reports it
        return int(steps_f)
    try:
        pct = float(getattr(cfg, "lr_warmup", 0) or 0)
    except (TypeError, ValueError, OverflowError):
        pct = 0.0
    if pct > 0 and math.isfinite(pct):
        try:
            return int(pct / 100 * (max_train_steps * num_processes))
        except OverflowError:
            return 0  # a step count past any float: validation reports it
    return 0


def _summary(plan: StepPlan, scan: DatasetScan, cfg: TrainingConfig) -> str:
    if not plan.batches_per_epoch:
        if scan.mode == "none":
            return "No training images yet: pick an image folder (or a dataset config)."
        return "No training images found, so the trainer would not train."
    reps = sorted({s.repeats(cfg) for s in scan.subsets if not s.is_reg and s.images})
    if len(reps) == 1:
        head = f"{counted(plan.images, 'image')} × {counted(reps[0], 'repeat')} = {plan.repeats_images} per epoch"
    else:
        head = f"{counted(plan.images, 'image')} × {reps[0]}–{reps[-1]} repeats = {plan.repeats_images} per epoch"
    if plan.reg_samples:
        head += f" + {plan.reg_samples} reg"
    batches = counted(plan.batches_per_epoch, "batch", "batches")
    if plan.gradient_accumulation_steps > 1 or plan.num_processes > 1:
        parts = []
        if plan.num_processes > 1:
            parts.append(f"{plan.num_processes} processes")
        if plan.gradient_accumulation_steps > 1:
            parts.append(f"accumulating {plan.gradient_accumulation_steps}")
        batches += f" ({', '.join(parts)}: {plan.steps_per_epoch} steps each)"
    if plan.source in ("max_train_epochs", "epoch"):
        tail = f"{batches} × {counted(plan.epochs, 'epoch')} = {plan.max_train_steps} steps"
    else:
        origin = "trainer default" if plan.source == "trainer_default" else "max_train_steps"
        tail = f"{batches} per epoch; {plan.max_train_steps} steps ({origin}) ≈ {counted(plan.epochs, 'epoch')}"
    return f"{head} → {tail}"
