"""Validation of ``additional_parameters`` against the options of the script the launch runs.

The launch appends these tokens to the trainer's command line, where argparse reads them: an option the script
lacks, a value that is not the option's type, a value given to a switch or a missing value makes the trainer
exit with a usage dump before training. The rules here find that before Start by reading the text with an
argparse parser built from the script's option table (``allow_abbrev``, as sd-scripts and the bundled trainer
build theirs; :func:`~lora_tui.config.sd_scripts.read_argv`): a unique prefix of an option is that option, an
ambiguous one is refused, ``int``/``float`` values are read with ``int()``/``float()``. An option the launch
decides (``FORM_OWNED``: where the LoRA goes, the data, the base model, the config file) is an error however it
is spelled: argparse would let it win over the TOML, past the plan's checks and the overwrite check. Option tables: ``lora_tui/config/sd_scripts_options.json`` (sd-scripts v0.10.1's parsers, the same
names and types as the spec's ``sd_scripts_args.json``), plus the bundled trainer's own switches when
``sd_scripts_dir`` is the bundled trainer. Pure; never raises.
"""
from __future__ import annotations

import difflib
import os
import re
import shlex
from typing import TYPE_CHECKING, Optional

from lora_tui.config.model import script_name
from lora_tui.config.sd_scripts import (
    BUNDLED_ONLY_OPTIONS,
    FORM_OWNED,
    ArgvUse,
    ScriptOption,
    last_uses,
    read_argv,
    script_options,
)
from lora_tui.config.shown import clip, shown
from lora_tui.plan.problems import Problem

if TYPE_CHECKING:
    from lora_tui.config.app_settings import AppSettings
    from lora_tui.config.model import TrainingConfig

_FIELD = "additional_parameters"
# argparse takes a token starting with '-' as an option unless it reads as a negative number.
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
_TYPE_WORDS = {"int": "an integer", "float": "a number", "int_or_float": "a number"}


def _bundled(base: str) -> bool:
    """Whether ``base`` is lora-tui's bundled trainer (it carries its own ``lora_trainer`` package)."""
    return os.path.isdir(os.path.join(base, "lora_trainer"))


def trainer_options(cfg: TrainingConfig, settings: AppSettings) -> Optional[dict[str, ScriptOption]]:
    """The options (name without ``--`` → :class:`ScriptOption`) that the script ``cfg`` launches accepts on its
    command line, for the trainer ``settings.sd_scripts_dir`` selects: sd-scripts' options, plus the bundled
    trainer's own switches when that folder is the bundled trainer. None when unknown (no such script in the
    tables, or the folder lacks the script: another rule reports that)."""
    base = str(getattr(settings, "sd_scripts_dir", "") or "")
    try:
        script = script_name(cfg)
        opts = dict(script_options(script))
    except Exception:  # noqa: BLE001 - a config the model cannot name a script for: reported elsewhere
        return None
    if base and os.path.isdir(base) and not os.path.isfile(os.path.join(base, script)):
        return None
    if not (base and _bundled(base)):
        for name in BUNDLED_ONLY_OPTIONS:
            opts.pop(name, None)
    return opts


def _read(value: str, kind: str) -> bool:
    """Whether argparse reads ``value`` with the option's ``type`` (int / float / int_or_float)."""
    readers = {"int": (int,), "float": (float,), "int_or_float": (int, float)}.get(kind)
    if readers is None:
        return True
    for reader in readers:
        try:
            reader(value)
            return True
        except ValueError:
            continue
    return False


def argv_uses(cfg: TrainingConfig, settings: AppSettings) -> Optional[list[ArgvUse]]:
    """``cfg.additional_parameters`` as the launched script's argparse reads it (see
    :func:`~lora_tui.config.sd_scripts.read_argv`); None when the text does not split or the script's options
    are unknown."""
    text = str(getattr(cfg, _FIELD, "") or "").strip()
    if not text:
        return []
    try:
        tokens = shlex.split(text)
    except ValueError:
        return None
    opts = trainer_options(cfg, settings)
    return None if opts is None else read_argv(tokens, opts)


#: Why each option the form owns may not be given in additional_parameters (the generic reason otherwise).
_OWNED_WHY = {
    "config_file": "it replaces the config file lora-tui writes, so none of the form's settings would reach the "
                   "trainer: remove it (to use that file's settings, load it with ctrl+o)",
    "output_config": "it makes sd-scripts write its settings to a file and exit without training: remove it",
    "in_json": "it switches sd-scripts to a fine-tuning metadata file, which lora-tui neither checks nor counts: "
               "remove it, and give the images with train_data_dir or dataset_config",
    "sample_prompts": "Start writes the prompt file from the sample_prompts field (<output_dir>/sample/prompt.txt): "
                      "paste the prompts into sample_prompts and remove the option",
}


