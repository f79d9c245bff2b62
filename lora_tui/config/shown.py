"""Values quoted in messages, cut to a readable size.

A config value can be anything a file holds: a megabyte of text, an integer of thousands of digits (``repr`` of
one past Python's 4,300-digit limit raises), lists nested hundreds deep (``repr`` recurses), lone UTF-16
surrogates (which no UTF-8 terminal can print). Every message that quotes a user's value goes through
:func:`shown`, so a bad value is named, never echoed in full and never a crash.
"""
from __future__ import annotations

import reprlib
from typing import Any

#: Characters of a value shown in a message before it is cut with "…".
LIMIT = 80

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxstring = _repr.maxother = LIMIT


def _int_text(value: int) -> str:
    """An int as text; one too long for ``str()`` (or for a message) as its size."""
    digits = int(value.bit_length() * 0.30103) + 1
    if digits > 40:
        return f"<{'-' if value < 0 else ''}integer of about {digits} digits>"
    return str(value)


def shown(value: Any, limit: int = LIMIT) -> str:
    """``repr(value)`` for a message: at most about ``limit`` characters (a longer one ends in "…" and says its
    length), nested containers three levels deep, a huge integer as its number of digits, surrogates escaped.
    Never raises."""
    try:
        if isinstance(value, bool) or value is None:
            return repr(value)
        if isinstance(value, int):
            return _int_text(value)
        if isinstance(value, str):
            text = repr(value)  # escapes lone surrogates and control characters
            if len(text) > limit:
                return f"{text[:limit - 1]}…' ({len(value)} characters)"
            return text
        if isinstance(value, (list, tuple, dict, set)):
            return clip(_repr.repr(value), limit)
        return clip(repr(value), limit)
    except Exception:  # noqa: BLE001 - a message must still be built
        return f"<{type(value).__name__}>"


def clip(text: str, limit: int = LIMIT) -> str:
    """``text`` cut to ``limit`` characters (ending in "…"), lone surrogates written as ``\\udXXX`` escapes."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit - 1] + "…"
