"""Config files and presets: the config a new form opens with (`DEFAULT_PRESET`, `default_config`), loading a preset
or kohya_ss / lora-tui JSON file (ctrl+o, `load_file`, `load_config`), the load notes (ctrl+n) and saving as JSON
(ctrl+s). Mixed into `LoraApp` (`ConfigFiles`); `config_path`, `source`, `clean_config` and `notes` are set up in
`LoraApp.__init__`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig


class ConfigFiles:
    """Loads replace the whole config (presets apply over the form's values, resetting a kept value they make
    invalid; files take defaults for missing keys) and tell the user what they converted in one toast
    (`announce_load`); saves write kohya_ss keys and make the saved file the default target of the next ctrl+s.

    Bindings served: ctrl+o (`action_open`, `#open-dialog`), ctrl+s (`action_save`, `#save-dialog`), ctrl+n
    (`action_show_notes`, `#notes-dialog`). Messages handled: none (the dialogs answer through callbacks).
    """

    def init_source(self, source: str, config_path: Path | None) -> None:
        """At construction: what is loaded, in words (`source`, the subtitle), the file it came from
        (`config_path`, ctrl+s's default target) and the config as loaded (`clean_config`: an edit since shows as
        "modified"). Only this mixin writes them."""
        self.source = source
        self.config_path = config_path
        self.clean_config = self.config

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
        `app.load_notes` for ctrl+n (`#notes-dialog`). One toast, not one per note: they covered the panel.

        The toast and the notes say the same about the keys the file lacked: "N settings kept from the form"
        (a preset applied over the form) or "N settings took defaults" (a file), and "N invalid values took
        defaults" for kept values a preset made invalid (`load_file`)."""
        from lora_tui.ui.dialogs import summarize_notes

        from lora_tui.config.kohya_json import MISSING_NOTE
        from lora_tui.config.presets import RESET_NOTE_MARK
        from lora_tui.config.wording import counted

        texts = [str(n) for n in notes]
        self.load_notes = (title, texts)
        # These are counted here (summarize_notes would call them "defaults" and "notes"), in the notes' words.
        parts, rest, resets = [], [], 0
        for note in texts:
            m = MISSING_NOTE.match(note)
            local = _LOCAL_NOTE.match(note)
            if m:
                parts.append(f"{counted(int(m.group(1)), 'setting')} {m.group(2)}")
            elif local:
                parts.append(f"{counted(int(local.group(1)), 'path')} kept from the form")
            elif RESET_NOTE_MARK in note:
                resets += 1
            else:
                rest.append(note)
        if resets:
            parts.append(f"{counted(resets, 'invalid value')} took "
                         f"{'its default' if resets == 1 else 'defaults'}")
        summary = summarize_notes(title, rest)
        if parts:
            summary += (", " if summary != title else ": ") + ", ".join(parts)
        more = " · ctrl+n: details" if notes else ""
        self.notify(summary + more, title="Loaded", timeout=6)

    def action_show_notes(self) -> None:
        """ctrl+n: what the last load did (converted values, legacy and ignored keys, defaults), one per line."""
        from lora_tui.ui.dialogs import NotesDialog

        title, notes = getattr(self, "load_notes", None) or ("No file loaded in this session", [])
        self.push_screen(NotesDialog(title, notes))

    def action_open(self) -> None:
        """ctrl+o: presets (ours and the user's) or any JSON path, picked in the terminal. While the form has
        unsaved edits (`modified`), the pick is confirmed first (`#discard-edits-dialog`, Cancel by default)."""
        from lora_tui.config.presets import list_presets
        from lora_tui.ui.dialogs import OpenDialog

        try:
            presets = list_presets(self.settings)
        except Exception as exc:
            presets = []
            self.notify(f"Presets could not be listed: {exc}", severity="warning")
        self.push_screen(OpenDialog(presets), self._open_picked)

    def _open_picked(self, picked: tuple[Path, bool] | None) -> None:
        if picked is None:
            return
        path, is_preset = picked
        if not self.modified:
            self.load_file(path, over_current=is_preset)
            return
        from lora_tui.ui.dialogs import ChoiceDialog

        def chosen(choice: str | None) -> None:
            if choice == "load":
                self.load_file(path, over_current=is_preset)

        # A load replaces the form's values (a preset those it sets): edits not saved would be lost unasked.
        what = f"preset {Path(path).stem}" if is_preset else str(path)
        self.push_screen(ChoiceDialog(
            f"The form has unsaved edits ({self.source} · modified). Load {what} and discard them? "
            f"(ctrl+s saves them first)",
            [("load", "Load and discard edits"), ("cancel", "Cancel")],
            dialog_id="discard-edits-dialog", default="cancel"), chosen)  # a stray Enter must not lose edits

    def load_file(self, path: Path, over_current: bool = False) -> bool:
        """Load a preset or kohya_ss / lora-tui JSON file into the form; errors are shown, never raised.

        With `over_current` (presets) the keys the file lacks keep the form's values; otherwise they take the
        defaults (design.md: loading a config sets every field). Either way the user is told which. A kept value
        that the preset makes an error under the plan's validation (SDXL's bucket_reso_steps 32 under an SD1.x
        preset) takes its default instead when that is no error, with a note (`presets.reset_invalid_kept`;
        paths and output names are never reset).
        """
        from lora_tui.config.kohya_json import load_config_file

        try:
            # A file replaces the form, but the machine-local paths it lacks (every shared kohya_ss preset has
            # none) keep the form's: the user's checkpoint and folders (kohya_json.MACHINE_LOCAL_PATHS).
            result = load_config_file(path, base=self.config if over_current else None,
                                      local=None if over_current else self.config)
        except Exception as exc:
            self.notify(f"{path}: {exc}", title="Not loaded", severity="error", timeout=12)
            return False
        config, notes = result.config, list(result.notes)
        if over_current:
            config, resets = self._reset_invalid_kept(config, result.defaulted)
            if resets:
                notes = resets + _without_reset(notes, result.defaulted, [r.partition(":")[0] for r in resets])
        self.load_config(config, (), source=None if over_current else Path(path),
                         label=f"preset {Path(path).stem}" if over_current else None)
        what = "Applied preset" if over_current else "Loaded"
        self.announce_load(f"{what} {Path(path).name}", notes)
        return True

    def _reset_invalid_kept(self, config: TrainingConfig, kept: list[str]) -> tuple[TrainingConfig, list[str]]:
        """`presets.reset_invalid_kept` under the plan's validation (the last scan when it is for these folders,
        else none: the folders are kept, so it usually is). A validation bug keeps the config as loaded."""
        from lora_tui.config.presets import reset_invalid_kept
        from lora_tui.plan import validate

        scan = getattr(getattr(self, "plan", None), "scan", None)
        if scan is not None and not scan.matches(config):
            scan = None

        def errors_of(cfg: TrainingConfig) -> dict[str, str]:
            errors: dict[str, str] = {}
            for p in validate(cfg, scan, self.settings):
                if p.severity == "error":
                    errors.setdefault(p.field, p.message)
            return errors

        try:
            return reset_invalid_kept(config, kept, errors_of)
        except Exception:  # the plan shows its own failure; the load itself must still happen
            return config, []

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
        self.refresh_title()
        self.notify(f"Saved {path}", timeout=4)


_LOCAL_NOTE = re.compile(r"(\d+) machine-local paths? not in the file")


def _without_reset(notes: list[str], missing: list[str], reset: list[str]) -> list[str]:
    """`notes` with the "N settings not in the file ..." line counting and naming only the fields still kept
    (`missing` less `reset`): a reset field took its default, it was not kept."""
    from lora_tui.config.kohya_json import MISSING_NOTE, missing_note_head

    kept = [name for name in missing if name not in reset]
    out = []
    for note in notes:
        m = MISSING_NOTE.match(note)
        if m and int(m.group(1)) == len(missing):
            if not kept:
                continue
            shown = ", ".join(kept[:_NAMES_SHOWN]) + (
                f" and {len(kept) - _NAMES_SHOWN} more" if len(kept) > _NAMES_SHOWN else "")
            note = f"{missing_note_head(len(kept), m.group(2))}: {shown}"
        out.append(note)
    return out


_NAMES_SHOWN = 12  # as kohya_json's note


from lora_tui.config.presets import DEFAULT_PRESET  # noqa: E402 - re-exported: the preset a new form opens with


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

