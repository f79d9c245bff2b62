"""``lora-tui train | jobs | stop | attach --text | queue``: the job and queue commands, as plain functions beside
``cli.py``, which only parses arguments.

Each returns a process exit status and writes human text to ``out`` (stdout by default). Starting a run goes
through :func:`lora_tui.run.launching.launch_config`, as the app's Start and the queue do; following a log through
:mod:`lora_tui.run.logtail`. The config and plan layers are imported lazily: ``jobs``/``stop`` need neither.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from lora_tui.plan.wording import agree, counted
from lora_tui.run.jobs import JobBusy, JobError, list_jobs, load_job, resolve_state_dir, running_jobs
from lora_tui.run.launching import (
    PlanRefused,
    launch_config,
    load_config_for_run,
    preflight_errors,
    settings_or_loaded,
)
from lora_tui.run.logtail import TextAsBinary, shell_status, stream_job, tail_start
from lora_tui.run.progress import step_save_note, stop_outcome


def train(cfg_file: str | os.PathLike | None, detach: bool = False, sets: list[str] | None = None,
          settings: Any = None, out: TextIO | None = None, cfg: Any = None, overwrite: bool = False) -> int:
    """``lora-tui train FILE [--detach] [--overwrite]``: launch as Start would; refuse (exit 1, nothing written)
    on plan errors, when another job is running, or when the output LoRA file (or its epoch/step files) exists
    and ``overwrite`` is false. ``cfg``, when given, is used instead of loading ``cfg_file`` (the CLI loads it
    itself). Without ``detach`` the log goes to ``out`` and the trainer's exit status is returned (128+N for
    signal N)."""
    out = out or sys.stdout
    from lora_tui.config.kohya_json import ConfigError
    from lora_tui.plan.launch import LaunchError

    try:
        settings = settings_or_loaded(settings)
        if cfg is None:
            cfg = load_config_for_run(cfg_file, sets)
        if not overwrite:
            from lora_tui.plan.outputs import existing_outputs, existing_outputs_phrase

            found = existing_outputs(cfg)
            if found:
                them = agree(len(found), "it", "them")
                print(f"lora-tui: {existing_outputs_phrase(found)} and training would overwrite {them}; nothing was "
                      f"started. Pass --overwrite to replace it, or choose another output_name "
                      f"(--set output_name=NAME)", file=out)
                return 1
        # checked again, with the launch, under the state dir's start lock (launch_config): a train started at
        # the same moment in another shell or app is refused there (JobBusy)
        busy = running_jobs(settings)
        if busy:
            print(f"lora-tui: {JobBusy(busy[0])}", file=out)
            return 1
        if getattr(out, "isatty", lambda: False)():
            from lora_tui.run.preflight import START_MAX_AGE_S, cached_preflight, is_bundled

            from lora_tui.plan import make_plan

            if is_bundled(settings) and cached_preflight(cfg, settings, START_MAX_AGE_S) is None \
                    and not make_plan(cfg, settings).errors:  # the plan's errors refuse before the check runs
                print("lora-tui: running the trainer's own checks (--preflight)…", file=out, flush=True)
        job = launch_config(cfg, settings)
    except ConfigError as exc:
        print(f"lora-tui: {exc}", file=out)
        return 1
    except (PlanRefused, LaunchError, JobError, OSError) as exc:
        print(f"lora-tui: {exc}", file=out)
        return 1
    print(f"lora-tui: started job {job.id} (log: {job.log_path})", file=out, flush=True)
    if detach:
        print(f"lora-tui: detached; `lora-tui attach {job.id}` to watch, `lora-tui stop {job.id}` to stop",
              file=out)
        return 0
    out_bin = getattr(out, "buffer", None) or TextAsBinary(out)
    code = stream_job(job, out_bin)
    if code is None and job.is_alive():
        return 0  # hung up: the job runs on
    print(f"\nlora-tui: job {job.id} {job.state.get('status')}: {job.hint()}", file=out)
    return shell_status(job.exit_code)


def _age(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def jobs(settings: Any = None, out: TextIO | None = None, limit: int = 20) -> int:
    """``lora-tui jobs``: newest first: id, status, exit code, duration, progress, output name. Exit 0."""
    out = out or sys.stdout
    all_jobs = list_jobs(settings)
    if not all_jobs:
        print(f"no jobs in {resolve_state_dir(settings) / 'jobs'}", file=out)
        return 0
    print(f"{'JOB':<21} {'STATUS':<8} {'EXIT':>5} {'TIME':>8}  PROGRESS / NAME", file=out)
    for job in all_jobs[:limit]:
        status = job.status
        if job.broken is not None:
            print(f"job {job.id}: state unreadable ({job.broken}), skipped", file=out)
            continue
        s = job.state
        end = s.get("end_time") or time.time()
        dur = _age(end - float(s.get("start_time") or end))
        code = "" if s.get("exit_code") is None else str(s["exit_code"])
        state = job.progress()
        if status not in ("starting", "running"):
            state.eta_s = None
        name = (s.get("meta") or {}).get("output_name") or " ".join(s.get("argv", [])[-1:])
        progress = state.summary()
        print(f"{job.id:<21} {status:<8} {code:>5} {dur:>8}  {progress + '  ' if progress else ''}{name}", file=out)
    if len(all_jobs) > limit:
        print(f"... {len(all_jobs) - limit} older", file=out)
    return 0


def stop(job_ref: str | None = None, settings: Any = None, grace_s: float | None = None, escalate: bool = False,
         out: TextIO | None = None) -> int:
    """``lora-tui stop [JOB]``: as the Stop key (SIGINT, then after the grace time SIGTERM/SIGKILL). Without
    ``JOB``, the running job. When the job has ended it prints what it left, as the Run view does:
    ``lora-tui: job <id> <status> · saved <path> | nothing saved · <what was sent>; exit code N[; <hint>]``
    (``progress.stop_outcome`` over the end of its log). Exit 0 when no process of the job is left, 1 otherwise or
    when none is found."""
    out = out or sys.stdout
    try:
        settings = settings_or_loaded(settings)
        if job_ref is None:
            alive = running_jobs(settings)
            if not alive:
                print("lora-tui: no running job", file=out)
                return 1
            job = alive[0]
        else:
            job = load_job(job_ref, settings)
    except JobError as exc:
        print(f"lora-tui: {exc}", file=out)
        return 1
    if job.broken is not None:
        print(f"lora-tui: job {job.id}: state unreadable ({job.broken}); nothing was signalled. Its processes "
              f"cannot be verified from that record ({job.state_path})", file=out)
        return 1
    grace = float(grace_s if grace_s is not None else getattr(settings, "stop_grace_s", 60.0))
    if job.is_alive():
        # As the Stop key: the queue waits (paused before the signal, so no runner starts the next item as soon
        # as this one ends). A queue file that cannot be read or written must never keep the job from stopping.
        try:
            from lora_tui.run.queue import Queue

            waiting = Queue(settings).pause_for_stop()
        except Exception as exc:  # noqa: BLE001 - any fault of the queue file; the stop goes on regardless
            print(f"lora-tui: queue not paused: its file cannot be used ({_short(exc)}); stopping the job anyway",
                  file=out, flush=True)
            waiting = 0
        if waiting:
            print(f"lora-tui: queue paused ({waiting} waiting); `lora-tui queue resume` lets it go on",
                  file=out, flush=True)
        if escalate or "SIGINT" in job.stop_signals:
            # what Job.stop sends then: no SIGINT (skipped, or already sent)
            plan = "SIGTERM, then SIGKILL after 5 s"
        else:
            plan = f"SIGINT; escalating after {grace:g} s"
        print(f"lora-tui: stopping job {job.id} ({plan})", file=out, flush=True)
    result = job.stop(grace_s=grace, escalate=escalate)
    if not result.exited:
        print(f"lora-tui: job {job.id}: {result.message}; {job.hint()}", file=out)
        return 1
    hint = job.hint()
    # "interrupted (SIGINT); the trainer saved ... if it supports it" is what the saved path already says.
    note = "" if hint.startswith("interrupted") else f"; {hint}"
    outcome = stop_outcome(job.progress())
    print(f"lora-tui: job {job.id} {job.status} · {outcome}{step_save_note(outcome)} · {result.message}{note}",
          file=out)
    return 0


def _short(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line (a huge bad value is not echoed whole)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def run_queue(settings: Any = None, out: TextIO | None = None) -> int:
    """``lora-tui queue run``: run every pending queue item in order; exit 1 if an item this run started did not
    end ``done``, or one it refused to start (``error``); results of items another runner started (a second
    ``queue run``, an app), even when this one settled them, and earlier results do not count. While the queue is
    paused it says so and waits for ``lora-tui queue resume`` (from any terminal). With nothing pending or running
    it says so (``queue: nothing pending (2 done, 1 error; paused since ...)``) and exits 0: nothing to do is not
    an error."""
    from lora_tui.run.queue import Queue, QueueRunner, launch_item

    out = out or sys.stdout
    settings = settings_or_loaded(settings)
    queue = Queue(settings)
    items, pause = queue.snapshot()
    if not any(i.status in ("pending", "running") for i in items):
        print(f"lora-tui: queue: nothing pending ({_queue_counts(items, pause)})", file=out)
        return 0
    def event(item) -> None:
        extra = f" (job {item.job_id})" if item.job_id else ""
        print(f"lora-tui: queue item {item.label or item.id}{item.detail()}: {item.status}{extra} "
              f"{_item_message(item.message)}".rstrip(), file=out, flush=True)

    def paused(now: bool) -> None:
        if now:
            print(f"lora-tui: queue paused{_pause_text(queue.pause_info())}; waiting for `lora-tui queue resume` "
                  "(a running item goes on; Ctrl-C leaves, the queue is kept)", file=out, flush=True)
        else:
            print("lora-tui: queue resumed", file=out, flush=True)

    def waiting(job_id: str) -> None:
        item = queue.running()
        if item is not None and item.job_id == job_id:
            what = (f"queue item {item.label or item.id}{item.detail()} (job {job_id}), started by another "
                    "`queue run` or the app")
        else:
            what = f"job {job_id}, started outside the queue"
        print(f"lora-tui: queue: waiting for {what}; the next item starts when it ends (`lora-tui attach {job_id}` "
              "to watch it)", file=out, flush=True)

    # Ctrl-C only raises a flag, looked at between ticks: an item launched by a tick is always marked running.
    interrupted: list[int] = []
    old_int = None
    try:
        old_int = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    except ValueError:
        pass  # not the main thread (a test calling us): Ctrl-C is not ours to catch
    runner = QueueRunner(queue, launch=lambda item: launch_item(item, settings=settings))
    try:
        final = runner.run_all(on_event=event, on_pause=paused, on_wait=waiting, stop_when=lambda: bool(interrupted))
    finally:
        if old_int is not None:
            signal.signal(signal.SIGINT, old_int)
    if interrupted:
        _say_left_queue(final, out)
        return 130
    return 1 if runner.own_failures(final) else 0


def _say_left_queue(items: list, out: TextIO) -> None:
    """What goes on after Ctrl-C in ``queue run``: the running item (its job is not touched) and the waiting ones."""
    pending = sum(i.status == "pending" for i in items)
    running = next((i for i in items if i.status == "running"), None)
    wait = (f"The {counted(pending, 'pending item')} {agree(pending, 'starts', 'start')} only when `lora-tui queue "
            "run` runs again (or the app is open)") if pending else "Nothing else waits in the queue"
    if running is not None and running.job_id:
        job = running.job_id
        print(f"\nlora-tui: left the queue; queue item {running.label or running.id}{running.detail()} goes on "
              f"running (job {job}): `lora-tui attach {job}` to watch it, `lora-tui stop {job}` to stop it. "
              f"{wait}.", file=out, flush=True)
    else:
        print(f"\nlora-tui: left the queue; no item runs. {wait}.", file=out, flush=True)


def _queue_counts(items: list, pause: dict | None) -> str:
    """``2 done, 1 error; paused since ... (reason)``, or ``the queue is empty`` (with the pause, if any)."""
    counts: dict[str, int] = {}
    for i in items:
        counts[i.status] = counts.get(i.status, 0) + 1
    # statuses read as adjectives ("2 done", "1 stopped") except "error", a noun: "2 errors"
    text = ", ".join(counted(n, status) if status == "error" else f"{n} {status}"
                     for status, n in counts.items()) or "the queue is empty"
    return text + (f"; paused{_pause_text(pause)}" if pause is not None else "")


def _pause_text(info: dict | None) -> str:
    """`` since 14:02 (stopped by the user)`` for a pause (``Queue.pause_info``); empty when not paused."""
    if info is None:
        return ""
    since = f" since {time.strftime('%Y-%m-%d %H:%M', time.localtime(info['since']))}" if info.get("since") else ""
    reason = f" ({info['reason']})" if info.get("reason") else ""
    return since + reason


def queue_pause(settings: Any = None, out: TextIO | None = None) -> int:
    """``lora-tui queue pause``: no queued item starts until ``queue resume`` (a running one goes on). Exit 0."""
    from lora_tui.run.queue import Queue

    out = out or sys.stdout
    queue = Queue(settings_or_loaded(settings))
    if queue.pause("paused from the command line"):
        print("lora-tui: queue paused: nothing more starts until `lora-tui queue resume`"
              + ("; the running item goes on" if queue.running() else ""), file=out)
    else:
        print(f"lora-tui: queue already paused{_pause_text(queue.pause_info())}", file=out)
    return 0


def queue_resume(settings: Any = None, out: TextIO | None = None) -> int:
    """``lora-tui queue resume``: let a paused queue go on (the app or ``queue run`` starts the next item when no
    job runs). Exit 0."""
    from lora_tui.run.queue import Queue

    out = out or sys.stdout
    queue = Queue(settings_or_loaded(settings))
    if queue.resume():
        pending = sum(i.status == "pending" for i in queue.items())
        print(f"lora-tui: queue resumed ({pending} waiting; they run while the app or `lora-tui queue run` is "
              "open)", file=out)
    else:
        print("lora-tui: queue was not paused", file=out)
    return 0


def queue_remove(item_refs: list[str], settings: Any = None, out: TextIO | None = None) -> int:
    """``lora-tui queue remove ID...``: drop queue items (pending or ended; ``Queue.remove``, one locked atomic
    update each). ``ID``: an item id or a unique prefix of one (``lora-tui queue list`` shows them). A running item
    is refused with the way to stop its job. Says what it removed; exit 0 when every ID was removed, 1 otherwise
    (the others are still removed)."""
    from lora_tui.run.queue import Queue

    out = out or sys.stdout
    queue = Queue(settings_or_loaded(settings))
    ok = True
    for ref in item_refs:
        items = queue.items()
        found = [i for i in items if i.id == ref] or [i for i in items if i.id.startswith(ref)]
        if len(found) != 1:
            why = "no queue item" if not found else f"{len(found)} queue items start with"
            print(f"lora-tui: {why} {ref!r}; `lora-tui queue list` shows the ids", file=out)
            ok = False
            continue
        item = found[0]
        name = f"{item.label or item.id}{item.detail()}"
        if item.status == "running":
            job = item.job_id or "JOB"
            print(f"lora-tui: queue item {item.id} {name} is running (job {job}); stop it with `lora-tui stop {job}`, "
                  "then remove it", file=out)
            ok = False
        elif queue.remove(item.id):
            print(f"lora-tui: removed {item.status} queue item {item.id} {name}", file=out)
        else:  # it started (or went) in the meantime
            print(f"lora-tui: queue item {item.id} {name} could not be removed (it started or was removed meanwhile;"
                  " `lora-tui queue list`)", file=out)
            ok = False
    return 0 if ok else 1


def queue_clear(finished: bool = False, settings: Any = None, out: TextIO | None = None) -> int:
    """``lora-tui queue clear [--finished]``: remove every pending item (with ``finished``: every ended one
    instead: done, failed, stopped, error, ...), each by ``Queue.remove`` (locked, atomic). A running item stays.
    Says what it removed, one line per item, and what is left; exit 0."""
    from lora_tui.run.queue import FINAL, Queue

    out = out or sys.stdout
    queue = Queue(settings_or_loaded(settings))
    aside = queue.set_aside_unreadable()
    if aside is not None:
        print(f"lora-tui: queue: the queue file could not be read; moved it to {aside} and started an empty queue",
              file=out)
        return 0
    which = FINAL if finished else ("pending",)
    word = "ended" if finished else "pending"
    removed = 0
    for item in queue.items():
        if item.status in which and queue.remove(item.id):
            removed += 1
            print(f"lora-tui: removed {item.status} queue item {item.id} {item.label or item.id}{item.detail()}",
                  file=out)
    left = queue.items()
    running = next((i for i in left if i.status == "running"), None)
    note = (f"; queue item {running.id} runs on (job {running.job_id}: `lora-tui stop {running.job_id}` stops it)"
            if running is not None else "")
    others = [i for i in left if i.status != "running"]
    rest = f"; kept {_queue_counts(others, None)}" if others else ""
    head = f"removed {counted(removed, word + ' item')}" if removed else f"no {word} items to remove"
    print(f"lora-tui: queue: {head}{rest}{note}", file=out)
    return 0


#: How many log lines ``lora-tui attach --text`` shows before following (``--lines``).
ATTACH_LINES = 40


def attach_text(job_ref: str | None = None, settings: Any = None, out: TextIO | None = None,
                lines: int | None = ATTACH_LINES) -> int:
    """``lora-tui attach --text [JOB] [--lines N|all]``: the last ``lines`` lines of the log (``None``: all of it;
    0: none; see ``tail_start``), then live until the trainer exits, as ``tail -n N -f``; the exit status is the
    trainer's (128+N for signal N). Ctrl-C detaches, like ``tail -f``: the job goes on, the re-attach and stop
    commands are printed, and the exit status is 130 (interrupted, as a shell reports Ctrl-C; not the job's)."""
    out = out or sys.stdout
    try:
        job = load_job(job_ref, settings)
    except JobError as exc:
        print(f"lora-tui: {exc}", file=out)
        return 1
    if job.broken is not None:
        print(f"lora-tui: job {job.id}: state unreadable ({job.broken}); its log is {job.log_path}", file=out)
        return 1
    start = tail_start(job.log_path, lines)
    shown = "" if not start else "; what comes next (--lines N: the last N lines)" if lines == 0 else \
        f"; its last {counted(lines or 0, 'line')} (--lines all: the whole log)"
    print(f"lora-tui: job {job.id} ({job.status}), log {job.log_path}{shown}", file=out, flush=True)
    out_bin = getattr(out, "buffer", None) or TextAsBinary(out)
    code = stream_job(job, out_bin, ctrl_c="detach", start=start)
    if code is None and job.is_alive():
        return 130  # Ctrl-C (or a hang-up) left the log; the job was not touched
    print(f"\nlora-tui: job {job.id} {job.state.get('status')}: {job.hint()}", file=out)
    return shell_status(job.exit_code)


def queue_add(cfg_file: str | os.PathLike, settings: Any = None, cfg: Any = None, out: TextIO | None = None,
              overwrite: bool = False, sets: list[str] | None = None) -> int:
    """``lora-tui queue add FILE [--overwrite] [--set k=v ...]``: queue a snapshot of the config (as it is now,
    ``--set`` applied), with ``overwrite`` stored in the item and the ``--set`` items in its ``meta["sets"]`` (so
    ``queue list`` can tell items of one file apart). A config with errors (the plan's or the trainer's preflight's)
    is refused (exit 1, nothing queued), as the app's "Queue this config" does. Without ``overwrite`` it refuses (exit 1, nothing queued) when
    the LoRA the run would write exists (``existing_outputs``), or when a pending/running item already writes to
    the same output_dir/output_name (this run would replace its result). The runner checks again at the item's
    start (``run.queue.overwrite_refusal``)."""
    from lora_tui.config.kohya_json import config_to_dict
    from lora_tui.run.queue import Queue, output_writers

    out = out or sys.stdout
    cfg = cfg if cfg is not None else load_config_for_run(cfg_file)
    settings = settings_or_loaded(settings)
    refused = _plan_errors(cfg, settings)
    if refused:
        # As the app's "Queue this config": a config that could not start is not queued (it would fail at its turn,
        # maybe hours later, with nobody watching).
        print(f"lora-tui: {PlanRefused(refused)}".replace("nothing was started", "nothing was queued"), file=out)
        return 1
    queue = Queue(settings)
    if not overwrite:
        from lora_tui.plan.outputs import existing_outputs

        found = existing_outputs(cfg)
        ahead = output_writers(queue, cfg)
        name = f"output_dir/output_name {getattr(cfg, 'output_dir', '')}/{getattr(cfg, 'output_name', '') or 'last'}"
        fix = ("nothing was queued. Pass --overwrite to replace it, or choose another output_name "
               "(--set output_name=NAME)")
        if found:
            from lora_tui.plan.outputs import existing_outputs_phrase

            them = agree(len(found), "it", "them")
            print(f"lora-tui: {existing_outputs_phrase(found)} ({name}) and this run would overwrite {them}; {fix}",
                  file=out)
            return 1
        if ahead:
            print(f"lora-tui: {ahead[0]} already writes to {name} and this run would overwrite its LoRA; {fix}",
                  file=out)
            return 1
    item = queue.add(config_to_dict(cfg), config_path=cfg_file, label=Path(cfg_file).name, overwrite=overwrite,
                     meta={"sets": list(sets)} if sets else None)
    note = "; the queue is paused: `lora-tui queue resume` lets it run" if queue.paused else ""
    replaces = " (it may replace an existing LoRA: --overwrite)" if overwrite else ""
    print(f"lora-tui: queued {item.label}{item.detail()} as {item.id}{replaces}{note}", file=out)
    return 0


def _plan_errors(cfg, settings: Any) -> list:
    """The errors that refuse a launch of ``cfg``: the plan's, else the trainer's preflight's."""
    from lora_tui.plan import make_plan

    errors = list(make_plan(cfg, settings).errors)
    return errors or preflight_errors(cfg, settings)


def queue_list(settings: Any = None, out: TextIO | None = None) -> int:
    """``lora-tui queue list``: items in run order with status, job and result (an item whose job ended while
    nothing drove the queue is settled first, so it is not shown as running); a paused queue says so first
    (``queue paused since <time> (<reason>): ...``)."""
    from lora_tui.run.queue import Queue, QueueRunner

    out = out or sys.stdout
    queue = Queue(settings_or_loaded(settings))
    QueueRunner(queue).settle()
    items, pause = queue.snapshot()
    if pause is not None:
        print(f"queue paused{_pause_text(pause)}: nothing starts until `lora-tui queue resume`", file=out)
    if not items:
        print("queue is empty", file=out)
    for i in items:
        # a Stop's exit code is the launcher's (1 or 130), not a failure: the status says "stopped"
        code = "" if i.exit_code is None or i.status == "stopped" else f" exit {i.exit_code}"
        job = f" job {i.job_id}" if i.job_id else ""
        message = _item_message(i.message).replace("\n", "\n    ")
        print(f"{i.id}  {i.status:<8} {i.label}{i.detail()}{job}{code} {message}".rstrip(), file=out)
    return 0


def _item_message(message: str) -> str:
    # The runner records a launch failure as "<ExceptionClass>: <text>"; our own refusal needs no class name
    # (items recorded before the runner dropped it still carry it).
    return message.removeprefix(f"{PlanRefused.__name__}: ")
