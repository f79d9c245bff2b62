"""Which view is shown (Minimal form, Advanced form, Run view) and the title bar/subtitle that names it. Mixed into
`LoraApp` (`ViewSwitching`); `view`, `source` and `clean_config` are set up in `LoraApp.__init__`.
"""
from __future__ import annotations

from textual.content import Content
from textual.widgets import ContentSwitcher, Static

from lora_tui.ui.forms import AdvancedForm, MinimalForm

VIEWS = ("minimal", "advanced", "run")


class ViewSwitching:
    """Views are mounted lazily: the form left behind unmounts its rows, the one shown builds them from the model.
    `modified` and `refresh_title` keep `#title-bar` and the subtitle in step with what is loaded and the job.

    Bindings served: F2 / F3 / F4 (`action_view`). Messages handled: none.
    """

    view = "minimal"  # the view shown: "minimal", "advanced" or "run" (set by `show_view`)

    def current_form(self) -> MinimalForm | AdvancedForm | None:
        """The form shown now (None on the Run view)."""
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
        old = self.current_form()
        self.view = name
        self.query_one("#views", ContentSwitcher).current = name
        self.query_one("#side").display = name != "run"
        if old is not None:
            await old.clear()
        if self.widgets_gone():  # the app began to close while the old form's rows were removed
            return
        new = self.current_form()
        if new is not None:
            await new.populate()
            if self.widgets_gone():
                return
            new.focus_first()  # keys typed right after F2/F3 land in a field
        else:
            self.query_one("#log").focus()
        self.refresh_title()

    @property
    def modified(self) -> bool:
        """The config differs from the one loaded or last saved, or a refused value is pending (unsaved changes)."""
        return bool(self.field_errors) or self.config != self.clean_config

    def refresh_title(self) -> None:
        """Redraw the title bar (what is loaded, modified, the view, the followed job's state)."""
        if self.widgets_gone():  # a late caller (a view switch or a job end) while the app closes
            return
        source = self.source + (" · modified" if self.modified else "")
        self.sub_title = source
        job = ""
        if self.job is not None:
            if self.job_running:
                state = "running"
            elif self.last_outcome:  # a Stop: "stopped · saved x.safetensors", no exit code (JobControl)
                state = self.last_outcome
            else:
                state = "ended" + (f" (exit {self.last_exit})" if self.last_exit is not None else "")
            job = f" · job {self.job.id}: {state}"
        text = f" · {source} · {self.family_label()} · view: {self.view}{job}"
        if text != getattr(self, "_title_text", None):  # an update re-lays out the screen: not per keystroke
            self._title_text = text
            # Content, not markup: the source is a file name and the outcome names a LoRA file
            self.query_one("#title-bar", Static).update(Content.assemble(("lora-tui", "bold"), text))
