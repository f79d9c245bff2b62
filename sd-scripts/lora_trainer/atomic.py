"""Atomic file writes: write to a temp file beside the target, then rename over it."""
from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path


# A process killed mid-save (kill -9, the OOM killer) leaves its temp file; the next save in that folder removes
# it (the app's writers name and clean theirs the same way).
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


@contextlib.contextmanager
def atomic_path(target: Path):
    """Yield a temp path in the target's folder; on success rename it to `target`, on error delete it, so a
    reader never sees a half-written file."""
    target = Path(target)
    clean_stale_temps(target.parent)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # some writers create 0600 files; give the usual permissions
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
