"""The two model-file hashes sd-scripts writes into LoRA metadata (`train_util.model_hash`,
`train_util.calculate_sha256`): what A1111-style tools look models up by.
"""
from __future__ import annotations

import hashlib


def legacy_hash(path) -> str:
    """SHA-256 of the 0x10000 bytes at offset 0x100000, first 8 hex digits (A1111's old model hash); a file
    shorter than 1 MiB hashes an empty read. "NOFILE" for a missing file, "IsADirectory" for a folder."""
    try:
        with open(path, "rb") as f:
            f.seek(0x100000)
            return hashlib.sha256(f.read(0x10000)).hexdigest()[:8]
    except FileNotFoundError:
        return "NOFILE"
    except (IsADirectoryError, PermissionError):
        return "IsADirectory"


def sha256_file(path) -> str:
    """SHA-256 (hex) of the whole file, read in 1 MiB blocks; "NOFILE" / "IsADirectory" as `legacy_hash`."""
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except FileNotFoundError:
        return "NOFILE"
    except (IsADirectoryError, PermissionError):
        return "IsADirectory"
