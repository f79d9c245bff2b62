"""One editor row per `TrainingConfig` field, generated from the model's type and `field_meta`.

A row is a view: it shows a value it is given and reports raw edits upward as `FieldRow.Edited`. It never holds
the value itself, so rows can be mounted and removed freely (the Advanced form keeps only one section alive).
The editor inside a row always has the id `f-<field>` (tests and the validation panel find fields by it).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from textual.app import ComposeResult
from textual.widget import Widget
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.css.query import NoMatches
from textual.widgets import Checkbox, Input, Label, Select

from lora_tui.ui.folding import FoldedLabel
from lora_tui.ui.inputs import OrderedInput

EditorKind = Literal["bool", "select", "text"]
LABEL_WIDTH = 30  # the label column of a row (FieldRow's grid-columns; app.tcss indents messages by it)
STACK_BELOW = LABEL_WIDTH + 30  # a narrower row stacks label, editor and message (app.tcss FieldRow.-stacked)


class FieldSelect(Select):
    """A field's `Select` that survives being removed while it mounts. Textual 8.2's `Select._on_mount` sets its
    value through its `SelectCurrent`'s `#label`; when a load re-mounts the form row in the same refresh, that
    child is already gone and `NoMatches` ended the app (seen once in the suite, switching to the Advanced form
    right after a load). The row that replaces it mounts its own editor with the value, so nothing is lost."""

    def _on_mount(self, event) -> None:  # noqa: ANN001 - Textual's Mount event
        try:
            super()._on_mount(event)
        except NoMatches:
            pass  # its parts were removed with the row: there is nothing left to initialise


@dataclass(frozen=True)
class FieldSpec:
    """How one model field is edited.

    Attributes:
        name: the kohya field name (= model attribute = widget id suffix).
        label: human label from `field_meta`.
        help: help text (shown as tooltip), with the TOML key appended.
        toml_key: the sd-scripts key the field is written under, or None when it is not written.
        section: `field_meta` section name.
        kind: "bool" (Checkbox), "select" (closed choice list, Select) or "text" (Input).
        optional: None is a valid value (an empty input means unset).
        choices: allowed values for "select", suggestions for "text" (may be empty).
        number: "int" / "float" when the field is numeric (only for display hints).
        placeholder: what an empty text box shows (dim), so an empty field is visible and says what leaving it
            empty means ("unset · random", "path to a folder", ...); see `placeholder_for`.
        zero_unset: an optional number whose 0 means unset, as kohya_ss and sd-scripts read it
            (`max_train_steps`, `seed`, ...): 0 is shown, and a typed 0 stored, as unset (None).
    """

    name: str
    label: str
    help: str
    toml_key: str | None
    section: str
    kind: EditorKind
    optional: bool
    choices: tuple[Any, ...]
    number: str | None
    placeholder: str = ""
    zero_unset: bool = False


# What leaving a text box empty means, where "unset" alone would not say it (the Minimal form's fields first).
PLACEHOLDERS = {
    "pretrained_model_name_or_path": "path to .safetensors or Diffusers folder",
    "train_data_dir": "path to a folder of <repeats>_<name> folders",
    "output_dir": "path to a folder for the LoRA files",
    "dataset_config": "unset · path to a dataset .toml",
    "resume": "unset · path to a saved state folder",
    "network_weights": "unset · path to a LoRA file",
    "vae": "unset · the checkpoint's own VAE",
    "max_train_steps": "unset · Epochs set the steps",
    "max_train_epochs": "unset · Epochs is used",
    "seed": "unset · random",
    "unet_lr": "empty · learning_rate applies",
    "text_encoder_lr": "empty · learning_rate applies",
}


# Fields with no TOML key of their own that the launch still writes under another key (plan.launch.toml_dict).
DERIVED_TOML = {
    "epoch": "TOML key: max_train_epochs (while max_train_steps and max_train_epochs are empty)",
}


def placeholder_for(name: str, kind: str, optional: bool, label: str) -> str:
    """The dim text an empty text box of field `name` shows: `PLACEHOLDERS[name]`, else "path to a folder" /
    "path to a file" for a field named `*_dir` / labelled "... path", else "unset" for a text field or an
    optional number (empty = unset, nothing written), else "required" (a number the model needs: empty is refused
    with a message under the field).
    """
    if name in PLACEHOLDERS:
        return PLACEHOLDERS[name]
    if kind == "str" and name.endswith("_dir"):
        return "unset · path to a folder"
    if kind == "str" and "path" in label.lower().split():
        return "unset · path to a file"
    return "unset" if kind == "str" or optional else "required"


@lru_cache(maxsize=None)
def field_spec(name: str) -> FieldSpec:
    """The editor description of model field `name` (cached: the model class never changes at run time).

    A closed choice list (`choices` with `strict_choices`) becomes a Select; open choices are Input suggestions.

    Raises:
        KeyError: `name` is not a `TrainingConfig` field.
    """
    from lora_tui.config.model import field_meta

    meta = field_meta(name)
    choices: tuple[Any, ...] = tuple(meta.choices or ())
    if meta.kind == "bool":
        kind: EditorKind = "bool"
    elif choices and meta.strict_choices:
        kind = "select"
    else:
        kind = "text"
    number = meta.kind if meta.kind in ("int", "float") else None
    key = meta.toml_key
    if name in DERIVED_TOML:
        hint = DERIVED_TOML[name]
    elif key:
        hint = f"TOML key: {key}"
    elif meta.net_arg:
        hint = f"network_args: {meta.net_arg}=…"
    elif meta.launch:
        hint = f"accelerate launch {meta.launch}"
    else:
        hint = "not written to the TOML"
    help_text = (meta.help or "").strip()
    help_text = f"{help_text}\n\n{name} · {hint}" if help_text else f"{name} · {hint}"
    label = meta.label or name
    return FieldSpec(name=name, label=label, help=help_text, toml_key=key,
                     section=meta.section or "Other", kind=kind, optional=meta.optional, choices=choices,
                     number=number, placeholder=placeholder_for(name, meta.kind, meta.optional, label),
                     zero_unset=bool(number and meta.optional and meta.zero_unset))


def _onoff(value: bool) -> str:
    return "on" if value else "off"


def value_to_text(value: Any) -> str:
    """The text an Input shows for a model value (None → empty; a typed 0 stays "0")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def editor_text(spec: FieldSpec, value: Any) -> str:
    """The text field `spec`'s editor shows for model value `value`: `value_to_text`, except that an unset-meaning
    0 of a `zero_unset` field shows as empty (its placeholder says what unset does), as a None does: a kohya_ss file
    spells "unset" 0 and loads as None, and one meaning must have one face."""
    if spec.zero_unset and not isinstance(value, bool) and value == 0:
        return ""
    return value_to_text(value)


