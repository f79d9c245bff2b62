"""The plan layer: what Start would do, as pure functions of the config plus a scan of the file system.

``make_plan(cfg, settings, scan=None)`` (in :mod:`lora_tui.plan.make`) gives the step plan, the problems and the
scan in one object. The names below are loaded on first use (PEP 562), so importing one small module of this
package (``plan.wording``, ``plan.problems``) does not load the rules, the dataset scanner or pydantic.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lora_tui.plan.dataset import DatasetScan, scan_dataset
    from lora_tui.plan.make import Plan, make_plan
    from lora_tui.plan.problems import Problem
    from lora_tui.plan.rules import validate
    from lora_tui.plan.steps import StepPlan, plan_steps

_HOMES = {
    "DatasetScan": "dataset", "scan_dataset": "dataset", "Plan": "make", "make_plan": "make",
    "Problem": "problems", "validate": "rules", "StepPlan": "steps", "plan_steps": "steps",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """Load ``name`` from the module that defines it, on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
