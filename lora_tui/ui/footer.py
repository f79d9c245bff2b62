"""`KeyFooter`: Textual's `Footer` that never cuts a key silently.

Why: Textual 8.2.8's `Footer` lays its keys out in one row and lets the ones that do not fit run off the right
edge (it is a scroll container with no scrollbar), so at 80 columns "f4 Run" became "f4 Ru" and the keys after it
were gone without a trace. Here the keys that do not fit are hidden whole, the least used first, and a "…" marks
that more exist (ctrl+p → "Keys" lists them all). Under 120 columns (the app's `-narrow` screen class) the footer
is also compact (one space between key and description), so the run keys fit at 80 columns.
"""
from __future__ import annotations

import asyncio

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer, Label

# Actions whose keys stay visible longest (design.md "Keys": run control, views, quit); the others are hidden
# first, from the end of the row, when the width runs out.
# Help (F1) and the load notes (ctrl+n) stay too: a new user at 80 columns never found them behind the "…".
KEEP_ACTIONS = frozenset({"start", "stop", "view('minimal')", "view('advanced')", "view('run')", "quit",
                          "field_help", "show_notes"})
# Under 120 columns (compact) these keys say less, so the kept keys fit in 80 columns (Stop included while a job
# runs); ctrl+p → "Keys" has the long words.
SHORT_DESCRIPTIONS = {"view('minimal')": "Min", "view('advanced')": "Adv"}


class KeyFooter(Footer):
    """A `Footer` that hides whole keys (least used first) when they do not fit, and then ends with "…"
    (`.footer-more`). Compact under the screen class `-narrow`. Same constructor as `textual.widgets.Footer`."""

    DEFAULT_CSS = """
    KeyFooter .footer-more {
        width: auto;
        height: 1;
        margin: 0 1 0 0;
        color: $footer-description-foreground;
        background: $footer-description-background;
    }
    """

    def compose(self) -> ComposeResult:
        yield from super().compose()
        # A class, not an id: Footer's own recompose (on a bindings change) can overlap the first compose while the
        # footer mounts inside a new screen, and two "…" labels with one id end the app (DuplicateIds). `_fit`
        # keeps the last one.
        more = Label("…", classes="footer-more")
        more.tooltip = "More keys: ctrl+p, then Keys, lists them all"
        more.display = False
        yield more

    _recomposing: asyncio.Lock | None = None

    async def recompose(self) -> None:
        # Footer recomposes on every change of the active bindings (focus moves, a job starts or ends). Two can be
        # queued in one refresh (Footer's `call_after_refresh(self.recompose)` per change): one at a time, or both
        # remove the old keys first and then both mount theirs, `#footer-more` twice (DuplicateIds; seen under
        # load in test_rough_edges' dialog test). See also `compose`.
        if self._recomposing is None:
            self._recomposing = asyncio.Lock()
        async with self._recomposing:
            await super().recompose()
        self._fit()
        self.call_after_refresh(self._fit)

    def on_resize(self) -> None:
        narrow = self.screen.has_class("-narrow")
        if self.compact != narrow:
            self.compact = narrow  # the keys re-render; their widths change
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        if not self.is_attached or self.size.width <= 0:
            return
        mores = list(self.query_children(".footer-more"))
        more = mores[-1] if mores else None
        for extra in mores[:-1]:
            extra.display = False
        # Footer's key widget (FooterKey) is not public: a key is a child with the binding's `action`.
        all_keys = [child for child in self.children if isinstance(getattr(child, "action", None), str)]
        keys = [k for k in all_keys if not k.has_class("-command-palette")]
        if more is None or not keys:
            return
        for key in keys:
            short = SHORT_DESCRIPTIONS.get(key.action)
            if short is not None:
                long = getattr(key, "_long_description", None) or key.description
                key._long_description = long
                wanted = short if self.compact else long
                if key.description != wanted:
                    key.description = wanted
                    key.refresh(layout=True)
        palette = [k for k in all_keys if k.has_class("-command-palette")]
        widths = {id(k): _cells(k) for k in keys}
        room = self.size.width - sum(_cells(p) for p in palette)
        shown = {id(k) for k in keys}
        if sum(widths.values()) > room:
            room -= _cells(more)
            drop_order = ([k for k in reversed(keys) if k.action not in KEEP_ACTIONS]
                          + [k for k in reversed(keys) if k.action in KEEP_ACTIONS])
            for key in drop_order:
                if sum(widths[i] for i in shown) <= room:
                    break
                shown.discard(id(key))
        for key in keys:
            key.display = id(key) in shown
        more.display = len(shown) < len(keys)


def _cells(widget: Widget) -> int:
    """Cells `widget` takes in the footer row: its rendered text, padding, border and margin."""
    styles = widget.styles
    content = widget.get_content_width(widget.app.size, widget.app.size)
    return content + styles.gutter.width + styles.margin.width
