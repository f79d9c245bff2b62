"""Modal dialogs: a keyboard choice box (quit while running, queue while running), the in-terminal picker for
presets and config files (ctrl+o), and the save prompt (ctrl+s). Never a native file dialog: the app runs over SSH.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from lora_tui.ui.folding import FoldedLabel
from lora_tui.ui.inputs import OrderedInput


class ChoiceDialog(ModalScreen[str]):
    """A question with a row of buttons; dismisses with the chosen button's key, or `cancel_key` on Escape.
    The `default` button (else the first) has the focus, so Enter picks it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str]], cancel_key: str = "cancel",
                 dialog_id: str = "choice", default: str | None = None) -> None:
        super().__init__(id=dialog_id)
        self.question = question
        self.choices = choices
        self.cancel_key = cancel_key
        self.default = default or choices[0][0]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield FoldedLabel(self.question, classes="dialog-question")  # paths, output names: plain, folded at /
            with Horizontal(classes="dialog-buttons"):
                for key, text in self.choices:
                    # Content: a label may quote an output name ("Use “char[v2]_2”"), never markup
                    yield Button(Content(text), id=f"choice-{key}", variant="primary" if key == self.default
                                 else "default", compact=True)

    def on_mount(self) -> None:
        self.query_one(f"#choice-{self.default}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss((event.button.id or "").removeprefix("choice-"))

    def action_cancel(self) -> None:
        self.dismiss(self.cancel_key)

    def on_key(self, event) -> None:
        # Left/right move between buttons as users of dialog boxes expect, on top of Tab.
        if event.key in ("left", "right"):
            event.stop()
            (self.focus_previous if event.key == "left" else self.focus_next)()


class PathSuggester(Suggester):
    """Completes a typed path with the first matching entry of its folder (directories get a trailing `/`)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        p = Path(value).expanduser()
        folder, stem = (p, "") if value.endswith(("/", "\\")) else (p.parent, p.name)
        try:
            for entry in sorted(folder.iterdir()):
                if entry.name.startswith(stem) and entry.name != stem and not entry.name.startswith("."):
                    tail = entry.name[len(stem):] + ("/" if entry.is_dir() else "")
                    return value + tail
        except OSError:
            return None
        return None


class OpenDialog(ModalScreen["tuple[Path, bool] | None"]):
    """Pick a preset (ours and the user's) or type the path of any kohya_ss / lora-tui JSON file.

    Typing filters the preset list; Enter on a list entry or on a path that exists opens it; Escape cancels.
    Dismisses with `(path, is_preset)`: a preset is applied over the current form, a file replaces it.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("down", "to_list", show=False)]

    def __init__(self, presets: list[Any]) -> None:
        super().__init__(id="open-dialog")
        self.presets = presets

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("Load a preset or config file (kohya_ss JSON): type to filter, or type a path",
                        classes="dialog-question")
            yield OrderedInput(placeholder="preset name or path to a .json file", id="open-path", compact=True,
                               suggester=PathSuggester())
            yield OptionList(id="open-list")
            yield Label("", id="open-msg", classes="field-msg -error", markup=False)  # echoes what was typed
            yield Label("Enter opens (the grey completion too) · → takes the suggested path · ↓ to the list · "
                        "Escape cancels", classes="dialog-question")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one("#open-path", Input).focus()

    def _fill(self, needle: str) -> None:
        lst = self.query_one("#open-list", OptionList)
        lst.clear_options()
        needle = needle.lower()
        opts = []
        for i, ref in enumerate(self.presets):
            name, origin = str(getattr(ref, "name", ref)), str(getattr(ref, "origin", ""))
            if needle and needle not in name.lower():
                continue
            # The origin leads: a name too long for the list ends in "…" (app.tcss) and must not take it along.
            opts.append(Option(Content.assemble((f"{origin:<9}", "dim"), name), id=str(i)))
        lst.add_options(opts)
        if opts:
            lst.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._fill("" if _looks_like_path(event.value) else event.value)
        self.query_one("#open-msg", Label).update("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if text:
            path = Path(text).expanduser()
            if path.is_file():
                self.dismiss((path, False))
                return
            # The grey completion is what Enter takes (as → does, and as the save dialog reads): a file opens,
            # a folder is filled in to go on typing.
            suggestion = str(getattr(event.input, "_suggestion", "") or "")
            if _looks_like_path(text) and suggestion.startswith(event.value) and len(suggestion) > len(event.value):
                completed = Path(suggestion.strip()).expanduser()
                if completed.is_file():
                    self.dismiss((completed, False))
                    return
                event.input.value = suggestion
                event.input.action_end()
                return
            if _looks_like_path(text):  # not the highlighted preset: the user meant that file
                self.query_one("#open-msg", Label).update(f"“{text}”: no such file.")
                return
        lst = self.query_one("#open-list", OptionList)
        if lst.option_count and lst.highlighted is not None:
            self._pick(lst.get_option_at_index(lst.highlighted).id)
            return
        self.query_one("#open-msg", Label).update(f"No preset or file matches “{text}”.")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._pick(event.option.id)

    def _pick(self, option_id: str | None) -> None:
        if option_id is None:
            return
        self.dismiss((Path(self.presets[int(option_id)].path), True))

    def action_to_list(self) -> None:
        self.query_one("#open-list", OptionList).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)


def _looks_like_path(text: str) -> bool:
    """Typed text in the load picker that names a file (a separator or a .json ending), not a preset filter."""
    return any(ch in text for ch in "/\\") or text.endswith(".json")


def default_save_path(config: Any, saved_path: Path | None = None, cwd: Path | None = None) -> Path:
    """Where ctrl+s proposes to save: the file this session last saved to, else `<output_name>.json` in the
    config's `output_dir` when that folder exists, else in `cwd` (default: the working directory). Never the file
    a config or preset was loaded from: saving there would overwrite a source preset or someone's kohya_ss file."""
    if saved_path is not None:
        return Path(saved_path)
    name = f"{str(getattr(config, 'output_name', '') or 'lora').strip() or 'lora'}.json"
    out = str(getattr(config, "output_dir", "") or "").strip()
    folder = Path(out).expanduser() if out else None
    if folder is None or not folder.is_dir():
        folder = cwd if cwd is not None else Path.cwd()
    return folder / name


class SaveDialog(ModalScreen["Path | None"]):
    """Ask where to save the config JSON (prefilled); Enter saves, Escape cancels. A path that exists is saved
    over only after `#overwrite-save-dialog` says so (`#choice-overwrite`; `#choice-cancel` returns to the box)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: Path) -> None:
        super().__init__(id="save-dialog")
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("Save the config as JSON (kohya_ss keys) to:", classes="dialog-question")
            yield OrderedInput(str(self.default), id="save-path", compact=True, suggester=PathSuggester(),
                               placeholder="path to a .json file")
            yield Label("", id="save-msg", classes="field-msg -error", markup=False)
            yield Label("Enter saves · → takes the suggested path · Escape cancels", classes="dialog-question")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:  # not a silent cancel: Escape is that
            self.query_one("#save-msg", Label).update("Type where to save (a .json file), or Escape to cancel.")
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self.query_one("#save-msg", Label).update(f"{path} is a folder: add a file name ending in .json.")
            return
        if not path.exists():
            self.dismiss(path)
            return

        def chosen(choice: str | None) -> None:
            if choice == "overwrite":
                self.dismiss(path)
            else:
                self.query_one("#save-path", Input).focus()

        self.app.push_screen(ChoiceDialog(f"{path} exists. Replace it with this config?",
                                          [("overwrite", "Replace it"), ("cancel", "Cancel")],
                                          dialog_id="overwrite-save-dialog", default="cancel"), chosen)

    def action_cancel(self) -> None:
        self.dismiss(None)


def summarize_notes(title: str, notes: list[str]) -> str:
    """One line for what loading a file did, from `config.kohya_json.LoadResult.notes`, e.g. "Loaded x.json:
    8 values read as numbers or defaults, 1 legacy key, 3 keys ignored, 149 defaults". Counts come from the
    notes' own wording (kohya_json: "... read as ...", "legacy ...", "N settings not in the file ...",
    "ignored (...): a, b", "unknown keys ignored: a, b"); anything else counts as "other"."""
    import re

    coerced = legacy = ignored = defaults = other = 0
    for note in map(str, notes):
        m = re.match(r"(\d+) settings? not in the file", note)
        if m:
            defaults += int(m.group(1))
        elif note.startswith(("ignored", "unknown keys ignored")):
            ignored += len([k for k in note.partition(":")[2].split(",") if k.strip()])
        elif "legacy" in note:
            legacy += 1
        elif " read as " in note:
            coerced += 1
        else:
            other += 1

    def count(n: int, one: str, many: str) -> str:
        return f"{n} {one if n == 1 else many}"

    parts = [count(n, one, many) for n, one, many in (
        (coerced, "value converted", "values converted"), (legacy, "legacy key", "legacy keys"),
        (ignored, "key ignored", "keys ignored"), (defaults, "default", "defaults"), (other, "note", "notes"))
        if n]
    return f"{title}: {', '.join(parts)}" if parts else title


class NotesDialog(ModalScreen[None]):
    """What the last load did, one note a line (`#notes-dialog`, list `#notes-list`); Escape or Enter closes."""

    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, notes: list[str]) -> None:
        super().__init__(id="notes-dialog")
        self.title_text = title
        self.notes = [str(n) for n in notes]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(self.title_text, classes="dialog-question", markup=False)
            yield OptionList(*[Option(n) for n in self.notes] or [Option("(no notes)")], id="notes-list",
                             markup=False)
            yield Label("Escape closes", classes="dialog-question")

    def on_mount(self) -> None:
        self.query_one("#notes-list", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
