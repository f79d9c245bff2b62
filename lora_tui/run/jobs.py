"""Training jobs: start, inspect, stop, list. A job outlives the app and the SSH session.

Layout: ``<state_dir>/jobs/<id>/state.json`` (atomic, locked updates) and ``train.log`` (the trainer's stdout and
stderr, raw). The process tree is::

    supervise.py (session + process group leader; records the exit code)  ← pid, pgid
      └─ trainer argv[0] (e.g. accelerate launch / python train_network.py)  ← child_pid
           └─ the real trainer, data-loader workers, ...

A pid alone proves nothing after a reboot or pid reuse, so every liveness check also compares psutil's
``create_time`` with the recorded one. Stop signals the whole process group (``accelerate launch`` does not
forward signals to the trainer it starts: its ``simple_launcher`` waits on the child) plus any descendant that left it;
the first SIGINT skips accelerate's launcher once it has started the trainer (interrupted while it waits, the
launcher printed a KeyboardInterrupt traceback after every Stop; it exits by itself when the trainer has saved).
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import psutil

from lora_tui.run.statefile import _open_lock, read_json, update_json, write_json_atomic
from lora_tui.run.supervise import live_members

SUPERVISOR = Path(__file__).with_name("supervise.py")
STATE_FILE = "state.json"
LOG_FILE = "train.log"
STARTING_TIMEOUT_S = 15.0  # a "starting" job whose supervisor never wrote its pid is dead after this
ENDED = ("done", "failed", "stopped", "killed", "lost")


class JobError(Exception):
    """A job that cannot be found or started; the message says which and why."""


class JobBusy(JobError):
    """A Start refused because a job is running (``job``: the first one found); checked under ``start_lock``."""

    def __init__(self, job: "Job") -> None:
        self.job = job
        super().__init__(f"job {job.id} is still running; stop it first (`lora-tui stop {job.id}`) or queue this "
                         "config; nothing was started")


START_LOCK_TIMEOUT_S = 60.0


@contextlib.contextmanager
def start_lock(settings: Any = None, state_dir: str | os.PathLike | None = None,
               timeout: float = START_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold ``<state_dir>/start.lock`` (an ``flock``, so across processes and across threads: every holder opens
    its own file description) from the check "is a job running?" until the new job is recorded, so two Starts at
    the same moment (two apps, ``train`` and ``queue run``) cannot both pass the check: the second one waits, then
    sees the first job. Not re-entrant: take it once per launch. Raises ``JobError`` after ``timeout`` seconds."""
    path = resolve_state_dir(settings, state_dir) / "start"
    fd = _open_lock(path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise JobError(f"another Start has held {path}.lock for {timeout:g} s; nothing was started")
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def resolve_state_dir(settings: Any = None, state_dir: str | os.PathLike | None = None) -> Path:
    """The app state dir: ``state_dir`` if given, else ``settings.state_dir``, else the app settings file's,
    else ``$XDG_STATE_HOME/lora-tui`` (platformdirs)."""
    if state_dir is not None:
        return Path(state_dir).expanduser()
    if settings is not None:
        if isinstance(settings, (str, os.PathLike)):
            return Path(settings).expanduser()
        value = getattr(settings, "state_dir", None)
        if value:
            return Path(value).expanduser()
    try:
        from lora_tui.config.app_settings import load_app_settings

        value = getattr(load_app_settings(), "state_dir", None)
        if value:
            return Path(value).expanduser()
    except (ImportError, ValueError):  # a broken settings.toml is reported where settings are edited
        pass
    import platformdirs

    return Path(platformdirs.user_state_dir("lora-tui"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_process(pid: Any, create_time: Any) -> psutil.Process | None:
    """The live, non-zombie process ``pid`` if it is the one that was recorded (same create time, within 0.5 s).

    ``None`` when it is not, and also when either is missing or not a number: a pid alone proves nothing (pids
    are reused), so an unverifiable record is never taken for the job's process."""
    if not _is_int(pid) or pid <= 0 or not _is_number(create_time):
        return None
    try:
        p = psutil.Process(pid)
        if abs(p.create_time() - create_time) > 0.5:
            return None  # pid reused by another process
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p
    except psutil.Error:
        return None


_INT_KEYS = ("pid", "pgid", "child_pid", "exit_code", "launcher_exit_code")
_NUMBER_KEYS = ("create_time", "child_create_time", "start_time", "end_time", "stop_grace_s")
_STR_KEYS = ("id", "status", "cwd", "log", "error")
_DICT_KEYS = ("meta", "env")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def state_problem(data: Any) -> str | None:
    """Why ``data`` (a parsed ``state.json``) cannot be used as a job's state, in a few words (``"pid is a str,
    not an integer"``), or ``None`` when every key the run layer reads has its type. The value itself is never
    quoted (a hand-edited or garbage file may hold megabytes)."""
    if not isinstance(data, dict):
        return f"it holds a JSON {_kind(data)}, not an object"
    for key in _INT_KEYS:
        if data.get(key) is not None and not _is_int(data[key]):
            return f"{key} is a {_kind(data[key])}, not an integer"
    for key in _NUMBER_KEYS:
        if data.get(key) is not None and not _is_number(data[key]):
            return f"{key} is a {_kind(data[key])}, not a number"
    for key in _STR_KEYS:
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{key} is a {_kind(data[key])}, not text"
    for key in _DICT_KEYS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key} is a {_kind(data[key])}, not an object"
    meta = data.get("meta") or {}
    for key in ("config_toml", "config_json", "output_dir", "output_name", "label", "queue_item"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            return f"meta.{key} is a {_kind(meta[key])}, not text"
    if meta.get("max_train_steps") is not None and not _is_int(meta["max_train_steps"]):
        return f"meta.max_train_steps is a {_kind(meta['max_train_steps'])}, not an integer"
    argv = data.get("argv")
    if argv is not None and not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
        return "argv is not a list of text"
    signals = data.get("stop_signals")
    if signals is not None and not (isinstance(signals, list) and all(
            isinstance(x, dict) and isinstance(x.get("signal"), str) for x in signals)):
        return "stop_signals is not a list of {signal, time}"
    return None


def _signame(sig: int) -> str:
    return signal.Signals(sig).name


@dataclass
class StopResult:
    """What ``Job.stop`` did. ``signals``: names in the order sent (e.g. ``["SIGINT", "SIGTERM", "SIGKILL"]``);
    ``exited``: no process of the job is left; ``exit_code``: the trainer's (``None`` if unknown);
    ``escalated``: SIGTERM or SIGKILL was needed; ``message``: one line for the UI."""

    signals: list[str] = field(default_factory=list)
    exited: bool = False
    exit_code: int | None = None
    escalated: bool = False
    message: str = ""
    #: pids in the recorded process group that could not be verified as the job's (named, never signalled)
    unverified: list[int] = field(default_factory=list)


class Job:
    """A job folder. ``state`` is the last read of ``state.json`` (refreshed by ``refresh``/``is_alive``).

    State keys: ``id``, ``argv``, ``cwd``, ``env`` (only the variables set for this job), ``meta`` (caller's:
    config paths, output dir/name, queue item...), ``status`` (``starting``, ``running``, then one of ``done``,
    ``failed``, ``stopped``, ``killed``, ``lost``), ``pid``/``pgid``/``create_time`` (the supervisor),
    ``child_pid``/``child_create_time`` (the trainer command), ``start_time``/``end_time`` (epoch seconds),
    ``exit_code`` (subprocess style: negative = signal), ``stop_signals`` (``[{signal, time}]``),
    ``cleanup_done``.
    """

    def __init__(self, job_dir: str | os.PathLike, popen: subprocess.Popen | None = None) -> None:
        self.dir = Path(job_dir)
        self.id = self.dir.name
        self.state_path = self.dir / STATE_FILE
        self.log_path = self.dir / LOG_FILE
        self._popen = popen
        self.state: dict = {}
        #: Why ``state.json`` cannot be used (not JSON, wrong types), or ``None``. A broken record is never
        #: signalled nor written: its job is reported as unreadable and skipped (``lora-tui jobs``, ``stop``).
        self.broken: str | None = None
        self.refresh()

    def __repr__(self) -> str:
        return f"Job({self.id!r}, status={self.state.get('status')!r})"

    # -- state -----------------------------------------------------------------------------------------------
    def refresh(self) -> dict:
        """Re-read ``state.json``; a missing file (a job folder a moment before its state) keeps the previous
        state. A file that is not JSON, cannot be read, or holds a wrong type (``state_problem``) sets ``broken``
        and keeps the previous state too (empty for a job never read well)."""
        try:
            data = read_json(self.state_path)
        except (ValueError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError):
                reason = "not valid JSON"
            self.broken = reason
            return self.state
        if data is None:
            return self.state
        why = state_problem(data)
        if why is not None:
            self.broken = why
            return self.state
        self.broken = None
        self.state = data
        return self.state

    @property
    def status(self) -> str:
        """The status after a liveness check (a dead pid turns ``running`` into ``lost``); ``unreadable`` for a
        broken state file (``broken`` says why)."""
        self.is_alive()
        if self.broken is not None:
            return "unreadable"
        return self.state.get("status", "lost")

    @property
    def exit_code(self) -> int | None:
        """The trainer's exit code as last read (subprocess style: -N = killed by signal N); ``None`` while it
        runs or when nobody could record it."""
        return self.state.get("exit_code")

    @property
    def ended(self) -> bool:
        """True once the trainer has exited (or is known to be gone)."""
        return not self.is_alive()

    @property
    def stop_signals(self) -> list[str]:
        """Names of the Stop signals sent so far, in order (e.g. ``["SIGINT", "SIGTERM"]``), by any process."""
        return [s.get("signal") for s in self.state.get("stop_signals", [])]

    def _processes(self) -> tuple[psutil.Process | None, psutil.Process | None]:
        s = self.state
        return (_same_process(s.get("pid"), s.get("create_time")),
                _same_process(s.get("child_pid"), s.get("child_create_time")))

    def is_alive(self) -> bool:
        """True while the trainer runs. Decided by the recorded exit code and the pids (with create times),
        never by the log pipe. A job whose processes are all gone without a recorded exit becomes ``lost``."""
        if self._popen is not None:
            self._popen.poll()  # reap our own supervisor so it does not linger as a zombie
        self.refresh()
        if self.broken is not None:
            return False  # nothing in it can be trusted, and nothing is written over it
        s = self.state
        if s.get("end_time") is not None or s.get("status") in ENDED:
            return False
        supervisor, child = self._processes()
        if supervisor is not None or child is not None:
            return True
        if not s.get("pid") and time.time() - float(s.get("start_time") or 0) < STARTING_TIMEOUT_S:
            return True  # launched a moment ago; the supervisor has not written its pid yet
        self._mark_lost()
        return False

    def _mark_lost(self) -> None:
        """Its processes are gone (or cannot be verified) and no exit was recorded: its supervisor was killed.
        When the log's end says how the trainer ended (``model saved.``: it finished; our ``interrupted: saved``:
        a Stop's save), that is recorded instead of ``lost``; the exit code stays unknown."""
        s = self.state
        why = None
        if s.get("pid") and not _is_number(s.get("create_time")):
            why = "its recorded process cannot be verified (no create time recorded); nothing was signalled"
        prog = self.progress()
        ended_as = None
        if prog.finished and prog.exception is None:
            ended_as = "done"
        elif prog.interrupted_saved is not None and prog.exception is None and s.get("stop_signals"):
            ended_as = "stopped"

        def lost(d: dict) -> None:
            if d.get("end_time") is None:
                d.update(end_time=time.time(), status=ended_as or "lost")
                d.setdefault("exit_code", None)
                if ended_as:
                    d["exit_note"] = "its supervisor was gone; the log shows how the trainer ended"
                if why:
                    d["lost_reason"] = why

        try:
            self.state = update_json(self.state_path, lost)
        except (ValueError, OSError):
            pass  # a file that turned unreadable meanwhile is reported as such by the next refresh

    def wait(self, timeout: float | None = None, cleanup: bool = True, poll_s: float = 0.05) -> int | None:
        """Block until the trainer has exited (and, with ``cleanup``, the supervisor has ended its leftovers,
        at most 5 s more). Returns the exit code (``None`` if unknown). Raises ``TimeoutError`` after
        ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_alive():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} still running after {timeout} s")
            time.sleep(poll_s)
        if cleanup:
            extra = time.monotonic() + 5.0
            while not self.state.get("cleanup_done") and self._processes()[0] is not None \
                    and time.monotonic() < extra:
                time.sleep(poll_s)
                self.refresh()
        return self.exit_code

    def verified_group(self) -> int | None:
        """The job's process group number if it can be verified at this moment, else ``None``.

        Verified means: the recorded ``pgid`` is an integer and a process of the job whose identity is checked
        now (the supervisor or the trainer command: pid + create time) is in that group. Linux never hands out a
        number that is the id of an existing process group, so while such a member is in it the group is the
        job's. A group whose every verified member is gone (a supervisor killed with SIGKILL, its leftovers
        orphaned) cannot be told from a new group that took the number: it is not the job's for any signal."""
        pgid = self.state.get("pgid")
        if not _is_int(pgid) or pgid <= 0:
            return None
        for p in self._processes():
            if p is not None and _pgid(p.pid) == pgid and _running(p):
                return pgid
        return None

    def members(self) -> list[psutil.Process]:
        """Every live process of the job whose membership is verified now: the supervisor and the trainer command
        (pid + create time), their descendants, and the processes of the job's process group while it is
        verified (``verified_group``). The calling process is never included."""
        return live_members(self._processes(), self.verified_group(), exclude=os.getpid())

    def unverified(self) -> list[int]:
        """Pids of live processes in the recorded process group that cannot be verified as the job's (see
        ``verified_group``): never signalled, only named. Empty while the group is verified."""
        pgid = self.state.get("pgid")
        if not _is_int(pgid) or pgid <= 0 or self.verified_group() is not None:
            return []
        found = []
        for p in psutil.process_iter():
            if p.pid == os.getpid():
                continue
            if _pgid(p.pid) == pgid and _running(p):
                found.append(p.pid)
        return sorted(found)

    def hint(self) -> str:
        """Human explanation of the outcome (``progress.exit_hint``); exception line from the log tail."""
        from lora_tui.run.progress import exit_hint

        if self.is_alive():
            return "running"
        if self.broken is not None:
            return f"state unreadable ({self.broken})"
        s = self.state
        if s.get("lost_reason"):
            return f"lost: {s['lost_reason']}"
        if s.get("stop_after_finish"):
            return f"finished; the Stop came after the final save (exit code {self.exit_code})"
        if s.get("exit_note") and self.exit_code is None:
            how = "finished" if s.get("status") == "done" else "stopped; the trainer saved"
            return f"{how} (exit status unknown: {s['exit_note']})"
        return exit_hint(self.exit_code, self.failure_exception(), stopped=bool(self.stop_signals),
                         launcher=self.under_launcher)

    @property
    def under_launcher(self) -> bool:
        """The trainer command is accelerate's launcher (its exit code hides how the trainer ended)."""
        return _is_accelerate_launcher(self.state.get("argv") or [])

    def progress(self, nbytes: int = 256 * 1024):
        """A ``ProgressState`` from the last ``nbytes`` of the log (cheap; for lists such as ``lora-tui jobs``)."""
        from lora_tui.run.logstream import LineSplitter
        from lora_tui.run.progress import ProgressState

        state = ProgressState()
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - nbytes))
                data = fh.read()
        except OSError:
            return state
        splitter = LineSplitter()
        state.feed_lines(splitter.feed(data))
        state.feed_live(splitter.live)
        return state

    def tail(self, n: int = 40) -> list[str]:
        """The last ``n`` display lines of the log (``\\r`` collapsed, ANSI stripped)."""
        return self._scan_tail(n)[0]

    def failure_exception(self) -> str | None:
        """The Python exception line of a crashed trainer, if the end of the log holds a traceback."""
        return self._scan_tail(400)[1]

    def _scan_tail(self, n: int) -> tuple[list[str], str | None]:
        from lora_tui.run.logstream import LineSplitter
        from lora_tui.run.progress import ProgressState

        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 256 * 1024))
                data = fh.read()
        except OSError:
            return [], None
        splitter = LineSplitter()
        state = ProgressState(tail_lines=max(n, 1))
        lines = splitter.feed(data) + splitter.close()
        if size > 256 * 1024 and lines:
            lines = lines[1:]  # the first line was cut by the seek
        for line in lines:
            state.feed_line(line)
        return list(state.tail)[-n:], state.exception

    # -- stopping --------------------------------------------------------------------------------------------
    def send(self, sig: int, include_supervisor: bool = True) -> bool:
        """Send ``sig`` to the job's verified processes only (``members``: the group while ``verified_group``,
        else each verified process alone); record it in the state for Stop signals (INT/TERM/KILL). A job whose
        state is unreadable gets nothing. Returns False when no process was there to receive it."""
        if self.broken is not None:
            return False
        if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            # Recorded before it is sent: the supervisor reads this when the trainer (or its launcher) exits, to
            # tell a Stop from a crash and to wait for a trainer still saving.
            name = _signame(sig)

            def record(d: dict) -> None:
                d.setdefault("stop_signals", []).append({"signal": name, "time": time.time()})

            self.state = update_json(self.state_path, record)
        below = self._under_launcher() if sig == signal.SIGINT else []
        if below:
            # The training processes only: accelerate's launcher, interrupted while it waits for them, would print
            # a KeyboardInterrupt traceback after every Stop; it exits by itself once they have saved.
            targets, use_group = below, False
        else:
            supervisor = self._processes()[0]
            targets = self.members()
            if not include_supervisor and supervisor is not None:
                targets = [p for p in targets if p.pid != supervisor.pid]
            use_group = include_supervisor
        sent = grouped = False
        # The group only when it is the job's at this moment (a verified member in it), checked right before the
        # signal; otherwise each verified member alone (psutil checks its create time again as it sends).
        pgid = self.verified_group() if use_group else None
        if pgid is not None:
            try:
                os.killpg(pgid, sig)
                sent = grouped = True
            except (ProcessLookupError, PermissionError):
                pass
        for p in targets:
            if grouped and _pgid(p.pid) == pgid:
                continue  # already signalled through the group; a second SIGINT reads as "force quit"
            try:
                p.send_signal(sig)
                sent = True
            except psutil.Error:
                pass
        return sent

    def _under_launcher(self) -> list[psutil.Process]:
        """The live processes under the trainer command when that command is accelerate's launcher (``accelerate
        launch`` or ``python -m accelerate.commands.launch``): the training processes. Empty otherwise, or while
        the launcher has not started them yet."""
        child = self._processes()[1]
        if child is None or not _is_accelerate_launcher(self.state.get("argv") or []):
            return []
        try:
            return [p for p in child.children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
        except psutil.Error:
            return []

    def request_stop(self, grace_s: float | None = None) -> str | None:
        """Non-blocking Stop press (safe on an event loop): SIGINT to the group the first time, SIGTERM on the
        next press, SIGKILL of every process but the supervisor (which then records the exit) after that.
        Returns the signal name sent (``None`` if the job had already ended). ``grace_s``: the caller's grace time,
        recorded so the supervisor waits as long for a trainer still saving after its launcher quit."""
        if not self.is_alive():
            return None
        sent = self.stop_signals
        if "SIGINT" not in sent:
            sig = signal.SIGINT
            if grace_s is not None:
                self.state = update_json(self.state_path, lambda d: d.update(stop_grace_s=float(grace_s)))
        elif "SIGTERM" not in sent:
            sig = signal.SIGTERM
        else:
            self._kill_all(wait=False)
            return "SIGKILL"
        self.send(sig)
        return _signame(sig)

    def stop(self, grace_s: float = 60.0, escalate: bool = False, term_grace_s: float = 5.0) -> StopResult:
        """Stop the job and return when no process of it is left.

        First SIGINT to the whole process group, or to the processes under accelerate's launcher once there are
        some (our trainer saves on SIGINT; sd-scripts raises KeyboardInterrupt), then,
        after ``grace_s`` without exit, SIGTERM and ``term_grace_s`` later SIGKILL of every member. With
        ``escalate`` (a second Stop press), or when SIGINT was already sent earlier (by this or another
        process), SIGINT is skipped. Never raises for a job that already ended.
        """
        result = StopResult()
        if not self.is_alive():
            if self.broken is not None:
                result.message = f"state unreadable ({self.broken}); nothing signalled"
                return result
            # An ended job is never signalled: its supervisor ends what is left of it; we only wait for that.
            self._finish_leftovers(result, kill=False)
            return self._result(result, "already ended")
        already = self.stop_signals
        if not escalate and "SIGINT" not in already:
            self.state = update_json(self.state_path, lambda d: d.update(stop_grace_s=grace_s))
            self.send(signal.SIGINT)
            result.signals.append("SIGINT")
            if self._wait_exit(grace_s):
                self._finish_leftovers(result)
                return self._result(result, "stopped after SIGINT")
        result.escalated = True
        self.send(signal.SIGTERM)
        result.signals.append("SIGTERM")
        if self._wait_exit(term_grace_s):
            self._finish_leftovers(result)
            return self._result(result, "escalated to SIGTERM")
        self._kill_all()
        result.signals.append("SIGKILL")
        self._finish_leftovers(result)
        return self._result(result, "escalated to SIGKILL")

    async def stop_async(self, grace_s: float = 60.0, escalate: bool = False,
                         term_grace_s: float = 5.0) -> StopResult:
        """``stop`` in a worker thread, for an event loop. A second ``request_stop``/``stop(escalate=True)``
        from the loop meanwhile shortens the wait."""
        return await asyncio.to_thread(self.stop, grace_s, escalate, term_grace_s)

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if not self.is_alive():
                return True
            if "SIGKILL" in self.stop_signals:
                return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _kill_all(self, wait: bool = True) -> None:
        # Kill everything but the supervisor first, so it can still record the trainer's exit status.
        self.send(signal.SIGKILL, include_supervisor=False)
        if not wait:
            if self._processes()[0] is None:  # no supervisor left to record it
                self.state = update_json(self.state_path, _record_killed)
            return  # the supervisor records the exit within moments; is_alive() shows it
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and self.state.get("end_time") is None:
            time.sleep(0.05)
            self.refresh()
        if self.state.get("end_time") is None or not self.state.get("cleanup_done"):
            # Give the supervisor a moment to finish its cleanup, then end it too.
            end = time.monotonic() + 1.0
            while time.monotonic() < end and not self.refresh().get("cleanup_done"):
                time.sleep(0.05)
            for p in self.members():
                try:
                    p.kill()
                except psutil.Error:
                    pass
            if self._popen is not None:
                try:
                    self._popen.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
            self.state = update_json(self.state_path, _record_killed)

    def _finish_leftovers(self, result: StopResult, kill: bool = True) -> None:
        """Wait (≤5 s) for the supervisor's cleanup, then, with ``kill``, SIGKILL the verified members still
        alive (``members``; never a process that only carries the recorded group number)."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if not self.members():
                break
            time.sleep(0.05)
        rest = self.members() if kill else []
        for p in rest:
            try:
                p.kill()
            except psutil.Error:
                pass
        if rest:
            psutil.wait_procs(rest, timeout=2)
        if self._popen is not None:
            self._popen.poll()
        result.exited = not self.members()
        result.unverified = self.unverified()

    def _result(self, result: StopResult, what: str) -> StopResult:
        self.is_alive()
        result.exit_code = self.exit_code
        code = "unknown" if result.exit_code is None else str(result.exit_code)
        sent = " → ".join(result.signals) if result.signals else "no signal needed"
        sent = "" if what.endswith(sent) else f" ({sent})"  # "stopped after SIGINT", not "... SIGINT (SIGINT)"
        result.message = f"{what}{sent}; exit code {code}"
        if result.unverified:
            pids = ", ".join(map(str, result.unverified[:5])) + (" ..." if len(result.unverified) > 5 else "")
            result.message += (f"; not signalled: {len(result.unverified)} process(es) in its recorded process group "
                               f"{self.state.get('pgid')} that cannot be verified as the job's (pid {pids})")
        return result


def _record_killed(d: dict) -> None:
    if d.get("end_time") is None:
        d.update(end_time=time.time(), exit_code=-signal.SIGKILL)
    d["status"] = "killed"


def _is_accelerate_launcher(cmdline: list[str]) -> bool:
    """``cmdline`` runs accelerate's launcher: ``.../accelerate launch ...`` or ``python -m
    accelerate.commands.launch ...`` (the two forms ``plan.launch.accelerate_command`` builds)."""
    for i, arg in enumerate(cmdline[:4]):
        if os.path.basename(arg) == "accelerate" and cmdline[i + 1:i + 2] == ["launch"]:
            return True
        if arg == "-m" and cmdline[i + 1:i + 2] == ["accelerate.commands.launch"]:
            return True
    return False


def _running(p: psutil.Process) -> bool:
    """``p`` (a psutil process, its create time taken when it was made) still runs and is not a zombie."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def child_environment(env: dict[str, str] | None) -> dict[str, str]:
    """The trainer's environment: ``plan.launch.child_env()`` (ours minus Textual's variables, with unbuffered
    UTF-8 output, ``NO_COLOR=1``, ``COLUMNS=200``) with ``env`` on top (``env`` wins)."""
    # imported here: the queue and the job list load this module without needing the plan layer
    from lora_tui.plan.launch import child_env

    out = child_env()
    # Both streams go to one log: the bundled trainer then writes its stdout into its stderr, since
    # `accelerate launch` pipes the script's stderr through a thread of its own and lines of the two streams
    # would interleave mid-line (a progress record glued to the bar, "...is: 1000running training").
    out[ONE_LOG_ENV] = "1"
    out.update({str(k): str(v) for k, v in (env or {}).items()})
    return out


ONE_LOG_ENV = "LORA_TUI_ONE_LOG"
"""Set to 1 in a job's environment: its stdout and stderr are read as one log (`train.log`)."""


def start_job(argv: list[str], env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
              meta: dict | None = None, *, state_dir: str | os.PathLike | None = None, settings: Any = None,
              job_id: str | None = None) -> Job:
    """Start ``argv`` (a list, never a shell string) as a detached job and return it at once.

    The trainer runs under our supervisor in a new session (it survives the app, SIGHUP and SSH drops), with
    stdin closed and stdout+stderr appended to ``<state_dir>/jobs/<id>/train.log``. ``env`` holds variables to set
    on top of ours (see ``child_environment``); ``meta`` is stored as is (JSON-serialisable: config paths, output
    dir...). Raises ``JobError`` for an empty argv, a missing cwd or a supervisor that cannot start.
    """
    if not argv or not all(isinstance(a, str) for a in argv):
        raise JobError("argv must be a non-empty list of strings")
    run_cwd = Path(cwd) if cwd is not None else Path.cwd()
    if not run_cwd.is_dir():
        raise JobError(f"working directory {run_cwd} does not exist")
    jobs_dir = resolve_state_dir(settings, state_dir) / "jobs"
    job_dir = jobs_dir / (job_id or _new_job_id())
    while job_id is None and job_dir.exists():
        job_dir = jobs_dir / _new_job_id()
    job_dir.mkdir(parents=True, exist_ok=job_id is not None)
    state_path = job_dir / STATE_FILE
    write_json_atomic(state_path, {
        "id": job_dir.name, "argv": list(argv), "cwd": str(run_cwd),
        "env": {str(k): str(v) for k, v in (env or {}).items() if os.environ.get(str(k)) != str(v)},
        "meta": meta or {}, "status": "starting", "start_time": time.time(), "end_time": None,
        "exit_code": None, "stop_signals": [], "log": LOG_FILE,
    })
    cmd = [sys.executable, str(SUPERVISOR), str(job_dir), "--", *argv]
    with open(job_dir / LOG_FILE, "ab") as log:
        try:
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=run_cwd, env=child_environment(env), start_new_session=True,
                                     close_fds=True)
        except OSError as exc:
            update_json(state_path, lambda d: d.update(status="failed", end_time=time.time(), error=str(exc)))
            raise JobError(f"cannot start the job supervisor: {exc}") from exc
    try:
        ctime = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        ctime = None
    update_json(state_path, lambda d: d.update(pid=popen.pid, pgid=popen.pid, create_time=ctime)
                if not d.get("pid") else None)
    return Job(job_dir, popen)


