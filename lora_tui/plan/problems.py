"""One validation finding, shared by the scan, the rules and the UI's validation panel."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """A finding about one field: ``field`` is a ``TrainingConfig`` field name (the UI focuses it),
    ``severity`` is ``"error"`` (Start refused) or ``"warning"``, ``message`` says what is wrong and the fix."""

    field: str
    severity: Severity
    message: str
