"""Follow a job's log file: new lines, the live (``\\r``) line, progress figures and the exit.

The app never reads the trainer's pipe: the trainer writes to ``train.log`` and this tails it (Toolong style), so a
re-attached app and the one that pressed Start see the same thing. On attach the log so far is replayed through
the same splitter and progress parser, so the figures are right from the first frame.

Two ways to drive it: ``LogFollower.poll()`` (synchronous, cheap; call it from a UI timer at 10-15 Hz) or
``async for batch in follow(job)``.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import AsyncIterator

from lora_tui.run.jobs import Job
from lora_tui.run.logstream import LineSplitter
from lora_tui.run.progress import ProgressState, split_bar

CHUNK = 256 * 1024


def _is_machine_line(line: str) -> bool:
    return line.startswith(("LORA_TUI_PROGRESS ", "LORA_TUI_SAVED "))


def _shown_lines(lines: list[str]) -> list[str]:
    """``lines`` without our machine lines and without the tqdm bar state each LORA_TUI_PROGRESS line closes.

    Our trainer starts its machine line on a fresh line (stdout and stderr share the log), which completes the
    open bar: one bar line per step in the log pane, a wall of near-identical lines that pushes the messages out
    of view. That step is in the live line, the figures and the plot already. Bars not followed by a machine line
    (upstream sd-scripts, an epoch's end) stay."""
    shown = []
    for i, line in enumerate(lines):
        if _is_machine_line(line):
            continue
        if i + 1 < len(lines) and lines[i + 1].startswith("LORA_TUI_PROGRESS ") and split_bar(line)[1] == "" \
                and split_bar(line)[0] is not None:
            continue
        shown.append(line)
    return shown
POLL_S = 1 / 12


@dataclass
class FollowBatch:
    """What changed since the previous poll.

    ``lines``: completed display lines, oldest first, without our ``LORA_TUI_*`` machine lines and the bar states
    they close (by default; see ``_shown_lines``) (at most ``max_batch_lines``; ``dropped`` counts older ones
    left out of this batch, e.g. on replay of a huge log; the progress state saw them all). ``live``: the current
    unfinished line (``None`` = unchanged since last batch). ``progress_changed``: a figure in
    ``LogFollower.progress`` changed. ``ended``: the trainer has exited and the whole log has been read; then
    ``exit_code`` and ``status`` are set.
    """

    lines: list[str] = field(default_factory=list)
    dropped: int = 0
    live: str | None = None
    progress_changed: bool = False
    ended: bool = False
    exit_code: int | None = None
    status: str | None = None
    more: bool = False  # the read stopped at max_read: more is waiting, poll again soon

    @property
    def empty(self) -> bool:
        """Nothing to show or update."""
        return not (self.lines or self.dropped or self.live is not None or self.progress_changed or self.ended)


class LogFollower:
    """Incremental reader of one job's ``train.log``.

    ``max_read`` bounds the bytes read per poll: 512 KiB is ~5k lines, 10-40 ms on this 2-core machine, so a UI tick
    never blocks long, and 12 polls/s still catch up at ~6 MiB/s (a 50 MB log replays in ~8 s while the UI stays
    live; ``replay`` reads it all at once, for a thread or a script). ``max_batch_lines`` bounds the lines handed
    out per poll. Measured: ``benchmarks/log_flood.py``.
    """

    def __init__(self, job: Job, max_read: int = 512 * 1024, max_batch_lines: int = 20_000,
                 progress: ProgressState | None = None, hide_machine_lines: bool = True) -> None:
        self.job = job
        self.hide_machine_lines = hide_machine_lines
        self.progress = progress or ProgressState()
        self.splitter = LineSplitter(keep_overwritten=True)
        self.offset = 0
        self.max_read = max_read
        self.max_batch_lines = max_batch_lines
        self.ended = False
        self._live = ""
        self._glued_bar: str | None = None
        self._fh = None

    def close(self) -> None:
        """Close the log file handle."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _read(self, limit: int) -> bytes:
        if self._fh is None:
            try:
                self._fh = open(self.job.log_path, "rb")
            except FileNotFoundError:
                return b""
            self._fh.seek(self.offset)
        data = self._fh.read(limit)
        self.offset += len(data)
        return data

    def poll(self) -> FollowBatch:
        """Read what is new (up to ``max_read`` bytes) and report it. After ``ended`` was reported once, every
        later call returns an empty batch."""
        batch = FollowBatch()
        if self.ended:
            return batch
        # Check the exit before reading: once the exit is recorded the trainer has written everything, so reading
        # to EOF afterwards cannot miss output.
        finished = not self.job.is_alive()
        lines: list[str] = []
        budget = self.max_read
        while budget > 0:
            data = self._read(min(CHUNK, budget))
            if not data:
                break
            budget -= len(data)
            lines.extend(self.splitter.feed(data))
        drained = budget > 0
        batch.more = not drained
        if finished and drained:
            lines.extend(self.splitter.close())
        changed = False
        if self.splitter.overwritten:
            # intermediate bar states (upstream sd-scripts has no machine lines): the loss curve on replay.
            # They precede the completed lines' final states, so they go in first (the history keeps steps rising).
            for seg in self.splitter.overwritten:
                if "steps:" in seg:
                    changed |= self.progress.feed_live(seg)
            self.splitter.overwritten.clear()
        lines = self._unglue(lines)
        batch.progress_changed = self.progress.feed_lines(lines) or changed
        if self.hide_machine_lines:
            # LORA_TUI_PROGRESS/SAVED lines are for us, not for the reader: parsed above, not shown
            lines = _shown_lines(lines)
        # Between a glued print and the next bar update the bar is still what a terminal shows.
        live = self.splitter.live or self._glued_bar or ""
        if live != self._live:
            self._live = live
            batch.live = live
            batch.progress_changed |= self.progress.feed_live(live)
        if len(lines) > self.max_batch_lines:
            batch.dropped = len(lines) - self.max_batch_lines
            lines = lines[-self.max_batch_lines:]
        batch.lines = lines
        if finished and drained:
            self.ended = True
            batch.ended = True
            batch.exit_code = self.job.exit_code
            batch.status = self.job.state.get("status")
            if self._live:
                batch.live = self._live = ""
            self.close()
        return batch

    def _unglue(self, lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            bar, rest = split_bar(line)
            if bar is None or not rest:
                out.append(line)
                self._glued_bar = None
                continue
            # a bar interrupted by a print: the print is the line; the bar is still the live state
            self.progress.feed_live(bar)
            self._glued_bar = bar
            out.append(rest)
        return out

    def replay(self) -> FollowBatch:
        """Read the whole log so far in one go (attach), merged into one batch."""
        total = FollowBatch()
        while True:
            b = self.poll()
            total.lines.extend(b.lines)
            total.dropped += b.dropped
            if b.live is not None:
                total.live = b.live
            total.progress_changed |= b.progress_changed
            if b.ended:
                total.ended, total.exit_code, total.status = True, b.exit_code, b.status
            if b.ended or (not b.lines and not b.dropped and b.live is None):
                break
            if self.offset >= self._size():
                break
        if len(total.lines) > self.max_batch_lines:
            total.dropped += len(total.lines) - self.max_batch_lines
            total.lines = total.lines[-self.max_batch_lines:]
        return total

    def _size(self) -> int:
        try:
            return self.job.log_path.stat().st_size
        except OSError:
            return 0


async def follow(job: Job, interval: float = POLL_S, follower: LogFollower | None = None
                 ) -> AsyncIterator[FollowBatch]:
    """Yield a ``FollowBatch`` whenever something changed, polling every ``interval`` seconds (~12 Hz), until
    (and including) the batch that reports the end. The log so far comes first, in ``max_read`` slices with the
    event loop free in between."""
    f = follower or LogFollower(job)
    try:
        while True:
            batch = f.poll()
            if not batch.empty:
                yield batch
            if batch.ended:
                return
            # catching up (attach to a long log): give the loop a turn, then read on at once
            await asyncio.sleep(0 if batch.more else interval)
    finally:
        f.close()
