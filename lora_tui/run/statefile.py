"""Small JSON state files shared by several processes (the app, the supervisor, ``lora-tui stop``).

Writes go to a temp file in the same folder and are renamed over the target, so a reader never sees half a
file. Read-modify-write updates hold an ``flock`` on a sibling ``.lock`` file, so the supervisor recording an
exit code and the app recording a stop signal cannot overwrite each other. Standard library only: the
supervisor imports this at trainer start.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Iterator


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as pretty JSON to ``path`` through a temp file + ``os.replace`` (fsync'd)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path.parent)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# The same as lora_tui.config.atomic's (this module may not import the config package: it loads pydantic,
# and the supervisor imports this one at trainer start).
#: Temp files of our atomic writes: ``.<target name>.<writer pid>[.<8 hex>].tmp`` (the config layer's writer, the
#: job state files and the trainer's LoRA files all name them so).
_TEMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)(?:\.[0-9a-f]{8})?\.tmp$")
STALE_TEMP_AGE_S = 10.0


def clean_stale_temps(folder: str | os.PathLike[str], min_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove the temp files of our naming in ``folder`` that a killed writer left (kill -9 during a save): its
    pid is not a live process and the file has not changed for ``min_age_s`` seconds. A temp file of a live
    writer, or of another program's naming, is never touched. Returns the files removed; never raises."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None:
            continue
        pid = int(m.group("pid"))
        try:
            if pid == os.getpid() or not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age_s:
                continue
            try:
                os.kill(pid, 0)
                continue  # its writer may still be at work
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # a live process of another user
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


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
