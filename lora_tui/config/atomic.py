"""Atomic file writes: a temp file in the target's directory, fsync, then rename over the target."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_text(path: str | os.PathLike[str], text: str, *, exclusive: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` so readers see the old file or the whole new one, never half of it.

    Creates missing parent directories. With ``exclusive=True`` raises FileExistsError instead of replacing an
    existing file (the link is atomic, so two writers racing for one name cannot both win).
    Raises OSError on I/O failure (the temp file is removed).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
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
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target
