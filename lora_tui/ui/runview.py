"""The Run view: progress bar and figures, a loss plot, the log pane with its live `\\r` line, and the failure tail.

The view only displays. A 12 Hz timer polls the run layer's `LogFollower` (which tails the job's log file, splits
`\r` progress and parses figures) and moves what accumulated onto the screen in one batch: one `Log.write_lines`
per tick (per-line writes start a thread each, notes/textual.md §2a). The log pane and the failure tail fold long
lines at their width (`WrapLog`): a traceback or a path is read whole in an 80-column terminal.
"""
from __future__ import annotations

import re
import time
from bisect import bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Iterable, Self

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.binding import Binding
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.widgets import Log, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from lora_tui.ui.samples import SamplePane, newest_sample

if TYPE_CHECKING:
    from lora_tui.run.follow import LogFollower
    from lora_tui.run.progress import ProgressState

LOG_MAX_LINES = 5000
FLUSH_HZ = 12
PLOT_MIN_INTERVAL_S = 2.0  # a plotext redraw costs milliseconds of CPU; a loss curve needs no more than this
# Log bytes read per 12 Hz tick. Reading, splitting and parsing them is most of a tick's work and runs on the
# event loop, so the budget adapts to keep a tick near TICK_BUDGET_S: a flood is shown in full, a little behind
# the writer, and keys are never held up long. Even the minimum (0.2 MB/s) is far above what a trainer writes.
MAX_READ_PER_TICK = 256 * 1024
MIN_READ_PER_TICK = 16 * 1024
START_READ_PER_TICK = 128 * 1024
TICK_BUDGET_S = 0.025
SAMPLE_POLL_S = 2.0  # a new sample takes the trainer seconds to minutes; a listing of its folder is cheap


