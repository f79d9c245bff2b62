"""`OrderedInput`: Textual's `Input` with every key applied in the order it was typed.

Why: in Textual 8.2.8 a printable key is inserted by `Input._on_key` as soon as the Input reads it from its
queue, while a bound key (backspace, delete, arrows, home/end, and Tab, which the Screen binds) is not handled
there: the Key event bubbles through every ancestor's message queue up to the App, whose `_check_bindings` then
runs the action. Keys arriving in one burst (key names sent by `tmux send-keys`, a macro, a fast typist over a
slow link) therefore overtake each other: `end backspace backspace 3 2` on "5e-05" gave "5e-05" instead of
"5e-32", and in `tab 3 2` the digits went to the field being left (Textualize/textual#6605; the escape-sequence
parser reads the bytes correctly). The deeper the Input sits in the DOM (a field row in a form in a switcher),
the more hops a bound key takes and the likelier the reorder.

So the Input runs the non-priority bindings of the focus chain (its own first, then its ancestors', as
`App._check_bindings` would) inside `_on_key`, in queue order; and a key that reaches it after an earlier key
of the burst moved the focus away is handed on to the widget focused now. Priority bindings (F5, ctrl+s, ...)
are still run by the App before a key is forwarded to the focused widget.
"""
from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.strip import Strip
from textual.widgets import Input


class OrderedInput(Input):
    """An `Input` whose keys take effect in typing order, also when they arrive in one burst (see module doc).

    Same constructor, messages and bindings as `textual.widgets.Input`; CSS rules for `Input` apply to it. A
    placeholder wider than the box ends in "…" (Input cuts it bare: a user could not tell text is missing).
    """

    def _show_end(self) -> None:
        # A box narrower than its text shows the text's end while it is not being edited: of a path, the file or
        # folder name matters (Input alone shows the start, "/home/me/train..." and nothing of the name).
        if self.is_mounted and (not self.has_focus or self.cursor_position >= len(self.value)):
            self.scroll_to(x=self.max_scroll_x, animate=False, force=True, immediate=True)

    def on_mount(self) -> None:
        self.call_after_refresh(self._show_end)

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_end)

    def on_blur(self) -> None:
        self.call_after_refresh(self._show_end)

    def on_focus(self) -> None:
        self.call_after_refresh(self._show_end)  # the cursor starts at the end: show it there

    def watch_value(self) -> None:
        if not self.has_focus:  # a value set by the app (a load), not typed
            self.call_after_refresh(self._show_end)

    def render_line(self, y: int) -> Strip:
        full = self.placeholder
        width = self.scrollable_content_region.width
        if y != 0 or self.value or not full or cell_len(full) <= width or width < 2:
            return super().render_line(y)
        cut = Text(full)
        cut.truncate(width, overflow="ellipsis")
        # Input renders `self.placeholder`: swap the cut text in for this one line without a refresh or watcher.
        self.set_reactive(Input.placeholder, cut.plain)
        try:
            return super().render_line(y)
        finally:
            self.set_reactive(Input.placeholder, full)

    async def _on_key(self, event: events.Key) -> None:
        app = self.app
        if app.focused is not self:
            # The App forwarded this key while we still had the focus; a key before it (Tab, Escape, ...) has moved
            # the focus since: the key belongs to the widget focused now, as it would have when typed slowly.
            event.stop()
            event.prevent_default()
            target = app.focused or self.screen
            target._forward_event(events.Key(event.key, event.character))
            return
        await super()._on_key(event)
        if event.is_printable:
            return  # inserted (or refused) by Input itself
        # The bindings the App would find for this key from the focused widget (us) up, run here, in order.
        if await app._check_bindings(event.key):
            event.stop()
            event.prevent_default()
