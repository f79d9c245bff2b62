"""The trainer's log and output lines: INFO/WARNING on stderr (sd-scripts logs through `logging` there), plain
lines on stdout (sd-scripts' `accelerator.print`), and the two machine-read stdout prefixes the app parses
(docs/architecture.md, "The trainer"). Only the main process writes, so a multi-process run logs each line once.
"""
from __future__ import annotations

import os
import sys

PROGRESS_PREFIX = "LORA_TUI_PROGRESS"
SAVED_PREFIX = "LORA_TUI_SAVED"


def is_main() -> bool:
    """True in the single process or in rank 0 of a multi-process launch (torchrun sets RANK)."""
    return os.environ.get("RANK", "0") in ("0", "")


def streams_merged() -> bool:
    """True when stdout and stderr are the same file (a job log, a terminal): the tqdm bar on stderr then
    leaves its line open, so our stdout lines must start on a fresh line to stay parseable."""
    try:
        a, b = os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def join_streams() -> None:
    """Under lora-tui (`LORA_TUI_ONE_LOG=1`: stdout and stderr end in one log) make stdout write where stderr
    does. `accelerate launch` pipes the script's stderr through a copying thread while stdout goes straight to
    the log, so lines of the two streams landed in the log out of order and glued mid-line; on one descriptor
    they keep their order, and `streams_merged()` is then true (each message is written once)."""
    if os.environ.get("LORA_TUI_ONE_LOG") != "1" or streams_merged():
        return
    try:
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # no real descriptors (an embedding host): keep the streams as they are


def log(msg: str) -> None:
    """Log line on stderr (sd-scripts logs through `logging` to stderr); main process only."""
    if is_main():
        print(f"INFO {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    """Warning line on stderr; main process only."""
    if is_main():
        print(f"WARNING {msg}", file=sys.stderr, flush=True)


def out(msg: str) -> None:
    """Line on stdout (sd-scripts' `accelerator.print`); main process only."""
    if is_main():
        print(msg, flush=True)
