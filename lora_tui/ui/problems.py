"""The plan and the problems panel: the debounced re-plan in a thread worker, its result (`PlanReady`), the
`#problems` list and the inline field messages, and jumping from a problem to its field. Mixed into `LoraApp`
(`PlanAndProblems`); the plan state (`plan`, `plan_problems`, `_plan_gen`, ...) is set up in `LoraApp.__init__`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from lora_tui.ui.fields import FieldRow, field_spec
from lora_tui.ui.forms import AdvancedForm, MinimalForm, section_of

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


class PlanAndProblems:
    """Steps and problems come from `lora_tui.plan.make_plan`, run in a thread `PLAN_DEBOUNCE_S` after the last edit
    (one scan at a time; a newer config re-plans once the running scan ends); refused values are listed before the
    plan's problems.

    Messages handled: `PlanReady` (posted by `_plan_worker`), `OptionList.OptionSelected` from `#problems` (Enter on
    a problem focuses its field). Bindings: none (Start re-plans itself, see `StartFlow`).
    """

    def schedule_plan(self, delay: float = PLAN_DEBOUNCE_S) -> None:
        """Re-plan after `delay` seconds of no further edits (the scan runs in a thread)."""
        self._plan_gen += 1
        if self._plan_timer is not None:
            self._plan_timer.stop()
        self._plan_timer = self.set_timer(delay, self._launch_plan) if delay > 0 else None
        if delay <= 0:
            self._launch_plan()

    def _launch_plan(self) -> None:
        self._plan_timer = None
        if self._plan_running:
            # A thread cannot be cancelled: let the running scan finish, then plan once more for the latest
            # config (typing during a 50,000-image scan must not pile up scans).
            self._plan_dirty = True
            return
        self._plan_running = True
        self._plan_worker(self.config, self._plan_gen)

    @work(thread=True, group="plan", exit_on_error=False)
    def _plan_worker(self, cfg: TrainingConfig, gen: int) -> None:
        from lora_tui.plan import make_plan

        try:
            plan = make_plan(cfg, self.settings)
        except Exception as exc:  # a plan bug must not take the form down; it is shown instead
            self.post_message(PlanReady(gen, error=exc))
            return
        self.post_message(PlanReady(gen, plan=plan))

    def on_plan_ready(self, message: PlanReady) -> None:
        self._plan_running = False
        if self.widgets_gone():
            return
        if self._plan_dirty:
            self._plan_dirty = False
            self._launch_plan()
        if message.gen != self._plan_gen:
            return  # the config changed again since; a newer plan is on its way
        if message.error is not None:
            from lora_tui.config.shown import clip
            from lora_tui.plan.problems import Problem

            text = f"planning failed: {clip(repr(message.error), 300)}"
            self._plan_failure = text  # the steps panel says so (`_refresh_summary`) until a plan succeeds
            # Never "no problems" (nor an older plan's list) while the settings could not be checked: an error
            # in the panel, so F5 is refused as well until an edit plans again.
            self.plan_problems = [Problem("", "error", f"{text}; the settings could not be checked: report this, "
                                                       f"and check the values you changed last")]
            self._refresh_problems()
            return
        self.apply_plan(message.plan)

    def apply_plan(self, plan: Any, preflight: Any = None) -> None:
        """Show `plan`'s step summary and problems, with the trainer's preflight findings for this config: those of
        `preflight` (a `PreflightResult`), else a cached answer; without one (and no error in the plan) the
        preflight is scheduled for when the config has settled (`PREFLIGHT_SETTLE_S`)."""
        self.plan = plan
        self._plan_failure = None
        self.plan_problems = list(plan.problems)
        if self._preflight_timer is not None:
            self._preflight_timer.stop()
            self._preflight_timer = None
        if preflight is None and not self.field_errors and not plan.errors and self.settings is not None:
            from lora_tui.run.preflight import cached_preflight

            preflight = cached_preflight(self.config, self.settings)
            if preflight is None:
                gen = self._plan_gen
                self._preflight_timer = self.set_timer(PREFLIGHT_SETTLE_S, lambda: self._launch_preflight(gen))
        if preflight is not None:
            self.merge_preflight(preflight)
        self._refresh_messages()
        self._refresh_problems()

    def merge_preflight(self, result: Any) -> None:
        """Add the findings of a preflight `result` to the plan's problems (each once; the caller refreshes)."""
        seen = {(p.field, p.message) for p in self.plan_problems}
        self.plan_problems += [p for p in result.problems if (p.field, p.message) not in seen]
        self.preflight_notes = list(result.notes)

    def _launch_preflight(self, gen: int) -> None:
        self._preflight_timer = None
        if gen != self._plan_gen or self.widgets_gone():
            return
        if self._preflight_running:
            # One trainer process at a time: the config settled again while one runs; check it when that ends.
            self._preflight_again = True
            return
        self._preflight_running = True
        self._preflight_worker(self.config, gen)

    @work(thread=True, group="preflight", exit_on_error=False)
    def _preflight_worker(self, cfg: TrainingConfig, gen: int) -> None:
        from lora_tui.run.preflight import PreflightCancelled, PreflightResult, preflight

        import threading

        self._preflight_thread = threading.get_ident()
        try:
            result = preflight(cfg, self.settings)
        except PreflightCancelled:
            return  # the app is closing
        except Exception as exc:  # a bug here must not take the form down; Start checks again
            result = PreflightResult(notes=[f"the trainer's preflight could not run: {exc!r}"])
        self.post_message(PreflightReady(gen, result))

    def on_preflight_ready(self, message: PreflightReady) -> None:
        self._preflight_running = False
        if self.widgets_gone():
            return
        if message.gen != self._plan_gen:
            # The config changed since: check the settled one now, unless its plan has errors or a check waits.
            again, self._preflight_again = self._preflight_again, False
            if again and self._preflight_timer is None and self.plan is not None and not self.plan.errors \
                    and not self.field_errors:
                self._launch_preflight(self._plan_gen)
            return
        self._preflight_again = False
        self.merge_preflight(message.result)
        self._refresh_messages()
        self._refresh_problems()

    def _refresh_summary(self) -> None:
        # The steps are the plan's of the last valid config: while a field holds a refused value ("two" in
        # Epochs) they would be the old value's, shown as if current. Say which value stops the count instead.
        if self.field_errors:
            refused = [f"{field_spec(name).label} “{raw}”" for name, (raw, _) in self.field_errors.items()]
            self.query_one("#plan-summary", Static).update(Content.styled(
                f"Steps not counted: {', '.join(refused)} {'is' if len(refused) == 1 else 'are'} not valid "
                f"(see the field).", "red"))
            return
        failure = getattr(self, "_plan_failure", None)
        if failure:
            self.query_one("#plan-summary", Static).update(Content.styled(failure, "red"))
            return
        if self.plan is None:
            self.query_one("#plan-summary", Static).update("…")
            return
        steps = getattr(self.plan, "steps", None)
        summary = getattr(steps, "summary", "") if steps is not None else ""
        # The plan's notes say why the length is not what a form shows (max_train_epochs from a loaded file while
        # the Minimal form shows Epochs, a step count that overrides the epochs, ...).
        notes = list(getattr(steps, "notes", None) or [])
        text = "\n".join([summary or "(no step plan)"] + [f"· {n}" for n in notes])
        self.query_one("#plan-summary", Static).update(Content(text))  # holds folder names

    def all_problems(self) -> list[Any]:
        """Refused values first, then the plan's problems (errors before warnings, in the plan's order)."""
        mine = []
        if self.field_errors:
            from lora_tui.plan.problems import Problem  # the plan package is imported off the start path

            mine = [Problem(name, "error", msg) for name, (_, msg) in self.field_errors.items()]
        rest = [p for p in self.plan_problems if p.field not in self.field_errors]
        rest.sort(key=lambda p: p.severity != "error")
        return mine + rest

    def _refresh_problems(self) -> None:
        self._refresh_summary()
        problems = self.all_problems()
        panel = self.query_one("#problems", OptionList)
        highlighted = panel.highlighted
        panel.clear_options()
        self._shown_problems = problems
        if problems:
            opts = []
            for i, p in enumerate(problems):
                mark = ("✖", "red") if p.severity == "error" else ("⚠", "yellow")
                label = field_spec(p.field).label if _is_field(p.field) else (p.field or "config")
                # Content, not markup: messages quote paths and values ("[x=1" would not parse as markup)
                opts.append(Option(Content.assemble(mark, " ", (label, "bold"), f": {p.message}"), id=str(i)))
            panel.add_options(opts)
            if highlighted is not None:
                panel.highlighted = min(highlighted, len(opts) - 1)
        else:
            panel.add_option(Option("[green]✔[/] no problems", id="none", disabled=True))
        errors = sum(p.severity == "error" for p in problems)
        warnings = len(problems) - errors
        counts = [f"{n} {word}{'s' * (n != 1)}" for n, word in ((errors, "error"), (warnings, "warning")) if n]
        self.query_one("#problems-title", Static).update(" · ".join(["Problems", *counts]) if counts
                                                          else "Problems · none")
        # Shown instead of the list on short screens (app.tcss `Screen.-short`): the fields carry the messages.
        if errors:
            summary = "[red]✖[/] F5 is refused until they are fixed. Tab to this panel for the list."
        elif warnings:
            summary = "[yellow]⚠[/] F5 still starts. Tab to this panel for the list."
        else:
            summary = "[green]✔[/] F5 starts training."
        self.query_one("#problems-summary", Static).update(summary)

    def _refresh_messages(self) -> None:
        for row in self.query(FieldRow):
            row.show_message(*self.message_for(row.spec.name))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id != "problems" or event.option.id in (None, "none"):
            return
        event.stop()
        problem = self._shown_problems[int(event.option.id)]
        if _is_field(problem.field):
            self.run_worker(self.focus_field(problem.field), group="focus-field", exclusive=True)
        else:
            self.notify(problem.message, title=problem.field or "config", severity="warning")

    async def focus_field(self, name: str) -> None:
        """Bring field `name` on screen (Minimal form if it is there, else its Advanced section) and focus it."""
        in_minimal = name in self.query_one(MinimalForm).shown_fields()
        if self.view == "minimal" and in_minimal:
            pass
        elif self.view == "advanced" and self.query_one_optional(f"#f-{name}") is not None:
            pass
        else:
            target_view = "minimal" if in_minimal else "advanced"
            await self.show_view(target_view)
            if target_view == "advanced":
                await self.query_one(AdvancedForm).show_section(section_of(name))
        widget = self.query_one_optional(f"#f-{name}")
        if widget is None:
            self.notify(f"{field_spec(name).label} ({name}) is not used by {self.family_label()}.",
                        severity="warning")
            return
        widget.focus()
        widget.scroll_visible(animate=False)


def _is_field(name: str | None) -> bool:
    if not name:
        return False
    from lora_tui.config.model import TrainingConfig

    return name in TrainingConfig.model_fields
