"""The job queue seen from the app: the periodic queue runner tick (starts the next item when no job runs and the
queue is not paused), and the Run view's queue list actions (remove, move, pause/resume). Mixed into `LoraApp`
(`QueueActions`), which owns the queue's state (`queue_launch`, `queue_items`, `queue_paused`).
"""
from __future__ import annotations

import asyncio
from typing import Any, Sequence

from textual import work
from textual.message import Message

from lora_tui.ui.runview import RunView

QUEUE_TICK_S = 1.0


class QueueTicked(Message):
    """The queue runner advanced (`changed`: the item it started or settled, or None), the queue's items (None:
    there is no queue file) and whether it is paused; `new_job`: the newest job that started since the previous
    tick and runs, other than one this tick launched (started by another process, or by this app's Start)."""

    def __init__(self, changed: Any, items: list[Any] | None, error: BaseException | None = None,
                 paused: bool = False, new_job: Any = None) -> None:
        super().__init__()
        self.changed = changed
        self.items = items
        self.error = error
        self.paused = paused
        self.new_job = new_job


class QueueActions:
    """The queue file lives in the state dir and is shared with `lora-tui queue` and other apps: every action reads
    it again and rewrites it atomically through `lora_tui.run.queue.Queue`; the runner tick runs in a thread every
    `QUEUE_TICK_S` (set up in `LoraApp.on_mount`).

    The queue's pause is kept in the queue file too (`Queue.pause`), so a pause from `lora-tui queue pause` shows
    here at the next tick and one from here holds back `lora-tui queue run`. `queue_paused` mirrors it.

    The same tick watches the state dir for jobs started elsewhere (`run.jobs.JobWatch`: `lora-tui train
    --detach`, `lora-tui queue run` in another shell): while the app follows no running job and no Start is
    under way, a new one is attached (log and progress; the view stays where the user is) with a notice. A job
    the app follows is never replaced.

    Messages handled: `QueueTicked` (posted by `_queue_worker`), `QueueList.RemoveRequested` (Delete/x on `#queue`),
    `QueueList.MoveRequested` (shift+up/down or K/J on `#queue`), `RunView.PauseRequested` (p anywhere on the Run
    view). Bindings served: none at app level (the Run view's and the queue list's own, see `runview.RunView` and
    `runview.QueueList`).
    """

    # The queue's state: written here only (tests/ui/test_ownership.py).
    #: How a queued item is started (tests may swap in their own); None: as Start would, via the run layer.
    queue_launch: Any = None
    queue_items: Sequence[Any] = ()  # the queue file's items, as of the last tick or queue action
    queue_paused = False  # the queue file's pause flag, as of the last tick or queue action
    _queue_busy = False  # a tick's worker is running
    _job_watch: Any = None  # run.jobs.JobWatch, made in the first tick's thread (it resolves the state dir)

    def queue_tick(self) -> None:
        """Run one queue runner tick in a thread now (unless one runs): start the next item when nothing runs."""
        if self._queue_busy:
            return
        self._queue_busy = True
        self._queue_worker()

    @work(thread=True, group="queue", exit_on_error=False)
    def _queue_worker(self) -> None:
        # A thread: starting an item plans it (a dataset scan) and writes its files; the job watch reads state
        # files and checks processes.
        from lora_tui.run.jobs import JobWatch, resolve_state_dir
        from lora_tui.run.queue import QUEUE_FILE, Queue, QueueRunner, launch_item

        changed = items = error = None
        paused = False
        try:
            if (resolve_state_dir(self.settings) / QUEUE_FILE).exists():
                launch = self.queue_launch or (lambda item: launch_item(item, settings=self.settings))
                runner = QueueRunner(Queue(settings=self.settings), launch=launch)
                changed = runner.tick()
                items, pause = runner.queue.snapshot()
                paused = pause is not None
        except Exception as exc:
            error = exc
        new_job = None
        try:
            if self._job_watch is None:
                self._job_watch = JobWatch(self.settings)
            launched = changed.job_id if changed is not None and changed.status == "running" else None
            new_job = next((job for job in self._job_watch.poll() if job.id != launched), None)
        except OSError:
            pass  # an unreadable state dir: `lora-tui jobs` says why; the queue and the forms work without it
        self.post_message(QueueTicked(changed, items, error=error, paused=paused, new_job=new_job))

    def on_queue_ticked(self, message: QueueTicked) -> None:
        self._queue_busy = False
        if message.error is not None:
            self.notify(f"Queue: {message.error}", severity="error", timeout=10)
        if self.widgets_gone():  # the queue file already holds the change
            return
        if message.items is not None:
            self.queue_items = message.items
            self.queue_paused = message.paused
            self.query_one(RunView).show_queue(message.items, message.paused)
        item = message.changed
        if item is not None and item.status == "running" and item.job_id and not self.job_running:
            from lora_tui.run.jobs import load_job

            self.notify(f"Queue: starting “{item.label}”", timeout=5)
            self.attach(load_job(item.job_id, self.settings))
        elif item is not None and item.status == "error":
            self.notify(f"Queue: “{item.label}” could not start: {item.message}", severity="error", timeout=10)
        self._follow_new_job(message.new_job)

    def _follow_new_job(self, job: Any) -> None:
        # Never over a job the app follows, nor over a Start under way (the job it launches shows up here first).
        if job is None or self.job_running or self.starting or (self.job is not None and self.job.id == job.id):
            return
        on_run = self.view == "run"
        self.notify(f"Job {job.id} started by another process: following it"
                    + ("." if on_run else " (F4 shows it)."), timeout=8)
        self.attach(job, show=on_run)

    def on_queue_list_remove_requested(self, message: Any) -> None:
        message.stop()
        self.run_worker(self.remove_queued(message.item_id), group="queue-remove")

    def on_queue_list_move_requested(self, message: Any) -> None:
        message.stop()
        self.run_worker(self.move_queued(message.item_id, message.delta), group="queue-move")

    def on_run_view_pause_requested(self, message: Any) -> None:
        message.stop()
        self.run_worker(self.toggle_queue_pause(), group="queue-pause")

    async def toggle_queue_pause(self) -> bool:
        """p on the Run view: pause the queue (no item starts, here or in `lora-tui queue run`,
        until it is resumed; a running item goes on) or, when paused, resume it. Written to the queue file
        atomically (`Queue.pause` / `Queue.resume`). Returns whether the queue is paused now."""
        from lora_tui.run.queue import Queue

        queue = Queue(settings=self.settings)
        try:
            if await asyncio.to_thread(lambda: queue.paused):
                await asyncio.to_thread(queue.resume)
            else:
                await asyncio.to_thread(queue.pause, "paused in the app")
            items, pause = await asyncio.to_thread(queue.snapshot)
        except Exception as exc:
            self.notify(f"Queue: {exc}", severity="error", timeout=10)
            return bool(self.queue_paused)
        self._show_queue(items, pause is not None)
        running = any(i.status == "running" for i in items)
        if pause is not None:
            self.notify("Queue paused: nothing more starts until you press p again (or `lora-tui queue resume`)"
                        + ("; the running item goes on (F9 stops it)." if running else "."), timeout=6)
        else:
            waiting = sum(i.status == "pending" for i in items)
            self.notify(f"Queue resumed: {waiting} waiting; the next starts when no job runs.", timeout=5)
            self.queue_tick()
        return pause is not None

    def show_queue_paused(self) -> None:
        """The queue was paused behind the app's back (Stop pauses it, `Queue.pause_for_stop`): show it so."""
        self._show_queue(self.queue_items, True)

    def _show_queue(self, items: Sequence[Any], paused: bool) -> None:
        self.queue_items = items
        self.queue_paused = paused
        self.query_one(RunView).show_queue(items, paused)

    async def move_queued(self, item_id: str, delta: int) -> bool:
        """Move queue item `item_id` `delta` places (negative = earlier; shift+up/down or K/J on the queue list),
        clamped to the list; the queue file is rewritten atomically (`Queue.move`). Returns whether its place
        changed."""
        from lora_tui.run.queue import Queue

        queue = Queue(settings=self.settings)
        try:
            before = [i.id for i in await asyncio.to_thread(queue.items)]
            await asyncio.to_thread(queue.move, item_id, delta)
            items, pause = await asyncio.to_thread(queue.snapshot)
        except Exception as exc:
            self.notify(f"Queue: {exc}", severity="error", timeout=10)
            return False
        self._show_queue(items, pause is not None)
        return [i.id for i in items] != before

    async def remove_queued(self, item_id: str) -> bool:
        """Remove queue item `item_id` (Delete/x on the Run view's queue list). A running item is not removed
        (the user is told to stop its job first). Returns whether it was removed."""
        from lora_tui.run.queue import Queue

        queue = Queue(settings=self.settings)
        try:
            try:
                item = await asyncio.to_thread(queue.get, item_id)
            except KeyError:
                item = None  # removed meanwhile (another app, `lora-tui queue`): just redraw
            removed = await asyncio.to_thread(queue.remove, item_id)
        except Exception as exc:
            self.notify(f"Queue: {exc}", severity="error", timeout=10)
            return False
        label = getattr(item, "label", "") or item_id
        if removed:
            self.notify(f"Removed “{label}” from the queue.", timeout=4)
        elif item is not None and item.status == "running":
            self.notify(f"“{label}” is running: stop it (F9) before removing it.", severity="warning", timeout=6)
        items, pause = await asyncio.to_thread(queue.snapshot)
        self._show_queue(items, pause is not None)
        return removed
