"""Where training starts: `initial_epoch` / `initial_step` / `skip_until_initial_step`, as sd-scripts'
`train_network.py` reads them.

initial_step (or (initial_epoch − 1) × steps per epoch, steps per epoch = ceil(batches / processes / grad-acc))
overrides the step of a resumed state and must stay below max_train_steps. Without skip_until_initial_step only
the epoch number moves (epoch_to_start = initial_step // ceil(batches / grad-acc)) and the step count starts at
0, so the run ends at the last epoch with fewer steps, as in sd-scripts. With it, that epoch starts after its
first (initial_step × grad-acc − epochs skipped × batches) batches, and the step count continues from
initial_step (sd-scripts leaves it at the in-epoch remainder, a counting slip we do not copy; the LR schedule
then continues at the right point, as after a resume).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .args import OptionError


@dataclass
class StartPoint:
    """The first epoch (0-based), the step count at the start, and the batches to skip in the first epoch."""
    epoch: int
    global_step: int
    skip_batches: int


def start_point(args, batches_per_epoch: int, processes: int, max_train_steps: int) -> StartPoint | None:
    """The start for initial_epoch/initial_step, or None when neither is set. `batches_per_epoch` is this
    process's batches per epoch. Raises OptionError when the start is not below max_train_steps."""
    if args.initial_epoch is None and args.initial_step is None:
        return None
    G = int(args.gradient_accumulation_steps)
    if args.initial_step is not None:
        initial = int(args.initial_step)
    else:
        initial = (int(args.initial_epoch) - 1) * math.ceil(batches_per_epoch / processes / G)
    if initial <= 0:
        return None
    if max_train_steps <= initial:
        raise OptionError(f"initial_step {initial} must be below max_train_steps {max_train_steps} "
                          f"(initial_epoch counts whole epochs of steps)")
    per_epoch = math.ceil(batches_per_epoch / G)
    if not args.skip_until_initial_step:
        return StartPoint(initial // per_epoch, 0, 0)
    micro = initial * G
    epoch = micro // per_epoch
    return StartPoint(epoch, initial, max(0, micro - epoch * batches_per_epoch))
