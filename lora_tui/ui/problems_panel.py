"""`ProblemsPanel`: the side panel with the step preview line and the list of problems. It draws what it is given
(`show`) and says which problem the user picked (`ProblemsPanel.ProblemChosen`); what the problems are comes from
the app (refused values, then the Planner's plan and preflight findings).
"""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from lora_tui.ui.fields import field_spec


class ProblemsPanel(Vertical):
    """The step preview line (`#plan-summary`) and the list of problems (`#problems`); Enter on a problem posts
    `ProblemChosen` (the app focuses its field).

    Under 30 rows (screen class `-short`, 80x24 over SSH) the list is folded to nothing while it does not have the
    focus: every error already shows under its field, so the panel says what the problems mean for F5 in one line
    (`#problems-summary`) and lists them when focused (Tab, or a refused Start). app.tcss holds the rules.

    Bindings: none of its own (the list's cursor keys and Enter). Messages posted: `ProblemChosen`.
    """

    class ProblemChosen(Message):
        """Enter (or a click) on a problem of the list: `problem` is the plan-layer `Problem` picked."""

        def __init__(self, problem: Any) -> None:
            super().__init__()
            self.problem = problem

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: list[Any] = []  # the problems listed, in order (an option's id is its index here)

    def compose(self) -> ComposeResult:
        yield Label("Steps", classes="panel-title")
        yield Static("…", id="plan-summary")
        yield Label("Problems", classes="panel-title", id="problems-title")
        yield Static("", id="problems-summary")
        yield OptionList(id="problems")

    # Class `-listing` while the list has the focus: a `:focus-within` rule on a sibling of the focused list is
    # not re-applied when the focus moves (Textual 8.2.8 re-styles only the focused widget's ancestors' subtrees
    # that carry such a rule themselves).
    def on_descendant_focus(self) -> None:
        self.add_class("-listing")

    def on_descendant_blur(self) -> None:
        self.remove_class("-listing")

    def show_steps(self, text: str | Content, error: bool = False) -> None:
        """Set the step preview line: plain text (it holds folder names, never markup), red when `error`."""
        summary = self.query_one("#plan-summary", Static)
        if isinstance(text, Content):
            summary.update(text)
        else:
            summary.update(Content.styled(text, "red") if error else Content(text))

    def show(self, problems: list[Any]) -> None:
        """List `problems` (plan-layer `Problem`s, in the order given), keep the highlighted row where it was, and
        set the title's counts and the one-line summary shown instead of the list on short screens."""
        panel = self.query_one("#problems", OptionList)
        highlighted = panel.highlighted
        panel.clear_options()
        self._shown = list(problems)
        if problems:
            opts = []
            for i, p in enumerate(problems):
                mark = ("✖", "red") if p.severity == "error" else ("⚠", "yellow")
                label = field_spec(p.field).label if is_field(p.field) else (p.field or "config")
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

    def focus_list(self) -> None:
        """Focus the list on its first problem (a refused Start shows the user what to fix)."""
        panel = self.query_one("#problems", OptionList)
        panel.focus()
        if panel.option_count:
            panel.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id != "problems":
            return
        event.stop()
        if event.option.id in (None, "none"):
            return
        self.post_message(self.ProblemChosen(self._shown[int(event.option.id)]))


def is_field(name: str | None) -> bool:
    """Whether `name` is a `TrainingConfig` field (a problem can also be about the config as a whole)."""
    if not name:
        return False
    from lora_tui.config.model import TrainingConfig

    return name in TrainingConfig.model_fields
