"""The followed job: attaching to it, what the app shows when it ends, Stop with its SIGINT → SIGTERM → SIGKILL
escalation, and quitting while it runs. Mixed into `LoraApp` (`JobControl`), which owns the followed job's state (`job`,
`last_exit`, `last_outcome`, `stop_presses`, `last_stop_message`, `quit_outcome`; `job_running` is the app's
reactive, set here).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


from lora_tui.ui.runview import RunView

TERM_GRACE_S = 5.0  # SIGTERM → SIGKILL, as `Job.stop` does


class JobControl:
    """A job is followed by the Run view (`RunView.follow`); the app keeps the job and whether it still runs
    (`job_running`, which drives Stop's visibility) and never ends it on quit unless asked (`#quit-dialog`).

    Bindings served: F9 / ctrl+t (`action_stop`), ctrl+q (`action_quit`). Messages handled: `RunView.Ended`.
    """

    # The followed job's state: written here only (tests/ui/test_ownership.py); read by the title and tests.
    job: Any = None  # the run-layer `Job` followed (the last one, after it ended)
    last_exit: int | None = None  # its exit code once ended
    last_outcome = ""  # the title's word for how the followed job ended ("stopped · saved x"), "" = as exit
    stop_presses = 0  # F9 presses for the followed job
    last_stop_message = ""  # what the last Stop said (the Run view's status line)
    quit_outcome = ""  # quit → "stop it": how the job ended, for the shell (`left_running_note`)
    _exit_after_job = False  # quit → "stop it" was chosen: exit when the job has ended
    _escalation_timer: Any = None  # SIGINT → SIGTERM → SIGKILL, armed by a Stop

    def attach(self, job: Any, show: bool = True) -> None:
        """Follow `job` (a run-layer `Job` or a job id) in the Run view: log so far, then live output. With `show`
        the Run view is shown; without, the view stays (a job noticed in the background must not take the
        form from under the user's typing)."""
        if isinstance(job, str):
            from lora_tui.run.jobs import load_job

            job = load_job(job, self.settings)
        self.job = job
        self.last_exit = None
        self.last_outcome = ""
        self.stop_presses = 0
        self._cancel_escalation()
        self.job_running = True
        pid = job.state.get("child_pid") or job.state.get("pid") or "?"
        name = str((job.state.get("meta") or {}).get("output_name") or "").strip()  # which run this is, at a glance
        output = f" · output {name}" if name else ""
        self.query_one(RunView).follow(job, f"Job {job.id} running{output} · pid {pid} · log {job.log_path}")
        if show:
            self.run_worker(self.show_view("run"), group="view")
        self.refresh_title()

    def on_run_view_ended(self, message: RunView.Ended) -> None:
        message.stop()
        if self.widgets_gone():  # the app is closing; the supervisor has recorded the end
            return
        from lora_tui.run.progress import exit_hint, step_save_note, stop_outcome

        job, exit_code = message.job, message.exit_code
        self._cancel_escalation()
        prog = self.query_one(RunView).progress
        stopped = self.stop_presses > 0 or bool(job.stop_signals)
        hint = exit_hint(exit_code, prog.exception if prog else None, stopped, launcher=job.under_launcher)
        self.last_exit = exit_code
        self.last_outcome = ""
        self.job_running = False
        # A stopped job is not a failure (its KeyboardInterrupt traceback is expected): no failure box, and the
        # status says what the Stop left behind rather than what a trainer might do.
        bad = not stopped and message.status not in ("done", "stopped") and exit_code != 0
        code = "unknown" if exit_code is None else str(exit_code)
        status = f" ({message.status})" if message.status else ""
        if stopped and exit_code != 0:
            how = f" ({message.status})" if message.status not in (None, "stopped") else ""  # e.g. killed
            signal_note = "" if hint.startswith("interrupted") else f" · {hint}"  # SIGTERM / SIGKILL say so
            outcome = stop_outcome(prog)
            headline = (f"Job {job.id} stopped{how} · {outcome}{step_save_note(outcome)} · exit code {code}"
                        f"{signal_note}")
        else:
            # what the trainer confirmed it saved (and is there), or the save that failed, naming the path
            outcome = stop_outcome(prog)
            saved = f" · {outcome}" if outcome.startswith(("saved ", "saving ")) else ""
            headline = f"Job {job.id} ended{status} · exit code {code} · {hint}{saved}"
        if stopped and message.status in ("stopped", "killed"):
            # The exit code of a Stop says how the launcher passed the interrupt on (accelerate turns the ranks'
            # 130 into 1): the title says what the user asked for and what it left, not a failure's "exit 1".
            outcome = stop_outcome(prog)
            if outcome.startswith("saved "):
                outcome = "saved " + Path(outcome.removeprefix("saved ")).name
            self.last_outcome = f"{message.status} · {outcome}"
        self.query_one(RunView).show_end(headline, bad)
        self.refresh_title()
        # The run may have written the LoRA the form names: re-plan now, so the overwrite risk (and anything else
        # the run changed on disk) shows at once, not after the next edit.
        self.schedule_plan(0)
        self.notify(headline, severity="error" if bad else "information", timeout=10)
        if self._exit_after_job:
            self.quit_outcome = headline
            self.exit()

    # ------------------------------------------------------------------ Stop
    def action_stop(self) -> None:
        """F9 / ctrl+t: first press SIGINT to the job's process group (the trainer saves and exits); a second
        press, or no exit within the grace time (`AppSettings.stop_grace_s`), SIGTERM and then SIGKILL.
        The first press also pauses the queue when items wait in it (`Queue.pause_for_stop`): whoever stops a
        run most likely wants to fix something before the next starts; p on the Run view resumes it."""
        if not self.job_running or self.job is None:
            return
        self.stop_presses += 1
        self._send_stop(manual=True, pause_queue=self.stop_presses == 1)

    def _pause_queue_for_stop(self) -> tuple[int, bool]:
        # Before the signal: the job may end at once, and the queue tick must not start the next item first.
        # Returns (items waiting, whether this call paused the queue).
        from lora_tui.run.queue import Queue

        try:
            queue = Queue(settings=self.settings)
            was_paused = queue.paused
            waiting = queue.pause_for_stop()
        except Exception as exc:  # a broken queue file must not keep Stop from stopping
            self.notify(f"Queue: {exc}", severity="error", timeout=10)
            return 0, False
        return waiting, bool(waiting) and not was_paused

    def _send_stop(self, manual: bool, pause_queue: bool = False) -> None:
        job = self.job
        if job is None or not self.job_running:
            return
        waiting, paused_now = self._pause_queue_for_stop() if pause_queue else (0, False)
        try:
            sent = job.request_stop()
        except Exception as exc:
            self.notify(f"Stop failed: {exc}", severity="error", timeout=10)
            sent = None
        if sent is None:  # it ended meanwhile (the follower reports the exit) or could not be stopped
            if paused_now:
                self._resume_queue_quietly()
            return
        if waiting:
            self.show_queue_paused()
        grace = float(getattr(self.settings, "stop_grace_s", 60.0) or 60.0)
        why = "" if manual else " (no exit within the grace time)"
        queue_note = (f" The queue is paused ({waiting} waiting): p on the Run view resumes it."
                      if waiting else "")  # also when it was paused before: the user learns why nothing starts
        if sent == "SIGINT":
            text = (f"Stop: SIGINT sent to the process group; the trainer saves and exits. Press F9 again to "
                    f"force (SIGTERM, then SIGKILL); automatic after {grace:g} s.")
            self._arm_escalation(grace)
        elif sent == "SIGTERM":
            text = f"Stop escalated{why}: SIGTERM sent to the process group; SIGKILL in {TERM_GRACE_S:g} s."
            self._arm_escalation(TERM_GRACE_S)
        else:
            text = f"Stop escalated{why}: SIGKILL sent to every process of the job."
            self._cancel_escalation()
        text += queue_note
        self.last_stop_message = text
        self.query_one(RunView).set_status(text)
        self.notify(text, title="Stop", severity="warning" if sent != "SIGINT" else "information", timeout=6)

    def _resume_queue_quietly(self) -> None:
        from lora_tui.run.queue import Queue

        try:
            Queue(settings=self.settings).resume()
        except Exception as exc:
            self.notify(f"Queue: {exc}", severity="error", timeout=10)

    def _arm_escalation(self, delay: float) -> None:
        self._cancel_escalation()
        self._escalation_timer = self.set_timer(delay, lambda: self._send_stop(manual=False))

    def _cancel_escalation(self) -> None:
        timer = getattr(self, "_escalation_timer", None)
        if timer is not None:
            timer.stop()
        self._escalation_timer = None

    async def action_quit(self) -> None:
        """ctrl+q: quit; while a job runs ask whether to stop it, leave it running, or stay; with unsaved edits
        (`modified`) and no job, ask whether to discard them (`#quit-unsaved-dialog`, Cancel by default)."""
        from lora_tui.ui.dialogs import ChoiceDialog

        if not self.job_running:
            if not self.modified:
                self.exit()
                return

            def discard(choice: str | None) -> None:
                if choice == "quit":
                    self.exit()

            self.push_screen(ChoiceDialog(
                f"The form has unsaved edits ({self.source} · modified). Quit and discard them? "
                f"(ctrl+s saves them first)",
                [("quit", "Quit and discard edits"), ("cancel", "Cancel")],
                dialog_id="quit-unsaved-dialog", default="cancel"), discard)  # a stray Enter must not lose edits
            return

        def chosen(choice: str | None) -> None:
            if choice == "detach":
                self.exit()
            elif choice == "stop":
                self._exit_after_job = True
                self.action_stop()
                self.notify("Stopping; the app closes when the trainer has ended. ctrl+q again to detach.")

        if self._exit_after_job:
            self.exit()  # second ctrl+q while waiting for the stop: leave now, the job is detached
            return
        self.push_screen(ChoiceDialog(
            f"Job {self.job.id} is running. Quit and stop it (the trainer saves first), or leave it running "
            f"(`lora-tui attach` comes back to it)?"
            + (" The form's unsaved edits are discarded either way (Cancel, then ctrl+s, keeps them)."
               if self.modified else ""),
            [("stop", "Stop it"), ("detach", "Leave it running (detach)"), ("cancel", "Cancel")],
            dialog_id="quit-dialog", default="cancel"), chosen)  # a stray Enter must not end a training run
