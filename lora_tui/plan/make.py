"""The whole plan of one config: ``make_plan(cfg, settings, scan=None)`` gives the step plan, the problems and the
scan in one object; the UI keeps the scan (made in a worker) and passes it back so that editing a field re-plans
without touching the disk.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lora_tui.config.shown import clip
from lora_tui.plan.dataset import DatasetScan, scan_dataset
from lora_tui.plan.problems import Problem
from lora_tui.plan.rules import INTERNAL_MARK, validate
from lora_tui.plan.steps import StepPlan, plan_steps

if TYPE_CHECKING:
    from lora_tui.config.app_settings import AppSettings
    from lora_tui.config.model import TrainingConfig


@dataclass
class Plan:
    """``steps``: the StepPlan; ``problems``: every Problem in display order; ``scan``: the DatasetScan used."""

    steps: StepPlan
    problems: list[Problem]
    scan: DatasetScan

    @property
    def errors(self) -> list[Problem]:
        """The problems that block Start."""
        return [p for p in self.problems if p.severity == "error"]


_last_scan: DatasetScan | None = None
_lock = threading.Lock()


def make_plan(cfg: TrainingConfig, settings: AppSettings, scan: DatasetScan | None = None) -> Plan:
    """Plan ``cfg`` for the trainer in ``settings.sd_scripts_dir``.

    ``scan``: a previous ``scan_dataset`` result; it is reused when it was made for the same data paths
    (``scan.matches(cfg)``), otherwise the data is scanned again. Without one, the last scan made here is reused
    while it matches and ``is_fresh()`` (no scanned folder changed, younger than 30 s), so re-planning after a
    field edit does not touch the disk. Never raises for bad config values.
    """
    global _last_scan
    if scan is None:
        with _lock:
            last = _last_scan
        if last is not None and last.matches(cfg) and last.is_fresh():
            scan = last
    if scan is None or not scan.matches(cfg):
        scan = scan_dataset(cfg)
        with _lock:
            _last_scan = scan
    failed: list[Problem] = []
    try:
        steps = plan_steps(cfg, scan)
    except Exception as exc:  # noqa: BLE001 - a bug in the step arithmetic must not hide the problems
        steps = StepPlan()
        failed.append(Problem("", "error", f"{INTERNAL_MARK} (the step count: {type(exc).__name__}: "
                                           f"{clip(str(exc), 200)}); report this, and check the values you "
                                           f"changed last"))
    problems = failed + validate(cfg, scan, settings, plan=steps)
    return Plan(steps, problems, scan)

