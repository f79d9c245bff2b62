"""kohya_ss LoRA JSON (presets, saved configs, the JSON written at Start) in and out of :class:`TrainingConfig`.

Reading follows kohya_ss's loader (`update_my_data` in kohya_ss' common_gui.py) for legacy keys and values, but is stricter about
what it cannot read: a value that is neither the field's type nor a clean string form of it raises
:class:`ConfigError` naming the field. Every coercion, rename, default and ignored key is reported in
``LoadResult.notes`` (one line each) so the user can see what happened to their file.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from pydantic import ValidationError

from lora_tui.config.atomic import atomic_write_text
from lora_tui.config.model import FieldMeta, TrainingConfig, all_field_meta, field_meta, normalise_resolution
from lora_tui.config.rates import rates_in_force
from lora_tui.config.sd_scripts import FORM_OWNED, all_script_options, last_uses, read_argv
from lora_tui.config.shown import clip, shown
from lora_tui.config.field_use import unused_value_notes
from lora_tui.config.wording import agree, counted


class ConfigError(ValueError):
    """A config value (or file) that cannot be read or used. ``field`` is the kohya key ("" for the whole file).
    The app's one error for a bad value: the launch raises it too (``plan.launch.LaunchError`` is this class) for
    an argument string that does not split or a TOML that does not read back."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class FileUnreadable(ConfigError):
    """The config file is missing or cannot be read (a :class:`ConfigError` with field ""): there is no config to
    check, unlike a file that reads and holds bad values."""

    def __init__(self, message: str):
        super().__init__("", message)


@dataclass
class LoadResult:
    """A loaded config and what the loader did to get it (coercions, renames, defaults, ignored keys)."""

    config: TrainingConfig
    notes: list[str] = field(default_factory=list)
    #: The fields the file did not hold (they took defaults, or the base's values).
    defaulted: list[str] = field(default_factory=list)


#: Old kohya_ss key → current field (kohya_ss' `update_my_data` renames `lora_network_weights`; the rest appear in real files).
LEGACY_RENAMES: dict[str, str] = {
    "lora_network_weights": "network_weights",
    "sdxl_checkbox": "sdxl",
    "flux1_clip_l": "clip_l",
    "flux1_t5xxl": "t5xxl",
}

#: kohya_ss keys that are known but have no effect here: GUI bookkeeping, options kohya_ss itself ignores,
#: and settings of families we do not cover (HunyuanImage, Anima, Lumina).
IGNORED_KEYS: frozenset[str] = frozenset({
    "save_as_bool", "training_preset", "file_path", "no_token_padding", "stop_text_encoder_training_pct",
    "conv_dims", "conv_alphas", "use_8bit_adam", "use_wandb", "network_module", "network_args",
    "train_inpainting", "show_timesteps", "show_timesteps_resolution",
    "hunyuan_image_checkbox", "anima_checkbox", "lumina_checkbox",
})
_IGNORED_PREFIXES = ("hunyuan_", "anima_", "lumina_")
#: Why a known-but-ignored key's value is not carried over, for a file that sets it (empty/false values and GUI
#: bookkeeping (save_as_bool, training_preset, file_path) go in the one grouped "ignored" note instead).
_IGNORED_WHY: dict[str, str] = {
    "conv_dims": "legacy key that kohya_ss ignores too; set conv_dim (a LoCon/LyCORIS LoRA type) instead",
    "conv_alphas": "legacy key that kohya_ss ignores too; set conv_alpha (a LoCon/LyCORIS LoRA type) instead",
    "no_token_padding": "legacy key that kohya_ss ignores too; the LoRA scripts have no such option",
    "stop_text_encoder_training_pct": "legacy key that kohya_ss ignores too; LoRA training cannot stop the text "
                                      "encoder early (train the U-Net only with text_encoder_lr 0)",
    "use_8bit_adam": "legacy key; the file's optimizer setting is used instead",
    "use_wandb": "legacy key; the file's log_with setting is used instead",
    "network_module": "lora-tui derives the network module from LoRA_type and the model family; set those",
    "network_args": "lora-tui builds network_args from LoRA_type and the network fields (conv_dim, "
                    "rank_dropout, block_dims, ...); set those",
    "train_inpainting": "an upstream kohya_ss option lora-tui does not support",
    "show_timesteps": "an upstream kohya_ss display option lora-tui does not have",
    "show_timesteps_resolution": "an upstream kohya_ss display option lora-tui does not have",
    "hunyuan_image_checkbox": "lora-tui does not train HunyuanImage models",
    "anima_checkbox": "lora-tui does not train Anima models",
    "lumina_checkbox": "lora-tui does not train Lumina models",
}
_EMPTY_TEXT = {"", "false", "0", "none"}

