"""A persistent queue of training runs, for overnight batches.

``<state_dir>/queue.json`` (atomic, locked updates) holds items in order. Each item is a snapshot: the config as a
kohya-key dict (what ``config_to_dict`` gives; later form edits do not change a queued run) and/or the path it came
from, plus its status and result. Items run one after another; a failed item does not stop the queue; the queue
survives an app restart (an item left ``running`` is settled from its job's state on the next ``tick``).

The file also holds the queue's ``paused`` flag (with when and why it was set): while it is set no item starts,
in any process driving the queue; an item already running is left running. Stop pauses the queue when items wait
in it (``pause_for_stop``), so stopping a run to fix something does not start the next one at once.

An existing LoRA is never replaced silently: an item carries ``overwrite`` (asked when it was queued: ``lora-tui
queue add --overwrite``, the app's overwrite dialog), and when its turn comes the runner looks again for the files it
would write (``plan.outputs.existing_outputs``; an earlier item, or the user, may have written them since). An item
without ``overwrite`` whose output exists is not started: it is marked ``error`` with a message naming the file (and
the earlier queue item with the same output, if one ran), and the queue goes on.

Who drives it: the UI calls ``QueueRunner.tick()`` from a timer; ``lora-tui`` headless calls ``run_all``. Both
start items through a ``launch(item) -> Job`` function (``launch_item`` builds the real launch through the
config and plan layers; tests may pass their own).
"""
from __future__ import annotations

import os

import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from lora_tui.plan.outputs import existing_outputs, existing_outputs_phrase, output_key
from lora_tui.run.jobs import Job, JobBusy, JobError, load_job, resolve_state_dir, running_jobs
from lora_tui.run.statefile import read_json, try_locked, update_json

QUEUE_FILE = "queue.json"
FINAL = ("done", "failed", "stopped", "killed", "lost", "error", "skipped")


class QueueFileError(ValueError):
    """``queue.json`` cannot be read (torn, not JSON, not a queue). The message names the file and the way out:
    ``lora-tui queue clear`` sets it aside and starts an empty queue. Subclass of ValueError."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"queue file {path} is unreadable ({why[:200]}); `lora-tui queue clear` moves it aside to "
                         f"{path.name}.unreadable and starts an empty queue")
        self.path = path


@dataclass
class QueueItem:
    """One queued run. ``status``: ``pending``, ``running``, then a final one: the job's (``done``, ``failed``,
    ``stopped``, ``killed``, ``lost``), ``error`` (could not be launched: ``message`` says why) or ``skipped``
    (removed from the run by the user). Times are epoch seconds. ``overwrite``: the user agreed, when queueing it,
    that this run replaces an existing LoRA of its output_dir/output_name; without it the run is refused at its
    start when that LoRA exists (see the module doc)."""

    id: str
    label: str = ""
    config: dict | None = None
    config_path: str | None = None
    status: str = "pending"
    job_id: str | None = None
    exit_code: int | None = None
    message: str = ""
    added: float = 0.0
    started: float | None = None
    ended: float | None = None
    meta: dict = field(default_factory=dict)
    overwrite: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "QueueItem":
        """An item from its stored dict; unknown keys (from a newer version) are ignored."""
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    def detail(self) -> str:
        """`` (output_name qa; --set network_dim=16 seed=3; overwrite)``: what tells apart items queued from one
        file (the label is the file name); the output name is left out when the label already is it (items the
        app queued); ``overwrite`` when the item may replace an existing LoRA (``queue add --overwrite``). Shown
        by ``lora-tui queue`` and the app's queue list."""
        name = str((self.config or {}).get("output_name") or "")
        parts = [f"output_name {name}"] if name and name != self.label else []
        sets = (self.meta or {}).get("sets") or []
        if sets:
            parts.append("--set " + " ".join(map(str, sets)))
        if self.overwrite:
            parts.append("overwrite")
        return f" ({'; '.join(parts)})" if parts else ""


