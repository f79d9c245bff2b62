"""Progress figures parsed from trainer output: upstream kohya sd-scripts and our trainer.

Line shapes (sd-scripts' tqdm bar and prints in ``train_network.py``, ``docs/architecture.md``):

- tqdm main bar (stderr): ``steps:  37%|███ | 1110/3000 [10:00<17:00, 1.85it/s, avr_loss=0.0912]``; the rate is
  ``it/s`` or, below one step a second, ``s/it``; before the first step ``[00:00<?, ?it/s]``.
- ``epoch 2/10`` and ``saving checkpoint: /out/name-000002.safetensors`` (stdout); ``model saved.`` at the end.
- Ours: ``LORA_TUI_PROGRESS {"step": 12, "total": 96, "epoch": 1, "epochs": 6, "loss": 0.12, ...}`` and
  ``LORA_TUI_SAVED {"path": "...", "step": 12}``.

Lines may carry a prefix (Rich logging, accelerate), so the epoch/save/machine patterns are searched, not anchored.
"""
from __future__ import annotations

import bisect
import json
import re
import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

PROGRESS_TAG = "LORA_TUI_PROGRESS"
SAVED_TAG = "LORA_TUI_SAVED"
TAIL_LINES = 40

_TQDM_RE = re.compile(
    r"^\s*steps:\s+(?P<pct>\d+)%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<elapsed>[0-9:]+)<(?P<remaining>[0-9:?]+),\s*(?P<rate>[0-9.]+|\?)(?P<unit>it/s|s/it)"
    r"(?:,\s*(?P<postfix>[^\]]*))?\]"
)
_EPOCH_RE = re.compile(r"(?:^|\s)epoch (?P<e>\d+)/(?P<n>\d+)\s*$")
_SAVING_RE = re.compile(r"saving checkpoint: (?P<path>.+?)\s*$")
_MACHINE_RE = re.compile(r"(?P<tag>LORA_TUI_PROGRESS|LORA_TUI_SAVED)\s+(?P<json>\{.*\})\s*$")
_MODEL_SAVED_RE = re.compile(r"(?:^|\s)model saved\.\s*$")
_EXC_LINE_RE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Failure|Warning)?(?::\s.*|:)?$")


def parse_duration(text: str) -> float | None:
    """tqdm's ``MM:SS`` / ``H:MM:SS`` (also ``D:HH:MM:SS``) → seconds; ``None`` for ``?`` or junk."""
    if not text or "?" in text:
        return None
    total = 0
    try:
        for part in text.split(":"):
            total = total * 60 + int(part)
    except ValueError:
        return None
    return float(total)


def _num(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value) -> int | None:
    number = _num(value)
    return int(number) if number is not None else None


@dataclass
class ProgressUpdate:
    """What one output line says about the run. Unset figures are ``None``.

    ``kind``: ``"steps"`` (tqdm bar), ``"machine"`` (our ``LORA_TUI_PROGRESS``), ``"epoch"``, ``"saved"``
    (our after-save ``LORA_TUI_SAVED`` line: the file was written; its path in ``saved``), ``"saving"`` (the
    ``saving checkpoint: P`` line printed before a save: not a saved file), ``"interrupted"`` (our trainer's
    ``interrupted: saved P``, printed after a Stop's save), ``"finished"`` (``model saved.``). Units: seconds,
    steps, steps/second.
    """

    kind: str
    step: int | None = None
    total: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    avr_loss: float | None = None
    lr: float | None = None
    it_per_s: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    saved: str | None = None
    extra: dict = field(default_factory=dict)


