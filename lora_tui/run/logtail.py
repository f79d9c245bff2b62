"""A job's log to a terminal: ``lora-tui train`` in the foreground and ``lora-tui attach --text`` copy the raw log
as it grows, leaving out our ``LORA_TUI_*`` machine lines, and turn Ctrl-C into a Stop or a detach.
"""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import TextIO

from lora_tui.run.jobs import Job


def shell_status(exit_code: int | None) -> int:
    """A trainer exit code as a process exit status: signal N → 128+N; unknown → 1."""
    if exit_code is None:
        return 1
    return 128 - exit_code if exit_code < 0 else exit_code


def stream_job(job: Job, out_bin, poll_s: float = 0.1, ctrl_c: str = "stop", start: int = 0) -> int | None:
    """Copy the job's raw log to ``out_bin`` (a binary stream; our machine lines left out) from byte ``start``
    (``tail_start`` gives the offset of the last N lines) until the trainer exits; returns its exit code, or
    ``None`` when it stopped following a job that runs on.

    ``ctrl_c="stop"`` (``lora-tui train`` in the foreground, as kohya's own scripts): Ctrl-C asks the trainer to
    stop (SIGINT to its group, it saves); a second Ctrl-C escalates. ``ctrl_c="detach"`` (``lora-tui attach
    --text``, like ``tail -f``): Ctrl-C leaves the log, the job goes on, and how to re-attach or stop it is
    printed. Either way a first line says what Ctrl-C does while the job runs, and SIGHUP (the terminal went
    away) leaves the job running. Raises ``ValueError`` for another ``ctrl_c``."""
    if ctrl_c not in ("stop", "detach"):
        raise ValueError(f"ctrl_c must be 'stop' or 'detach', not {ctrl_c!r}")
    hung_up = False

    def on_hup(signum, frame):
        nonlocal hung_up
        hung_up = True

    old_hup = signal.signal(signal.SIGHUP, on_hup) if hasattr(signal, "SIGHUP") else None
    # Ctrl-C is read as KeyboardInterrupt below. A process started with SIGINT ignored (a background command of a
    # shell script, which Python then leaves ignored) would be deaf to it: say what Ctrl-C does, and do it.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    pos = start
    flt = MachineLineFilter()
    if job.is_alive():
        if ctrl_c == "detach":
            say(out_bin, f"lora-tui: Ctrl-C leaves the log (the job goes on); `lora-tui stop {job.id}` stops it\n")
        else:
            # The only other way out is the terminal closing (SIGHUP, above): name it, with the way back.
            say(out_bin, "lora-tui: Ctrl-C stops the job (the trainer saves first); closing the terminal leaves "
                          f"it running (`lora-tui attach {job.id}` to watch it again)\n")
    try:
        while True:
            try:
                ended = not job.is_alive()
                pos = _copy_new(job.log_path, pos, out_bin, flt)
                if ended:
                    pos = _copy_new(job.log_path, pos, out_bin, flt)
                    say_bytes(out_bin, flt.flush())
                    return job.exit_code
                if hung_up:
                    return None
                time.sleep(poll_s)
            except KeyboardInterrupt:
                if ctrl_c == "detach":
                    say(out_bin, f"\nlora-tui: detached; job {job.id} goes on: `lora-tui attach {job.id}` to "
                                  f"watch it again, `lora-tui stop {job.id}` to stop it\n")
                    return None
                sent = job.request_stop()
                msg = {"SIGINT": "stopping: asked the trainer to save and exit (Ctrl-C again to force)",
                       "SIGTERM": "stopping: escalated to SIGTERM (Ctrl-C again to kill)",
                       "SIGKILL": "stopping: escalated to SIGKILL"}.get(sent or "", "")
                if msg:
                    say(out_bin, f"\nlora-tui: {msg}\n")
    finally:
        signal.signal(signal.SIGINT, old_int)
        if old_hup is not None:
            signal.signal(signal.SIGHUP, old_hup)


_MACHINE_LINE = re.compile(rb"LORA_TUI_(?:PROGRESS|SAVED) [^\n]*\n")
_TAG = b"LORA_TUI_"


class MachineLineFilter:
    """Drops our ``LORA_TUI_*`` machine lines from raw trainer output bound for a terminal, keeping everything
    else byte for byte (``\r`` bars go on updating in place). Text that may be the start of a machine line is
    held back until its newline arrives."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        """Filtered output for ``data`` (possibly shorter: a held-back tail comes with a later call)."""
        buf = _MACHINE_LINE.sub(b"", self._carry + data)
        hold = buf.find(_TAG)
        if hold < 0:
            # a tail that could grow into the tag ("LORA_T" at the very end) waits for more bytes
            hold = next((len(buf) - k for k in range(len(_TAG) - 1, 0, -1) if buf.endswith(_TAG[:k])), len(buf))
        self._carry = buf[hold:]
        return buf[:hold]

    def flush(self) -> bytes:
        """Whatever is held back (end of stream)."""
        out, self._carry = self._carry, b""
        return out


def tail_start(path: str | os.PathLike, lines: int | None) -> int:
    """The byte offset in the log at ``path`` where its last ``lines`` lines as a terminal shows them begin (our
    ``LORA_TUI_*`` machine lines are not counted; an unfinished last line, such as a progress bar, is one), as
    ``tail -n``: ``None`` → 0 (the whole log), 0 → the end (follow only). Reads backwards in 64 KiB blocks, so a
    long log costs what its tail does. A missing log → 0."""
    if lines is None:
        return 0
    try:
        size = os.path.getsize(path)
    except OSError:
        return 0
    if lines <= 0:
        return size
    buf = b""
    base = size
    with open(path, "rb") as fh:
        while base > 0:
            step = min(base, 64 * 1024)
            base -= step
            fh.seek(base)
            buf = fh.read(step) + buf
            parts = buf.split(b"\n")
            # The first part's start is known only at the start of the file; the last part is the unfinished line.
            offset = len(buf) - len(parts[-1])
            count = 1 if parts[-1] else 0
            if count >= lines:
                return base + offset
            for k in range(len(parts) - 2, 0 if base > 0 else -1, -1):
                offset -= len(parts[k]) + 1
                if _MACHINE_LINE.sub(b"", parts[k] + b"\n").endswith(b"\n"):
                    count += 1
                    if count >= lines:
                        return base + offset
    return 0


def _copy_new(path: Path, pos: int, out_bin, flt: MachineLineFilter | None = None) -> int:
    try:
        with open(path, "rb") as fh:
            fh.seek(pos)
            while True:
                data = fh.read(256 * 1024)
                if not data:
                    break
                pos += len(data)
                say_bytes(out_bin, flt.feed(data) if flt is not None else data)
    except FileNotFoundError:
        pass
    return pos


def say_bytes(out_bin, data: bytes) -> None:
    if data:
        try:
            out_bin.write(data)
            out_bin.flush()
        except (BrokenPipeError, OSError):
            pass  # our stdout is gone (closed terminal, `| head`); the job goes on regardless


def say(out_bin, text: str) -> None:
    say_bytes(out_bin, text.encode())


class TextAsBinary:
    def __init__(self, out: TextIO) -> None:
        import codecs

        self.out = out
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, data: bytes) -> None:
        self.out.write(self.decoder.decode(data))

    def flush(self) -> None:
        self.out.flush()