class Queue:
    """The queue file of one state dir. Every method re-reads the file, so several processes see one queue."""

    def __init__(self, settings: Any = None, state_dir: str | Path | None = None, path: str | Path | None = None):
        self.state_dir = resolve_state_dir(settings, state_dir)
        self.path = Path(path) if path else self.state_dir / QUEUE_FILE

    def _data(self) -> dict:
        try:
            data = read_json(self.path, default={}) or {}
        except (ValueError, OSError) as exc:
            raise QueueFileError(self.path, str(exc)) from None
        if not isinstance(data, dict) or not isinstance(data.get("items", []), list):
            raise QueueFileError(self.path, "not a queue (expected an object with a list of items)")
        return data

    def set_aside_unreadable(self) -> Path | None:
        """When the queue file cannot be read: move it to ``queue.json.unreadable`` (kept for the user to look at;
        an older one there is replaced) so an empty queue starts; returns the new path, None when the file reads."""
        try:
            self._data()
        except QueueFileError:
            aside = self.path.with_name(self.path.name + ".unreadable")
            os.replace(self.path, aside)
            return aside
        return None

    def items(self) -> list[QueueItem]:
        """All items in run order."""
        return [QueueItem.from_dict(d) for d in self._data().get("items", [])]

    def snapshot(self) -> tuple[list[QueueItem], dict | None]:
        """The items and the pause (``pause_info``) from ONE read of the file, so a list and its title agree."""
        data = self._data()
        return [QueueItem.from_dict(d) for d in data.get("items", [])], _pause_of(data)

    @property
    def paused(self) -> bool:
        """True while the queue is paused: no runner starts an item (a running one goes on)."""
        return _pause_of(self._data()) is not None

    def pause_info(self) -> dict | None:
        """``{"since": epoch seconds, "reason": str}`` while paused, else ``None``."""
        return _pause_of(self._data())

    def pause(self, reason: str = "") -> bool:
        """Pause the queue: no item starts until ``resume``; a running item is not stopped. The flag is kept in
        the queue file, so every app and ``lora-tui queue run`` sharing the state dir honours it, across restarts.
        Returns False when it was already paused (its time and reason are then kept)."""
        def change(data: dict) -> bool:
            if data.get("paused"):
                return False
            data["paused"] = {"since": time.time(), "reason": reason}
            return True

        return self._update(change)

    def resume(self) -> bool:
        """Let the queue run again (the next pending item starts when no job runs). Returns False when it was not
        paused."""
        def change(data: dict) -> bool:
            return bool(data.pop("paused", None))

        return self._update(change)

    def pause_for_stop(self, reason: str = "stopped by the user") -> int:
        """What Stop does to the queue: pause it when items wait in it, so the next one does not start as soon as
        the stopped job ends. Returns how many items wait (0: nothing to hold back, the queue is left as it is;
        an already paused queue keeps its first reason)."""
        def change(data: dict) -> int:
            waiting = sum(d.get("status") == "pending" for d in data.get("items", []))
            if waiting and not data.get("paused"):
                data["paused"] = {"since": time.time(), "reason": reason}
            return waiting

        return self._update(change)

    def get(self, item_id: str) -> QueueItem:
        """The item with that id; ``KeyError`` if none."""
        for item in self.items():
            if item.id == item_id:
                return item
        raise KeyError(f"no queue item {item_id!r}")

    def _update(self, change: Callable[[dict], Any]) -> Any:
        # One locked read-modify-write of the whole file (temp file + rename): the other processes sharing the
        # queue never see half of it, and two edits never overwrite each other.
        box: list[Any] = []

        def apply(data: dict) -> None:
            box.append(change(data))

        self._data()  # a broken file is reported (QueueFileError), never replaced by an edit
        update_json(self.path, apply)
        return box[0]

    def _edit(self, change: Callable[[list[dict]], Any]) -> Any:
        return self._update(lambda data: change(data.setdefault("items", [])))

    def add(self, config: dict | None = None, config_path: str | Path | None = None, label: str = "",
            meta: dict | None = None, overwrite: bool = False) -> QueueItem:
        """Append a run: a config snapshot (kohya-key dict) and/or a config file path; ``overwrite``: it may replace
        an existing LoRA of its output (the caller asked; nothing is checked here: see ``outputs_in_the_way``).
        Returns the new item. Raises ``ValueError`` when neither config nor path is given."""
        if config is None and config_path is None:
            raise ValueError("a queue item needs a config dict or a config file path")
        item = QueueItem(id=time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2),
                         label=label or (Path(config_path).name if config_path else ""),
                         config=dict(config) if config is not None else None,
                         config_path=str(Path(config_path).resolve()) if config_path else None,
                         added=time.time(), meta=meta or {}, overwrite=bool(overwrite))
        self._edit(lambda items: items.append(asdict(item)))
        return item

    def remove(self, item_id: str) -> bool:
        """Drop a pending or finished item (a running one stays: stop its job first). True if removed."""
        def change(items: list[dict]) -> bool:
            for i, d in enumerate(items):
                if d["id"] == item_id and d.get("status") != "running":
                    del items[i]
                    return True
            return False

        return self._edit(change)

    def move(self, item_id: str, delta: int) -> None:
        """Move an item ``delta`` places (negative = earlier), clamped to the list."""
        def change(items: list[dict]) -> None:
            for i, d in enumerate(items):
                if d["id"] == item_id:
                    j = max(0, min(len(items) - 1, i + delta))
                    items.insert(j, items.pop(i))
                    return

        self._edit(change)

    def clear_finished(self) -> int:
        """Remove every finished item; returns how many."""
        def change(items: list[dict]) -> int:
            keep = [d for d in items if d.get("status") not in FINAL]
            n = len(items) - len(keep)
            items[:] = keep
            return n

        return self._edit(change)

    def next_pending(self) -> QueueItem | None:
        """The first item still to run, or ``None``."""
        return next((i for i in self.items() if i.status == "pending"), None)

    def running(self) -> QueueItem | None:
        """The item marked running, or ``None``."""
        return next((i for i in self.items() if i.status == "running"), None)

    def mark(self, item_id: str, status: str, **fields: Any) -> QueueItem:
        """Set an item's status and any of ``job_id``, ``exit_code``, ``message``, ``started``, ``ended``.
        Raises ``KeyError`` for an unknown item."""
        def change(items: list[dict]) -> dict | None:
            for d in items:
                if d["id"] == item_id:
                    d["status"] = status
                    d.update(fields)
                    return dict(d)
            return None

        d = self._edit(change)
        if d is None:
            raise KeyError(f"no queue item {item_id!r}")
        return QueueItem.from_dict(d)


