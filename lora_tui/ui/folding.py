"""`FoldedLabel`: plain text that wraps at spaces and path separators. Textual wraps only at whitespace, so a path
(which has none) was broken inside a file name ("my_character_lora_versio" / "n_two.safetensors")."""
from __future__ import annotations

import re
from typing import Any

from rich.cells import cell_len
from textual.content import Content
from textual.widgets import Label


def fold_at_separators(text: str, width: int) -> list[str]:
    """`text` folded into lines of at most `width` cells, breaking after a space or a path separator (`/`, `\\`)
    rather than inside a name: "/data/out/my_lora.safetensors" breaks as "/data/out/" + "my_lora.safetensors".
    A piece longer than a line is cut (nothing is lost). Line breaks in `text` are kept."""
    width = max(1, width)
    out: list[str] = []
    for para in text.split("\n"):
        line = ""
        for piece in re.findall(r"[^\s/\\]*(?:[/\\]|\s+|$)", para):
            if not piece:
                continue
            if line and cell_len((line + piece).rstrip()) > width:
                out.append(line.rstrip())
                line = ""
            line += piece.lstrip() if not line else piece
            while cell_len(line.rstrip()) > width:  # one name longer than the line
                out.append(line[:width])
                line = line[width:]
        out.append(line.rstrip())
    return out


class FoldedLabel(Label):
    """A plain-text label that wraps at spaces and path separators (`fold_at_separators`), not inside a file
    name as Textual's wrapping does when a path has no space to break at."""

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        super().__init__(text, markup=False, **kwargs)
        self.text = text

    def update(self, content: Any = "", *, layout: bool = True) -> None:
        """Show `content` (plain text)."""
        self.text = str(content)
        super().update(self.text, layout=layout)

    def render(self) -> Any:
        return Content("\n".join(fold_at_separators(self.text, self.content_region.width or 80)))

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(fold_at_separators(self.text, width))
