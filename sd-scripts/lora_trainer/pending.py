"""One training step waiting for its bookkeeping: the fast path reads each step's loss one step late.

Why: reading the loss (`loss.item()`) right after a step is launched makes the host wait for the GPU, and the GPU
then idles while the host does that step's bookkeeping (tqdm, TensorBoard, the progress line) and prepares the
next batch: ~5-6 ms a step on an H200 (docs/performance.md, levers). Instead `StepRecord.deferred` copies the
loss into pinned host memory without blocking and records a CUDA event behind the copy; the loop launches the
next step and only then calls `loss()` (which waits for that event alone) to finish the previous step's
bookkeeping. The copy is needed, not a reference: the next CUDA graph replay overwrites the graph's loss tensor.

The record also keeps what the bookkeeping reads that the next launch changes: the learning rates after the
step's own scheduler step. Which steps must be finished before the next launch (saves, sampling, weight-norm
scaling, epoch end, last step, a stop request) is `Trainer._loop`'s decision; `LORA_TUI_LOSS_LAG=0` finishes
every step at once (today's order, for A/B measurements). On the CPU the copy is synchronous and `loss()` never
waits, so CPU tests run the same lagged loop.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field


def loss_lag_enabled() -> bool:
    """Whether the fast path may finish a step's bookkeeping after launching the next step (default yes;
    environment `LORA_TUI_LOSS_LAG=0` turns it off)."""
    return os.environ.get("LORA_TUI_LOSS_LAG", "") != "0"


@dataclass
class LrSnapshot:
    """The optimizer's parameter groups' names and learning rates at one moment: what `TrainLog.step` reads
    from an optimizer (`param_groups`, each with "lr" and an optional "name")."""
    param_groups: list[dict] = field(default_factory=list)

    @classmethod
    def of(cls, optimizer) -> "LrSnapshot":
        # a float: Adafactor's own schedule leaves a 0-dim tensor in "lr" (and None before its first step)
        # "d": the step size D-Adaptation and Prodigy find (sd-scripts logs d*lr for them)
        return cls([{"name": g.get("name", "group"), "lr": None if g["lr"] is None else float(g["lr"]),
                     **({"d": float(g["d"])} if "d" in g else {})} for g in optimizer.param_groups])


@dataclass
class StepRecord:
    """A launched micro-batch: `epoch` (0-based) and `bi` (index in the epoch's batches), `sync` (whether it
    ended an optimizer step), `lr` (the scheduler's first last-lr after it, or None) and `lrs` (every group's),
    and its loss, either already a float (`done`) or a pending device→host copy (`deferred`)."""
    epoch: int
    bi: int
    sync: bool
    lr: float | None
    lrs: LrSnapshot
    _value: float | None = None
    _host: object = None   # 0-dim host tensor the loss is copied into
    _event: object = None  # CUDA event recorded after that copy (None on the CPU)

    @classmethod
    def done(cls, loss: float, **kw) -> "StepRecord":
        """A record whose loss was already read (the plain path)."""
        return cls(_value=float(loss), **kw)

    @classmethod
    def deferred(cls, loss, **kw) -> "StepRecord":
        """A record for `loss` (0-dim tensor on any device) that does not wait for it: on CUDA a non-blocking
        copy into pinned memory, queued behind the step, plus an event; on the CPU a plain copy."""
        import torch

        loss = loss.detach()
        if loss.is_cuda:
            host = torch.empty(loss.shape, dtype=loss.dtype, pin_memory=True)
            host.copy_(loss, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            return cls(_host=host, _event=event, **kw)
        return cls(_host=loss.clone(), **kw)

    def loss(self) -> float:
        """The step's loss as a float; waits (on CUDA) for the step and its copy to finish, nothing more."""
        if self._value is None:
            if self._event is not None:
                self._event.synchronize()
            self._value = float(self._host.item())
        return self._value