def list_jobs(settings: Any = None, state_dir: str | os.PathLike | None = None) -> list[Job]:
    """All jobs in the state dir, newest first (ids start with the start time). A job whose state file is
    unreadable is listed too, with ``Job.broken`` saying why (callers report and skip it)."""
    jobs_dir = resolve_state_dir(settings, state_dir) / "jobs"
    if not jobs_dir.is_dir():
        return []
    out = []
    for d in sorted(jobs_dir.iterdir(), key=lambda p: p.name, reverse=True):
        if (d / STATE_FILE).is_file():
            out.append(Job(d))
    return out


def running_jobs(settings: Any = None, state_dir: str | os.PathLike | None = None,
                 gpus: Iterable[str] | None = None) -> list[Job]:
    """Jobs whose trainer is alive now (dead pids are marked ended on the way). With `gpus` (the GPU ids a new
    run would use), only the jobs on a GPU of that set (`gpus_overlap`): one training per GPU set, so runs on
    separate GPUs go side by side. `gpus` None means every GPU (each running job counts)."""
    want = None if gpus is None else frozenset(str(g).strip() for g in gpus)
    return [j for j in list_jobs(settings, state_dir) if j.is_alive() and gpus_overlap(job_gpus(j), want)]


def job_gpus(job: "Job") -> frozenset[str] | None:
    """The GPU ids a job was started on (its meta's `gpu_ids`, written by `launching.launch_config`), or None: every
    GPU (an empty `gpu_ids`, or a job started without that record)."""
    ids = (job.state.get("meta") or {}).get("gpu_ids")
    if not ids or not isinstance(ids, (list, tuple)):
        return None
    return frozenset(str(i).strip() for i in ids)


