"""The job supervisor: ``python .../supervise.py <job_dir> -- <argv...>``.

It is the leader of the job's new session and process group, starts the trainer, waits for it and writes the
exit code and end time into ``<job_dir>/state.json``. The app may be closed (or the SSH link drop) at any time:
the result is still recorded. Why a process of our own rather than the app's ``Popen.wait``: the app is not
there to wait when it was detached.

- It ignores SIGINT/SIGTERM/SIGHUP (through a no-op handler, which ``exec`` resets to the default in the
  trainer; ``SIG_IGN`` would be inherited and make the trainer deaf to Stop). Only SIGKILL ends it early.
- It makes itself a child subreaper (Linux), so orphaned grandchildren stay its descendants and can be found.
- After the trainer exits it records the result at once, then ends whatever is left of the job (grandchildren
  holding the log open, stray data-loader workers): SIGTERM, 10 s, SIGKILL. After a Stop it first waits
  for them (they got the same SIGINT and may be saving).

Its own exit status is the trainer's (128+N when the trainer died of signal N). It imports only the standard
library, psutil and ``statefile``, so the trainer starts without delay.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

if not __package__:
    # Started by path: put the project root first instead of this folder (nothing here may shadow a module).
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from lora_tui.run.statefile import read_json, update_json  # noqa: E402

CLEANUP_TERM_S = 10.0  # our trainer saves on SIGTERM too
PR_SET_CHILD_SUBREAPER = 36


def _noop(signum, frame) -> None:
    return None


def _become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def final_status(exit_code: int | None, stop_signals: list[str]) -> str:
    """``done`` (0 without Stop), ``stopped`` (ended after our Stop without SIGKILL, whatever the exit code: it is
    recorded beside the status), ``killed`` (our Stop had to SIGKILL), ``failed`` (anything else, including an exit
    code nobody recorded)."""
    if "SIGKILL" in stop_signals:
        return "killed"
    # After our SIGINT/SIGTERM any exit is the stop the user asked for: a multi-process `accelerate launch`
    # (torchrun) turns its ranks' clean 130 into its own exit 1, so the code alone cannot tell.
    if stop_signals:
        return "stopped"
    if exit_code == 0:
        return "done"
    return "failed"


def live_members(roots, pgid: int | None, exclude: int) -> list:
    """The live processes of a job: ``roots`` (psutil processes; None entries skipped) and their descendants,
    plus every process whose group is ``pgid`` (when given). ``exclude`` (a pid, usually the caller's) and
    zombies are left out. Shared by this supervisor's clean-up and ``Job.members`` in the app."""
    import psutil

    found = {}
    for root in roots:
        if root is None:
            continue
        found[root.pid] = root
        try:
            for p in root.children(recursive=True):
                found[p.pid] = p
        except psutil.Error:
            pass
    if pgid:
        for p in psutil.process_iter():
            if p.pid in found or p.pid == exclude:
                continue
            try:
                if os.getpgid(p.pid) == pgid:
                    found[p.pid] = p
            except OSError:
                continue
    found.pop(exclude, None)
    return [p for p in found.values() if _running(p)]


def _leftovers(me: int, pgid: int) -> list:
    import psutil

    try:
        roots = [psutil.Process(me)]
    except psutil.Error:
        roots = []
    # ``me`` is a root only to find its descendants; live_members leaves it out
    return live_members(roots, pgid, exclude=me)


def _reap_any() -> list[tuple[int, int]]:
    """Reap every exited child (our own and adopted orphans); returns their ``(pid, exit code)`` in order."""
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, os.waitstatus_to_exitcode(status)))


def _cleanup(me: int, pgid: int) -> list[int]:
    """End every process left in the job; returns the pids that had to be ended."""
    import psutil

    _reap_any()  # orphans that already exited were re-parented to us (subreaper): do not leave zombies behind
    procs = _leftovers(me, pgid)
    if not procs:
        return []
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    deadline = time.monotonic() + CLEANUP_TERM_S
    while time.monotonic() < deadline:
        _reap_any()
        alive = [p for p in procs if _running(p)]
        if not alive:
            break
        time.sleep(0.05)
    for p in procs:
        if _running(p):
            try:
                p.kill()
            except psutil.Error:
                pass
    time.sleep(0.05)
    _reap_any()
    return [p.pid for p in procs]


