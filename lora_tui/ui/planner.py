"""The plan state's one owner: `Planner` holds the current plan and its problems, the config generation they belong
to, the debounce timer, and the thread workers that make a plan (`lora_tui.plan.make_plan`) and run the trainer's
preflight once the config has settled (`lora_tui.run.preflight.preflight`). Each worker posts a message to the app
when its answer is ready (`PlanReady`, `PreflightReady`); the app hands it back (`Planner.plan_ready`,
`Planner.preflight_ready`) and redraws the problems panel and field messages when the answer is current.

The Planner draws nothing: the app reads `plan`, `problems`, `failure` and `preflight_notes`.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig

PLAN_DEBOUNCE_S = 0.25
#: The trainer's preflight (a process, about a second or two) runs once the config has settled this long after
#: an error-free plan, never per keystroke; Start runs it always (cached).
PREFLIGHT_SETTLE_S = 1.5


class PlanReady(Message):
    """A plan computed in a thread worker for config generation `gen` (or the exception it raised)."""

    def __init__(self, gen: int, plan: Any = None, error: BaseException | None = None) -> None:
        super().__init__()
        self.gen = gen
        self.plan = plan
        self.error = error


class PreflightReady(Message):
    """The trainer's preflight answer (`run.preflight.PreflightResult`) for config generation `gen`."""

    def __init__(self, gen: int, result: Any) -> None:
        super().__init__()
        self.gen = gen
        self.result = result


