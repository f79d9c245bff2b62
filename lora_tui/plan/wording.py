"""Counts in messages (`counted`, `agree`): the plan layer's name for :mod:`lora_tui.config.wording`, which lives in
the config layer so that the loader's notes ("1 setting not in the file took its default") use it too."""
from __future__ import annotations

from lora_tui.config.wording import agree, counted

__all__ = ["agree", "counted"]