def _parse_postfix(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_line(line: str) -> ProgressUpdate | None:
    """Parse one display line (already split and ANSI-stripped); ``None`` when it carries no progress."""
    if "LORA_TUI_" in line:
        m = _MACHINE_RE.search(line)
        if m:
            try:
                data = json.loads(m.group("json"))
            except ValueError:
                return None
            if not isinstance(data, dict):
                return None
            if m.group("tag") == SAVED_TAG:
                path = data.get("path")
                return ProgressUpdate("saved", step=_int(data.get("step")), saved=str(path) if path else None)
            known = {"step", "total", "epoch", "epochs", "loss", "avr_loss", "lr", "it_per_s", "eta_s", "elapsed_s"}
            return ProgressUpdate(
                "machine", step=_int(data.get("step")), total=_int(data.get("total")),
                epoch=_int(data.get("epoch")), epochs=_int(data.get("epochs")), loss=_num(data.get("loss")),
                avr_loss=_num(data.get("avr_loss")), lr=_num(data.get("lr")), it_per_s=_num(data.get("it_per_s")),
                eta_s=_num(data.get("eta_s")), elapsed_s=_num(data.get("elapsed_s")),
                extra={k: v for k, v in data.items() if k not in known},
            )
    if "steps:" in line:
        m = _TQDM_RE.search(line)
        if m:
            rate = _num(m.group("rate"))
            if rate is not None and m.group("unit") == "s/it":
                rate = 1.0 / rate if rate > 0 else None
            post = _parse_postfix(m.group("postfix"))
            return ProgressUpdate(
                "steps", step=int(m.group("n")), total=int(m.group("total")), it_per_s=rate,
                elapsed_s=parse_duration(m.group("elapsed")), eta_s=parse_duration(m.group("remaining")),
                avr_loss=_num(post.pop("avr_loss", None)), loss=_num(post.pop("loss", None)),
                lr=_num(post.pop("lr", None)), extra=post,
            )
    if "epoch " in line:
        m = _EPOCH_RE.search(line)
        if m:
            return ProgressUpdate("epoch", epoch=int(m.group("e")), epochs=int(m.group("n")))
    if "saving checkpoint:" in line:
        m = _SAVING_RE.search(line)
        if m:
            # printed BEFORE the file is written (sd-scripts and ours): a save under way, not a saved file
            return ProgressUpdate("saving", saved=m.group("path"))
    if line.startswith("interrupted: saved "):
        return ProgressUpdate("interrupted", saved=line.removeprefix("interrupted: saved ").strip() or None)
    if "model saved." in line and _MODEL_SAVED_RE.search(line):
        return ProgressUpdate("finished")
    return None


def split_bar(line: str) -> tuple[str | None, str]:
    """Split a tqdm bar from text glued after it: ``(bar, rest)``; ``(None, line)`` when no bar leads the line.

    stdout and stderr share one log file, so a ``print`` made while the bar (on stderr) sits unfinished lands
    right after it: ``steps: 5%|▌| 5/96 [00:02<00:40, 2.2it/s]LORA_TUI_PROGRESS {...}``. A terminal shows the same
    glued line; we show the printed text as its own line and keep the bar for the live line."""
    if not line.lstrip().startswith("steps:"):
        return None, line
    m = _TQDM_RE.match(line)
    if not m:
        return None, line
    return line[: m.end()], line[m.end():]


class ProgressState:
    """Accumulated view of a run, fed line by line (live run or a replayed log; the result is the same).

    Attributes: ``step``, ``total``, ``epoch``, ``epochs``, ``loss``, ``avr_loss``, ``lr``, ``it_per_s``,
    ``elapsed_s``, ``eta_s`` (``None`` until seen); ``saved`` (checkpoint paths, oldest first, no repeats);
    ``finished`` (``model saved.`` seen); ``tail`` (last ``TAIL_LINES`` lines); ``exception`` (the failure headline:
    the last Python exception line seen after a traceback with where it failed, `` (at lora_trainer/saving.py:210
    in _metadata)``, the innermost frame of the trainer's own code; a launcher's ``CalledProcessError`` never hides
    the trainer's own; without a traceback our trainer's first ``ERROR: <option>: ...`` line, which names the
    option).
    ``loss_history``: ``(step, loss)`` pairs, one per step, at most ``max_points``; when full, every other point
    is dropped so the whole run stays visible at half the resolution.
    """

    def __init__(self, max_points: int = 2000, tail_lines: int = TAIL_LINES) -> None:
        self.step: int | None = None
        self.total: int | None = None
        self.epoch: int | None = None
        self.epochs: int | None = None
        self.loss: float | None = None
        self.avr_loss: float | None = None
        self.lr: float | None = None
        self.it_per_s: float | None = None
        self.elapsed_s: float | None = None
        self.eta_s: float | None = None
        self.saved: list[str] = []
        self.finished = False
        #: the path of a ``saving checkpoint:`` line not yet confirmed by an after-save line
        self.saving: str | None = None
        #: ``(path, cause)`` when a save began and the trainer then failed (a traceback) before confirming it
        self.save_failed: tuple[str, str] | None = None
        #: the path of our trainer's ``interrupted: saved P`` line (a Stop's save), if seen
        self.interrupted_saved: str | None = None
        self._machine_seen = False  # our trainer (LORA_TUI_* lines): only LORA_TUI_SAVED confirms a save
        self._failure_chain = False  # inside the traceback chain that made a save fail
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.exception: str | None = None
        self.loss_history: list[tuple[int, float]] = []
        self.version = 0  # bumped on every change of a figure, so a UI can skip redraws
        self._max_points = max(4, max_points)
        self._stride = 1
        self._in_traceback = False
        self._exceptions: list[str] = []
        self._frames: list[tuple[str, str, str]] = []

    # -- feeding ---------------------------------------------------------------------------------------------
    def feed_lines(self, lines: Iterable[str]) -> bool:
        """Feed completed lines; return True when any progress figure changed."""
        changed = False
        for line in lines:
            changed |= self.feed_line(line)
        return changed

    def feed_line(self, line: str) -> bool:
        """Feed one completed line; return True when a progress figure changed. The line is kept in ``tail``
        unless it is one of our machine lines (they would crowd a failure's traceback out of the tail)."""
        update = parse_line(line)
        if not (update is not None and "LORA_TUI_" in line and update.kind in ("machine", "saved")):
            self.tail.append(line)
            if self._track_traceback(line):
                if self.saving is not None:
                    # the save under way did not finish: the trainer failed while writing it
                    self.save_failed = (self.saving, self.exception or "the trainer failed")
                    self.saving = None
                    self._failure_chain = True
                    self.version += 1
                elif self._failure_chain and self.save_failed is not None:
                    # a chained traceback ("During handling of the above exception, ..."): the last one is the
                    # save's own error (the first may be the KeyboardInterrupt of the Stop that began the save)
                    self.save_failed = (self.save_failed[0], self.exception or self.save_failed[1])
            elif not self._in_traceback and line.strip() and not line.startswith(
                    ("During handling of", "The above exception")):
                self._failure_chain = False
        return self.apply(update) if update else False

    def feed_live(self, live: str) -> bool:
        """Feed the unfinished live line (a tqdm bar between updates): parsed, but not added to ``tail``."""
        update = parse_line(live) if live else None
        return self.apply(update) if update else False

    def apply(self, u: ProgressUpdate) -> bool:
        """Merge one update; return True when something changed."""
        before = self._snapshot()
        if u.kind in ("machine", "saved"):
            self._machine_seen = True
        if u.kind == "saved":
            if u.saved and u.saved not in self.saved:
                self.saved.append(u.saved)
            if u.saved == self.saving:
                self.saving = None
        elif u.kind == "saving":
            self._confirm_upstream_save()
            self.saving = u.saved
        elif u.kind == "interrupted":
            self.interrupted_saved = u.saved
        elif u.kind in ("finished", "epoch", "steps"):
            self._confirm_upstream_save()
        if u.kind == "finished":
            self.finished = True
        for name in ("step", "total", "epoch", "epochs", "loss", "avr_loss", "lr", "it_per_s", "elapsed_s"):
            value = getattr(u, name)
            if value is not None:
                setattr(self, name, value)
        if u.eta_s is not None or u.kind == "steps":
            self.eta_s = u.eta_s
        if u.kind in ("steps", "machine") and u.it_per_s is not None and u.eta_s is None \
                and self.step is not None and self.total and u.it_per_s > 0:
            self.eta_s = (self.total - self.step) / u.it_per_s
        if u.kind in ("steps", "machine") and u.step is not None:
            value = u.avr_loss if u.avr_loss is not None else u.loss
            if value is not None:
                self._record_loss(u.step, value)
        if self._snapshot() != before:
            self.version += 1
            return True
        return False

    # -- derived ---------------------------------------------------------------------------------------------
    @property
    def fraction(self) -> float | None:
        """``step / total`` in 0..1, or ``None`` before the total is known."""
        if self.step is None or not self.total:
            return None
        return min(1.0, max(0.0, self.step / self.total))

    def summary(self) -> str:
        """One short line for a status bar, e.g. ``step 1110/3000 · epoch 2/10 · loss 0.0912 · 1.85 it/s · ETA 17:00``."""
        parts = []
        if self.step is not None:
            parts.append(f"step {self.step}/{self.total}" if self.total else f"step {self.step}")
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch}/{self.epochs}" if self.epochs else f"epoch {self.epoch}")
        loss = self.avr_loss if self.avr_loss is not None else self.loss
        if loss is not None:
            parts.append(f"loss {loss:.4g}")
        if self.it_per_s:
            parts.append(f"{self.it_per_s:.3g} it/s" if self.it_per_s >= 1 else f"{1 / self.it_per_s:.3g} s/it")
        if self.eta_s is not None:
            parts.append(f"ETA {format_duration(self.eta_s)}")
        return " · ".join(parts)

    # -- internals -------------------------------------------------------------------------------------------
    def _confirm_upstream_save(self) -> None:
        """Upstream sd-scripts prints no after-save line: its ``saving checkpoint: P`` counts once the trainer
        has gone on (a later bar, epoch, save or ``model saved.`` line: the save returned). Our trainer's saves
        count only through ``LORA_TUI_SAVED``."""
        if self.saving is not None and not self._machine_seen:
            if self.saving not in self.saved:
                self.saved.append(self.saving)
            self.saving = None

    def _snapshot(self):
        return (self.step, self.total, self.epoch, self.epochs, self.loss, self.avr_loss, self.lr, self.it_per_s,
                self.eta_s, len(self.saved), self.finished, len(self.loss_history), self.saving,
                self.interrupted_saved)

    def _record_loss(self, step: int, value: float) -> None:
        hist = self.loss_history
        if hist and hist[-1][0] == step:
            hist[-1] = (step, value)
            return
        if hist and step < hist[-1][0]:
            # An earlier step arriving late: a follower feeds a chunk's overwritten bar states before its completed
            # lines, so on a replay the machine line of step 1 comes after the bars of later steps. Put it in its
            # place (or refresh it) rather than drop it; the history stays sorted by step.
            i = bisect.bisect_left(hist, (step,))
            if i < len(hist) and hist[i][0] == step:
                hist[i] = (step, value)
            elif self._stride == 1:
                hist.insert(i, (step, value))
            return
        if hist and step - hist[-1][0] < self._stride:
            return
        hist.append((step, value))
        if len(hist) > self._max_points:
            del hist[1::2]
            self._stride *= 2

    def _track_traceback(self, line: str) -> bool:
        """Follow tracebacks; True when ``line`` was a traceback's exception line."""
        if line.startswith("Traceback (most recent call last):"):
            self._in_traceback = True
            self._frames = []
            return False
        if line.startswith("ERROR: ") and not self._exceptions and self.exception is None:
            # Our trainer's refusal (exit 1, no traceback): "ERROR: <option>: <what and the fix>" names the option.
            self.exception = line[len("ERROR: "):].strip()
            return False
        if self._in_traceback:
            m = _FRAME_RE.match(line)
            if m:
                self._frames.append((m["path"], m["line"], m["func"]))
                return False
        if not self._in_traceback or not line.strip() or line[0].isspace():
            return False
        if line.startswith(("During handling of", "The above exception")):
            return False
        self._in_traceback = False
        if _EXC_LINE_RE.match(line):
            self._exceptions.append(line + _where(self._frames))
            own = [e for e in self._exceptions if "CalledProcessError" not in e]
            self.exception = (own or self._exceptions)[-1]
            return True
        return False


