"""Atomic file writes: a temp file in the target's directory, fsync, then rename over the target."""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from pathlib import Path

# Files get the mode any program's new file gets (0666 minus the umask, which the kernel applies to os.open);
# tempfile.mkstemp would make every config, TOML and JSON we write private (0600).
_NEW_FILE_MODE = 0o666
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


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


def _open_temp(target: Path, mode: int = _NEW_FILE_MODE) -> tuple[int, Path]:
    clean_stale_temps(target.parent)
    while True:
        tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, _FLAGS, mode), tmp
        except FileExistsError:
            continue


def atomic_write_text(path: str | os.PathLike[str], text: str, *, exclusive: bool = False,
                      new_file_mode: int = _NEW_FILE_MODE) -> Path:
    """Write ``text`` (UTF-8) to ``path`` so readers see the old file or the whole new one, never half of it.

    Creates missing parent directories. A new file gets mode ``new_file_mode & ~umask`` (default 0666, like any
    file the user creates; the job state files pass 0600); replacing an existing file keeps that file's mode (a config the user made private stays private).
    With ``exclusive=True`` raises FileExistsError instead of replacing an existing file (the link is atomic, so
    two writers racing for one name cannot both win).
    Raises OSError on I/O failure (the temp file is removed).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(target, new_file_mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            if not exclusive:
                try:
                    old_mode = stat.S_IMODE(os.stat(target).st_mode)
                except FileNotFoundError:
                    pass
                else:
                    if hasattr(os, "fchmod"):
                        os.fchmod(fh.fileno(), old_mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            try:
                os.link(tmp, target)  # fails with FileExistsError when the name is taken
            except FileExistsError:
                raise
            except OSError:  # no hard links on this file system: check, then rename
                if target.exists():
                    raise FileExistsError(str(target)) from None
                os.replace(tmp, target)
            else:
                os.unlink(tmp)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FileExistsError) and exc.filename is None \
                and exc.errno is not None:
            # a full disk's "[Errno 28] No space left on device" from write/fsync names no file: name the target
            raise type(exc)(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    return target
