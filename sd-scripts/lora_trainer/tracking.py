"""TensorBoard logs in `logging_dir`, as sd-scripts writes them (spec sd_scripts_interface.md §1.3.8), through
accelerate's `TensorBoardTracker`.

Folder: `<logging_dir>/<log_prefix><YYYYmmddHHMMSS>/<log_tracker_name or "network_train">/` (sd-scripts' layout).
Scalars: `loss/current` and `loss/average` every optimizer step, `lr/<group>` per parameter group
(`lr/textencoder`, `lr/unet`), `loss/epoch` at each epoch's end (x = epoch). With `log_config`, the options
go in as hyperparameters. Main process only.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path


def logging_problems(args) -> list[str]:
    """Messages for logging options that cannot work here (checked before torch is imported): `logging_dir`
    without an installed TensorBoard writer (`tensorboard`, or `tensorboardX` as accelerate's fallback), and
    `log_with tensorboard` without `logging_dir`."""
    msgs = []
    if args.logging_dir and not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        msgs.append("logging_dir: TensorBoard logging needs the tensorboard package; install it into the "
                    "trainer's Python (pip install tensorboard) or remove logging_dir")
    if getattr(args, "log_with", None) == "tensorboard" and not args.logging_dir:
        msgs.append("log_with tensorboard needs logging_dir (the folder for the logs)")
    return msgs


class TrainLog:
    """Step and epoch scalars to TensorBoard; every method is a no-op when `logging_dir` is unset or on a
    process other than the main one."""

    def __init__(self, args, is_main: bool, config: dict | None = None):
        self.tracker = None
        if not args.logging_dir or not is_main:
            return
        from accelerate.tracking import TensorBoardTracker

        run_dir = Path(args.logging_dir) / ((args.log_prefix or "") + time.strftime("%Y%m%d%H%M%S"))
        self.tracker = TensorBoardTracker(args.log_tracker_name or "network_train", str(run_dir))
        self.tracker.start()
        self.dir = Path(self.tracker.logging_dir)
        if config is not None:
            self.tracker.store_init_configuration(config)

    def step(self, step: int, loss: float, avr: float, optimizer) -> None:
        """One optimizer step: current and running-average loss and each parameter group's learning rate."""
        if self.tracker is None:
            return
        values = {"loss/current": loss, "loss/average": avr}
        seen: dict[str, int] = {}
        for g in optimizer.param_groups:
            name = g.get("name", "group")
            seen[name] = seen.get(name, 0) + 1
            key = f"lr/{name}" if seen[name] == 1 else f"lr/{name}{seen[name]}"
            values[key] = float(g["lr"])
        self.tracker.log(values, step=step)

    def epoch(self, epoch: int, avr: float) -> None:
        """End of epoch `epoch` (1-based): the epoch's average loss."""
        if self.tracker is not None:
            self.tracker.log({"loss/epoch": avr}, step=epoch)

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.finish()
            self.tracker = None


def config_values(args) -> dict:
    """The options as TensorBoard hyperparameters (`log_config`): bool/int/float/str only, others as text."""
    out = {}
    for k, v in sorted(vars(args).items()):
        if v is None or isinstance(v, (bool, int, float, str)):
            out[k] = v if v is not None else "None"
        else:
            out[k] = str(v)
    return out
