"""The one config and its edits: field rows built from the model, whole-model validation of each edit, and the
family switch. Mixed into `LoraApp` (`ConfigEditing`); the state it keeps (`config`, `field_errors`) is set up in
`LoraApp.__init__`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.css.query import NoMatches

from lora_tui.ui.fields import FieldRow, field_spec, validation_message, value_to_text
from lora_tui.ui.forms import FAMILY_FIELDS, MinimalForm

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig


class ConfigEditing:
    """Model ↔ rows (design.md, "The one invariant"): `apply_edit` validates the whole model with one field changed,
    `set_config` makes a new model the config and brings the shown rows up to date, `switch_family` sets the
    family checkboxes.

    Messages handled: `FieldRow.Edited` (a field editor's value, from any form). Bindings: F1 (`field_help`,
    declared in `LoraApp.BINDINGS`).
    """

    def init_config(self, config: TrainingConfig) -> None:
        """At construction, before any widget exists: the config the form starts from (`app.config`, which only
        this mixin writes; later changes go through `apply_edit` and `set_config`)."""
        self.config = config

    def action_field_help(self) -> None:
        """F1: the focused field's help (what it does, its sd-scripts key and option) in a dialog that Escape
        closes; the same text the mouse shows as the editor's tooltip, for keyboard-only users. On the Advanced
        form's section list (or its filter): the list's keys and each field of the highlighted section."""
        from lora_tui.ui.dialogs import NotesDialog

        node = self.focused
        while node is not None and not isinstance(node, FieldRow):
            node = node.parent
        if node is None:
            from lora_tui.ui.forms import AdvancedForm

            # The Advanced form's first Tab stop is its section list: F1 there explains the list and what the
            # highlighted section holds, rather than sending the user elsewhere.
            form = self.query_one(AdvancedForm)
            if self.view == "advanced" and self.focused is not None \
                    and form.query_one("#adv-nav") in self.focused.ancestors_with_self:
                self.push_screen(NotesDialog(*form.section_help()))
                return
            self.notify("F1 shows the focused field's help: move to a field first (F2 or F3, then Tab)", timeout=6)
            return
        spec = node.spec
        paragraphs = [p.strip() for p in spec.help.split("\n\n") if p.strip()]
        self.push_screen(NotesDialog(f"{spec.label} ({spec.name})", paragraphs))

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
        """The inline message of field `name` and its severity ("error", "warning", "info" or ""). In the Advanced
        form the three learning-rate fields also say which rate is in force for which part
        (`config.rates.lr_hint`); the Minimal form needs no such line, its learning-rate row is the U-Net's rate."""
        from lora_tui.config.rates import lr_hint

        if name in self.field_errors:
            return self.field_errors[name][1], "error"
        hint = lr_hint(self.config, name) if self.view == "advanced" else ""
        mine = [p for p in self.plan_problems if p.field == name]
        if not mine:
            return (hint, "info") if hint else ("", "")
        mine.sort(key=lambda p: p.severity != "error")
        return "\n".join([p.message for p in mine] + ([hint] if hint else [])), mine[0].severity

    def on_field_row_edited(self, event: FieldRow.Edited) -> None:
        event.stop()
        if self.widgets_gone():  # a key typed as the app closes: nothing is saved on quit anyway
            return
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
            self.field_errors[name] = (raw, validation_message(exc, name))
            row = None if from_widget else self.query_one_optional(f"#row-{name}", FieldRow)
            if row is not None:
                row.show_value(raw)
            self.refresh_title()
            self.refresh_messages()
            self.refresh_problems()
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
        from lora_tui.config.rates import minimal_lr_field

        old = self.config
        self.config = new
        visibility_changed = (family(old) != family(new)
                              or getattr(old, "LoRA_type", None) != getattr(new, "LoRA_type", None))
        # The Minimal form's learning-rate row shows the field the U-Net's rate comes from (unet_lr or
        # learning_rate): a load or an Advanced edit that moves it re-mounts that form; the row being typed in
        # stays (emptying unet_lr there must not swap the row under the cursor).
        lr_slot = minimal_lr_field(new)
        if self.view == "minimal" and lr_slot != minimal_lr_field(old) and edited not in ("unet_lr", "learning_rate"):
            visibility_changed = True
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
        if not visibility_changed and any(getattr(old, n, None) != getattr(new, n, None) for n in FAMILY_FIELDS):
            # same family, other prediction type (SD2.x 512 ↔ 768-v): the Minimal form's choice and head say it
            self.query_one(MinimalForm).refresh_head()
        self.refresh_title()
        if refresh_problems or visibility_changed:
            self.refresh_messages()
            self.refresh_problems()
        self.schedule_plan()

    async def _repopulate(self, focus: str | None = None) -> None:
        form = self.current_form()
        if form is not None and not self.widgets_gone():
            try:
                await form.populate()
            except NoMatches:  # the app closed while the rows were replaced
                if self.widgets_gone():
                    return
                raise
            if focus:
                target = self.query_one_optional(f"#f-{focus}")
                if target is not None:
                    target.focus()

    def switch_family(self, target: str) -> bool:
        """Make the config a `target` family config ("sd1", "sd2", "sdxl", "flux1", "sd3") by setting the family
        checkboxes (`sdxl`, `v2`, `flux1_checkbox`, `sd3_checkbox`); every other value is kept. Returns False
        (with a message) when the model refuses it."""
        return self.set_family_fields({"sdxl": target == "sdxl", "v2": target == "sd2",
                                       "flux1_checkbox": target == "flux1", "sd3_checkbox": target == "sd3"},
                                      target)

    def set_family_fields(self, updates: dict[str, Any], what: str) -> bool:
        """Set the family fields `updates` (the Minimal form's family choice, `forms.MINIMAL_FAMILIES`) in one
        validated step, every other value kept; refused values of those fields are dropped. A value the choice
        turned off that was on (`v_parameterization` when SDXL is chosen) is said in a toast. Returns False (with
        a message naming `what`) when the model refuses it."""
        from pydantic import ValidationError

        from lora_tui.config.model import TrainingConfig

        data = self.config.model_dump()
        turned_off = [name for name, value in updates.items() if value is False and data.get(name) is True
                      and name == "v_parameterization"]
        data.update(updates)
        try:
            new = TrainingConfig.model_validate(data)
        except ValidationError as exc:
            self.notify(f"Family not switched to {what}: {exc}", severity="error", timeout=10)
            return False
        for name in updates:
            self.field_errors.pop(name, None)
        self.set_config(new)
        if turned_off:
            self.notify(f"Model family {what}: {', '.join(turned_off)} turned off (as kohya_ss's model choice "
                        f"does); F3 sets it again.", timeout=6)
        return True