_FRAME_RE = re.compile(r'^\s+File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>.+?)\s*$')


def _where(frames: list[tuple[str, str, str]]) -> str:
    """`` (at lora_trainer/saving.py:210 in _metadata)``: where a traceback failed, for the failure headline. The
    innermost frame of the trainer's own code (not of an installed package or the standard library), else the
    innermost frame; "" without frames. The file is named by its last two path parts."""
    if not frames:
        return ""
    own = [f for f in frames if not any(s in f[0].replace("\\", "/") for s in ("site-packages/", "dist-packages/",
                                                                                  "/lib/python", "<frozen"))]
    path, line, func = (own or frames)[-1]
    short = "/".join(path.replace("\\", "/").split("/")[-2:])
    return f" (at {short}:{line} in {func})"


def format_duration(seconds: float) -> str:
    """Seconds → ``MM:SS`` or ``H:MM:SS`` (tqdm's style)."""
    s = int(round(max(0.0, seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def exit_hint(exit_code: int | None, exception: str | None = None, stopped: bool = False,
              launcher: bool = False) -> str:
    """A short human explanation of how a trainer ended.

    ``exit_code`` follows ``subprocess``: negative = killed by that signal; shells report 128+N for the same.
    ``exception`` is ``ProgressState.exception``; ``stopped`` says a Stop was requested; ``launcher``: the code is
    accelerate's launcher's (``accelerate launch --quiet`` turns any failure of its trainer, a SIGKILL included,
    into a silent exit 1), so an exit 1 without any error from the trainer is most likely a kill.
    """
    if launcher and exit_code == 1 and not exception and not stopped:
        return ("killed? exit code 1 from accelerate's launcher, which does not say how its trainer ended, and the "
                "trainer printed no error: most likely killed (SIGKILL; the out-of-memory killer does this: check "
                "dmesg)")
    if exit_code is None:
        return "ended; exit code unknown (its processes are gone and no exit status was recorded)"
    if exit_code == 0:
        return "stopped; finished cleanly" if stopped else "finished"
    sig = -exit_code if exit_code < 0 else exit_code - 128 if 128 < exit_code < 160 else None
    if sig == signal.SIGKILL:
        return "killed (SIGKILL)" + ("" if stopped else ": out of memory? (check dmesg for the OOM killer)")
    if sig == signal.SIGINT:
        return "interrupted (SIGINT)" + ("; the trainer saved before exiting if it supports it" if stopped else "")
    if sig == signal.SIGTERM:
        return "terminated (SIGTERM)"
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    if stopped:
        # accelerate's launcher (--quiet) exits 1 once a stopped trainer has exited (130); torchrun likewise.
        # Callers that already name the exit code and what was saved leave this out (it starts "interrupted").
        return "interrupted by Stop" + (f": {exception}" if exception else "")
    if exception:
        return f"failed (exit code {exit_code}): {exception}"
    return f"failed (exit code {exit_code})"


def stop_outcome(prog: ProgressState | None) -> str:
    """What a Stop (or any end) left behind, in words the Run view's end line and `lora-tui stop` both use:
    "saved <path>" only for a save the trainer confirmed after writing it (``LORA_TUI_SAVED``; upstream sd-scripts:
    a `saving checkpoint:` line the trainer went on from) and only when that file exists now; "saving <path>
    failed: <cause>" when the last save began and the trainer then failed; "nothing saved" otherwise. The
    `saving checkpoint:` line alone (printed before the write) never counts."""
    import os

    if prog is None:
        return "nothing saved"
    if prog.save_failed is not None:
        path, cause = prog.save_failed
        return f"saving {path} failed: {cause}"
    for path in reversed(prog.saved):
        if os.path.isfile(path):
            return f"saved {path}"
    if prog.saved:
        return f"nothing saved ({prog.saved[-1]} was reported saved but is not there now)"
    return "nothing saved"


_STEP_SAVE = re.compile(r"-step(\d{8})\.[A-Za-z0-9]+$")


def step_save_note(outcome: str) -> str:
    """For a `stop_outcome` that names a step-numbered file (sd-scripts' `<output_name>-step00000012.safetensors`,
    the name our trainer gives a stopped run): " (stopped at step 12: a step save, not the finished LoRA)";
    "" otherwise. Said by the Run view's end line and `lora-tui stop`, so a stopped run is not taken for a
    finished one."""
    m = _STEP_SAVE.search(outcome.strip())
    return f" (stopped at step {int(m.group(1))}: a step save, not the finished LoRA)" if m else ""

