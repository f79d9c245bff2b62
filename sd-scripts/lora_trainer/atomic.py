"""Atomic file writes: write to a temp file beside the target, then rename over it."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: Path):
    """Yield a temp path in the target's folder; on success rename it to `target`, on error delete it, so a
    reader never sees a half-written file."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