class RunView(Vertical):
    """Progress `#progress`, figures `#run-stats`, status `#run-status`, loss plot, the newest sample image
    `#samples` (`#sample-caption`, `#sample-image`), log pane `#log`, live line `#live`, and the failure box
    `#failure` (hint + last lines) shown when a run ends badly.

    Bindings served, wherever the focus is on the Run view (it has no text inputs):

    | key | action |
    |---|---|
    | p | pause the queue, or resume it (`PauseRequested`; offered while the queue has items or is paused) |
    | tab | to the queue list; in the footer while Tab lands there (`#log` focused, queue not empty) |
    | delete, x, shift+up/K, shift+down/J | off the queue list: a notice to Tab to it first (see `QueueList`) |

    Item keys stay on the focused list, as in lazygit's panels: an item is removed or moved only where its
    highlight is the focus, never from the log pane.
    """

    BINDINGS = [Binding("p", "pause_queue", "Pause queue"),
                Binding("p", "resume_queue", "Resume queue"),
                Binding("tab", "focus_queue", "To queue list"),
                Binding("delete,x,shift+up,K,shift+down,J", "queue_key_hint", show=False)]

    class PauseRequested(Message):
        """The user asked to pause the queue, or to resume it when it is paused (p on the Run view)."""

    class Ended(Message):
        """The followed job has exited and its whole log has been shown."""

        def __init__(self, job: Any, exit_code: int | None, status: str | None) -> None:
            super().__init__()
            self.job = job
            self.exit_code = exit_code
            self.status = status

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.follower: LogFollower | None = None
        self.lines_shown = 0
        self._shown_version = -1
        self._plot_version = -1
        self._plot_at = 0.0
        self._plot: Any = None
        # The log pane follows the end until the user scrolls up. Log.write_lines only follows when the pane is
        # already at the end, and a relayout (plot, samples or failure box appearing) shrinks the pane, which
        # moves the end away from the unchanged scroll position: we remember where we last pinned it instead.
        self._log_following = True
        self._log_pinned_y = 0.0
        self._queue_rows: list[tuple[str, str]] = []
        self._queue_items: dict[str, Any] = {}
        self._queue_paused = False
        # The headline of the last run that ended badly while its failure box is shown (None otherwise): a queued
        # run starting right after it must not take the error off the screen before the user has read it.
        self._failure: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="run-head"):
            # A known total at 0 until a job is followed: an unknown total animates, as if something ran.
            yield ProgressBar(total=100, show_eta=False, id="progress")
            yield Static("", id="run-stats", markup=False)  # figures parsed from the trainer's output
        yield Static("No run yet. Fill the form and press F5 (Start).", id="run-status", markup=False)
        yield QueueList(id="queue")
        with Horizontal(id="run-mid"):
            yield Vertical(id="plot-box")
            yield SamplePane(id="samples")
            with Vertical(id="failure"):
                yield Static("", id="failure-hint")
                yield FailureTail(id="failure-tail", max_lines=200, highlight=False)
        yield RunLog(id="log", max_lines=LOG_MAX_LINES, highlight=False)
        yield Static("", id="live", markup=False)  # a tqdm line: "[00:05<00:30, ..., key=value]" is no markup

    def on_mount(self) -> None:
        self.query_one("#failure").display = False
        self.query_one("#run-mid").display = False
        self.query_one("#plot-box").display = False
        self.query_one("#queue").display = False
        self.query_one("#samples").display = False
        self.set_interval(1 / FLUSH_HZ, self.flush_feed, name="run-flush")
        self.set_interval(SAMPLE_POLL_S, self.poll_samples, name="run-samples")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pause_queue":
            return bool(self._queue_rows) and not self._queue_paused
        if action == "resume_queue":
            return self._queue_paused
        if action == "focus_queue":
            return self._tab_reaches_queue()
        if action == "queue_key_hint":
            return bool(self._queue_rows) and not self.query_one("#queue", QueueList).has_focus
        return True

    def _tab_reaches_queue(self) -> bool:
        queue = self.query_one("#queue", QueueList)
        focused = self.screen.focused
        if not self._queue_rows or not queue.display or focused is None or focused is queue:
            return False
        chain = self.screen.focus_chain
        return focused in chain and chain[(chain.index(focused) + 1) % len(chain)] is queue

    def action_pause_queue(self) -> None:
        self.post_message(self.PauseRequested())

    def action_resume_queue(self) -> None:
        self.post_message(self.PauseRequested())

    def action_focus_queue(self) -> None:
        self.query_one("#queue", QueueList).focus()

    def action_queue_key_hint(self) -> None:
        self.notify("Del/x, ⇧↑/⇧↓ and K/J act on the highlighted queue item: Tab to the queue list first.",
                    timeout=5)

    @property
    def progress(self) -> ProgressState | None:
        """The followed job's accumulated figures (None before a job is followed)."""
        return self.follower.progress if self.follower is not None else None

    def follow(self, job: Any, status: str) -> None:
        """Start over on `job`: its log so far, then live output until it ends (then `Ended` is posted)."""
        from lora_tui.run.follow import LogFollower

        if self.follower is not None:
            self.follower.close()
        self.follower = LogFollower(job, max_read=START_READ_PER_TICK, max_batch_lines=LOG_MAX_LINES)
        self.lines_shown = 0
        self._shown_version = -1
        self._plot_version = -1
        self.query_one("#log", Log).clear()
        self._log_following, self._log_pinned_y = True, 0.0
        self.query_one("#live", Static).update("")
        self.query_one("#run-mid").display = False
        self.query_one("#plot-box").display = False
        self._keep_earlier_failure()
        self.query_one("#samples").display = False
        self.query_one(SamplePane).show(None)
        self.query_one("#progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#run-stats", Static).update("")
        self.set_status(status)
        if self._plot is not None:
            self._plot.plt.clear_data()
            self._plot.refresh()
        self.flush_feed()

    def _keep_earlier_failure(self) -> None:
        # The next queue item starts as soon as one fails: its failure box (the error and the last lines) stays,
        # titled as the earlier run's, until the new run ends; Enter on its queue item shows it again after that.
        box = self.query_one("#failure")
        box.set_class(self._failure is not None, "-earlier")
        if self._failure is None:
            box.display = False
            return
        self.query_one("#run-mid").display = True
        box.display = True
        self.query_one("#failure-hint", Static).update(Content.assemble(
            ("Earlier run: ", "bold"), (self._failure, "bold"),
            "\nLast lines of its output (Enter on its queue item shows them again):"))

    def poll_samples(self) -> None:
        """Show the newest image in the followed job's `<output_dir>/sample/` (the pane stays hidden until the
        trainer has written one). A directory listing every SAMPLE_POLL_S: it works for any trainer that keeps
        sd-scripts' sample folder, ours or upstream."""
        follower = self.follower
        if follower is None:
            return
        meta = follower.job.state.get("meta") or {}
        path = newest_sample(meta.get("output_dir"))
        if path is None:
            return
        pane = self.query_one(SamplePane)
        pane.show(path)
        if pane.path is not None and not pane.display:
            self.query_one("#run-mid").display = True
            pane.display = True

    def set_status(self, text: str) -> None:
        """The one-line job status (`#run-status`), plain text: it carries paths and the trainer's messages."""
        self.query_one("#run-status", Static).update(text)

    def flush_feed(self) -> None:
        """Poll the follower once and move its output to the screen: one batched log write, the live line,
        figures, and (at most every PLOT_MIN_INTERVAL_S) the loss plot."""
        self.keep_log_end()
        follower = self.follower
        if follower is None or follower.ended:
            return
        before, started = follower.offset, time.perf_counter()
        batch = follower.poll()
        self._adapt_read_budget(follower, follower.offset - before, time.perf_counter() - started)
        lines = without_glued_records(batch.lines)
        if lines:
            self.query_one("#log", Log).write_lines(lines, scroll_end=False)
            self.lines_shown += len(lines)
            self.keep_log_end()
        if batch.live is not None:
            self.query_one("#live", Static).update(batch.live)
        prog = follower.progress
        if prog.version != self._shown_version:
            self._shown_version = prog.version
            bar = self.query_one("#progress", ProgressBar)
            if prog.total:
                bar.update(total=prog.total, progress=prog.step or 0)
            self.query_one("#run-stats", Static).update(prog.summary())
        if prog.version != self._plot_version and prog.loss_history \
                and (batch.ended or time.monotonic() - self._plot_at >= PLOT_MIN_INTERVAL_S):
            self._plot_version = prog.version
            self._plot_at = time.monotonic()
            self._draw_plot(prog)
        if batch.ended:
            self.poll_samples()  # the one written just before the exit
            self.post_message(self.Ended(follower.job, batch.exit_code, batch.status))

    def keep_log_end(self) -> None:
        """Scroll the log pane to its end unless the user has scrolled up since it was last there (End, or
        scrolling back down to the end, resumes following)."""
        log = self.query_one("#log", Log)
        if log.is_vertical_scroll_end:
            self._log_following, self._log_pinned_y = True, log.scroll_y
            return
        if log.scroll_y < self._log_pinned_y or log.is_vertical_scrollbar_grabbed:
            self._log_following = False  # the user moved up: leave the pane where they put it
        if self._log_following:
            log.scroll_end(animate=False, immediate=True, x_axis=False)
            self._log_pinned_y = log.scroll_y

    @staticmethod
    def _adapt_read_budget(follower: LogFollower, read: int, took: float) -> None:
        # Keep one tick's parsing near TICK_BUDGET_S whatever the machine's load: a slower tick reads less next
        # time (the view falls a little behind a flood), a fast one that used its whole budget reads more.
        if took > TICK_BUDGET_S:
            follower.max_read = max(MIN_READ_PER_TICK, follower.max_read // 2)
        elif read >= follower.max_read and took < TICK_BUDGET_S / 2:
            follower.max_read = min(MAX_READ_PER_TICK, follower.max_read * 2)

    def _draw_plot(self, prog: ProgressState) -> None:
        if self._plot is None:
            # plotext is imported on the first loss value, not at app start.
            from textual_plotext import PlotextPlot

            self._plot = PlotextPlot(id="loss-plot")
            self.query_one("#plot-box", Vertical).mount(self._plot)
        self.query_one("#run-mid").display = True
        self.query_one("#plot-box").display = True
        plt = self._plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("loss by step")
        steps, losses = [s for s, _ in prog.loss_history], [v for _, v in prog.loss_history]
        plt.plot(steps, losses, marker="braille")
        (x_lo, x_hi), ticks = step_axis(steps)
        plt.xlim(x_lo, x_hi)
        plt.xticks(ticks, [str(t) for t in ticks])
        plt.ylim(*loss_axis(losses))
        self._plot.refresh()

    def show_end(self, headline: str, bad: bool, tail: list[str] | None = None) -> None:
        """The run ended: show `headline`; when it ended badly, also the last lines of its output (`tail`, default:
        the followed job's)."""
        self.query_one("#live", Static).update("")
        self.set_status(headline)
        prog = self.progress
        if prog is None or not prog.total:
            self.query_one("#progress", ProgressBar).update(total=1, progress=0)  # stop the "unknown" animation
        if prog is not None:
            prog.eta_s = None  # the trainer's last ETA means nothing once it has ended
            self.query_one("#run-stats", Static).update(prog.summary())
        box = self.query_one("#failure")
        box.remove_class("-earlier")
        self._failure = headline if bad else None
        if bad:
            if tail is None:
                tail = list(prog.tail) if prog is not None else []
            self.query_one("#run-mid").display = True
            box.display = True
            self.query_one("#failure-hint", Static).update(
                Content.assemble((headline, "bold"), "\nLast lines of output:"))  # an exception's text: no markup
            tail_log = self.query_one("#failure-tail", Log)
            tail_log.clear()
            tail_log.write_lines(without_glued_records(tail) or ["(no output)"])
            # The box has just appeared and shrunk the layout: its end (the error) is scrolled to once it has a
            # size, or a short terminal would show the traceback's first lines and not the error.
            self.call_after_refresh(tail_log.scroll_end, animate=False, immediate=True, x_axis=False)
        else:
            box.display = False

    def show_earlier(self, job: Any, count: int) -> None:
        """At app start with no job to follow: the newest (ended) `job` of the state dir, as its run ended (outcome,
        figures, last log lines; a failure also in the failure box), and where the `count` jobs there are listed.
        Nothing is followed: the app's `job` stays None, so Stop and the title are unchanged."""
        from lora_tui.run.progress import exit_hint

        prog = job.progress()  # the last 256 KiB of its log: figures, exception and last lines
        prog.eta_s = None
        status, exit_code, stopped = job.status, job.exit_code, bool(job.stop_signals)
        code = "unknown" if exit_code is None else str(exit_code)
        saved = f" · saved {prog.saved[-1]}" if prog.saved else ""
        headline = (f"Last run: job {job.id} ended ({status}) · exit code {code} · "
                    f"{exit_hint(exit_code, prog.exception, stopped, launcher=getattr(job, 'under_launcher', False))}{saved}")
        bad = not stopped and status not in ("done", "stopped") and exit_code != 0  # as JobControl decides
        tail = list(prog.tail)
        self.show_end(headline, bad, tail)
        reopen = (f"`lora-tui jobs` lists all {count} jobs, `lora-tui attach ID` reopens one" if count > 1
                  else "`lora-tui attach` reopens it")
        self.set_status(f"{headline}\nF5 starts a new run · {reopen}")
        if prog.total:
            self.query_one("#progress", ProgressBar).update(total=prog.total, progress=prog.step or 0)
        self.query_one("#run-stats", Static).update(prog.summary())
        log = self.query_one("#log", Log)
        log.clear()
        log.write_lines(without_glued_records(tail) or ["(no output)"])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Enter on a queue item: what it is and how it went (an error's reason stays readable after its toast)."""
        if event.option_list.id != "queue":
            return
        event.stop()
        item = self._queue_items.get(event.option.id or "")
        if item is None:
            return
        from lora_tui.ui.dialogs import NotesDialog

        job = None
        if item.job_id and item.status not in ("pending", "running", "done"):
            from lora_tui.run.jobs import load_job

            try:
                job = load_job(item.job_id, getattr(self.app, "settings", None))
            except Exception:  # noqa: BLE001 - removed or unreadable: the item's own message still shows
                job = None
        self.app.push_screen(NotesDialog(f"Queue item “{item.label or item.id}” · {item.status}",
                                         queue_item_details(item, job)))

    def show_queue(self, items: list[Any], paused: bool = False) -> None:
        """The queue list: every item with its state or result (`#queue`; hidden while the queue is empty), its
        title saying when the queue is `paused`. Delete (or x) on an item removes it, shift+up/down (or K/J)
        moves it (`QueueList` keys); p anywhere on the Run view pauses or resumes the queue."""
        marks = {"pending": "…", "running": "▶", "done": "✔", "stopped": "■"}
        rows = []
        for item in items:
            mark = marks.get(item.status, "✖")
            # A stopped item's exit code is how the launcher passed the interrupt on (1 or 130), not a failure's.
            code = f", exit {item.exit_code}" if item.exit_code not in (None, 0) and item.status != "stopped" else ""
            rows.append((item.id, f"{mark} {item.label or item.id}{item.detail()} ({item.status}{code})"))
        self._queue_items = {item.id: item for item in items}
        box = self.query_one("#queue", QueueList)
        box.display = bool(rows)
        if bool(rows) != bool(self._queue_rows) or paused != self._queue_paused:
            self.refresh_bindings()  # p's footer entry (Pause / Resume) and the Tab hint
        self._queue_paused = paused
        if rows != self._queue_rows:
            self._queue_rows = rows
            box.set_items(rows)
        self._title_queue()

    def _title_queue(self) -> None:
        # The title names the keys that work where the focus is: off the list, how to reach the item keys (the
        # footer's Tab entry is among the first hidden at 80 columns).
        box = self.query_one("#queue", QueueList)
        pause = "PAUSED · p resumes" if self._queue_paused else "p pauses"
        items = ("Del/x removes · ⇧↑/⇧↓ or K/J moves" if box.has_focus
                 else "Tab to the list for Del/x, K/J")
        box.border_title = f"Queue · {len(self._queue_rows)} · {pause} · {items}" if self._queue_rows else ""

    def on_descendant_focus(self) -> None:
        self._title_queue()

    def on_descendant_blur(self) -> None:
        self._title_queue()


_GLUED_RECORD = re.compile(r"LORA_TUI_[A-Z_]+ \{[^{}]*\}")


def without_glued_records(lines: list[str]) -> list[str]:
    """`lines` without machine records glued inside a line: a `LORA_TUI_PROGRESS {...}` written on a bar's open line
    by a trainer whose stdout and stderr reach the log apart (a log from before our trainer joined them, another
    trainer) is never shown raw; a line that was only such a record is dropped. Lines that start with a record are
    the follower's to parse and never reach here."""
    out = []
    for line in lines:
        if "LORA_TUI_" in line:
            line = _GLUED_RECORD.sub("", line)
            if not line.strip():
                continue
        out.append(line)
    return out


def step_axis(steps: list[int], most: int = 5) -> tuple[tuple[float, float], list[int]]:
    """The loss plot's x axis for optimizer `steps` (ascending, non-empty): ((low, high), ticks) with at most
    `most` whole-step ticks at a round stride (1, 2, 5, 10, 20, ...): a step is never "13.2". One step gets one
    tick with a step of room on each side (plotext alone puts fractional ticks around a single point)."""
    lo, hi = int(min(steps)), int(max(steps))
    if lo == hi:
        return (lo - 1, hi + 1), [lo]
    scale = 1
    while True:
        for stride in (scale, 2 * scale, 5 * scale):
            first = -(-lo // stride) * stride  # the first multiple of the stride from `lo` on
            if len(range(first, hi + 1, stride)) <= most:
                return (lo, hi), list(range(first, hi + 1, stride))
        scale *= 10


def loss_axis(losses: list[float]) -> tuple[float, float]:
    """The loss plot's y range: the values' range with a little room, or ±10 % (at least 0.01) around a single
    value, which plotext alone would frame as 0.5 ... 1.5 whatever the loss."""
    lo, hi = min(losses), max(losses)
    pad = (hi - lo) * 0.05 if hi > lo else max(abs(lo) * 0.1, 0.01)
    return lo - pad, hi + pad


class WrapLog(Log):
    """A `Log` that folds each line at the pane's width instead of cutting it (no horizontal scrolling): a
    traceback or a path in a training log is read whole. `lines` stays one entry per log line; scrolling and
    `virtual_size` count screen rows.

    Folding is by cells, as a terminal does, and costs one `cell_len` per new line (kept in `_cells`, so a
    resize re-folds with arithmetic only); the row of each line is a prefix sum rebuilt lazily after a change.
    Only `write_lines`, `clear` and `write` add or remove lines here; Log's background width worker is not used.
    """

    DEFAULT_CSS = """
    WrapLog {
        overflow-x: hidden;
        scrollbar-gutter: stable;  /* a fixed fold width: a scrollbar appearing would re-fold every line */
    }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cells: list[int] = []  # cell width of each entry of _lines
        self._starts: list[int] | None = [0]  # first screen row of each line, then the total (None: rebuild)
        self._fold = 0  # the width the rows were counted at
        # Following the end: new lines scroll into view. Set by where the user scrolled to (watch_scroll_y), not
        # by the position alone: when the pane shrinks (a status line wrapping to two rows, the plot or the
        # failure box appearing) its end moves below the view without a scroll, and Log's own check would then
        # stop following for good.
        self._following = True

    def _update_size(self, updates: int, lines: list[str]) -> None:  # type: ignore[override]
        return  # the widest line means nothing when lines fold; _cells is kept in write_lines instead

    def _prune_max_lines(self) -> None:
        before = len(self._lines)
        super()._prune_max_lines()
        del self._cells[:before - len(self._lines)]

    def write_lines(self, lines: Iterable[str], scroll_end: bool | None = None) -> Self:
        """Append `lines` (each may hold several lines); see `Log.write_lines`."""
        lines = [part for line in lines for part in line.splitlines()]
        process = self._process_line
        # trailing blanks (tqdm's padding) take no row of their own: a terminal shows them as nothing
        self._cells.extend(cell_len(process(line).rstrip()) for line in lines)
        self._starts = None
        at_end = self._following or self.is_vertical_scroll_end
        super().write_lines(lines, scroll_end=False)
        self._set_rows()
        auto = self.auto_scroll if scroll_end is None else scroll_end
        if auto and at_end and not self.is_vertical_scrollbar_grabbed:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        return self

    def write(self, data: str, scroll_end: bool | None = None) -> Self:
        """Append raw text (a partial line continues the last one); see `Log.write`."""
        super().write(data, scroll_end=scroll_end)
        self._cells = [cell_len(self._process_line(line).rstrip()) for line in self._lines]
        self._starts = None
        self._set_rows()
        return self

    def clear(self) -> Self:
        """Remove every line."""
        super().clear()
        self._cells.clear()
        self._starts = None
        self._set_rows()
        return self

    def on_resize(self) -> None:
        self._starts = None
        self._set_rows()
        if self._following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._following = self.is_vertical_scroll_end

    @property
    def _fold_width(self) -> int:
        return max(1, self.scrollable_content_region.width)  # size.width would count the scrollbar's gutter

    def _rows(self) -> list[int]:
        width = self._fold_width
        if self._starts is None or width != self._fold:
            self._fold = width
            self._starts = [0, *accumulate(max(1, -(-cells // width)) for cells in self._cells)]
        return self._starts

    def _set_rows(self) -> None:
        self.virtual_size = Size(self._fold_width, self._rows()[-1])
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self._fold_width
        starts = self._rows()
        row = self.scroll_offset.y + y
        index = bisect_right(starts, row) - 1
        rich_style = self.rich_style
        if row >= starts[-1] or index >= len(self._lines):
            return Strip.blank(width, rich_style)
        start = (row - starts[index]) * width
        strip = self._render_line_strip(index, rich_style)
        return strip.crop_extend(start, start + width, rich_style).apply_offsets(start, index)


class RunLog(WrapLog):
    """The run's log pane (folded lines, see `WrapLog`). End jumps to the end at once (the default animation
    lands on the end as it was when End was pressed, which new lines have moved on by then, so following would
    not resume)."""

    def action_scroll_end(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False)


class FailureTail(WrapLog):
    """The failure box's last lines of output (folded, see `WrapLog`). It shows its end, the error, after every
    resize: the box shrinks when the queue list or the terminal changes, which would otherwise leave the
    traceback's first lines on screen and the error below them."""

    def on_resize(self) -> None:
        super().on_resize()
        self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)


FAILED_TAIL_LINES = 15


def queue_item_details(item: Any, job: Any = None) -> list[str]:
    """The lines Enter on a queue item shows (`run.queue.QueueItem`): its outcome and message (a refusal's reason),
    where it writes, whether it may overwrite, its job, and when it was queued, started and ended; with its ended
    `job` (a run-layer `Job`), the last FAILED_TAIL_LINES lines of that job's log, so a failure's error stays
    readable after the queue has moved on to the next item."""
    when = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "–"  # noqa: E731
    config = item.config or {}
    lines = [f"status: {item.status}" + (f" · exit code {item.exit_code}" if item.exit_code is not None else "")]
    if item.detail():
        lines.append(f"settings: {item.detail().strip()[1:-1]}")
    lines += [line for line in (item.message or "").splitlines() if line.strip()]
    lines.append(f"writes: {config.get('output_dir') or '?'}/{config.get('output_name') or '?'}"
                 + (" (may overwrite)" if item.overwrite else ""))
    if item.config_path:
        lines.append(f"queued from: {item.config_path}")
    if item.job_id:
        lines.append(f"job: {item.job_id} (lora-tui attach {item.job_id})")
    lines.append(f"queued {when(item.added)} · started {when(item.started)} · ended {when(item.ended)}")
    if job is not None:
        try:
            prog = job.progress()
        except Exception:  # noqa: BLE001 - an unreadable log: the lines above still say what happened
            prog = None
        tail = [line for line in (prog.tail if prog is not None else ()) if line.strip()][-FAILED_TAIL_LINES:]
        if tail:
            lines.append(f"last lines of its log ({job.log_path}):")
            lines += tail
    return lines


class QueueList(OptionList):
    """The queued configs, one option per item (option id = queue item id), in run order.

    Keys on the highlighted item:

    | key | action |
    |---|---|
    | enter | show its details: outcome, an error's reason, where it writes, its job (the Run view's handler) |
    | delete, x | remove it (`RemoveRequested`; a running item stays: stop it first) |
    | shift+up, K | move it one place earlier (`MoveRequested`, delta -1) |
    | shift+down, J | move it one place later (`MoveRequested`, delta +1) |

    p (pause/resume the whole queue) is the Run view's, so it works here and from the log pane alike. The app
    changes the queue file (atomically, `run.queue.Queue`) and redraws the list; the cursor stays on the
    moved item. K/J are there for terminals that send no distinct shift+arrow.
    """

    BINDINGS = [Binding("delete,x", "remove_item", "Remove"),
                Binding("shift+up,K", "move_item(-1)", "Move up", key_display="⇧↑"),
                Binding("shift+down,J", "move_item(1)", "Move down", key_display="⇧↓")]

    class RemoveRequested(Message):
        """The user asked to remove queue item `item_id` (with its shown `label`)."""

        def __init__(self, item_id: str, label: str) -> None:
            super().__init__()
            self.item_id = item_id
            self.label = label

    class MoveRequested(Message):
        """The user asked to move queue item `item_id` `delta` places (negative = earlier)."""

        def __init__(self, item_id: str, delta: int) -> None:
            super().__init__()
            self.item_id = item_id
            self.delta = delta

    def set_items(self, rows: list[tuple[str, str]]) -> None:
        """Replace the options by `rows` [(item id, plain text)], keeping the cursor on the same item (or row).
        Plain: a label is the user's output_name or file name, never markup."""
        old = self.highlighted
        old_id = self.get_option_at_index(old).id if old is not None and old < self.option_count else None
        self.clear_options()
        self.add_options([Option(Content(text), id=item_id) for item_id, text in rows])
        if rows:
            ids = [item_id for item_id, _ in rows]
            self.highlighted = ids.index(old_id) if old_id in ids else min(old or 0, len(rows) - 1)

    def action_remove_item(self) -> None:
        if self.highlighted is None or not self.option_count:
            return
        option = self.get_option_at_index(self.highlighted)
        if option.id:
            self.post_message(self.RemoveRequested(option.id, str(option.prompt)))

    def action_move_item(self, delta: int) -> None:
        if self.highlighted is None or not self.option_count:
            return
        option = self.get_option_at_index(self.highlighted)
        if option.id:
            self.post_message(self.MoveRequested(option.id, delta))
