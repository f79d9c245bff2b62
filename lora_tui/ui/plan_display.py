"""The app's side of the plan: what edits ask of the `Planner` (`schedule_plan`), and how its answers are shown:
the `ProblemsPanel` (steps line and list), the inline field messages, and jumping from a problem to its field.
Mixed into `LoraApp` (`PlanDisplay`); the `Planner` (`app.planner`) owns the plan state.
"""
from __future__ import annotations

from typing import Any

from textual.content import Content

from lora_tui.ui.fields import FieldRow, field_spec
from lora_tui.ui.forms import AdvancedForm, MinimalForm, section_of
from lora_tui.ui.planner import PLAN_DEBOUNCE_S, PlanReady, PreflightReady
from lora_tui.ui.problems_panel import ProblemsPanel, is_field


class PlanDisplay:
    """Steps and problems come from the `Planner` (`self.planner`, made in `LoraApp.__init__`); refused values are
    listed before the plan's problems.

    Messages handled: `PlanReady` and `PreflightReady` (posted by the Planner's workers), `ProblemsPanel.
    ProblemChosen` (Enter on a problem focuses its field). Bindings: none (Start re-plans itself, see `StartFlow`).
    """

    @property
    def plan(self) -> Any:
        """The current plan (`Planner.plan`), None before the first."""
        return self.planner.plan

    @property
    def plan_problems(self) -> list[Any]:
        """The plan's problems with the trainer's preflight findings (`Planner.problems`)."""
        return self.planner.problems

    @property
    def preflight_notes(self) -> list[str]:
        """What the last trainer preflight said besides problems (`Planner.preflight_notes`)."""
        return self.planner.preflight_notes

    def schedule_plan(self, delay: float = PLAN_DEBOUNCE_S) -> None:
        """Re-plan after `delay` seconds of no further edits (the scan runs in a thread; see `Planner.schedule`)."""
        self.planner.schedule(delay)

    def on_plan_ready(self, message: PlanReady) -> None:
        if self.planner.plan_ready(message):
            if self.planner.failure is None:
                self.refresh_messages()
            self.refresh_problems()

    def on_preflight_ready(self, message: PreflightReady) -> None:
        if self.planner.preflight_ready(message):
            self.refresh_messages()
            self.refresh_problems()

    def apply_plan(self, plan: Any, preflight: Any = None) -> None:
        """Make `plan` current (`Planner.apply`, with `preflight`'s findings or a cached answer) and show it."""
        self.planner.apply(plan, preflight)
        self.refresh_messages()
        self.refresh_problems()

    def show_refused_launch(self, problems: list[Any]) -> None:
        """A launch the run layer refused (the files changed since the check): list its problems instead."""
        self.planner.set_problems(problems)
        self.refresh_messages()
        self.refresh_problems()

    def _steps_line(self) -> tuple[str | Content, bool]:
        # The steps are the plan's of the last valid config: while a field holds a refused value ("two" in
        # Epochs) they would be the old value's, shown as if current. Say which value stops the count instead.
        if self.field_errors:
            refused = [f"{field_spec(name).label} “{raw}”" for name, (raw, _) in self.field_errors.items()]
            return (f"Steps not counted: {', '.join(refused)} {'is' if len(refused) == 1 else 'are'} not valid "
                    f"(see the field)."), True
        if self.planner.failure:
            return self.planner.failure, True
        if self.plan is None:
            return "…", False
        steps = getattr(self.plan, "steps", None)
        summary = getattr(steps, "summary", "") if steps is not None else ""
        # The plan's notes say why the length is not what a form shows (max_train_epochs from a loaded file while
        # the Minimal form shows Epochs, a step count that overrides the epochs, ...).
        notes = list(getattr(steps, "notes", None) or [])
        return "\n".join([summary or "(no step plan)"] + [f"· {n}" for n in notes]), False

    def all_problems(self) -> list[Any]:
        """Refused values first, then the plan's problems (errors before warnings, in the plan's order)."""
        mine = []
        if self.field_errors:
            from lora_tui.plan.problems import Problem  # the plan package is imported off the start path

            mine = [Problem(name, "error", msg) for name, (_, msg) in self.field_errors.items()]
        rest = [p for p in self.plan_problems if p.field not in self.field_errors]
        rest.sort(key=lambda p: p.severity != "error")
        return mine + rest

    def refresh_problems(self) -> None:
        """Redraw the `ProblemsPanel`: the steps line and `all_problems()`."""
        panel = self.query_one(ProblemsPanel)
        panel.show_steps(*self._steps_line())
        panel.show(self.all_problems())

    def refresh_messages(self) -> None:
        """Redraw every shown field's inline message (`message_for`)."""
        for row in self.query(FieldRow):
            row.show_message(*self.message_for(row.spec.name))

    def on_problems_panel_problem_chosen(self, message: ProblemsPanel.ProblemChosen) -> None:
        problem = message.problem
        if is_field(problem.field):
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
