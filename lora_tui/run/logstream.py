"""Turn a trainer's raw output bytes into display lines.

Trainers write tqdm bars as ``\\r``-separated updates that can go on for hours without a ``\\n``, so the stream is
read in chunks and split here rather than with ``readline`` (which buffers a whole ``\\r`` run until its
``\\n``). A terminal shows only what follows the last ``\\r`` of a line, so that is what
we keep.
"""
from __future__ import annotations

import codecs
import re

# CSI sequences (colours, cursor moves such as tqdm's ``ESC[A``), OSC sequences (titles, links) and the
# two-byte escapes. Textual's Log prints these as literal text, so they must go before display.
_ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"          # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, terminated by BEL or ST
    r"|\x1b[@-Z\\-_]"                   # other two-byte escapes
)
# Remaining C0 controls (bell, backspace, ...) except tab; Log would draw them as replacement glyphs.
_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_ansi(text: str) -> str:
    """Remove ANSI escape sequences and stray control characters (tab kept) from ``text``."""
    return _CTRL_RE.sub("", _ANSI_RE.sub("", text))


def _terminal_view(segment: str) -> str:
    """What a terminal would show for one line holding carriage returns: the text after the last ``\\r``,
    ANSI stripped, without trailing blanks.

    Trailing ``\\r``s are ignored: ``"abc\\r"`` still shows ``abc`` until something overwrites it. Trailing
    blanks show as nothing on a terminal, but tqdm pads a status shorter than the one before with spaces (to blank
    its leftovers), and a pane that folds lines would put that padding on a row of its own: a blank line.
    """
    return strip_ansi(segment.rstrip("\r").rsplit("\r", 1)[-1]).rstrip()


class LineSplitter:
    """Incremental splitter: feed raw bytes, get completed display lines back.

    - UTF-8 is decoded incrementally (a character split across two chunks survives; bad bytes become U+FFFD).
    - ``\\r\\n`` counts as one newline, also when the two bytes arrive in different chunks.
    - A completed line keeps only the text after its last ``\\r``, trailing blanks removed; ANSI codes are stripped.
    - ``live`` is the current unfinished line as a terminal would show it (a tqdm bar between updates).
    - A line longer than ``max_line_chars`` without any ``\\r`` or ``\\n`` is cut into pieces of that size, so a
      runaway writer cannot grow memory without bound.
    """

    def __init__(self, max_line_chars: int = 65536, keep_overwritten: bool = False) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._max = max_line_chars
        self._keep = keep_overwritten
        # With keep_overwritten: every "\r" segment that a later one overwrote (each intermediate tqdm state),
        # oldest first, ANSI stripped; the caller empties it. A replayed log then yields the whole loss curve,
        # not only the state each bar line ended in.
        self.overwritten: list[str] = []

    def feed(self, data: bytes) -> list[str]:
        """Add raw bytes; return the lines completed by them (without newline, ANSI stripped), oldest first."""
        return self._push(self._decoder.decode(data))

    def close(self) -> list[str]:
        """End of stream: return the unfinished line (if it holds any text) as a last completed line."""
        lines = self._push(self._decoder.decode(b"", final=True))
        tail = _terminal_view(self._partial)
        self._partial = ""
        if tail:
            lines.append(tail)
        return lines

    @property
    def live(self) -> str:
        """The current unfinished line as shown on a terminal (ANSI stripped); ``""`` when there is none."""
        return _terminal_view(self._partial)

    def _push(self, text: str) -> list[str]:
        if not text:
            return []
        buf = self._partial + text
        parts = buf.split("\n")
        if self._keep:
            for p in parts:
                if "\r" in p:
                    self.overwritten.extend(strip_ansi(seg) for seg in p.rstrip("\r").split("\r")[:-1] if seg)
        self._partial = self._compact(parts.pop())
        lines = [_terminal_view(p) for p in parts]
        while len(self._partial) > self._max:
            lines.append(strip_ansi(self._partial[: self._max]))
            self._partial = self._partial[self._max:]
        return lines

    def _compact(self, partial: str) -> str:
        # Keep only the last visible segment plus a trailing "\r" (which may be the first half of "\r\n"):
        # hours of tqdm updates must not accumulate.
        if "\r" in partial:
            trailing = partial.endswith("\r")
            body = partial.rstrip("\r").rsplit("\r", 1)[-1]
            partial = body + ("\r" if trailing else "")
        return partial