def text_to_value(spec: FieldSpec, text: str) -> Any:
    """The raw value handed to pydantic for what the user typed: empty means unset where None is allowed (and so
    does 0 for a `zero_unset` field, as when a kohya_ss file is loaded), everything else goes to the model
    unchanged (the model owns coercion and its error messages)."""
    stripped = text.strip()
    if stripped == "" and spec.optional:
        return None
    if spec.zero_unset and _is_zero(stripped):
        return None
    return text


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0
    except ValueError:
        return False


class FieldRow(Widget):
    """Label (with the kohya key as a dim hint), editor `#f-<name>`, and an inline message `#msg-<name>` under
    them (mounted only while there is a message: rows are kept to three widgets so a form mounts fast)."""

    DEFAULT_CSS = """
    FieldRow {
        layout: grid;
        grid-size: 2;
        grid-columns: 30 1fr;
        height: auto;
    }
    """

    class Edited(Message):
        """The user changed the editor of `name` to `raw` (text, bool or a choice value)."""

        def __init__(self, name: str, raw: Any) -> None:
            super().__init__()
            self.name = name
            self.raw = raw

    def __init__(self, spec: FieldSpec, value: Any, message: str = "", severity: str = "") -> None:
        super().__init__(id=f"row-{spec.name}", classes="field-row")
        self.spec = spec
        self._value = value
        self._message = message
        self._severity = severity

    def compose(self) -> ComposeResult:
        spec = self.spec
        yield Label(f"{spec.label}\n[dim]{spec.name}[/]", classes="field-label", markup=True)
        editor = self._make_editor()
        editor.tooltip = spec.help
        yield editor
        if self._message:
            yield self._message_label(self._message, self._severity)

    def _message_label(self, message: str, severity: str) -> Label:
        # folded at spaces and path separators: a message quotes paths, which Textual would break mid-name
        label = FoldedLabel(message, id=f"msg-{self.spec.name}", classes="field-msg")
        if severity:
            label.add_class(f"-{severity}")
        return label

    def on_resize(self) -> None:
        self._fit_message()

    def _fit_message(self) -> None:
        # Textual's grid sizes an auto-height row from one column's width even for a cell spanning both
        # (layouts/grid.py, 8.2.8), so the message under the editor would get height 0 or be cut: we size it
        # from the row's width ourselves.
        # The height comes from the label's own wrapping (get_content_height), not an estimate: textwrap folds
        # paths and hyphens differently, and one line short cut the end of a message ("pick the checkpoint
        # file or" without "Diffusers folder").
        width = self.size.width
        if width <= 0:
            return
        # Under STACK_BELOW cells the label column would leave the editor too little (none at all in an 80-column
        # terminal): label, editor and message go one under the other, full width.
        stacked = width < STACK_BELOW
        self.set_class(stacked, "-stacked")
        label = self.query_one_optional(f"#msg-{self.spec.name}", Label)
        if label is None:
            return
        indent = 0 if stacked else LABEL_WIDTH
        text_width = max(1, width - indent)
        label.styles.padding = (0, 0, 0, indent)
        label.styles.height = max(1, label.get_content_height(self.size, self.app.size, text_width))

    def _make_editor(self) -> Input | Select | Checkbox:
        spec, value = self.spec, self._value
        wid = f"f-{spec.name}"
        if spec.kind == "bool":
            # The label says the state in words: the box alone differs only by colour (NO_COLOR terminals).
            return Checkbox(_onoff(bool(value)), bool(value), id=wid, compact=True, classes="field-editor")
        if spec.kind == "select":
            sel: Select[Any] = FieldSelect(_select_options(spec, value), allow_blank=spec.optional or value is None,
                                           compact=True,
                                      id=wid, classes="field-editor",
                                      value=Select.NULL if value is None else value)
            return sel
        suggester = None
        if spec.choices:
            suggester = SuggestFromList([value_to_text(c) for c in spec.choices], case_sensitive=False)
        inp = OrderedInput(editor_text(spec, value), id=wid, compact=True, classes="field-editor",
                           placeholder=spec.placeholder, suggester=suggester, select_on_focus=False)
        if self.app.is_headless:
            inp.cursor_blink = False
        return inp

    @property
    def editor(self) -> Input | Select | Checkbox:
        """The editor widget (`#f-<name>`)."""
        return self.query_one(f"#f-{self.spec.name}")  # type: ignore[return-value]

    def show_value(self, value: Any) -> None:
        """Show `value` without reporting it back as an edit (programmatic update)."""
        editor = self.query_one_optional(f"#f-{self.spec.name}")
        if editor is None:  # not composed yet: compose will use it
            self._value = value
            return
        if isinstance(editor, Checkbox):
            with editor.prevent(Checkbox.Changed):
                editor.value = bool(value)
            editor.label = _onoff(bool(value))
        elif isinstance(editor, Select):
            with editor.prevent(Select.Changed):
                if value is None:
                    editor.clear() if editor._allow_blank else None
                else:
                    if value not in self.spec.choices:
                        editor.set_options(_select_options(self.spec, value))
                    editor.value = value
        else:
            text = editor_text(self.spec, value)
            if editor.value != text:
                with editor.prevent(Input.Changed):
                    editor.value = text

    def show_message(self, message: str, severity: str = "") -> None:
        """Set (or clear, with "") the inline message under the field."""
        self._message, self._severity = message, severity
        if self.query_one_optional(f"#f-{self.spec.name}") is None:
            return  # not composed yet: compose will use it
        label = self.query_one_optional(f"#msg-{self.spec.name}", Label)
        if not message:
            if label is not None:
                label.remove()
            return
        if label is None:
            self.mount(self._message_label(message, severity))
            self._fit_message()
            return
        label.update(message)
        label.set_class(severity == "error", "-error")
        label.set_class(severity == "warning", "-warning")
        label.set_class(severity == "info", "-info")
        self._fit_message()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(self.spec.name, text_to_value(self.spec, event.value)))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        value = None if event.value is Select.NULL else event.value
        self.post_message(self.Edited(self.spec.name, value))

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        event.checkbox.label = _onoff(event.value)
        self.post_message(self.Edited(self.spec.name, event.value))


