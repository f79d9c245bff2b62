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

This module holds `LoraApp` itself (bindings, state, layout, mount, signals, which keys apply when, the command
palette) and the entry points `run_app` / `run_attach`. The app's behaviour is split by what it serves into mixins,
one per module: `editing.ConfigEditing` (model ↔ rows), `plan_display.PlanDisplay` (the `planner.Planner`'s
answers in the `problems_panel.ProblemsPanel` and the fields),
`views.ViewSwitching` (F2/F3/F4, title), `files.ConfigFiles` (ctrl+o/ctrl+s/ctrl+n, `default_config`),
`start.StartFlow` (F5), `job_control.JobControl` (following a job, F9, ctrl+q), `queue_actions.QueueActions`
(the queue). Their names stay importable from here. Each piece of state is written in one file only, the one that
owns it (declared at its mixin's class, or made through that mixin's `init_*` here), and no module uses another's
`_private` names: tests/ui/test_ownership.py checks both.
"""
from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import ContentSwitcher, Static

# The mixins' public names are re-exported: `lora_tui.ui.app` stays the one import for callers and tests.
from lora_tui.ui.editing import ConfigEditing
from lora_tui.ui.files import DEFAULT_PRESET, ConfigFiles, default_config
from lora_tui.ui.footer import KeyFooter
from lora_tui.ui.forms import AdvancedForm, MinimalForm
from lora_tui.ui.job_control import TERM_GRACE_S, JobControl
from lora_tui.ui.plan_display import PlanDisplay
from lora_tui.ui.planner import PLAN_DEBOUNCE_S, Planner, PlanReady
from lora_tui.ui.problems_panel import ProblemsPanel
from lora_tui.ui.queue_actions import QUEUE_TICK_S, QueueActions, QueueTicked
from lora_tui.ui.runview import RunView
from lora_tui.ui.start import StartFlow
from lora_tui.ui.views import VIEWS, ViewSwitching

if TYPE_CHECKING:
    from textual.screen import Screen

    from lora_tui.config.model import TrainingConfig

__all__ = ["DEFAULT_PRESET", "PLAN_DEBOUNCE_S", "QUEUE_TICK_S", "TERM_GRACE_S", "VIEWS", "LoraApp", "PlanReady",
           "QueueTicked", "default_config", "run_app", "run_attach"]


class LoraApp(ConfigEditing, PlanDisplay, ViewSwitching, ConfigFiles, StartFlow, JobControl, QueueActions,
              App[None]):
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
    # Below 120 columns (an SSH window of 80-119) the side panel and the Advanced form's section list narrow,
    # so the form keeps room for its editors and messages (app.tcss `Screen.-narrow`).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    # Under 30 rows (80x24 over SSH) the Run view drops spacer lines and shortens the queue list, so the log and
    # the failure tail keep rows (app.tcss `Screen.-short`).
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]

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
        Binding("f1", "field_help", "Help", id="field-help", tooltip="Help for the focused field"),
        Binding("escape", "hide_keys", "Hide keys", show=False),
    ]

    job_running: reactive[bool] = reactive(False, bindings=True)
    """A job is being followed and has not ended (drives Stop's visibility)."""

    def __init__(self, config: TrainingConfig | None = None, notes: Iterable[str] = (), demo: bool = False,
                 attach_job: Any = None, settings: Any = None, config_path: Path | None = None,
                 source: str | None = None) -> None:
        super().__init__()
        if source is None:
            source = config_path.name if config_path else ("new config" if config is not None else
                                                          f"preset {DEFAULT_PRESET}")
        self.init_config(config if config is not None else default_config())  # `app.config` (ConfigEditing)
        # What is loaded now (the subtitle), its file, and the config as it was loaded or last saved (ConfigFiles)
        self.init_source(source, config_path)
        self.notes = list(notes)
        self.demo = demo
        self.settings = settings
        self._attach_on_mount = attach_job
        # Values the model refused: field → (raw value as typed, message). They block Start.
        self.field_errors: dict[str, tuple[Any, str]] = {}
        # The plan state's owner: the current plan and its problems, the debounced re-plan and the settle
        # preflight (`app.plan`, `app.plan_problems` read it).
        self.planner = Planner(self)
        # The followed job's state is JobControl's (job_control.py), the queue's QueueActions' (queue_actions.py),
        # the view's ViewSwitching's (views.py): each is written in its own file only (tests/ui/test_ownership.py).
        self.started_at = time.perf_counter()

    def left_running_note(self) -> str | None:
        """After the app has exited: what to tell the shell when it left a job running (quit → "leave it running",
        or an SSH drop), with the commands that come back to it; how the job ended after quit → "stop it" (the
        Run view's last line, which the closing app took with it); None otherwise."""
        job = self.job
        if job is None:
            return None
        if not job.is_alive():
            return f"lora-tui: {self.quit_outcome}" if self.quit_outcome else None
        return (f"lora-tui: job {job.id} is still running (detached). `lora-tui attach {job.id}` follows it, "
                f"`lora-tui stop {job.id}` stops it; log: {job.log_path}")

    def widgets_gone(self) -> bool:
        """True while the app shuts down (its widgets are being removed): a late message (a plan or a queue tick
        from a worker thread, an edit or a job end still queued) is then dropped instead of failing on a widget
        that is no longer there."""
        return not self.is_running or not self.query("#main")  # Textual clears is_running first when it shuts down

    def push_screen(self, screen: Any, callback: Any = None, wait_for_dismiss: bool = False, *,
                    mode: str | None = None) -> Any:
        """Textual's `App.push_screen`, except that a dialog already open is not opened again.

        Every dialog has an id (`#quit-dialog`, `#notes-dialog`, ...), and a key pressed again while its dialog is
        open (ctrl+q twice at the quit question, ctrl+n or F1 over an open notes box) would push a second screen
        of that id: Textual raises `DuplicateIds` and the app dies. One check here covers every push, the
        mixins' and the widgets' alike: the open dialog stays (it still has the question), and the second push
        is dropped. Its callback is not called; a `wait_for_dismiss` caller gets None at once (as a cancel).
        """
        from textual.screen import Screen as _Screen

        if isinstance(screen, _Screen) and screen.id and any(s.id == screen.id for s in self.screen_stack):
            if wait_for_dismiss:
                future = asyncio.get_running_loop().create_future()
                future.set_result(None)
                return future
            from textual.await_complete import AwaitComplete

            return AwaitComplete()
        return super().push_screen(screen, callback, wait_for_dismiss, mode=mode)

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Textual's `App.notify`, with plain text by default: toasts carry paths, exception texts and trainer
        output, and one "[...=...]" in them would raise MarkupError while the toast renders (the app's own
        messages use no markup)."""
        if timeout is None:
            super().notify(message, title=title, severity=severity, markup=markup)
        else:
            super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static("", id="title-bar")
        with Horizontal(id="main"):
            with ContentSwitcher(id="views", initial="minimal"):
                yield MinimalForm(id="minimal")
                yield AdvancedForm(id="advanced")
                yield RunView(id="run")
            yield ProblemsPanel(id="side")
        yield KeyFooter()  # hides whole keys, least used first, and ends in "…" when they do not fit

    async def on_mount(self) -> None:
        if self.settings is None:
            from lora_tui.config.app_settings import load_app_settings

            self.settings = load_app_settings()
        self.refresh_title()
        self.refresh_problems()
        # The first plan imports the plan layer and scans the dataset in a thread: after the first frame, so the
        # GIL it takes does not delay that frame.
        self.call_after_refresh(self.set_timer, 0.05, self.planner.launch)
        self._install_signal_handlers()
        self.set_interval(QUEUE_TICK_S, self.queue_tick, name="queue-tick")
        if self.notes:
            self.announce_load("Loaded " + (self.config_path.name if self.config_path else "config"), self.notes)
        if self.demo:
            self.notify("Demo checkpoint and photos are filled in. Press F5 to train.", title="Demo", timeout=10)
        if self._attach_on_mount is not None:
            job, self._attach_on_mount = self._attach_on_mount, None
            self.attach(job)
        else:
            self.call_after_refresh(lambda: self.run_worker(self._show_last_job(), group="last-job",
                                                            exit_on_error=False))

    async def _show_last_job(self) -> None:
        """At start without `attach`: the newest job of the state dir, so a restart does not say "No run yet" over
        earlier runs. A running one is attached (as `lora-tui attach` would); an ended one is shown as it ended
        (`RunView.show_earlier`) without switching views."""
        from lora_tui.run.jobs import list_jobs

        def newest() -> tuple[list, Any]:
            # Newest first by start time: ids only order by the second they were started in.
            jobs = sorted(list_jobs(self.settings), key=lambda job: float(job.state.get("start_time") or 0),
                          reverse=True)
            return jobs, next((job for job in jobs if job.is_alive()), None)

        try:
            # every job's state file and a process check each: off the event loop, as the queue's file reads are
            jobs, running = await asyncio.to_thread(newest)
        except Exception:  # an unreadable state dir: `lora-tui jobs` says why; the forms work without it
            return
        if self.job is not None or self.widgets_gone():
            return  # a Start or an attach came first
        if running is not None:
            self.notify(f"Job {running.id} is still running: following it (F2 goes back to the form).", timeout=8)
            self.attach(running)
        elif jobs:
            self.query_one(RunView).show_earlier(jobs[0], len(jobs))

    def _install_signal_handlers(self) -> None:
        # An SSH drop sends SIGHUP: leave the job running (it has its own session and log file) and exit cleanly.
        # Textual's Linux driver installs no handler, and without one the app dies mid-frame. A plain signal
        # handler, not the loop's: it runs even while the loop is blocked (a terminal that stopped reading fills
        # Textual's write queue and the loop waits on it; a loop-level handler would then never run).
        self._old_signal_handlers = {}
        for sig in (signal.SIGHUP, signal.SIGTERM):
            try:
                self._old_signal_handlers[sig] = signal.signal(sig, self._on_hangup_signal)
            except (ValueError, OSError):  # not the main thread
                pass
        self._hangup_loop = asyncio.get_running_loop()

    def on_unmount(self) -> None:
        self.planner.cancel()  # a settle check's trainer process must not outlive the app
        for sig, old in getattr(self, "_old_signal_handlers", {}).items():
            try:
                if signal.getsignal(sig) == self._on_hangup_signal:
                    signal.signal(sig, old)
            except (ValueError, OSError, TypeError):
                pass

    def _on_hangup_signal(self, signum: int, frame: Any) -> None:
        # Exit, and never hang doing so: the shutdown also writes to the terminal and may wait on it forever. So
        # the next SIGHUP/SIGTERM takes the default action (the kernel ends us), and a watchdog ends the process
        # HANGUP_EXIT_S after this one if the shutdown has not finished. The job has its own session: it goes on.
        for sig in (signal.SIGHUP, signal.SIGTERM):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (ValueError, OSError):
                pass
        if not self.is_headless:  # a real terminal (run_test has none, and its process must live on)
            _arm_exit_watchdog(HANGUP_EXIT_S)
        try:
            self._hangup_loop.call_soon_threadsafe(self._hangup)
        except RuntimeError:  # the loop is closed: the app is gone already
            pass

    def _hangup(self) -> None:
        self.exit()

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
            self.refresh_title()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Start training", "Validate, write the TOML and JSON, launch (F5)", self.action_start)
        yield SystemCommand("Queue this config", "Validate, then add it to the queue: it runs after the items "
                            "before it, at once when nothing runs", self.action_queue_config)
        if self.job_running:
            yield SystemCommand("Stop training", "SIGINT first; again to force (F9)", self.action_stop)
        if self.queue_items or self.queue_paused:
            yield SystemCommand("Resume queue" if self.queue_paused else "Pause queue",
                                "Nothing more starts while paused; a running item goes on (p on the Run view)",
                                lambda: self.run_worker(self.toggle_queue_pause(), group="queue-pause"))
        yield SystemCommand("Load preset or config file", "In-terminal picker (ctrl+o)", self.action_open)
        yield SystemCommand("Save config as JSON", "kohya_ss keys (ctrl+s)", self.action_save)
        yield SystemCommand("Minimal form", "The 16 Minimal fields (F2)", lambda: self.run_worker(
            self.show_view("minimal")))
        yield SystemCommand("Advanced form", "Every field by section (F3)", lambda: self.run_worker(
            self.show_view("advanced")))
        yield SystemCommand("Run view", "Progress, loss plot and log (F4)", lambda: self.run_worker(
            self.show_view("run")))
        yield SystemCommand("Load notes", "What the last load converted or ignored (ctrl+n)", self.action_show_notes)
        yield SystemCommand("Field help", "Help for the focused field or section list (F1)", self.action_field_help)
        yield SystemCommand("Quit", "Ask first while a job runs (ctrl+q)", self.action_quit)
        # Textual's own entries (Theme, Keys, Maximize, Screenshot) stay; its "Quit" runs our action_quit too,
        # so it would only be listed twice.
        yield from (command for command in super().get_system_commands(screen) if command.title != "Quit")


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


#: seconds a hung-up app may take to shut down before its process is ended (its job goes on)
HANGUP_EXIT_S = 3.0
_shutdown_done = None  # threading.Event set once run_app's app.run() has returned


def _arm_exit_watchdog(seconds: float) -> None:
    """End the process with status 129 (128 + SIGHUP, as the default action would) ``seconds`` from now unless
    ``run_app`` has returned from the app by then."""
    import os
    import threading

    global _shutdown_done
    if _shutdown_done is None:
        _shutdown_done = threading.Event()
    done = _shutdown_done

    def watch() -> None:
        if not done.wait(seconds):
            os._exit(128 + signal.SIGHUP)

    threading.Thread(target=watch, name="hangup-watchdog", daemon=True).start()


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
    if _shutdown_done is not None:
        _shutdown_done.set()  # the shutdown finished: no watchdog ends us now
    note = app.left_running_note()
    if note:
        print(note, file=sys.stderr)
    return 0