def _pause_of(data: dict) -> dict | None:
    paused = data.get("paused")
    if not paused:
        return None
    if not isinstance(paused, dict):  # a hand-edited ``"paused": true``
        return {"since": None, "reason": ""}
    return {"since": paused.get("since"), "reason": str(paused.get("reason") or "")}


def item_outputs(item: QueueItem) -> list[str]:
    """The LoRA files that exist now and that ``item``'s run would overwrite (``plan.outputs.existing_outputs`` of
    its snapshot, else of its config file), final file first; ``[]`` when none, or when its config cannot be read
    (its launch then reports why). Ignores ``item.overwrite``."""
    if item.config is not None:
        cfg: Any = {k: item.config.get(k) for k in ("output_dir", "output_name", "save_model_as")}
    else:
        try:
            from lora_tui.run.launching import load_config_for_run

            cfg = load_config_for_run(item.config_path)
        except Exception:
            return []
    return existing_outputs(cfg)


def _target_of(item: QueueItem) -> tuple[str, str, str] | None:
    return output_key(item.config) if item.config is not None else None


def overwrite_refusal(item: QueueItem, items: list[QueueItem]) -> str | None:
    """Why ``item`` must not start now: its output LoRA exists and it was not queued with ``overwrite``; ``None``
    when it may start. ``items`` (the queue in order) names the earlier item that wrote that file, when one with
    the same output target finished ``done``."""
    if item.overwrite:
        return None
    found = item_outputs(item)
    if not found:
        return None
    from lora_tui.plan.wording import agree

    target = _target_of(item)
    earlier = items[:next((k for k, i in enumerate(items) if i.id == item.id), len(items))]
    writer = next((i for i in reversed(earlier) if i.status == "done" and target and _target_of(i) == target), None)
    by = f" (written by queue item “{writer.label or writer.id}” {writer.id}, same output_dir/output_name)" \
        if writer is not None else ""
    them = agree(len(found), "it", "them")
    return (f"not started: {existing_outputs_phrase(found)}{by} and this run would overwrite {them}. To replace "
            f"{them}, "
            f"queue the config again with overwrite (`lora-tui queue add FILE --overwrite`; in the app, Overwrite "
            f"when asked); to keep it, change output_name")


def output_writers(queue: "Queue", cfg: Any) -> list[str]:
    """Who already writes the LoRA ``cfg`` would write, in words for a question or a refusal: the pending or
    running items of ``queue`` with the same ``output_key`` ("queue item “face” (pending)") and the running
    jobs of the state dir with the same output_dir/output_name (a job started by Start or ``lora-tui train``, not
    queued: "job 20261129-… (running)"). Queueing ``cfg`` after them would replace their result. Reads the job
    states: call it off the UI's event loop."""
    target = output_key(cfg)
    if target is None:
        return []
    items = [i for i in queue.items() if i.status in ("pending", "running") and _target_of(i) == target]
    found = [f"queue item “{i.label or i.id}” ({i.status})" for i in items]
    queued_jobs = {i.job_id for i in items if i.job_id}
    for job in running_jobs(state_dir=queue.state_dir):
        meta = job.state.get("meta") or {}
        folder = str(meta.get("output_dir") or "").strip()
        if job.id in queued_jobs or not folder:
            continue
        job_target = output_key({"output_dir": folder, "output_name": meta.get("output_name"),
                                    "save_model_as": target[2]})  # the job's meta keeps no extension
        if job_target == target:
            found.append(f"job {job.id} (running)")
    return found