def gpus_overlap(a: Iterable[str] | None, b: Iterable[str] | None) -> bool:
    """Whether two runs' GPU sets share a GPU; None (every GPU) overlaps everything."""
    if a is None or b is None:
        return True
    return bool(set(a) & set(b))


class JobWatch:
    """Notices jobs that start after its first ``poll``, whoever starts them (this process, ``lora-tui train
    --detach`` or ``lora-tui queue run`` in another shell).

    A poll lists ``<state_dir>/jobs`` (one directory listing) and reads only the folders that are new since the
    previous poll (their ``state.json`` and a process check), so it stays cheap however many jobs the state dir
    keeps. The first poll only records what is there. A folder whose ``state.json`` is not written yet is looked
    at again at the next poll; every other new job is reported at most once.
    """

    def __init__(self, settings: Any = None, state_dir: str | os.PathLike | None = None) -> None:
        self.jobs_dir = resolve_state_dir(settings, state_dir) / "jobs"
        self._known: set[str] | None = None

    def poll(self) -> list[Job]:
        """Jobs new since the previous poll that run now (``Job.is_alive``; a job still ``starting`` counts),
        newest start first. Raises ``OSError`` when the jobs folder exists but cannot be listed."""
        try:
            names = {entry.name for entry in os.scandir(self.jobs_dir) if entry.is_dir()}
        except FileNotFoundError:
            names = set()
        if self._known is None:
            self._known = names
            return []
        found = []
        for name in names - self._known:
            job_dir = self.jobs_dir / name
            if not (job_dir / STATE_FILE).is_file():
                continue  # ``start_job`` makes the folder a moment before its state: next poll
            self._known.add(name)
            job = Job(job_dir)
            if job.is_alive():
                found.append(job)
        return sorted(found, key=lambda job: float(job.state.get("start_time") or 0), reverse=True)


