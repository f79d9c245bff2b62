"""The newest sample image the trainer wrote (`<output_dir>/sample/*.png`), shown in the Run view.

Rendering is textual-image's: Kitty graphics or Sixel where the terminal has them, half-blocks elsewhere (so it
works over SSH and in tmux). Left alone, textual-image picks its renderer at import by writing queries to the
terminal and reading the answers from stdin, which cannot work once Textual reads stdin, and done before the app
starts it costs ~0.5 s of start-up on a terminal that does not answer (benchmarks/app_start.py). So it is
imported at the first sample with stdout seen as no terminal (no query is made), the cell size taken from the
terminal's window-size ioctl, and the renderer chosen from the environment (`renderer_name`).
"""
from __future__ import annotations

import io
import os
import struct
import sys
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

SAMPLE_DIR = "sample"  # sd-scripts writes samples to <output_dir>/sample/
SAMPLE_EXTS = (".png", ".jpg", ".jpeg", ".webp")
RENDERERS = ("tgp", "sixel", "halfcell", "unicode")
_OFF = ("0", "no", "off", "false", "none")
_classes: dict[str, Any] | None = None


def renderer_name(env: dict[str, str] | None = None, is_tty: bool | None = None) -> str | None:
    """Which textual-image renderer suits this terminal: `LORA_TUI_IMAGES` (`tgp`, `sixel`, `halfcell`,
    `unicode`, or `0`/`off` = None, no images) wins; else `tgp` in Kitty (`KITTY_WINDOW_ID`, `TERM=xterm-kitty`),
    `sixel` in WezTerm, Konsole, foot, mlterm, contour and `TERM`s naming sixel, `halfcell` elsewhere (tmux and
    screen included: they pass neither protocol through by default), `unicode` when stdout is not a terminal."""
    env = os.environ if env is None else env
    forced = env.get("LORA_TUI_IMAGES", "").strip().lower()
    if forced in _OFF:
        return None
    if forced in RENDERERS:
        return forced
    if is_tty is None:
        out = sys.__stdout__
        is_tty = bool(out is not None and out.isatty())
    if not is_tty:
        return "unicode"
    term, program = env.get("TERM", "").lower(), env.get("TERM_PROGRAM", "").lower()
    if env.get("TMUX") or env.get("STY") or term.startswith(("screen", "tmux")):
        return "halfcell"
    if env.get("KITTY_WINDOW_ID") or term == "xterm-kitty":
        return "tgp"
    if (program in ("wezterm", "contour") or env.get("KONSOLE_VERSION") or "sixel" in term
            or term.startswith(("foot", "mlterm", "contour"))):
        return "sixel"
    return "halfcell"


def _cell_env() -> dict[str, str]:
    """`TEXTUAL_CELL_WIDTH`/`HEIGHT` (pixels per cell) from the terminal's TIOCGWINSZ, when it reports pixels."""
    try:
        import fcntl
        import termios

        raw = fcntl.ioctl(sys.__stdout__.fileno(), termios.TIOCGWINSZ, b"\0" * 8)  # type: ignore[union-attr]
        rows, cols, xpix, ypix = struct.unpack("HHHH", raw)
    except Exception:  # noqa: BLE001 - not a terminal, no such ioctl (Windows)
        return {}
    if rows and cols and xpix and ypix:
        return {"TEXTUAL_CELL_WIDTH": str(xpix // cols), "TEXTUAL_CELL_HEIGHT": str(ypix // rows)}
    return {}


def image_class(name: str | None = None) -> Any:
    """textual-image's widget class for renderer `name` (default `renderer_name()`), or None (images off, or
    textual-image missing or failing). Imported once, without terminal queries (see the module docstring)."""
    global _classes
    name = renderer_name() if name is None else name
    if name is None:
        return None
    if _classes is None:
        cells = {k: v for k, v in _cell_env().items() if k not in os.environ}
        real_stdout = sys.__stdout__
        try:
            os.environ.update(cells)
            sys.__stdout__ = io.StringIO()  # no TTY: textual-image sends no query and reads no answer
            from textual_image import widget as tiw

            _classes = {"tgp": tiw.TGPImage, "sixel": tiw.SixelImage, "halfcell": tiw.HalfcellImage,
                        "unicode": tiw.UnicodeImage}
        except Exception:  # noqa: BLE001 - not installed or broken: the pane names the file instead
            _classes = {}
        finally:
            sys.__stdout__ = real_stdout
            for key in cells:
                os.environ.pop(key, None)
    return _classes.get(name)


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
        cls = image_class()
        note = "" if cls is not None else " (images off: LORA_TUI_IMAGES)"
        # Content, not markup: a file name may hold "[x=" (MarkupError)
        caption.update(Content.assemble(("Sample", "bold"), f" {path.name}", (note, "dim")))
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
            caption.update(Content.assemble(("Sample", "bold"), f" {path.name}",
                                            (f" (not readable yet: {exc})", "dim")))
            self.path = None
            return
        if self.image is None:
            self.image = cls(picture, id="sample-image")
            self.mount(self.image)
        else:
            self.image.image = picture