def _running(p) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _log_says_finished(log_path: Path, nbytes: int = 64 * 1024) -> bool:
    """True when the end of the job's log holds the trainer's after-final-save line (``model saved.``, printed by
    sd-scripts and ours only once the last LoRA file is written)."""
    from lora_tui.run.logstream import LineSplitter
    from lora_tui.run.progress import ProgressState

    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - nbytes))
            data = fh.read()
    except OSError:
        return False
    splitter = LineSplitter()
    state = ProgressState()
    state.feed_lines(splitter.feed(data) + splitter.close())
    return state.finished


def main(args: list[str] | None = None) -> int:
    """Entry point; ``args`` = ``[job_dir, "--", argv...]``. Returns the shell-style exit status."""
    args = list(sys.argv[1:] if args is None else args)
    if len(args) < 3 or args[1] != "--":
        print("usage: supervise.py JOB_DIR -- ARGV...", file=sys.stderr)
        return 2
    job_dir, argv = Path(args[0]), args[2:]
    state_path = job_dir / "state.json"
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _noop)
    subreaper = _become_subreaper()
    me, pgid = os.getpid(), os.getpgrp()

    import psutil

    my_ctime = psutil.Process(me).create_time()
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"lora-tui: cannot start the trainer {argv[0]!r}: {exc}", file=sys.stderr, flush=True)
        code = 127

        def failed(d: dict) -> None:
            d.update(pid=me, pgid=pgid, create_time=my_ctime, exit_code=code, end_time=time.time(),
                     status="failed", error=str(exc), cleanup_done=True)

        update_json(state_path, failed)
        return code
    try:
        child_ctime = psutil.Process(child.pid).create_time()
    except psutil.Error:
        child_ctime = None

    def started(d: dict) -> None:
        d.update(pid=me, pgid=pgid, create_time=my_ctime, child_pid=child.pid, child_create_time=child_ctime,
                 subreaper=subreaper)
        if d.get("status") in (None, "starting"):
            d["status"] = "running"

    update_json(state_path, started)

    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # cannot happen while the child is unreaped; be safe anyway
            status = None
            break
        if pid == child.pid:
            break
    child.returncode = code = os.waitstatus_to_exitcode(status) if status is not None else None
    launcher_code = None
    state = read_json(state_path, default={}) or {}
    if state.get("stop_signals") and _leftovers(me, pgid):
        # A Stop reached the whole group: a launcher (accelerate) exits at once while the real trainer, now our
        # orphan, is still saving. The job lasts until it is done; Stop escalates if it takes too long, and we
        # stop waiting ourselves after the grace time in case the app that pressed Stop is gone.
        grace = float(state.get("stop_grace_s") or 60.0) + 10.0
        deadline = time.monotonic() + grace
        adopted: list[tuple[int, int]] = []
        while time.monotonic() < deadline and _leftovers(me, pgid):
            adopted += _reap_any()
            time.sleep(0.05)
        adopted += _reap_any()
        if adopted:
            # The launcher's status says only "interrupted"; the trainer it left behind exits last, after its
            # save, and its status is the one that tells whether the save worked.
            launcher_code, code = code, adopted[-1][1]

    finished = _log_says_finished(job_dir / "train.log")

    def ended(d: dict) -> None:
        signals = [s.get("signal") for s in d.get("stop_signals", [])]
        status = final_status(code, signals)
        if signals and status == "stopped" and finished:
            # The Stop came after the final save (`model saved.`): the run completed; its exit code says only
            # how the interrupt met the trainer's last moments.
            status = "done"
            d["stop_after_finish"] = True
        d.update(exit_code=code, end_time=time.time(), status=status)
        if launcher_code is not None:
            d["launcher_exit_code"] = launcher_code

    update_json(state_path, ended)
    cleaned = _cleanup(me, pgid)

    def cleaned_up(d: dict) -> None:
        d.update(cleanup_done=True, cleaned_pids=cleaned)

    update_json(state_path, cleaned_up)
    if code is None:
        return 1
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
