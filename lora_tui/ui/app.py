"""The lora-tui Textual app: Minimal and Advanced forms over one `TrainingConfig`, a validation panel with the
step preview, and the Run view that follows a job's log.

State rules (design.md, "The one invariant"):
- `LoraApp.config` is the only copy of the training settings. Every edit builds a new, validated model with
  `TrainingConfig.model_validate({**cfg.model_dump(), field: value})` (`model_copy(update=)` validates nothing).
  A value the model refuses stays in its field with the model's message, is listed as an error, and blocks Start.
- Widgets are views: rows are built from the model when shown and removed when hidden; programmatic updates
  (loading a preset) go through `FieldRow.show_value`, which suppresses the editors' `Changed` messages.
- The UI holds no training logic: steps and problems come from `lora_tui.plan`, files and argv from
  `lora_tui.plan.launch`, processes from `lora_tui.run`.
"""
from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import ContentSwitcher, Footer, OptionList, Static
from textual.widgets.option_list import Option

from lora_tui.ui.fields import FieldRow, field_spec, value_to_text
from lora_tui.ui.forms import AdvancedForm, MinimalForm, ProblemsPanel, section_of
from lora_tui.ui.runview import RunView

if TYPE_CHECKING:
    from textual.screen import Screen

    from lora_tui.config.model import TrainingConfig

PLAN_DEBOUNCE_S = 0.25
QUEUE_TICK_S = 1.0
TERM_GRACE_S = 5.0  # SIGTERM → SIGKILL, as `Job.stop` does
VIEWS = ("minimal", "advanced", "run")


class PlanReady(Message):
    """A plan computed in a thread worker for config generation `gen` (or the exception it raised)."""

    def __init__(self, gen: int, plan: Any = None, error: BaseException | None = None) -> None:
        super().__init__()
        self.gen = gen
        self.plan = plan
        self.error = error


class QueueTicked(Message):
    """The queue runner advanced (`changed`: the item it started or settled, or None) and the queue's items."""

    def __init__(self, changed: Any, items: list[Any], error: BaseException | None = None) -> None:
        super().__init__()
        self.changed = changed
        self.items = items
        self.error = error


