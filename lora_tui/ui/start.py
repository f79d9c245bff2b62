"""The Start flow: re-plan, refuse on errors (focus the problems panel), ask before overwriting an output LoRA,
offer the queue while a job runs, then launch through the run layer as `lora-tui train` does. Mixed into `LoraApp`
(`StartFlow`).
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from lora_tui.ui.problems_panel import ProblemsPanel

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig


class StartFlow:
    """One Start at a time (`_starting`); nothing is written or launched while the panel lists an error. A started
    job is followed with `JobControl.attach`; a queued config is picked up by `QueueActions`.

    Bindings served: F5 / ctrl+r (`action_start`). Dialogs: `#overwrite-dialog`, `#queue-dialog`,
    `#queued-output-dialog` (queueing a config whose output_dir/output_name a waiting item already has). Messages
    handled: none.
    """

    _starting = False  # a Start (or "Queue this config") is planning, asking or launching

    @property
    def starting(self) -> bool:
        """A Start (or "Queue this config") is under way: planning, asking or launching."""
        return self._starting

    def action_start(self) -> None:
        """F5 / ctrl+r."""
        if self._starting:
            return  # a press while the last one is still planning/launching must not launch twice
        self._starting = True
        self.run_worker(self._start_once(), group="start", exit_on_error=False)

    def action_queue_config(self) -> None:
        """Command palette "Queue this config": the checks of Start, then the config joins the queue instead of
        launching (it starts when the jobs and items before it are done, at once when nothing runs)."""
        if self._starting:
            return
        self._starting = True
        self.run_worker(self._start_once(queue_only=True), group="start", exit_on_error=False)

    async def _start_once(self, queue_only: bool = False) -> None:
        try:
            await self._start(queue_only)
        finally:
            self._starting = False

    async def _start(self, queue_only: bool = False) -> None:
        from lora_tui.plan import make_plan
        from lora_tui.plan.trainer_packages import forget_package_answers

        forget_package_answers()  # a trainer package (lycoris-lora) installed since the last check counts now
        cfg = self.config
        if not self.field_errors:
            gen = self.planner.next_gen()
            try:
                plan = await asyncio.to_thread(make_plan, cfg, self.settings)
            except Exception as exc:
                self.notify(f"Not started: planning failed: {exc!r}", severity="error", timeout=10)
                return
            errors = list(plan.errors)
            checked = None
            if not errors:
                # The trainer's own checks, always before a launch (a cached answer for this config is taken).
                from lora_tui.run.preflight import START_MAX_AGE_S, cached_preflight, preflight

                if await asyncio.to_thread(cached_preflight, cfg, self.settings, START_MAX_AGE_S) is None:
                    self.notify("Checking the config with the trainer…", timeout=3)
                checked = await asyncio.to_thread(preflight, cfg, self.settings, START_MAX_AGE_S)
                errors = list(checked.errors)
                if checked.notes and not checked.ran:
                    self.notify(checked.notes[0], timeout=6)  # an upstream trainer: its checks come at start-up
            if self.planner.is_current(gen):
                self.apply_plan(plan, preflight=checked)
        else:
            errors = []
        if self.field_errors or errors:
            # Count what the panel lists (refused values and the last plan's errors), so the two agree.
            await self._refuse(sum(1 for p in self.all_problems() if p.severity == "error"))
            return
        confirmed = await self._confirm_output(cfg)
        if confirmed is None:
            return
        cfg, overwrite = confirmed
        if queue_only:
            await self._enqueue(cfg, overwrite)
            return
        from lora_tui.run.launching import config_gpus
        from lora_tui.run.jobs import gpus_overlap, job_gpus, running_jobs

        # One training per GPU set: a job on other GPUs (gpu_ids 0, then 1, on a two-GPU box) goes on beside this
        # one; an empty gpu_ids means every GPU, which overlaps every job.
        gpus = await asyncio.to_thread(config_gpus, cfg, self.settings)
        followed_busy = self.job_running and self.job is not None and gpus_overlap(job_gpus(self.job), gpus)
        others = [] if followed_busy else await asyncio.to_thread(running_jobs, self.settings, None, gpus)
        if followed_busy or others:
            from lora_tui.ui.dialogs import ChoiceDialog

            busy = self.job if followed_busy else others[0]
            where = job_gpus(busy)
            on = f" on GPU {','.join(sorted(where))}" if where else ""
            # Two trainers never start on one GPU by accident: offer the queue instead.
            choice = await self.push_screen_wait(ChoiceDialog(
                f"Job {busy.id} is still running{on}. Queue this config to run after it?",
                [("queue", "Queue it"), ("cancel", "Cancel")], dialog_id="queue-dialog"))
            if choice == "queue":
                await self._enqueue(cfg, overwrite)
            return
        if not await self._no_waiting_item_writes(cfg):
            return
        await self._launch(cfg)

    async def _no_waiting_item_writes(self, cfg: TrainingConfig) -> bool:
        """Before a Start with nothing running: when a waiting queue item (a paused queue) writes the same LoRA,
        ask, since this run would write it first and that item would then be refused at its turn, or replace this
        run's LoRA if it was queued with overwrite. True: go on."""
        from lora_tui.run.queue import Queue, output_writers

        try:
            ahead = await asyncio.to_thread(output_writers, Queue(settings=self.settings), cfg)
        except Exception:  # noqa: BLE001 - an unreadable queue file must not block a Start; the queue says why
            return True
        if not ahead:
            return True
        from lora_tui.ui.dialogs import ChoiceDialog

        choice = await self.push_screen_wait(ChoiceDialog(
            f"{ahead[0][0].upper()}{ahead[0][1:]} writes the same LoRA ({cfg.output_dir}/{cfg.output_name}). "
            f"Start this run anyway (that item will then find the file at its turn), or cancel and change "
            f"output_name?", [("start", "Start anyway"), ("cancel", "Cancel")], dialog_id="waiting-output-dialog",
            default="cancel"))
        return choice == "start"

    async def _confirm_output(self, cfg: TrainingConfig) -> tuple[TrainingConfig, bool] | None:
        """Never overwrite a LoRA without asking: when `cfg`'s output file (or its epoch/step files) exists, ask
        Overwrite / Use a new name (the first free `<output_name>_N`, set in the field) / Cancel. Returns the
        config to launch or queue and whether the user chose Overwrite (a queued item keeps that answer: the queue
        refuses to replace an existing LoRA without it), or None (cancelled: nothing is launched)."""
        from lora_tui.plan.rules import existing_outputs, free_output_name
        from lora_tui.ui.dialogs import ChoiceDialog

        found = await asyncio.to_thread(existing_outputs, cfg)
        if not found:
            return cfg, False
        try:
            new_name = await asyncio.to_thread(free_output_name, cfg)
        except ValueError:
            new_name = None
        more = f" (and {len(found) - 1} more file{'s' * (len(found) != 2)} of that name)" if len(found) > 1 else ""
        choices = [("overwrite", "Overwrite")]
        if new_name:
            choices.append(("rename", f"Use “{new_name}”"))
        choices.append(("cancel", "Cancel"))
        # Enter on the dialog takes the new name: a stray key must not overwrite a finished LoRA.
        choice = await self.push_screen_wait(ChoiceDialog(
            f"{found[0]}{more} already exists: training would overwrite it. Overwrite, or train under a new "
            f"output name?", choices, dialog_id="overwrite-dialog", default="rename" if new_name else "cancel"))
        if choice == "overwrite":
            return cfg, True
        if choice == "rename" and new_name and self.apply_edit("output_name", new_name):
            self.notify(f"Output name set to “{new_name}”.", timeout=5)
            return self.config, False
        self.notify("Not started: the output file exists.", severity="warning", timeout=5)
        return None

    async def _refuse(self, count: int) -> None:
        if self.view == "run":
            await self.show_view("minimal")
        self.query_one(ProblemsPanel).focus_list()
        self.notify(f"Not started: {count} error{'s' * (count != 1)}. Enter on a problem jumps to its field.",
                    severity="error", timeout=8)

    async def _launch(self, cfg: TrainingConfig) -> None:
        # The same launch as `lora-tui train` (run.launching.launch_config): re-plan (the scan is cached), refuse on
        # errors, write the TOML and settings JSON (write_launch_files), start the supervised job.
        from lora_tui.run.launching import PlanRefused, launch_config

        try:
            job = await asyncio.to_thread(launch_config, cfg, self.settings)
        except PlanRefused as exc:  # the files changed since the check (a folder deleted meanwhile)
            self.show_refused_launch(exc.problems)
            await self._refuse(len(exc.problems))
            return
        except Exception as exc:  # a refused launch is reported, never shown as started (kohya_ss §8.6 bug 5)
            self.notify(f"Not started: {exc}", severity="error", timeout=12)
            return
        toml = Path(str((job.state.get("meta") or {}).get("config_toml", ""))).name
        self.notify(f"Started job {job.id}: {toml}", timeout=5)
        if self.job_running and self.job is not None and self.job.id != job.id:
            # a run on other GPUs: the one followed so far goes on, detached from this view
            self.notify(f"Job {self.job.id} goes on (other GPUs): `lora-tui attach {self.job.id}` follows it.",
                        timeout=10)
        self.attach(job)

    async def _enqueue(self, cfg: TrainingConfig, overwrite: bool = False) -> None:
        # `overwrite`: the answer of the overwrite dialog, kept with the item (the runner re-checks at its start).
        from lora_tui.config.kohya_json import config_to_dict
        from lora_tui.run.queue import Queue, output_writers

        queue = Queue(settings=self.settings)
        if not overwrite:
            # A file-free name can still be taken by a waiting item: this run would replace that item's LoRA.
            try:
                ahead = await asyncio.to_thread(output_writers, queue, cfg)
            except Exception as exc:
                self.notify(f"Not queued: {exc}", severity="error", timeout=10)
                return
            if ahead:
                from lora_tui.ui.dialogs import ChoiceDialog

                choice = await self.push_screen_wait(ChoiceDialog(
                    f"{ahead[0][0].upper()}{ahead[0][1:]} already trains to "
                    f"{cfg.output_dir}/{cfg.output_name}: this run would replace its LoRA. Queue it anyway, or "
                    f"cancel and change output_name?",
                    [("overwrite", "Queue anyway"), ("cancel", "Cancel")], dialog_id="queued-output-dialog",
                    default="cancel"))
                if choice != "overwrite":
                    self.notify(f"Not queued: {ahead[0]} writes the same LoRA.", severity="warning", timeout=5)
                    return
                overwrite = True
        try:
            item = await asyncio.to_thread(queue.add, config=config_to_dict(cfg),
                                           label=str(cfg.output_name or "config"), overwrite=overwrite)
            paused = await asyncio.to_thread(lambda: queue.paused)
        except Exception as exc:
            self.notify(f"Not queued: {exc}", severity="error", timeout=10)
            return
        if paused:
            when = "the queue is paused: p on the Run view resumes it"
        elif self.job_running:
            when = "it starts when the running job ends"
        else:  # the palette's "Queue this config" with nothing running: the next queue tick starts it
            when = "it starts in a moment (nothing is running)"
        self.notify(f"Queued “{item.label}”: {when}.", timeout=6)
        self.queue_tick()
