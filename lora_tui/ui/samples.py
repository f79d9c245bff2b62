"""The newest sample image the trainer wrote (`<output_dir>/sample/*.png`), shown in the Run view.

Rendering is textual-image's: Kitty graphics or Sixel where the terminal has them, half-blocks elsewhere (so it
works over SSH and in tmux). textual-image learns what the terminal can do by writing queries to it and reading
the answers from stdin, which only works before Textual owns the terminal: `prepare_image_support()` does that
once, from `run_app`, before the app starts. Without it (a test, or `LORA_TUI_IMAGES=0`), the pane imports
textual-image at the first sample only when stdout is not a terminal (no query is made then) and otherwise shows
the file name alone rather than let a query race Textual's input reader.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

SAMPLE_DIR = "sample"  # sd-scripts writes samples to <output_dir>/sample/
SAMPLE_EXTS = (".png", ".jpg", ".jpeg", ".webp")
_prepared: bool | None = None  # None: not tried; True: textual-image imported with terminal detection


def prepare_image_support() -> bool:
    """Import textual-image while this process still owns the terminal (call before `App.run`), so it detects
    Kitty/Sixel support and the cell size. `LORA_TUI_IMAGES=0` skips it (images then show as file names).
    Returns whether images can be drawn. Never raises (a terminal that answers oddly means no images)."""
    global _prepared
    if _prepared is not None:
        return _prepared
    if os.environ.get("LORA_TUI_IMAGES", "1").strip() in ("0", "no", "off", "false"):
        _prepared = False
        return False
    try:
        import textual_image.widget  # noqa: F401  (queries the terminal at import)
    except Exception:  # noqa: BLE001 - missing package, a terminal with no size, an unexpected answer
        _prepared = False
        return False
    _prepared = True
    return True


def _image_class() -> Any:
    """textual-image's best widget class for this terminal, or None when it cannot be used safely now."""
    if "textual_image.widget" in sys.modules or _prepared:
        from textual_image.widget import Image

        return Image
    if _prepared is False:
        return None
    out = sys.__stdout__
    if out is not None and out.isatty():
        return None  # importing now would query a terminal Textual is reading: see the module docstring
    try:
        from textual_image.widget import Image
    except Exception:  # noqa: BLE001
        return None
    return Image


def newest_sample(output_dir: str | os.PathLike | None) -> Path | None:
    """The most recently written image in `<output_dir>/sample/` (by mtime, then name), or None. Never raises."""
    if not output_dir:
        return None
    best: tuple[float, str] | None = None
    try:
        with os.scandir(Path(output_dir) / SAMPLE_DIR) as entries:
            for entry in entries:
                if entry.name.lower().endswith(SAMPLE_EXTS) and entry.is_file():
                    key = (entry.stat().st_mtime, entry.name)
                    if best is None or key > best:
                        best = key
    except (OSError, ValueError):
        return None
    return Path(output_dir) / SAMPLE_DIR / best[1] if best else None


class SamplePane(Vertical):
    """`#sample-caption` (the file name) over `#sample-image` (textual-image's widget, made at the first sample).
    The Run view hides the pane while there is no sample."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path: Path | None = None
        self.image: Any = None

    def compose(self) -> ComposeResult:
        yield Static("", id="sample-caption")

    def show(self, path: Path | None) -> None:
        """Show `path` (None: clear). A file that cannot be read is named with the reason, never raised."""
        if path == self.path:
            return
        self.path = path
        caption = self.query_one("#sample-caption", Static)
        if path is None:
            caption.update("")
            if self.image is not None:
                self.image.image = None
            return
        cls = _image_class()
        note = "" if cls is not None else " [dim](images off in this terminal)[/]"
        caption.update(f"[b]Sample[/b] {escape(path.name)}{note}")
        if cls is None:
            return
        try:
            # Decoded here, whole: a PNG the trainer is still writing fails now (and is retried at the next poll)
            # rather than inside a later render.
            from PIL import Image as PILImage

            with PILImage.open(path) as im:
                im.load()
                picture = im.convert("RGB")
        except Exception as exc:  # noqa: BLE001 - half-written or corrupt
            caption.update(f"[b]Sample[/b] {escape(path.name)} [dim](not readable yet: {escape(str(exc))})[/]")
            self.path = None
            return
        if self.image is None:
            self.image = cls(picture, id="sample-image")
            self.mount(self.image)
        else:
            self.image.image = picture