class LoraApp(App[None]):
    """Keyboard-driven front-end for LoRA training (see design.md "Keys" and "The run view").

    Args:
        config: the starting `TrainingConfig` (default: `default_config()`, the SDXL face LoRA preset).
        notes: messages from loading it (missing keys that took defaults, coerced values), shown once.
        demo: opened by `lora-tui --demo` (shows a hint to press Start).
        attach_job: a run-layer `Job` (or job id) to follow at once (`lora-tui attach`).
        settings: `AppSettings` (default: `load_app_settings()`).
        config_path: the file the config came from (the default target of ctrl+s).
        source: what the config is, in words, for the subtitle (e.g. "preset sdxl-face-lora", "demo"); default:
            `config_path`'s name, else "preset sdxl-face-lora" when `config` is None (the default), else
            "new config".
    """

    TITLE = "lora-tui"
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("f5,ctrl+r", "start", "Start", priority=True, id="start", tooltip="Validate, then launch training"),
        Binding("f9,ctrl+t", "stop", "Stop", priority=True, id="stop",
                tooltip="First press: SIGINT (the trainer saves); second press: SIGTERM then SIGKILL"),
        Binding("ctrl+o", "open", "Load", priority=True, id="open", tooltip="Load a preset or config file"),
        Binding("ctrl+s", "save", "Save", priority=True, id="save", tooltip="Save the config as JSON"),
        Binding("f2", "view('minimal')", "Minimal", priority=True, id="view-minimal"),
        Binding("f3", "view('advanced')", "Advanced", priority=True, id="view-advanced"),
        Binding("f4", "view('run')", "Run", priority=True, id="view-run"),
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        Binding("ctrl+n", "show_notes", "Notes", id="notes", tooltip="What the last load converted or ignored"),
        Binding("escape", "hide_keys", "Hide keys", show=False),
    ]

    job_running: reactive[bool] = reactive(False, bindings=True)
    """A job is being followed and has not ended (drives Stop's visibility)."""

    def __init__(self, config: TrainingConfig | None = None, notes: Iterable[str] = (), demo: bool = False,
                 attach_job: Any = None, settings: Any = None, config_path: Path | None = None,
                 source: str | None = None) -> None:
        super().__init__()
        from lora_tui.config.model import TrainingConfig

        if source is None:
            source = config_path.name if config_path else ("new config" if config is not None else
                                                          f"preset {DEFAULT_PRESET}")
        self.config: TrainingConfig = config if config is not None else default_config()
        # What is loaded now (the subtitle) and the config as it was loaded or last saved: an edit since is shown
        # as unsaved ("modified").
        self.source = source
        self.clean_config: TrainingConfig = self.config
        self.notes = list(notes)
        self.demo = demo
        self.settings = settings
        self.config_path = config_path
        self._attach_on_mount = attach_job
        self.view = "minimal"
        # Values the model refused: field → (raw value as typed, message). They block Start.
        self.field_errors: dict[str, tuple[Any, str]] = {}
        self.plan: Any = None
        self.plan_problems: list[Any] = []
        self._plan_gen = 0
        self._plan_timer = None
        self._plan_running = False
        self._plan_dirty = False
        self._starting = False
        self.job: Any = None
        self.last_exit: int | None = None
        self.stop_presses = 0
        self._exit_after_job = False
        self._escalation_timer: Any = None
        self.last_stop_message = ""
        # How a queued item is started (tests may swap in their own); default: as Start would, via the run layer.
        self.queue_launch: Any = None
        self._queue_busy = False
        self.queue_items: list[Any] = []
        self.started_at = time.perf_counter()

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static("", id="title-bar")
        with Horizontal(id="main"):
            with ContentSwitcher(id="views", initial="minimal"):
                yield MinimalForm(id="minimal")
                yield AdvancedForm(id="advanced")
                yield RunView(id="run")
            yield ProblemsPanel(id="side")
        yield Footer()

    async def on_mount(self) -> None:
        if self.settings is None:
            from lora_tui.config.app_settings import load_app_settings

            self.settings = load_app_settings()
        self._refresh_title()
        self._refresh_problems()
        # The first plan imports the plan layer and scans the dataset in a thread: after the first frame, so the
        # GIL it takes does not delay that frame.
        self.call_after_refresh(self.set_timer, 0.05, self._launch_plan)
        self._install_signal_handlers()
        self.set_interval(QUEUE_TICK_S, self._queue_tick, name="queue-tick")
        if self.notes:
            self.announce_load("Loaded " + (self.config_path.name if self.config_path else "config"), self.notes)
        if self.demo:
            self.notify("Demo checkpoint and photos are filled in. Press F5 to train.", title="Demo", timeout=10)
        if self._attach_on_mount is not None:
            job, self._attach_on_mount = self._attach_on_mount, None
            self.attach(job)

    def _install_signal_handlers(self) -> None:
        # An SSH drop sends SIGHUP: leave the job running (it has its own session and log file) and exit cleanly.
        # Textual's Linux driver installs no handler, and without one the app dies mid-frame.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._hangup)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def _hangup(self) -> None:
        self.exit()

    # ------------------------------------------------------------------ model ↔ rows
    def field_applies(self, name: str) -> bool:
        """The field is used by the chosen model family and LoRA type (otherwise hidden and never written)."""
        from lora_tui.config.model import applies, field_meta

        return applies(field_meta(name), self.config)

    def family_label(self) -> str:
        """e.g. `sdxl · Standard`."""
        from lora_tui.config.model import family

        return f"{family(self.config)} · {getattr(self.config, 'LoRA_type', '')}"

    def make_row(self, name: str) -> FieldRow:
        """A row showing the model's value of `name` (or the refused text still being edited) and its message."""
        spec = field_spec(name)
        if name in self.field_errors and spec.kind == "text":
            value: Any = self.field_errors[name][0]
        else:
            value = getattr(self.config, name)
        message, severity = self.message_for(name)
        return FieldRow(spec, value, message, severity)

    def message_for(self, name: str) -> tuple[str, str]:
        """The inline message of field `name` and its severity ("error", "warning" or "")."""
        if name in self.field_errors:
            return self.field_errors[name][1], "error"
        mine = [p for p in self.plan_problems if p.field == name]
        if not mine:
            return "", ""
        mine.sort(key=lambda p: p.severity != "error")
        return "\n".join(p.message for p in mine), mine[0].severity

    def on_field_row_edited(self, event: FieldRow.Edited) -> None:
        event.stop()
        self.apply_edit(event.name, event.raw, from_widget=True)

    def apply_edit(self, name: str, raw: Any, from_widget: bool = False) -> bool:
        """Validate the whole model with `name` set to `raw`; on success it becomes the config.

        `from_widget`: the edit comes from the field's own editor, which already shows it (and must keep the
        user's text, e.g. `1e-4`, rather than the model's `0.0001`). Otherwise the editor, if shown, is updated.

        Returns:
            True when the model accepted the value (or nothing changed), False when it refused it.
        """
        from pydantic import ValidationError

        from lora_tui.config.model import TrainingConfig

        current = getattr(self.config, name)
        same = value_to_text(current) == raw if isinstance(raw, str) else current == raw and type(current) is type(raw)
        if same and name not in self.field_errors:
            return True
        data = self.config.model_dump()
        data[name] = raw
        try:
            new = TrainingConfig.model_validate(data)
        except ValidationError as exc:
            self.field_errors[name] = (raw, _validation_message(exc, name))
            row = None if from_widget else self.query_one_optional(f"#row-{name}", FieldRow)
            if row is not None:
                row.show_value(raw)
            self._refresh_title()
            self._refresh_messages()
            self._refresh_problems()
            return False
        had_error = self.field_errors.pop(name, None) is not None
        self.set_config(new, edited=name if from_widget else None, refresh_problems=had_error)
        return True

    def set_config(self, new: TrainingConfig, edited: str | None = None, refresh_problems: bool = True) -> None:
        """Make `new` the config and bring the shown rows up to date (without echoing their Changed events).

        `edited` is the field the user is typing in: its editor already shows the value and is left alone.
        Problems are redrawn when `refresh_problems` (a keystroke that changes nothing listed skips it; the
        debounced re-plan redraws them anyway).
        """
        from lora_tui.config.model import family

        old = self.config
        self.config = new
        visibility_changed = (family(old) != family(new)
                              or getattr(old, "LoRA_type", None) != getattr(new, "LoRA_type", None))
        if visibility_changed:
            self.run_worker(self._repopulate(focus=edited), group="repopulate", exclusive=True)
        else:
            old_d, new_d = old.model_dump(), new.model_dump()
            for key, value in new_d.items():
                if key == edited or old_d.get(key) == value:
                    continue
                if self.field_errors.pop(key, None) is not None:
                    refresh_problems = True
                row = self.query_one_optional(f"#row-{key}", FieldRow)
                if row is not None:
                    row.show_value(getattr(new, key))
        self._refresh_title()
        if refresh_problems or visibility_changed:
            self._refresh_messages()
            self._refresh_problems()
        self.schedule_plan()

    async def _repopulate(self, focus: str | None = None) -> None:
        form = self._current_form()
        if form is not None:
            await form.populate()
            if focus:
                target = self.query_one_optional(f"#f-{focus}")
                if target is not None:
                    target.focus()

    def load_config(self, config: TrainingConfig, notes: Iterable[str] = (), source: Path | None = None,
                    label: str | None = None) -> None:
        """Replace the whole config (preset or file load); refused edits still pending are dropped.

        `source`: the file it came from (the new `config_path`); `label`: what to call it in the subtitle
        (default: `source`'s name, else "loaded config"). The loaded config counts as unmodified.
        """
        self.field_errors.clear()
        if source is not None:
            self.config_path = source
        self.source = label or (source.name if source is not None else "loaded config")
        self.clean_config = config
        self.set_config(config)
        notes = list(notes)
        if notes:
            self.announce_load("Loaded " + (source.name if source is not None else "config"), notes)

    def announce_load(self, title: str, notes: list[Any]) -> None:
        """One notification summing up a load's notes (`dialogs.summarize_notes`); the notes themselves stay in
        `app.load_notes` for ctrl+n (`#notes-dialog`). One toast, not one per note: they covered the panel."""
        from lora_tui.ui.dialogs import summarize_notes

        self.load_notes = (title, [str(n) for n in notes])
        more = " · ctrl+n: details" if notes else ""
        self.notify(summarize_notes(title, self.load_notes[1]) + more, title="Loaded", timeout=6)

    def action_show_notes(self) -> None:
        """ctrl+n: what the last load did (converted values, legacy and ignored keys, defaults), one per line."""
        from lora_tui.ui.dialogs import NotesDialog

        title, notes = getattr(self, "load_notes", None) or ("No file loaded in this session", [])
        self.push_screen(NotesDialog(title, notes))

    def switch_family(self, target: str) -> bool:
        """Make the config a `target` family config ("sd1", "sd2", "sdxl", "flux1", "sd3") by setting the family
        checkboxes (`sdxl`, `v2`, `flux1_checkbox`, `sd3_checkbox`); every other value is kept. Returns False
        (with a message) when the model refuses it."""
        from pydantic import ValidationError

        from lora_tui.config.model import TrainingConfig

        data = self.config.model_dump()
        data.update(sdxl=target == "sdxl", v2=target == "sd2", flux1_checkbox=target == "flux1",
                    sd3_checkbox=target == "sd3")
        try:
            new = TrainingConfig.model_validate(data)
        except ValidationError as exc:
            self.notify(f"Family not switched: {exc}", severity="error", timeout=10)
            return False
        for name in ("sdxl", "v2", "flux1_checkbox", "sd3_checkbox"):
            self.field_errors.pop(name, None)
        self.set_config(new)
        return True

    # ------------------------------------------------------------------ plan and problems
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
        if self._plan_dirty:
            self._plan_dirty = False
            self._launch_plan()
        if message.gen != self._plan_gen:
            return  # the config changed again since; a newer plan is on its way
        if message.error is not None:
            self.query_one("#plan-summary", Static).update(f"[red]planning failed: {message.error!r}[/]")
            return
        self.apply_plan(message.plan)

    def apply_plan(self, plan: Any) -> None:
        """Show `plan`'s step summary and problems."""
        self.plan = plan
        self.plan_problems = list(plan.problems)
        steps = getattr(plan, "steps", None)
        summary = getattr(steps, "summary", "") if steps is not None else ""
        self.query_one("#plan-summary", Static).update(summary or "(no step plan)")
        self._refresh_messages()
        self._refresh_problems()

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
        problems = self.all_problems()
        panel = self.query_one("#problems", OptionList)
        highlighted = panel.highlighted
        panel.clear_options()
        self._shown_problems = problems
        if problems:
            opts = []
            for i, p in enumerate(problems):
                mark = "[red]✖[/]" if p.severity == "error" else "[yellow]⚠[/]"
                label = field_spec(p.field).label if _is_field(p.field) else (p.field or "config")
                opts.append(Option(f"{mark} [b]{_escape(label)}[/b]: {_escape(p.message)}", id=str(i)))
            panel.add_options(opts)
            if highlighted is not None:
                panel.highlighted = min(highlighted, len(opts) - 1)
        else:
            panel.add_option(Option("[green]✔[/] no problems", id="none", disabled=True))
        errors = sum(p.severity == "error" for p in problems)
        warnings = len(problems) - errors
        self.query_one("#problems-title", Static).update(
            f"Problems · {errors} error{'s' * (errors != 1)} · {warnings} warning{'s' * (warnings != 1)}")

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

    # ------------------------------------------------------------------ views
    def _current_form(self) -> MinimalForm | AdvancedForm | None:
        if self.view == "minimal":
            return self.query_one(MinimalForm)
        if self.view == "advanced":
            return self.query_one(AdvancedForm)
        return None

    async def action_view(self, name: str) -> None:
        """F2 / F3 / F4: Minimal form, Advanced form, Run view."""
        await self.show_view(name)

    async def show_view(self, name: str) -> None:
        """Switch views; the form left behind unmounts its rows, the one shown mounts them from the model."""
        if name not in VIEWS:
            return
        if name == self.view:
            return
        old = self._current_form()
        self.view = name
        self.query_one("#views", ContentSwitcher).current = name
        self.query_one("#side").display = name != "run"
        if old is not None:
            await old.clear()
        new = self._current_form()
        if new is not None:
            await new.populate()
            if isinstance(new, MinimalForm):
                new.focus_first()
            else:
                # The first field of the section, so keys typed right after F3 land in a field.
                editors = new.query(".field-editor")
                (editors.first() if editors else self.query_one("#sections", OptionList)).focus()
        else:
            self.query_one("#log").focus()
        self._refresh_title()

    @property
    def modified(self) -> bool:
        """The config differs from the one loaded or last saved, or a refused value is pending (unsaved changes)."""
        return bool(self.field_errors) or self.config != self.clean_config

    def _refresh_title(self) -> None:
        source = self.source + (" · modified" if self.modified else "")
        self.sub_title = source
        job = ""
        if self.job is not None:
            job = f" · job {self.job.id}: running" if self.job_running else f" · job {self.job.id}: ended"
            if not self.job_running and self.last_exit is not None:
                job += f" (exit {self.last_exit})"
        text = f"[b]lora-tui[/b] · {_escape(source)} · {self.family_label()} · view: {self.view}{job}"
        if text != getattr(self, "_title_text", None):  # an update re-lays out the screen: not per keystroke
            self._title_text = text
            self.query_one("#title-bar", Static).update(text)

    # ------------------------------------------------------------------ keys
    def action_hide_keys(self) -> None:
        """Escape: close the Keys help panel (it takes the width the form's inputs need)."""
        self.action_hide_help_panel()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "hide_keys":
            from textual.widgets import HelpPanel

            return bool(self.screen.query(HelpPanel))  # otherwise Escape goes on to whoever else wants it
        if action == "stop":
            return True if self.job_running else False
        if action in ("start", "open", "save", "view") and self.screen.is_modal:
            return False  # a dialog is open: answer it first (Stop and Quit stay available)
        return True

    def watch_job_running(self, running: bool) -> None:
        if self.is_running:
            self._refresh_title()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Start training", "Validate, write the TOML and JSON, launch (F5)", self.action_start)
        if self.job_running:
            yield SystemCommand("Stop training", "SIGINT first; again to force (F9)", self.action_stop)
        yield SystemCommand("Load preset or config file", "In-terminal picker (ctrl+o)", self.action_open)
        yield SystemCommand("Save config as JSON", "kohya_ss keys (ctrl+s)", self.action_save)
        yield SystemCommand("Minimal form", "The 16 Minimal fields (F2)", lambda: self.run_worker(
            self.show_view("minimal")))
        yield SystemCommand("Advanced form", "Every field by section (F3)", lambda: self.run_worker(
            self.show_view("advanced")))
        yield SystemCommand("Run view", "Progress, loss plot and log (F4)", lambda: self.run_worker(
            self.show_view("run")))
        yield SystemCommand("Quit", "Ask first while a job runs (ctrl+q)", self.action_quit)
        yield from super().get_system_commands(screen)

    # ------------------------------------------------------------------ Start
    def action_start(self) -> None:
        """F5 / ctrl+r."""
        if self._starting:
            return  # a press while the last one is still planning/launching must not launch twice
        self._starting = True
        self.run_worker(self._start_once(), group="start", exit_on_error=False)

    async def _start_once(self) -> None:
        try:
            await self._start()
        finally:
            self._starting = False

    async def _start(self) -> None:
        from lora_tui.plan import make_plan

        cfg = self.config
        if not self.field_errors:
            self._plan_gen += 1
            gen = self._plan_gen
            try:
                plan = await asyncio.to_thread(make_plan, cfg, self.settings)
            except Exception as exc:
                self.notify(f"Not started: planning failed: {exc!r}", severity="error", timeout=10)
                return
            if gen == self._plan_gen:
                self.apply_plan(plan)
            errors = list(plan.errors)
        else:
            errors = []
        if self.field_errors or errors:
            # Count what the panel lists (refused values and the last plan's errors), so the two agree.
            await self._refuse(sum(1 for p in self.all_problems() if p.severity == "error"))
            return
        cfg = await self._confirm_output(cfg)
        if cfg is None:
            return
        from lora_tui.run.jobs import running_jobs

        others = [] if self.job_running else await asyncio.to_thread(running_jobs, self.settings)
        if self.job_running or others:
            from lora_tui.ui.dialogs import ChoiceDialog

            busy = self.job if self.job_running else others[0]
            # Two trainers never start on one GPU by accident: offer the queue instead.
            choice = await self.push_screen_wait(ChoiceDialog(
                f"Job {busy.id} is still running. Queue this config to run after it?",
                [("queue", "Queue it"), ("cancel", "Cancel")], dialog_id="queue-dialog"))
            if choice == "queue":
                await self._enqueue(cfg)
            return
        await self._launch(cfg)

    async def _confirm_output(self, cfg: TrainingConfig) -> TrainingConfig | None:
        """Never overwrite a LoRA without asking: when `cfg`'s output file (or its epoch/step files) exists, ask
        Overwrite / Use a new name (the first free `<output_name>_N`, set in the field) / Cancel. Returns the
        config to launch, or None (cancelled: nothing is launched)."""
        from lora_tui.plan.rules import existing_outputs, free_output_name
        from lora_tui.ui.dialogs import ChoiceDialog

        found = await asyncio.to_thread(existing_outputs, cfg)
        if not found:
            return cfg
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
            return cfg
        if choice == "rename" and new_name and self.apply_edit("output_name", new_name):
            self.notify(f"Output name set to “{new_name}”.", timeout=5)
            return self.config
        self.notify("Not started: the output file exists.", severity="warning", timeout=5)
        return None

    async def _refuse(self, count: int) -> None:
        if self.view == "run":
            await self.show_view("minimal")
        panel = self.query_one("#problems", OptionList)
        panel.focus()
        if panel.option_count:
            panel.highlighted = 0
        self.notify(f"Not started: {count} error{'s' * (count != 1)}. Enter on a problem jumps to its field.",
                    severity="error", timeout=8)

    async def _launch(self, cfg: TrainingConfig) -> None:
        # The same launch as `lora-tui train` (run.headless.launch_config): re-plan (the scan is cached), refuse on
        # errors, write the TOML and settings JSON (write_launch_files), start the supervised job.
        from lora_tui.run.headless import PlanRefused, launch_config

        try:
            job = await asyncio.to_thread(launch_config, cfg, self.settings)
        except PlanRefused as exc:  # the files changed since the check (a folder deleted meanwhile)
            self.plan_problems = list(exc.problems)
            self._refresh_messages()
            self._refresh_problems()
            await self._refuse(len(exc.problems))
            return
        except Exception as exc:  # a refused launch is reported, never shown as started (kohya_ss §8.6 bug 5)
            self.notify(f"Not started: {exc}", severity="error", timeout=12)
            return
        toml = Path(str((job.state.get("meta") or {}).get("config_toml", ""))).name
        self.notify(f"Started job {job.id}: {toml}", timeout=5)
        self.attach(job)

    async def _enqueue(self, cfg: TrainingConfig) -> None:
        from lora_tui.config.kohya_json import config_to_dict
        from lora_tui.run.queue import Queue

        try:
            item = await asyncio.to_thread(Queue(settings=self.settings).add, config=config_to_dict(cfg),
                                           label=str(cfg.output_name or "config"))
        except Exception as exc:
            self.notify(f"Not queued: {exc}", severity="error", timeout=10)
            return
        self.notify(f"Queued “{item.label}”: it starts when the running job ends.", timeout=6)
        self._queue_tick()

    def _queue_tick(self) -> None:
        if self._queue_busy:
            return
        from lora_tui.run.jobs import resolve_state_dir
        from lora_tui.run.queue import QUEUE_FILE

        if not (resolve_state_dir(self.settings) / QUEUE_FILE).exists():
            return
        self._queue_busy = True
        self._queue_worker()

    @work(thread=True, group="queue", exit_on_error=False)
    def _queue_worker(self) -> None:
        # A thread: starting an item plans it (a dataset scan) and writes its files.
        from lora_tui.run.queue import Queue, QueueRunner, launch_item

        launch = self.queue_launch or (lambda item: launch_item(item, settings=self.settings))
        try:
            runner = QueueRunner(Queue(settings=self.settings), launch=launch)
            changed = runner.tick()
            items = runner.queue.items()
        except Exception as exc:
            self.post_message(QueueTicked(None, [], error=exc))
            return
        self.post_message(QueueTicked(changed, items))

    def on_queue_ticked(self, message: QueueTicked) -> None:
        self._queue_busy = False
        if message.error is not None:
            self.notify(f"Queue: {message.error}", severity="error", timeout=10)
            return
        self.queue_items = message.items
        self.query_one(RunView).show_queue(message.items)
        item = message.changed
        if item is None:
            return
        if item.status == "running" and item.job_id and not self.job_running:
            from lora_tui.run.jobs import load_job

            self.notify(f"Queue: starting “{item.label}”", timeout=5)
            self.attach(load_job(item.job_id, self.settings))
        elif item.status == "error":
            self.notify(f"Queue: “{item.label}” could not start: {item.message}", severity="error", timeout=10)

    def on_queue_list_remove_requested(self, message: Any) -> None:
        message.stop()
        self.run_worker(self.remove_queued(message.item_id), group="queue-remove")

    def on_queue_list_move_requested(self, message: Any) -> None:
        message.stop()
        self.run_worker(self.move_queued(message.item_id, message.delta), group="queue-move")

    async def move_queued(self, item_id: str, delta: int) -> bool:
        """Move queue item `item_id` `delta` places (negative = earlier; shift+up/down or K/J on the queue list),
        clamped to the list; the queue file is rewritten atomically (`Queue.move`). Returns whether its place
        changed."""
        from lora_tui.run.queue import Queue

        queue = Queue(settings=self.settings)
        try:
            before = [i.id for i in await asyncio.to_thread(queue.items)]
            await asyncio.to_thread(queue.move, item_id, delta)
            items = await asyncio.to_thread(queue.items)
        except Exception as exc:
            self.notify(f"Queue: {exc}", severity="error", timeout=10)
            return False
        self.queue_items = items
        self.query_one(RunView).show_queue(items)
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
        self.queue_items = await asyncio.to_thread(queue.items)
        self.query_one(RunView).show_queue(self.queue_items)
        return removed

    # ------------------------------------------------------------------ following a job
    def attach(self, job: Any) -> None:
        """Follow `job` (a run-layer `Job` or a job id) in the Run view: log so far, then live output."""
        if isinstance(job, str):
            from lora_tui.run.jobs import load_job

            job = load_job(job, self.settings)
        self.job = job
        self.last_exit = None
        self.stop_presses = 0
        self._cancel_escalation()
        self.job_running = True
        pid = job.state.get("child_pid") or job.state.get("pid") or "?"
        self.query_one(RunView).follow(job, f"Job {job.id} running · pid {pid} · log {job.log_path}")
        self.run_worker(self.show_view("run"), group="view")
        self._refresh_title()

    def on_run_view_ended(self, message: RunView.Ended) -> None:
        message.stop()
        from lora_tui.run.progress import exit_hint

        job, exit_code = message.job, message.exit_code
        self._cancel_escalation()
        prog = self.query_one(RunView).progress
        stopped = self.stop_presses > 0 or bool(job.stop_signals)
        hint = exit_hint(exit_code, prog.exception if prog else None, stopped)
        self.last_exit = exit_code
        self.job_running = False
        # A stopped job is not a failure (its KeyboardInterrupt traceback is expected): no failure box, and the
        # status says what the Stop left behind rather than what a trainer might do.
        bad = not stopped and message.status not in ("done", "stopped") and exit_code != 0
        code = "unknown" if exit_code is None else str(exit_code)
        status = f" ({message.status})" if message.status else ""
        if stopped and exit_code != 0:
            from lora_tui.run.progress import stop_outcome

            how = f" ({message.status})" if message.status not in (None, "stopped") else ""  # e.g. killed
            signal_note = "" if hint.startswith("interrupted") else f" · {hint}"  # SIGTERM / SIGKILL say so
            headline = f"Job {job.id} stopped{how} · {stop_outcome(prog)} · exit code {code}{signal_note}"
        else:
            saved = f" · saved {prog.saved[-1]}" if prog is not None and prog.saved else ""
            headline = f"Job {job.id} ended{status} · exit code {code} · {hint}{saved}"
        self.query_one(RunView).show_end(headline, bad)
        self._refresh_title()
        self.notify(headline, severity="error" if bad else "information", timeout=10)
        if self._exit_after_job:
            self.exit()

    # ------------------------------------------------------------------ Stop
    def action_stop(self) -> None:
        """F9 / ctrl+t: first press SIGINT to the job's process group (the trainer saves and exits); a second
        press, or no exit within the grace time (`AppSettings.stop_grace_s`), SIGTERM and then SIGKILL."""
        if not self.job_running or self.job is None:
            return
        self.stop_presses += 1
        self._send_stop(manual=True)

    def _send_stop(self, manual: bool) -> None:
        job = self.job
        if job is None or not self.job_running:
            return
        try:
            sent = job.request_stop()
        except Exception as exc:
            self.notify(f"Stop failed: {exc}", severity="error", timeout=10)
            return
        if sent is None:
            return  # it ended meanwhile; the follower reports the exit
        grace = float(getattr(self.settings, "stop_grace_s", 60.0) or 60.0)
        why = "" if manual else " (no exit within the grace time)"
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
        self.last_stop_message = text
        self.query_one(RunView).set_status(text)
        self.notify(text, title="Stop", severity="warning" if sent != "SIGINT" else "information", timeout=6)

    def _arm_escalation(self, delay: float) -> None:
        self._cancel_escalation()
        self._escalation_timer = self.set_timer(delay, lambda: self._send_stop(manual=False))

    def _cancel_escalation(self) -> None:
        timer = getattr(self, "_escalation_timer", None)
        if timer is not None:
            timer.stop()
        self._escalation_timer = None

    # ------------------------------------------------------------------ open / save / quit
    def action_open(self) -> None:
        """ctrl+o: presets (ours and the user's) or any JSON path, picked in the terminal."""
        from lora_tui.config.presets import list_presets
        from lora_tui.ui.dialogs import OpenDialog

        try:
            presets = list_presets(self.settings)
        except Exception as exc:
            presets = []
            self.notify(f"Presets could not be listed: {exc}", severity="warning")
        self.push_screen(OpenDialog(presets), self._open_picked)

    def _open_picked(self, picked: tuple[Path, bool] | None) -> None:
        if picked is not None:
            path, is_preset = picked
            self.load_file(path, over_current=is_preset)

    def load_file(self, path: Path, over_current: bool = False) -> bool:
        """Load a preset or kohya_ss / lora-tui JSON file into the form; errors are shown, never raised.

        With `over_current` (presets) the keys the file lacks keep the form's values; otherwise they take the
        defaults (design.md: loading a config sets every field). Either way the user is told which.
        """
        from lora_tui.config.kohya_json import load_config_file

        try:
            result = load_config_file(path, base=self.config if over_current else None)
        except Exception as exc:
            self.notify(f"{path}: {exc}", title="Not loaded", severity="error", timeout=12)
            return False
        self.load_config(result.config, (), source=None if over_current else Path(path),
                         label=f"preset {Path(path).stem}" if over_current else None)
        what = "Applied preset" if over_current else "Loaded"
        self.announce_load(f"{what} {Path(path).name}", result.notes)
        return True

    def action_save(self) -> None:
        """ctrl+s: save the config as JSON (kohya_ss keys) where the user says."""
        from lora_tui.ui.dialogs import SaveDialog, default_save_path

        # A loaded file or preset is a source, not a target: only a file saved from this session is proposed again.
        saved = getattr(self, "_saved_path", None)
        default = default_save_path(self.config, saved if saved is not None and saved == self.config_path else None)
        self.push_screen(SaveDialog(default), self._save_picked)

    def _save_picked(self, path: Path | None) -> None:
        if path is None:
            return
        from lora_tui.config.kohya_json import save_config_file

        if self.field_errors:
            names = ", ".join(self.field_errors)
            self.notify(f"Saved without the refused values of: {names}", severity="warning", timeout=8)
        try:
            save_config_file(self.config, path)
        except Exception as exc:
            self.notify(f"{path}: {exc}", title="Not saved", severity="error", timeout=12)
            return
        self.config_path = self._saved_path = path
        self.source, self.clean_config = Path(path).name, self.config
        self._refresh_title()
        self.notify(f"Saved {path}", timeout=4)

    async def action_quit(self) -> None:
        """ctrl+q: quit; while a job runs ask whether to stop it, leave it running, or stay."""
        if not self.job_running:
            self.exit()
            return
        from lora_tui.ui.dialogs import ChoiceDialog

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
            f"(`lora-tui attach` comes back to it)?",
            [("stop", "Stop it"), ("detach", "Leave it running (detach)"), ("cancel", "Cancel")],
            dialog_id="quit-dialog", default="cancel"), chosen)  # a stray Enter must not end a training run