def _item_gpus(item: QueueItem) -> list[str] | None:
    """The GPU ids queue item `item` trains on (its config's `gpu_ids`; None: every GPU): it waits only for a job
    on one of them (one training per GPU set, as `launching.launch_config` checks)."""
    from lora_tui.plan.launch import gpu_id_list

    return gpu_id_list(str((item.config or {}).get("gpu_ids") or ""))


Launch = Callable[[QueueItem], Job]


class QueueRunner:
    """Runs a ``Queue`` one item at a time through ``launch(item) -> Job``.

    ``tick()`` is cheap and idempotent: it settles a finished running item, and when nothing runs starts the next
    pending one, unless its output LoRA exists and it was not queued with ``overwrite`` (``overwrite_refusal``:
    it is then marked ``error`` and the next one starts at the next tick). It never starts an item while another
    job of the state dir is running (two trainers on one GPU by accident), unless ``exclusive=False``, nor while
    the queue is paused (``Queue.pause``; read from the file at every tick, so a pause from another process
    counts).

    Several runners may drive one queue (two apps, an app and ``lora-tui queue run``): any of them may settle an
    item another one started. ``started`` (ids of the items this runner launched) and ``refused`` (those it
    marked ``error``) say which results are this runner's own: see ``own_failures``.
    """

    def __init__(self, queue: Queue, launch: Launch | None = None, exclusive: bool = True) -> None:
        self.queue = queue
        self.launch = launch or (lambda item: launch_item(item, state_dir=queue.state_dir))
        self.exclusive = exclusive
        self.current: Job | None = None
        self.started: set[str] = set()
        self.refused: set[str] = set()
        #: id of the job this runner waits for and did not start (another runner's item, or a job started
        #: outside the queue), as of the last ``tick``; ``None`` otherwise.
        self.waiting_for: str | None = None

    def own_failures(self, items: list[QueueItem]) -> list[QueueItem]:
        """The items of ``items`` (a fresh ``Queue.items()``) that this runner started and that ended other than
        ``done``, or that it refused to start (marked ``error``), in queue order. Results another runner
        started, and earlier results, are not counted, whoever settled them."""
        return [i for i in items if i.id in self.refused
                or (i.id in self.started and i.status in FINAL and i.status != "done")]

    @property
    def paused(self) -> bool:
        """The queue's persisted pause flag (``Queue.paused``)."""
        return self.queue.paused

    def _job_of(self, item: QueueItem) -> Job | None:
        if self.current is not None and self.current.id == item.job_id:
            return self.current
        if not item.job_id:
            return None
        try:
            return load_job(item.job_id, state_dir=self.queue.state_dir)
        except JobError:
            return None

    def settle(self) -> QueueItem | None:
        """Record the result of the item marked running once its job has ended, starting nothing (what
        ``lora-tui queue list`` needs when no app or ``queue run`` drives the queue). Returns the item settled,
        or ``None`` (nothing marked running, or its job still runs)."""
        running = self.queue.running()
        return None if running is None else self._settle(running)

    def _settle(self, running: QueueItem) -> QueueItem | None:
        job = self._job_of(running)
        if job is not None and job.is_alive():
            self.current = job
            self.waiting_for = None if running.id in self.started else job.id
            return None
        self.current = None
        self.waiting_for = None
        if job is None:
            return self.queue.mark(running.id, "lost", ended=time.time(), message="its job record is gone")
        from lora_tui.run.progress import exit_hint

        return self.queue.mark(running.id, job.state.get("status", "failed"), exit_code=job.exit_code,
                               ended=job.state.get("end_time") or time.time(),
                               message=exit_hint(job.exit_code, job.failure_exception(),
                                                 stopped=bool(job.stop_signals), launcher=job.under_launcher))

    def tick(self) -> QueueItem | None:
        """Advance the queue; returns the item started or settled by this call (``None`` if nothing changed)."""
        running = self.queue.running()
        if running is not None:
            return self._settle(running)
        self.waiting_for = None
        if self.queue.paused or self.queue.next_pending() is None:
            return None
        # Two app windows may drive one queue: only the holder of the start lock launches, after re-checking
        # (a pause written meanwhile included).
        with try_locked(self.queue.path.with_name(QUEUE_FILE + ".start")) as mine:
            if not mine or self.queue.running() is not None or self.queue.paused:
                return None
            item = self.queue.next_pending()
            if item is None:
                return None
            busy = running_jobs(state_dir=self.queue.state_dir, gpus=_item_gpus(item)) if self.exclusive else []
            if busy:
                self.waiting_for = busy[0].id
                return None
            # Looked at again now, not only when queued: an earlier item (or the user) may have written it since.
            refusal = overwrite_refusal(item, self.queue.items())
            if refusal is not None:
                self.refused.add(item.id)
                return self.queue.mark(item.id, "error", message=refusal, ended=time.time())
            try:
                job = self.launch(item)
            except JobBusy as exc:
                # a Start elsewhere won the state dir's start lock meanwhile: the item waits for that job
                self.waiting_for = exc.job.id
                return None
            except Exception as exc:  # a bad snapshot must not stop the queue: record it, go on next tick
                # A refused plan or a bad value (ValueError) speaks for itself; other errors keep their type name
                why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
                self.refused.add(item.id)
                return self.queue.mark(item.id, "error", message=why, ended=time.time())
            self.current = job
            self.started.add(item.id)
            return self.queue.mark(item.id, "running", job_id=job.id, started=time.time())

    def run_all(self, poll_s: float = 0.2, on_event: Callable[[QueueItem], None] | None = None,
                on_pause: Callable[[bool], None] | None = None, on_wait: Callable[[str], None] | None = None,
                stop_when: Callable[[], bool] | None = None) -> list[QueueItem]:
        """Block until no pending or running item is left; returns the final item list. ``on_event`` is called
        with every item this runner starts or settles. While the queue is paused it waits (a running item is
        still settled) until it is resumed, from this process or another (``lora-tui queue resume``);
        ``on_pause(paused)`` is called when it sees the queue paused (also at the start) and when it sees it
        resumed. ``on_wait(job_id)`` is called when it starts waiting for a job it did not start (``waiting_for``).
        ``stop_when()``, asked before each tick (never during one, so an item is never left launched but unmarked),
        returning True makes it return the items as they are then (a running item goes on)."""
        seen_paused = False
        seen_wait: str | None = None
        while True:
            items, pause = self.queue.snapshot()
            if stop_when is not None and stop_when():
                return items
            if not any(i.status in ("pending", "running") for i in items):
                return items
            if (pause is not None) != seen_paused:
                seen_paused = pause is not None
                if on_pause is not None:
                    on_pause(seen_paused)
            changed = self.tick()
            if changed is not None and on_event is not None:
                on_event(changed)
            if self.waiting_for != seen_wait:
                seen_wait = self.waiting_for
                if seen_wait is not None and on_wait is not None:
                    on_wait(seen_wait)
            if changed is not None and changed.status != "running":
                continue  # settled one: start the next without waiting
            time.sleep(poll_s)