def _owned_problem(name: str, uses: list[ArgvUse]) -> Problem:
    typed = ", ".join(f"'{clip(shlex.join(u.tokens), 120)}'" for u in uses)
    field = FORM_OWNED[name]
    if name in _OWNED_WHY:
        why = _OWNED_WHY[name]
    else:
        value = shlex.join(uses[-1].values) if uses[-1].values else ""
        why = (f"it would override the {field} field, which lora-tui writes into the trainer's config file and "
               f"checks (the existing-LoRA check looks at output_dir, output_name and save_model_as): set {field}"
               f"{f' to {shown(value)}' if value else ''} and remove --{name} from {_FIELD}")
    return Problem(_FIELD, "error", f"{_FIELD} gives --{name} ({typed}); {why}")


def argv_problems(cfg: TrainingConfig, settings: AppSettings) -> list[Problem]:
    """The problems argparse would stop the trainer on in ``cfg.additional_parameters`` (errors), an option the
    form owns (``FORM_OWNED``: output folder and name, data, base model, config file, ...; an error naming its
    field, however argparse would read it: a prefix, ``=``, given twice), and an abbreviated option name (a
    warning: it works, but another script or version may read it otherwise). Text that does not split (an open
    quote) or starts with a value is reported by the general argument-string rule and skipped here. Each message
    names the option and the fix."""
    uses = argv_uses(cfg, settings)
    if not uses:
        return []
    opts = trainer_options(cfg, settings) or {}
    script = script_name(cfg)
    out: list[Problem] = []

    def err(msg: str) -> None:
        out.append(Problem(_FIELD, "error", msg))

    owned = {name: found for name, found in last_uses(uses).items() if name in FORM_OWNED}
    for name, found in owned.items():
        out.append(_owned_problem(name, found))
    for use in uses:
        first = use.tokens[0]
        if not first.startswith("--"):
            continue  # leading values: "must start with an option" (general rule)
        if use.name in owned:
            continue
        opt, eq, after = first[2:].partition("=")
        values = ([after] if eq else []) + list(use.tokens[1:])
        tokens = list(use.tokens)
        shown_tokens = clip(shlex.join(tokens), 200)
        name = use.name
        if name is None and use.error:
            missing = _MISSING_VALUE.match(use.error)
            if missing and missing.group(1) in opts:
                name = missing.group(1)  # "expected one argument": the value checks below say it
            elif "ambiguous" in use.error:
                candidates = sorted(k for k in opts if k.startswith(opt))
                listed = ", ".join(f"--{c}" for c in candidates[:6]) + (" ..." if len(candidates) > 6 else "")
                err(f"--{opt} in {_FIELD} is ambiguous: it abbreviates {listed}; write the full option name")
                continue
            else:
                err(f"'{shown_tokens}' in {_FIELD}: the trainer would stop with '{clip(use.error, 200)}': fix or "
                    f"remove it")
                continue
        if name is None:
            near_names = difflib.get_close_matches(opt, list(opts), n=3, cutoff=0.6)
            near = f" (closest: {', '.join(f'--{c}' for c in near_names)})" if near_names else ""
            err(f"--{clip(opt, 80)} in {_FIELD} is not an option of {script}{near}; the trainer would stop with "
                f"'unrecognized arguments: {shown_tokens}': remove it or fix the name")
            continue
        if name != opt:
            out.append(Problem(_FIELD, "warning", f"--{opt} in {_FIELD} is taken as --{name} (argparse accepts a "
                                                  f"unique prefix): write --{name} in full"))
        meta = opts[name]
        explicit = "=" in tokens[0]
        dashed = [v for v in values if v.startswith("-") and len(v) > 1 and not _NEGATIVE_NUMBER.match(v)]
        if dashed:
            err(f"'{clip(dashed[0], 80)}' after --{name} in {_FIELD} is not a value and not an option of {script} "
                f"(options start with '--'): remove it or fix the name")
            continue
        if meta.type == "flag":
            if values:
                err(f"--{name} in {_FIELD} is a switch and takes no value, but '{shown_tokens}' gives "
                    f"{shown(values[0])}: write --{name} alone to turn it on, or remove it to leave it off")
            continue
        if not values:
            err(f"--{name} in {_FIELD} needs a value ('{shown_tokens}' gives none): write --{name} <value>")
            continue
        if (not meta.list or explicit) and len(values) > 1:
            # argparse gives '--opt=v' its one value even for a list option; what follows is left over
            extra = clip(" ".join(values[1:]), 120)
            how = ("keep one value (quote a value that holds spaces)" if not meta.list else
                   f"write --{name} {clip(' '.join(values), 120)} (without '=') to give several values")
            err(f"--{name} in {_FIELD} {'takes one value' if not meta.list else 'with = takes one value'}; "
                f"'{shown_tokens}' leaves '{extra}' over, which the trainer would refuse as unrecognized: {how}")
            continue
        bad = [v for v in values if not _read(v, meta.type)]
        if bad:
            err(f"--{name} in {_FIELD} takes {_TYPE_WORDS[meta.type]}, and {shown(bad[0])} is not one: write e.g. "
                f"--{name} {'1' if meta.type == 'int' else '0.1' if meta.type == 'float' else '10'}")
    return out


_MISSING_VALUE = re.compile(r"argument --(\S+?): expected")