DEFAULT_PRESET = "sdxl-face-lora"
"""The bundled preset a new form opens with (`default_config`)."""


def default_config() -> TrainingConfig:
    """The config a new form opens with: the Minimal defaults, i.e. the bundled SDXL face LoRA preset (design.md
    "presets/"); the model's defaults with `sdxl` ticked if that file cannot be read."""
    from lora_tui.config.model import TrainingConfig

    try:
        from lora_tui.config.kohya_json import load_config_file
        from lora_tui.config.paths import BUNDLED_PRESETS

        return load_config_file(BUNDLED_PRESETS / f"{DEFAULT_PRESET}.json").config
    except Exception:  # a broken install must still open the app
        return TrainingConfig(sdxl=True)


def _validation_message(exc: Any, name: str) -> str:
    """The message for `name` from a pydantic ValidationError, in a user's words (`fields.validation_message`)."""
    from lora_tui.ui.fields import validation_message

    return validation_message(exc, name)


def _is_field(name: str | None) -> bool:
    if not name:
        return False
    from lora_tui.config.model import TrainingConfig

    return name in TrainingConfig.model_fields


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


def run_attach(job: Any, settings: Any = None) -> int:
    """`lora-tui attach`: open the app on `job` (a run-layer `Job` or id), its form filled from the settings JSON
    that job was started with when it is still there. Returns 0."""
    if isinstance(job, str):
        from lora_tui.run.jobs import load_job

        job = load_job(job, settings)
    config, notes, path = None, [], None
    json_path = (job.state.get("meta") or {}).get("config_json")
    if json_path and Path(json_path).is_file():
        from lora_tui.config.kohya_json import load_config_file

        try:
            result = load_config_file(json_path)
            config, path = result.config, Path(json_path)
        except Exception as exc:
            notes.append(f"The job's settings {json_path} could not be loaded: {exc}")
    return run_app(config, notes, attach_job=job, settings=settings, config_path=path)


def run_app(config: TrainingConfig | None = None, notes: Iterable[str] = (), demo: bool = False,
            attach_job: Any = None, settings: Any = None, config_path: Path | None = None,
            source: str | None = None) -> int:
    """Run the app in this terminal until the user quits; a running job is left running (it is detached).

    Args:
        config: the config to open (default: the model's defaults).
        notes: load notes to show once (e.g. which keys took defaults).
        demo: show the demo hint.
        attach_job: a `Job` or job id to follow at once (`lora-tui attach`).
        settings: `AppSettings` (default: loaded from the user config dir).
        config_path: where `config` came from (default target of ctrl+s).
        source: what `config` is, for the subtitle (e.g. "preset sdxl-face-lora"; see `LoraApp`).

    Returns:
        0 (the process exit status for the CLI).
    """
    app = LoraApp(config, notes=notes, demo=demo, attach_job=attach_job, settings=settings, config_path=config_path,
                  source=source)
    app.run()
    return 0