# kohya_ss's fallback for an unreadable/empty value of these integer settings (update_my_data).
_KOHYA_INT_FALLBACK: dict[str, int] = {
    "clip_skip": 0, "epoch": 0, "gradient_accumulation_steps": 0, "keep_tokens": 0, "lr_warmup": 0,
    "max_data_loader_n_workers": 0, "max_train_epochs": 0, "save_every_n_epochs": 0, "seed": 0,
    "max_train_steps": 0, "caption_dropout_every_n_epochs": 0, "lr_scheduler_num_cycles": 1,
    "max_token_length": 75,
}
_NAMES_SHOWN = 12  # in the "not in the file" note; LoadResult.defaulted has them all
_KEYS_SHOWN = 40  # in the "unknown keys ignored" note
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


def _bad(meta: FieldMeta, value: Any, want: str) -> ConfigError:
    return ConfigError(meta.name, f"cannot read {shown(value)} as {want} ({meta.label}); give a valid value")


#: The largest integer the trainer's config file can hold: TOML integers are 64-bit (sd-scripts reads the TOML).
TOML_INT_MAX = 2**63 - 1
#: JSON integers longer than this are not turned into ints (Python refuses past 4,300 digits, and none of these
#: fit a 64-bit TOML integer anyway): they stay text, a :class:`LongNumber`, so the field holding one is named.
_LONG_DIGITS = 400


class LongNumber(str):
    """A JSON integer literal too long to be any setting (see ``_LONG_DIGITS``), kept as its text."""


def _parse_int(text: str) -> Any:
    return LongNumber(text) if len(text) > _LONG_DIGITS else int(text)


