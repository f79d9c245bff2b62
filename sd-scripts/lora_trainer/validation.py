"""Validation loss as sd-scripts' `train_network.py` computes it (`validation_split`, `validation_seed`,
`validate_every_n_steps`, `validate_every_n_epochs`, `max_validation_steps`).

Split (`train_util.split_train_val`, per non-reg folder): the folder's images shuffled with
`random.Random(validation_seed)`, training keeps the first ceil(n·(1 − split)), validation the last round(n·split)
(sd-scripts' two roundings, kept: they can share an image). Validation: network in eval mode, no gradients, the
torch and Python random states swapped for ones seeded with validation_seed (else seed) and restored after; the
first `max_validation_steps` validation batches, each at the 4 fixed timesteps linspace(min, max, 6)[1:-1]
(200, 400, 600, 800 by default); the mean is logged as `loss/validation/step_average` (every
validate_every_n_steps steps) or `loss/validation/epoch_average` (each epoch, or every validate_every_n_epochs),
with `..._divergence` = validation mean − training average, and printed as a `validation loss` line.
"""
from __future__ import annotations

import math
import random

NUM_TIMESTEPS = 4


def split_items(items: list, split: float, seed: int) -> tuple[list, list]:
    """(training items, validation items) of one folder's images by sd-scripts' `split_train_val` arithmetic."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    n = len(shuffled)
    return shuffled[:math.ceil(n * (1 - split))], shuffled[n - round(n * split):]


def timesteps(args) -> list[int]:
    """The fixed validation timesteps: linspace(min_timestep or 0, max_timestep or 1000, 6) without its ends,
    as integers (numpy's `dtype=int` truncation)."""
    lo = int(args.min_timestep or 0)
    hi = int(args.max_timestep if args.max_timestep is not None else 1000)
    step = (hi - lo) / (NUM_TIMESTEPS + 1)  # numpy.linspace's step, then start + i·step
    return [int(lo + i * step) for i in range(1, NUM_TIMESTEPS + 1)]


def _log(trainlog, values: dict, step: int) -> None:
    trackers = getattr(trainlog, "trackers", None)
    if trackers is None:
        trackers = [trainlog.tracker] if getattr(trainlog, "tracker", None) is not None else []
    for t in trackers:
        t.log(values, step=step)


def validate(trainer, kind: str, x: int, epoch: int, train_avr: float) -> float | None:
    """Run one validation ("step" or "epoch": `x` is the global step or the 1-based epoch for the log) and return
    its mean loss; None when there is no validation set."""
    import torch

    val = getattr(trainer.dataset, "validation", None)
    if val is None or len(val) == 0:
        return None
    args = trainer.args
    seed = args.validation_seed if args.validation_seed is not None else args.seed
    batches = val.batches(0, seed)
    if args.max_validation_steps is not None:
        batches = batches[:int(args.max_validation_steps)]
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
    py = random.getstate()
    torch.manual_seed(seed)
    random.seed(seed)
    rng = random.Random(seed)
    net = trainer.network
    was_training = net.training
    net.eval()
    opt_eval = getattr(trainer.optimizer, "eval", None)
    if callable(opt_eval):  # schedule-free optimizers evaluate at their averaged weights
        opt_eval()
    saved = (args.min_timestep, args.max_timestep)
    losses = []
    try:
        with torch.no_grad():
            for batch in batches:
                for t in timesteps(args):
                    args.min_timestep = args.max_timestep = t
                    losses.append(float(trainer._step(batch, epoch, rng).detach().float().item()))
    finally:
        args.min_timestep, args.max_timestep = saved
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)
        random.setstate(py)
        if was_training:
            net.train()
        opt_train = getattr(trainer.optimizer, "train", None)
        if callable(opt_eval) and callable(opt_train):
            opt_train()
    mean = sum(losses) / len(losses)
    from .console import out
    out(f"validation loss ({kind} {x}): {mean:.6f} over {len(batches)} batches x {NUM_TIMESTEPS} timesteps")
    _log(trainer.trainlog, {f"loss/validation/{kind}_average": mean,
                            f"loss/validation/{kind}_divergence": mean - train_avr}, x)
    return mean
