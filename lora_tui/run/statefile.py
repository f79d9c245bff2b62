"""Small JSON state files shared by several processes (the app, the supervisor, ``lora-tui stop``).

Writes go to a temp file in the same folder and are renamed over the target, so a reader never sees half a
file. Read-modify-write updates hold an ``flock`` on a sibling ``.lock`` file, so the supervisor recording an
exit code and the app recording a stop signal cannot overwrite each other. Standard library and
``lora_tui.config.atomic`` only (the config package's ``__init__`` is lazy, so this loads no pydantic): the
supervisor imports this at trainer start.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from lora_tui.config.atomic import atomic_write_text


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as pretty JSON to ``path`` with the app's one atomic writer (temp file, fsync, rename:
    :func:`lora_tui.config.atomic.atomic_write_text`); a new state file is private (0600)."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", new_file_mode=0o600)


def read_json(path: Path, default: Any = None) -> Any:
    """Read JSON from ``path``; ``default`` when the file is missing. Raises ``ValueError`` on broken JSON."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default


def _open_lock(path: Path) -> int:
    lock_path = Path(str(path) + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` for the duration of the block."""
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def try_locked(path: Path) -> Iterator[bool]:
    """Like ``locked`` but never waits: yields False when another process holds the lock."""
    fd = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def update_json(path: Path, change: Callable[[dict], dict | None]) -> dict:
    """Locked read-modify-write: ``change(data)`` edits the dict in place (or returns a new one); returns it."""
    with locked(path):
        data = read_json(path, default={}) or {}
        result = change(data)
        if result is not None:
            data = result
        write_json_atomic(path, data)
        return data