def _not_text(meta: FieldMeta, raw: str) -> Optional[ConfigError]:
    """A text value that holds a lone UTF-16 surrogate (a ``\\ud800`` escape in the JSON without its pair): no file
    name, TOML or terminal can take it."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        return ConfigError(meta.name, f"{shown(raw)} holds {raw[exc.start]!r} at character {exc.start + 1}, a lone "
                                      f"UTF-16 surrogate, which is not text ({meta.label}): retype the value")
    return None


def _empty_value(meta: FieldMeta, raw: Any) -> tuple[Any, Optional[str]]:
    """What an empty (null or "") value becomes."""
    if meta.kind in ("int", "float") and meta.optional:
        return None, (f"{meta.name}: {shown(raw)} read as unset" if raw is not None else None)
    if meta.kind == "int" and meta.name in _KOHYA_INT_FALLBACK:
        v = _KOHYA_INT_FALLBACK[meta.name]
    else:
        v = meta.default
    return v, f"{meta.name}: {shown(raw)} read as {shown(v)}"


def coerce_value(meta: FieldMeta, raw: Any) -> tuple[Any, Optional[str]]:
    """Coerce one JSON value to ``meta``'s type, as kohya_ss files hold them (numbers as strings, ``""`` for
    empty, ``1.0`` for integers). Returns ``(value, note or None)``; raises :class:`ConfigError` when the value
    cannot be read."""
    name, kind = meta.name, meta.kind
    if raw is None:
        return _empty_value(meta, raw)
    if isinstance(raw, LongNumber):
        if kind == "str":
            return str(raw), f"{name}: a number of {len(raw)} digits read as text"
        raise ConfigError(name, f"a number of {len(raw)} digits is far out of range ({meta.label}); give a valid "
                                f"value")
    if kind == "bool":
        if isinstance(raw, bool):
            return raw, None
        if isinstance(raw, (int, float)) and raw in (0, 1):
            return bool(raw), f"{name}: {shown(raw)} read as {bool(raw)}"
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            v = raw.strip().lower() in _TRUE
            return v, f"{name}: {shown(raw)} read as {v}"
        raise _bad(meta, raw, "true/false")
    if kind == "str":
        if isinstance(raw, str):
            bad = _not_text(meta, raw)
            if bad is not None:
                raise bad
            return raw, None
        if isinstance(raw, bool):
            v = "" if raw is False else "true"
            return v, f"{name}: {shown(raw)} read as {shown(v)}"
        if isinstance(raw, (int, float)):
            v = str(raw)
            return v, f"{name}: {shown(raw)} read as {shown(v)}"
        raise _bad(meta, raw, "text")
    # numbers
    if isinstance(raw, bool):
        if kind == "int":
            return int(raw), f"{name}: {shown(raw)} read as {int(raw)}"
        raise _bad(meta, raw, "a number")
    note = None
    if isinstance(raw, str):
        text = raw.strip()
        if text == "":
            return _empty_value(meta, raw)
        try:
            num: Any = float(text) if kind == "float" or not text.lstrip("+-").isdigit() else int(text)
        except ValueError:
            raise _bad(meta, raw, "an integer" if kind == "int" else "a number") from None
        note = f"{name}: text {shown(raw)} read as a number"
    elif isinstance(raw, (int, float)):
        num = raw
    else:
        raise _bad(meta, raw, "a number")
    if isinstance(num, float) and not math.isfinite(num):
        raise _bad(meta, raw, "a finite number")
    if meta.optional and meta.zero_unset and num == 0:
        return None, note  # kohya_ss's 0 here means "unset" (max_train_steps 0 = from the epochs, seed 0 = random)
    if kind == "int":
        if isinstance(num, float):
            if not num.is_integer():
                raise _bad(meta, raw, "a whole number")
            num = int(num)
        if abs(num) > TOML_INT_MAX:
            raise ConfigError(name, f"{shown(num)} is out of range ({meta.label}): the trainer's config file holds "
                                    f"integers up to {TOML_INT_MAX}; give a valid value")
        return num, note
    try:
        return float(num), note
    except OverflowError:
        raise ConfigError(name, f"{shown(num)} is too large for a number ({meta.label}); give a valid "
                                f"value") from None


def _has_value(raw: Any) -> bool:
    """Whether an ignored key's value says something (kohya_ss writes ``false``, ``""`` or 0 for unused ones)."""
    if raw is None or raw is False:
        return False
    if isinstance(raw, str):
        return raw.strip().lower() not in _EMPTY_TEXT
    if isinstance(raw, (int, float)):
        return raw != 0
    return bool(raw)


# What tells a kohya_ss LoRA file from the GUI's other tabs (Textual Inversion, DreamBooth, Fine-tuning): every LoRA
# file among the 63 real ones has LoRA_type, network_dim, network_alpha, unet_lr and text_encoder_lr, and no file of
# another tab has any of them; the other tabs' own keys come from those files.
_LORA_KEYS = frozenset({"LoRA_type", "unet_lr", "text_encoder_lr", "lora_network_weights", "conv_dim", "conv_alpha"})
_OTHER_TABS: tuple[tuple[str, frozenset[str]], ...] = (
    ("Textual Inversion", frozenset({"token_string", "init_word", "num_vectors_per_token"})),
    ("Fine-tuning", frozenset({"train_dir", "image_folder", "caption_metadata_filename", "latent_metadata_filename",
                               "use_latent_files", "create_buckets", "create_caption"})),
    ("DreamBooth", frozenset({"learning_rate_te", "learning_rate_te1", "learning_rate_te2",
                              "stop_text_encoder_training"})),
)
_METADATA_KEYS = frozenset({"caption", "tags", "train_resolution"})


