"""SIGINT/SIGTERM handling for a training run. Unlike sd-scripts (which dies and saves nothing), a signal only
sets a flag: the loop finishes the current optimizer step, saves `<output_name>-step<NNNNNNNN>` (sd-scripts'
step-save name: a stopped run is told apart from a finished `<output_name>`) and exits 130."""
from __future__ import annotations

import signal
import sys

from .console import is_main


class Interrupt:
    """SIGINT/SIGTERM → a flag the loop checks after each optimizer step."""

    def __init__(self):
        self.signum = None

    def install(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        if self.signum is None and is_main():
            print(f"\n{signal.Signals(signum).name} received: finishing the current step, then saving",
                  file=sys.stderr, flush=True)
        self.signum = signum