class Planner:
    """Plans the app's config in a thread `PLAN_DEBOUNCE_S` after the last edit: one scan at a time (a thread
    cannot be cancelled), and a newer config re-plans once the running scan ends. After an error-free plan with no
    cached preflight answer, the trainer's preflight runs `PREFLIGHT_SETTLE_S` later, one process at a time.

    Args:
        app: the `LoraApp` it plans for: its `config`, `settings` and `field_errors` are read when a plan or
            preflight starts; its timers and workers run them; `PlanReady` / `PreflightReady` are posted to it.

    Attributes (read them; the Planner alone writes them):
        plan: the last current plan (`lora_tui.plan.Plan`), None before the first.
        problems: the plan's problems plus the preflight's findings for the same config (each once).
        failure: "planning failed: ..." while the last plan raised, else None.
        preflight_notes: what the last preflight said besides problems (skipped, an upstream trainer, ...).
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self.plan: Any = None
        self.problems: list[Any] = []
        self.failure: str | None = None
        self.preflight_notes: list[str] = []
        self._gen = 0
        self._timer: Any = None
        self._running = False
        self._dirty = False
        self._preflight_timer: Any = None
        self._preflight_running = False
        self._preflight_again = False
        self._preflight_thread: int | None = None  # the settle check's worker thread (to end its process on exit)

    @property
    def gen(self) -> int:
        """The config generation: raised by every edit (`schedule`) and by Start (`next_gen`)."""
        return self._gen

    @property
    def preflight_running(self) -> bool:
        """A settle preflight (a trainer process) is running now."""
        return self._preflight_running

    def is_current(self, gen: int) -> bool:
        """Whether an answer made for generation `gen` is still for the config the form holds."""
        return gen == self._gen

    def next_gen(self) -> int:
        """A new generation for a plan made outside the Planner (Start plans itself): answers still on their way
        for the config before are then dropped. Returns it."""
        self._gen += 1
        return self._gen

    def schedule(self, delay: float = PLAN_DEBOUNCE_S) -> None:
        """Re-plan after `delay` seconds of no further edits (at once when `delay` <= 0)."""
        self._gen += 1
        if self._timer is not None:
            self._timer.stop()
        self._timer = self._app.set_timer(delay, self.launch) if delay > 0 else None
        if delay <= 0:
            self.launch()

    def launch(self) -> None:
        """Plan the app's config now in a thread, or once the running scan ends."""
        self._timer = None
        if self._running:
            # A thread cannot be cancelled: let the running scan finish, then plan once more for the latest
            # config (typing during a 50,000-image scan must not pile up scans).
            self._dirty = True
            return
        self._running = True
        cfg, gen = self._app.config, self._gen
        self._app.run_worker(lambda: self._plan_in_thread(cfg, gen), thread=True, group="plan",
                             exit_on_error=False)

    def _plan_in_thread(self, cfg: TrainingConfig, gen: int) -> None:
        from lora_tui.plan import make_plan

        try:
            plan = make_plan(cfg, self._app.settings)
        except Exception as exc:  # a plan bug must not take the form down; it is shown instead
            self._app.post_message(PlanReady(gen, error=exc))
            return
        self._app.post_message(PlanReady(gen, plan=plan))

    def plan_ready(self, message: PlanReady) -> bool:
        """Take a worker's answer: re-plan when the config changed while it ran. Returns True when the answer is
        current and was applied (the caller redraws), False when it was dropped."""
        self._running = False
        if self._app.widgets_gone():
            return False
        if self._dirty:
            self._dirty = False
            self.launch()
        if not self.is_current(message.gen):
            return False  # the config changed again since; a newer plan is on its way
        if message.error is not None:
            from lora_tui.config.shown import clip
            from lora_tui.plan.problems import Problem

            text = f"planning failed: {clip(repr(message.error), 300)}"
            self.failure = text  # the steps line says so until a plan succeeds
            # Never "no problems" (nor an older plan's list) while the settings could not be checked: an error
            # in the panel, so F5 is refused as well until an edit plans again.
            self.problems = [Problem("", "error", f"{text}; the settings could not be checked: report this, "
                                                  f"and check the values you changed last")]
            return True
        self.apply(message.plan)
        return True

    def apply(self, plan: Any, preflight: Any = None) -> None:
        """Make `plan` the current one, with the trainer's preflight findings for this config: those of `preflight`
        (a `PreflightResult`), else a cached answer; without one (and no error in the plan or the form) the
        preflight is scheduled for when the config has settled (`PREFLIGHT_SETTLE_S`)."""
        app = self._app
        self.plan = plan
        self.failure = None
        self.problems = list(plan.problems)
        if self._preflight_timer is not None:
            self._preflight_timer.stop()
            self._preflight_timer = None
        if preflight is None and not app.field_errors and not plan.errors and app.settings is not None:
            from lora_tui.run.preflight import cached_preflight

            preflight = cached_preflight(app.config, app.settings)
            if preflight is None:
                gen = self._gen
                self._preflight_timer = app.set_timer(PREFLIGHT_SETTLE_S, lambda: self._launch_preflight(gen))
        if preflight is not None:
            self._merge_preflight(preflight)

    def set_problems(self, problems: list[Any]) -> None:
        """Replace the current problems (a launch that the run layer refused says why with its own list)."""
        self.problems = list(problems)

    def _merge_preflight(self, result: Any) -> None:
        # Add the findings of a preflight `result` to the plan's problems, each once.
        seen = {(p.field, p.message) for p in self.problems}
        self.problems += [p for p in result.problems if (p.field, p.message) not in seen]
        self.preflight_notes = list(result.notes)

    def _launch_preflight(self, gen: int) -> None:
        self._preflight_timer = None
        if not self.is_current(gen) or self._app.widgets_gone():
            return
        if self._preflight_running:
            # One trainer process at a time: the config settled again while one runs; check it when that ends.
            self._preflight_again = True
            return
        self._preflight_running = True
        cfg = self._app.config
        self._app.run_worker(lambda: self._preflight_in_thread(cfg, gen), thread=True, group="preflight",
                             exit_on_error=False)

    def _preflight_in_thread(self, cfg: TrainingConfig, gen: int) -> None:
        from lora_tui.run.preflight import PreflightCancelled, PreflightResult, preflight

        self._preflight_thread = threading.get_ident()
        try:
            result = preflight(cfg, self._app.settings)
        except PreflightCancelled:
            return  # the app is closing
        except Exception as exc:  # a bug here must not take the form down; Start checks again
            result = PreflightResult(notes=[f"the trainer's preflight could not run: {exc!r}"])
        self._app.post_message(PreflightReady(gen, result))

    def preflight_ready(self, message: PreflightReady) -> bool:
        """Take a preflight answer. Returns True when it is for the current config and its findings joined
        `problems` (the caller redraws); when the config changed since, the settled one is checked now (unless
        its plan has errors or a check waits) and False is returned."""
        self._preflight_running = False
        if self._app.widgets_gone():
            return False
        if not self.is_current(message.gen):
            again, self._preflight_again = self._preflight_again, False
            if again and self._preflight_timer is None and self.plan is not None and not self.plan.errors \
                    and not self._app.field_errors:
                self._launch_preflight(self._gen)
            return False
        self._preflight_again = False
        self._merge_preflight(message.result)
        return True

    def cancel(self) -> None:
        """On the app's exit: end a running settle preflight's trainer process (it must not outlive the app)."""
        if self._preflight_running and self._preflight_thread is not None:
            from lora_tui.run.preflight import cancel_running

            cancel_running(self._preflight_thread)