def refuse_other_kinds(data: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` (field "") for a JSON that is not a LoRA config and would otherwise load as one
    with everything it holds dropped: a kohya_ss Textual Inversion, DreamBooth or Fine-tuning config (a file with
    none of the LoRA keys ``LoRA_type``, ``network_*``, ``unet_lr``, ... and the keys of that tab), or a kohya
    metadata file (one ``{"caption"/"tags": ...}`` object per image, the finetune tools' output). A LoRA file and
    a partial dict of settings pass."""
    if data and all(isinstance(v, Mapping) for v in data.values()):
        if any(_METADATA_KEYS & set(v) for v in data.values()):
            first = next(iter(data))
            raise ConfigError("", f"this is a kohya metadata file (captions/tags for each image, such as "
                                  f"{shown(first)}), not a training config: load the LoRA config JSON instead")
    if any(k in _LORA_KEYS or k.startswith("network_") for k in data):
        return
    for kind, keys in _OTHER_TABS:
        found = sorted(keys & set(data))
        if found:
            names = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
            raise ConfigError("", f"this is a kohya_ss {kind} config ({names}; no LoRA_type or network_* "
                                  f"settings): lora-tui trains LoRA networks only; start from a LoRA preset or a "
                                  f"kohya_ss LoRA config instead")


def _legacy_keys(d: dict[str, Any], notes: list[str], forced: frozenset[str] = frozenset()) -> None:
    """kohya_ss's own legacy key fixes (kohya_ss' `update_my_data`): renames and settings derived from old keys,
    each reported. ``forced``: fields given on the command line (``--set``), which the file's legacy keys must not
    overwrite: an old key renamed into one of them is dropped, with a note."""
    if "optimizer" not in d and "optimizer" not in forced and "use_8bit_adam" in d:
        d["optimizer"] = "AdamW8bit" if d.get("use_8bit_adam") in (True, "true", "True") else "AdamW"
        notes.append(f"optimizer: set to {d['optimizer']} from legacy use_8bit_adam")
    if str(d.get("use_wandb", "")).lower() == "true" and not d.get("log_with") and "log_with" not in forced:
        d["log_with"] = "wandb"
        notes.append("log_with: set to 'wandb' from legacy use_wandb")
    for old, new in LEGACY_RENAMES.items():
        if old in d:
            value = d.pop(old)
            if new in forced:
                notes.append(f"{old}: legacy key ignored, {new} is given on the command line")
            elif new in d and d[new] not in (None, ""):
                notes.append(f"{old}: legacy key ignored, {new} is also set")
            else:
                d[new] = value
                notes.append(f"{old}: legacy key renamed to {new}")


def _legacy_values(d: dict[str, Any], notes: list[str]) -> None:
    """kohya_ss's own legacy value fixes (kohya_ss' `update_my_data`), each reported."""
    if d.get("LoRA_type") == "LoCon":
        d["LoRA_type"] = "LyCORIS/LoCon"
        notes.append("LoRA_type: legacy 'LoCon' read as 'LyCORIS/LoCon'")
    if isinstance(d.get("xformers"), bool):
        new = "xformers" if d["xformers"] else "none"
        notes.append(f"xformers: legacy {d['xformers']!r} read as {shown(new)}")
        d["xformers"] = new
    if "save_model_as" in d and d["save_model_as"] not in ("safetensors", "ckpt"):
        notes.append(f"save_model_as: {shown(d['save_model_as'])} is not a LoRA format, read as 'safetensors'")
        d["save_model_as"] = "safetensors"


# Fields whose TOML key is not a plain copy of the field (the launch derives it from several fields), and list
# options (nargs="*") that the form holds as one text: an argv value for the former stays in the argv.
_NOT_MOVED = frozenset({"learning_rate", "unet_lr", "text_encoder_lr", "max_train_steps", "max_train_epochs",
                        "lr_warmup", "lr_warmup_steps", "sample_prompts", "max_token_length", "max_resolution",
                        "additional_parameters"})
_LIST_TEXT = frozenset({"optimizer_args", "lr_scheduler_args"})


def argv_options(tokens: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """Split argv ``tokens`` (already shlex-split) into options: ``--opt[=v] [v ...]`` → ``(opt, values,
    tokens)``, in order; tokens before the first option come as ``("", tokens, tokens)``."""
    groups: list[tuple[str, list[str], list[str]]] = []
    for tok in tokens:
        if tok.startswith("--") and len(tok) > 2:
            opt, eq, value = tok[2:].partition("=")
            groups.append((opt, [value] if eq else [], [tok]))
        elif groups:
            groups[-1][1].append(tok)
            groups[-1][2].append(tok)
        else:
            groups.append(("", [tok], [tok]))
    return groups


def move_argv_settings(values: dict[str, Any], notes: list[str], forced: frozenset[str] = frozenset()) -> None:
    """Move options of ``values["additional_parameters"]`` (extra trainer argv) that a field holds into that field,
    each with a note. sd-scripts parses the command line after ``--config_file`` and the command line wins (CLI >
    TOML > default: sd-scripts' `train_util.read_config_from_file` only fills what argv left unset), so kohya_ss trained with the argv value: the field takes it, and
    the form and the TOML show what will be used. The argv is read as the trainer's argparse reads it
    (:func:`~lora_tui.config.sd_scripts.read_argv`: a unique prefix such as ``--output_nam`` is ``--output_name``,
    ``--opt=v`` and ``--opt v`` alike). An option the launch decides (``FORM_OWNED``: output folder and name, data,
    base model, ...) moves even when given several times, with the last value (argparse's): it must not stay in
    the argv, where it would move the LoRA past the overwrite check. Kept in the argv: options without a field,
    fields the launch derives from several settings (learning rates, steps, warm-up, ...), another option given
    twice, a value argparse would not read (a missing or extra value), and a value that does not read as the
    field's type (validate reports what is left). ``forced``: fields given on the command line (``--set``): that
    value wins over the argv's, whose option is dropped from the argv (with a note), since it would win over the
    TOML."""
    text = values.get("additional_parameters")
    if not isinstance(text, str) or "--" not in text:
        return
    try:
        tokens = shlex.split(text)
    except ValueError:
        return  # validate reports the unbalanced quote
    uses = read_argv(tokens, all_script_options())
    by_key = {m.toml_key: m for m in all_field_meta() if m.toml_key == m.name and m.name not in _NOT_MOVED}
    moved: set[str] = set()
    for name, occurrences in last_uses(uses).items():
        meta = by_key.get(name)
        if meta is None or any(u.error or u.left for u in occurrences):
            continue
        if len(occurrences) > 1 and name not in FORM_OWNED:
            continue
        args = list(occurrences[-1].values)
        new: Any = None
        if meta.name in _LIST_TEXT:
            new = shlex.join(args) if args else None
        elif meta.kind == "bool":
            new = True if not args else None
        elif len(args) == 1:
            try:
                new, _ = coerce_value(meta, args[0])
            except ConfigError:
                new = None
        if new is None:
            continue
        moved.add(name)
        if meta.name in forced:
            typed = " ".join(f"'{shlex.join(u.tokens)}'" for u in occurrences)
            notes.append(f"additional_parameters: {clip(typed, 200)} dropped, {meta.name} is given on the command "
                         f"line (the argv option would win over it)")
            continue
        in_file = meta.name in values
        old = values[meta.name] if in_file else meta.default
        typed = " ".join(f"'{shlex.join(u.tokens)}'" for u in occurrences)
        note = f"{meta.name}: {shown(new)} moved in from additional_parameters ({clip(typed, 200)})"
        if len(occurrences) > 1:
            note += f", given {len(occurrences)} times: the trainer's argparse keeps the last"
        if old not in (None, "") and old != new:
            # the TOML would have said `old` while the command line said `new`, and the command line wins
            whose = "the file's" if in_file else "the default"
            note += (f", replacing {whose} {shown(old)} (sd-scripts lets the command line win over its config file, "
                     f"so that is what kohya_ss trained with)")
        notes.append(note)
        values[meta.name] = new
    if moved:
        values["additional_parameters"] = shlex.join([t for u in uses if u.name not in moved for t in u.tokens])


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """``--set key=value`` items → ``{key: raw text}`` (read later like a JSON-file value: ``48``, ``true``,
    ``1e-4``, empty = unset). Raises :class:`ConfigError` for an item without ``=`` or an unknown key."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("", f"--set {shown(item)}: expected key=value, e.g. --set network_dim=32")
        if key not in TrainingConfig.model_fields:
            raise ConfigError(key, "no such setting (use a kohya_ss key such as network_dim)")
        out[key] = raw
    return out


#: Machine-local paths: a file without them (every shared kohya_ss preset: they name no checkpoint or folder) keeps
#: the form's values (`config_from_dict(local=...)`), so loading a preset over the demo or a set-up form does not
#: blank the user's checkpoint and folders. Everything else a file lacks is a training setting and takes its default.
MACHINE_LOCAL_PATHS: tuple[str, ...] = (
    "pretrained_model_name_or_path", "train_data_dir", "output_dir", "logging_dir",
)


def config_from_dict(data: Mapping[str, Any], base: Optional[TrainingConfig] = None,
                     overrides: Optional[Mapping[str, Any]] = None,
                     local: Optional[TrainingConfig] = None) -> LoadResult:
    """Build a config from a kohya-style dict (kohya key space; our own JSON is the same).

    Every field is set: keys present in ``data`` are coerced (see :func:`coerce_value`); missing keys take
    ``base``'s value when given (applying a preset over the current form) or our defaults, and a note lists them.
    ``local`` (a file loaded in place of the form): the :data:`MACHINE_LOCAL_PATHS` the file lacks keep
    ``local``'s non-empty values instead of the empty default, with their own note. A null (kohya_ss reads null as
    "keep the form's value") for a field that cannot be unset counts as missing (``lr_warmup: null`` takes the
    default 10, as a missing one does); for an optional number null is our "unset".
    ``overrides`` (``--set key=raw``): raw values applied after the file's legacy renames, so they win over any
    old key renamed into the same field and over the same option in ``additional_parameters``; they replace the
    file's value before it is read (an unreadable file value can be fixed that way).
    Unknown keys are reported in the notes, never fatal; so is an ignored key's value that says something
    (``"<key>: <value> not carried over: <why>"``), and a value the file sets for a field its LoRA type, family or
    noise type does not use (kept in the config, ``"<field>: <value> kept, not used: <why>"``, see
    :mod:`lora_tui.config.field_use`). Raises :class:`ConfigError` naming the field for a value
    that cannot be read, and (field "") for a file of another kind (see :func:`refuse_other_kinds`).
    """
    if not isinstance(data, Mapping):
        raise ConfigError("", f"expected a JSON object of settings, found {type(data).__name__}")
    overrides = dict(overrides or {})
    forced = frozenset(overrides)
    refuse_other_kinds({**data, **overrides})
    d = {k: v for k, v in data.items() if k not in forced}
    notes: list[str] = []
    _legacy_keys(d, notes, forced)
    d.update(overrides)
    _legacy_values(d, notes)
    # _legacy_keys consumed these when it used them (the optimizer/log_with it set is noted there).
    used = {k for k, used_if in (("use_8bit_adam", "optimizer" not in data and "optimizer" not in forced),
                                 ("use_wandb", d.get("log_with") == "wandb" and not data.get("log_with")))
            if used_if}
    values: dict[str, Any] = {}
    unknown: list[str] = []
    ignored: list[str] = []
    nulls: list[str] = []
    derived: dict[str, Any] = {}
    for key, raw in d.items():
        try:
            meta = field_meta(key)
        except KeyError:
            if key in DERIVED_KEYS:
                derived[key] = raw
            elif key in IGNORED_KEYS or key.startswith(_IGNORED_PREFIXES):
                if key in _IGNORED_WHY and key not in used and _has_value(raw):
                    notes.append(f"{key}: {shown(raw)} not carried over: {_IGNORED_WHY[key]}")
                else:
                    ignored.append(key)
            else:
                unknown.append(key)
            continue
        if raw is None and not meta.optional:
            nulls.append(key)  # kohya_ss: a null value keeps the form's value, as a missing key does
            continue
        value, note = coerce_value(meta, raw)
        if key == "max_resolution" and value is not None:
            try:
                normal = normalise_resolution(value)
            except ValueError as exc:
                raise ConfigError(key, clip(str(exc), 200)) from None
            if normal != value:
                note = f"max_resolution: {shown(value)} read as {shown(normal)}"
            value = normal
        if note:
            notes.append(note)
        values[key] = value
    move_argv_settings(values, notes, forced)
    notes.extend(f"{key}: null read as not in the file (kohya_ss keeps the form's value for a null)" for key in nulls)
    missing = [m.name for m in all_field_meta() if m.name not in values]
    kept_local: list[str] = []
    if base is not None:
        for name in missing:
            values[name] = getattr(base, name)
    elif local is not None:
        for name in MACHINE_LOCAL_PATHS:
            if name in missing and getattr(local, name):
                values[name] = getattr(local, name)
                kept_local.append(name)
    defaulted = [n for n in missing if n not in kept_local]
    if kept_local:
        notes.append(f"{counted(len(kept_local), 'machine-local path')} not in the file "
                     f"{agree(len(kept_local), 'was', 'were')} kept from the form: {', '.join(kept_local)}")
    if defaulted:
        source = "kept from the form" if base is not None else "took defaults"
        names = ", ".join(defaulted[:_NAMES_SHOWN]) + (
            f" and {len(defaulted) - _NAMES_SHOWN} more" if len(defaulted) > _NAMES_SHOWN else "")
        notes.append(f"{missing_note_head(len(defaulted), source)}: {names}")
    if ignored:
        notes.append(f"ignored (no effect in lora-tui): {', '.join(sorted(ignored))}")
    if unknown:
        keys = sorted(unknown)
        listed = ", ".join(clip(k, 60) for k in keys[:_KEYS_SHOWN])
        more = f" and {len(keys) - _KEYS_SHOWN} more" if len(keys) > _KEYS_SHOWN else ""
        notes.append(f"unknown keys ignored: {listed}{more}")
    try:
        cfg = TrainingConfig.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = str(err["loc"][0]) if err.get("loc") else ""
        msg = err.get("msg", str(exc)).removeprefix("Value error, ")
        inp = err.get("input")
        if isinstance(inp, str) and len(inp) > 80:
            msg = msg.replace(inp, shown(inp)[1:-1])  # a validator's message may quote the whole value
        raise ConfigError(loc, f"{clip(_LONG_WORDS.sub(_cut, msg), 500)} (value {shown(inp)})") from None
    notes.extend(_derived_notes(cfg, derived))
    # Values the file sets for another LoRA type, family or noise type: kept, but the user is told.
    notes.extend(unused_value_notes(cfg, [k for k in d if k in values]))
    return LoadResult(cfg, notes, defaulted)


def missing_note_head(n: int, source: str) -> str:
    """The start of the note about the ``n`` settings a file lacked: "1 setting not in the file took its default",
    "3 settings not in the file took defaults", "2 settings not in the file kept from the form" (``source``:
    "took defaults" or "kept from the form"). The app's toast finds the note by :data:`MISSING_NOTE`."""
    if n == 1 and source == "took defaults":
        source = "took its default"
    return f"{counted(n, 'setting')} not in the file {source}"


#: Matches :func:`missing_note_head`: group 1 the count, group 2 "kept from the form" / "took defaults" /
#: "took its default".
MISSING_NOTE = re.compile(r"(\d+) settings? not in the file (kept from the form|took defaults|took its default)\b")

#: sd-scripts switches a file may hold that lora-tui (like kohya_ss, which has no such setting) derives from the
#: learning rates: text_encoder_lr 0 → network_train_unet_only, unet_lr 0 → network_train_text_encoder_only.
DERIVED_KEYS: dict[str, str] = {
    "network_train_unet_only": "text_encoder_lr 0 (the U-Net trains alone)",
    "network_train_text_encoder_only": "unet_lr 0 (the text encoder trains alone)",
}


def _derived_notes(cfg: TrainingConfig, derived: Mapping[str, Any]) -> list[str]:
    """What became of a file's ``network_train_unet_only`` / ``network_train_text_encoder_only``: the launch writes
    them from the learning rates (config.rates), so a note says whether the file's value is what will be written."""
    written = rates_in_force(cfg).toml
    notes = []
    for key, raw in derived.items():
        on = bool(written.get(key))
        said = _has_value(raw) and str(raw).strip().lower() not in _FALSE
        if said and on:
            notes.append(f"{key}: {shown(raw)} kept: lora-tui writes it from {DERIVED_KEYS[key]}")
        elif said:
            notes.append(f"{key}: {shown(raw)} not carried over: lora-tui writes it from the learning rates, as "
                         f"kohya_ss does; set {DERIVED_KEYS[key]} to get it")
        elif on:
            notes.append(f"{key}: {shown(raw)} in the file, but lora-tui writes it on: it comes from "
                         f"{DERIVED_KEYS[key]}")
    return notes


_LONG_WORDS = re.compile(r"\S{120,}")


def _cut(m: re.Match) -> str:
    """A long run without spaces in a message (a quoted value) cut to 80 characters."""
    return f"{m.group()[:80]}…({len(m.group())} characters)"


def load_config_file(path: str | os.PathLike[str], base: Optional[TrainingConfig] = None,
                     local: Optional[TrainingConfig] = None) -> LoadResult:
    """Read a kohya_ss LoRA JSON (or ours) from ``path``; see :func:`config_from_dict` (``base``, ``local``).

    Raises :class:`ConfigError` (field "") when the file is missing, unreadable or not JSON."""
    return config_from_dict(read_config_dict(path), base=base, local=local)


def read_config_dict(path: str | os.PathLike[str]) -> Any:
    """The raw JSON value of a config file (normally a dict). Raises :class:`ConfigError` (field "") when the
    file is missing, unreadable or not JSON."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileUnreadable(f"{p}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{p}: not a text file ({clip(str(exc), 200)})") from None
    except OSError as exc:
        raise FileUnreadable(f"{p}: cannot read ({exc})") from None
    try:
        data = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise ConfigError("", f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        # Lists or objects nested hundreds deep (Python's parser recurses once per level): no setting is.
        key = _deep_key(text, _DEPTH_SHOWN)
        raise ConfigError(key, f"its value is nested too deep to read (more than {_DEPTH_SHOWN} levels of lists "
                               f"or objects); no setting is: give a plain value") from None
    except ValueError as exc:
        raise ConfigError("", f"{p}: cannot read ({clip(str(exc), 200)})") from None
    return data


_DEPTH_SHOWN = 100
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:]')


def _deep_key(text: str, limit: int) -> str:
    """The top-level key whose value first nests deeper than ``limit`` in JSON ``text`` ("" when none is found):
    a scan of strings and brackets, without recursion."""
    depth, key, last = 0, "", ""
    for m in _JSON_TOKENS.finditer(text):
        tok = m.group()
        if tok[0] == '"':
            last = tok
        elif tok in "[{":
            depth += 1
            if depth > limit:
                try:
                    return clip(json.loads(key), 60) if key else ""
                except ValueError:
                    return clip(key, 60)
        elif tok in "]}":
            depth -= 1
        elif depth == 1:  # ':' after a top-level key
            key = last
    return ""


def config_to_dict(cfg: TrainingConfig) -> dict[str, Any]:
    """Every field under its kohya_ss key, keys sorted (kohya_ss's own save format). Unset numbers are null
    (kohya_ss then keeps its current value), except where kohya_ss spells "unset" as 0 (``max_train_steps``,
    ``max_train_epochs``, ``seed``): those are written as 0 so kohya_ss does not fall back to its 1600 steps."""
    dumped = cfg.model_dump()
    for name in _ZERO_MEANS_UNSET:
        if dumped[name] is None:
            dumped[name] = 0
    return {k: dumped[k] for k in sorted(dumped)}


_ZERO_MEANS_UNSET = tuple(m.name for m in all_field_meta() if m.optional and m.zero_unset and m.kind == "int")


def config_to_json(cfg: TrainingConfig) -> str:
    """:func:`config_to_dict` as JSON text: ``indent=2``, UTF-8 characters kept, trailing newline."""
    return json.dumps(config_to_dict(cfg), indent=2, ensure_ascii=False) + "\n"


def save_config_file(cfg: TrainingConfig, path: str | os.PathLike[str], *, exclusive: bool = False) -> Path:
    """Write ``cfg`` as kohya_ss-compatible JSON to ``path`` atomically (temp file + rename). Raises OSError."""
    return atomic_write_text(path, config_to_json(cfg), exclusive=exclusive)