def load_job(job_id: str | None = None, settings: Any = None, state_dir: str | os.PathLike | None = None) -> Job:
    """A job by id, unique id prefix, or job folder path; ``None`` = the newest running job, else the newest.
    Raises ``JobError`` when none or several match."""
    if job_id and (os.sep in job_id or job_id.startswith(".")) and (Path(job_id) / STATE_FILE).is_file():
        return Job(Path(job_id))
    jobs = list_jobs(settings, state_dir)
    if not jobs:
        raise JobError(f"no jobs in {resolve_state_dir(settings, state_dir) / 'jobs'}")
    if not job_id:
        alive = [j for j in jobs if j.is_alive()]
        readable = [j for j in jobs if j.broken is None]  # an unreadable record is named only when asked for
        if not (alive or readable):
            raise JobError(f"no readable job in {resolve_state_dir(settings, state_dir) / 'jobs'} "
                           "(`lora-tui jobs` names the unreadable ones)")
        return (alive or readable)[0]
    exact = [j for j in jobs if j.id == job_id]
    if exact:
        return exact[0]
    matches = [j for j in jobs if j.id.startswith(job_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise JobError(f"no job {job_id!r}; `lora-tui jobs` lists them")
    raise JobError(f"job id {job_id!r} is ambiguous: " + ", ".join(j.id for j in matches[:5]))