def enqueue(cfg, settings: Any = None, label: str = "", config_path: str | Path | None = None,
            state_dir: str | Path | None = None, overwrite: bool = False) -> QueueItem:
    """Queue a snapshot of ``cfg`` (a ``TrainingConfig``; later edits do not change the queued run). The label
    defaults to the config's ``output_name``; ``overwrite``: as ``Queue.add`` (the caller asked the user).
    Returns the new item."""
    from lora_tui.config.kohya_json import config_to_dict

    queue = Queue(settings, state_dir)
    return queue.add(config_to_dict(cfg), config_path=config_path,
                     label=label or str(getattr(cfg, "output_name", "") or ""), overwrite=overwrite)


def launch_item(item: QueueItem, settings: Any = None, state_dir: str | Path | None = None) -> Job:
    """Start a queued item as Start would: config snapshot (or file) → plan → launch files → job. Each item gets
    its own TOML/JSON, written at its own start time. Raises ``ValueError`` when the plan has errors."""
    from lora_tui.run.launching import launch_config, load_config_for_run

    if item.config is not None:
        from lora_tui.config.kohya_json import config_from_dict

        cfg = config_from_dict(item.config).config
    else:
        cfg = load_config_for_run(item.config_path)
    return launch_config(cfg, settings=settings, state_dir=state_dir,
                         meta={"queue_item": item.id, "label": item.label})