def _select_options(spec: FieldSpec, value: Any) -> list[tuple[str, Any]]:
    """A Select's (prompt, value) options: the field's choices, plus ``value`` when it is set and not one of them
    (a loaded file may hold a value newer than our list; it is shown rather than dropped)."""
    options = [(value_to_text(c) or "(unset)", c) for c in spec.choices]
    if value is not None and value not in spec.choices:
        options.append((value_to_text(value), value))
    return options


def _shown(value: Any) -> str:
    text = value_to_text(value) if not isinstance(value, str) else value
    return f"'{text[:40]}…'" if len(text) > 40 else f"'{text}'"


def _example(name: str, fallback: float) -> str:
    """The field's default as an example value when it is a usable number, else `fallback`."""
    from lora_tui.config.model import TrainingConfig

    info = TrainingConfig.model_fields.get(name)
    default = getattr(info, "default", None)
    if isinstance(default, (int, float)) and not isinstance(default, bool) and default > 0:
        return value_to_text(default)
    return value_to_text(fallback)


def error_message(name: str, error: dict[str, Any]) -> str:
    """A pydantic error on field `name` (one entry of `ValidationError.errors()`) in words a user reads: the field,
    what is wrong with the value, and what to type instead, e.g. "learning_rate: 'abc' is not a number; type a
    value such as 0.0001". Error types without a rule here keep the model's own message (our validators already
    word theirs for users: "'fp9' is not one of: no, fp16, ...")."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    value = error.get("input")
    shown = _shown(value)
    try:
        spec = field_spec(name)
    except KeyError:
        spec = None
    example = ""
    if spec is not None and spec.choices:
        example = ", ".join(value_to_text(c) for c in spec.choices[:4] if c is not None)
    if kind == "float_parsing" or kind == "float_type":
        return f"{name}: {shown} is not a number; type a value such as {_example(name, 0.0001)}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{name}: {shown} is not a whole number; type an integer such as {_example(name, 16)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{name}: {shown} is not on/off; use true or false"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {"greater_than_equal": "at least", "greater_than": "more than",
                 "less_than_equal": "at most", "less_than": "less than"}[kind]
        limit = next((ctx[k] for k in ("ge", "gt", "le", "lt") if k in ctx), "?")
        return f"{name}: {shown} is too {'small' if 'greater' in kind else 'large'}; it must be {words} {limit}"
    if kind in ("literal_error", "enum"):
        allowed = ctx.get("expected") or example
        return f"{name}: {shown} is not an allowed value; choose one of {allowed}"
    if kind in ("string_type", "string_too_short", "string_too_long"):
        return f"{name}: {shown} is not valid text here; type the text as it should be written"
    if kind in ("list_type", "tuple_type"):
        return f"{name}: {shown} is not a list; type the values separated by spaces"
    if kind == "missing":
        return f"{name}: a value is required; fill it in"
    if kind == "extra_forbidden":
        return f"{name}: not a setting lora-tui knows; remove it"
    msg = str(error.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg if msg.startswith(name) else f"{name}: {msg}"


def validation_message(exc: Any, name: str) -> str:
    """The message for field `name` from a pydantic `ValidationError` `exc` (its first error on `name`, else its
    first error), via `error_message`."""
    errors = exc.errors()
    chosen = next((e for e in errors if e.get("loc") and e["loc"][0] == name), errors[0] if errors else None)
    if chosen is None:
        return f"{name}: {exc}"
    loc = chosen.get("loc") or (name,)
    return error_message(str(loc[0]) if loc else name, chosen)
