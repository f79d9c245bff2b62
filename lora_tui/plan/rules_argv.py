"""Validation of ``additional_parameters`` against the options of the script the launch runs.

The launch appends these tokens to the trainer's command line, where argparse reads them: an option the script
lacks, a value that is not the option's type, a value given to a switch or a missing value makes the trainer
exit with a usage dump before training. The rules here find that before Start, following argparse (Python
``argparse`` with ``allow_abbrev``, as sd-scripts and the bundled trainer build their parsers): a unique prefix of
an option is that option, an ambiguous one is refused, ``int``/``float`` values are read with ``int()``/
``float()``. Option tables: ``lora_tui/config/sd_scripts_options.json`` (sd-scripts v0.10.1's parsers, the same
names and types as the spec's ``sd_scripts_args.json``), plus the bundled trainer's own switches when
``sd_scripts_dir`` is the bundled trainer. Pure; never raises.
"""
from __future__ import annotations

import difflib
import os
import re
import shlex
from typing import Any, Optional

from lora_tui.config.kohya_json import argv_options
from lora_tui.config.model import script_name
from lora_tui.config.sd_scripts import BUNDLED_ONLY_OPTIONS, ScriptOption, script_options
from lora_tui.plan.problems import Problem

_FIELD = "additional_parameters"
# argparse takes a token starting with '-' as an option unless it reads as a negative number.
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
_TYPE_WORDS = {"int": "an integer", "float": "a number", "int_or_float": "a number"}


def _bundled(base: str) -> bool:
    """Whether ``base`` is lora-tui's bundled trainer (it carries its own ``lora_trainer`` package)."""
    return os.path.isdir(os.path.join(base, "lora_trainer"))


def trainer_options(cfg: Any, settings: Any) -> Optional[dict[str, ScriptOption]]:
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


def _resolve(opt: str, opts: dict[str, ScriptOption]) -> tuple[Optional[str], list[str]]:
    """``(option name, [])`` for an exact name or a unique prefix (argparse's abbreviation), else ``(None,
    candidates)``: the options an ambiguous prefix matches, or the closest names to an unknown one."""
    if opt in opts:
        return opt, []
    starts = sorted(k for k in opts if k.startswith(opt))
    if len(starts) == 1:
        return starts[0], []
    if starts:
        return None, starts
    return None, difflib.get_close_matches(opt, list(opts), n=3, cutoff=0.6)


def argv_problems(cfg: Any, settings: Any) -> list[Problem]:
    """The problems argparse would stop the trainer on in ``cfg.additional_parameters`` (errors), and an
    abbreviated option name (a warning: it works, but another script or version may read it otherwise). Text
    that does not split (an open quote) or starts with a value is reported by the general argument-string rule
    and skipped here. Each message names the option and the fix."""
    text = str(getattr(cfg, _FIELD, "") or "").strip()
    if not text:
        return []
    try:
        groups = argv_options(shlex.split(text))
    except ValueError:
        return []
    opts = trainer_options(cfg, settings)
    if opts is None:
        return []
    script = script_name(cfg)
    out: list[Problem] = []

    def err(msg: str) -> None:
        out.append(Problem(_FIELD, "error", msg))

    for opt, values, tokens in groups:
        if not opt:
            continue  # leading values: "must start with an option" (general rule)
        shown = shlex.join(tokens)
        name, candidates = _resolve(opt, opts)
        if name is None:
            if candidates and all(c.startswith(opt) for c in candidates):
                listed = ", ".join(f"--{c}" for c in candidates[:6]) + (" ..." if len(candidates) > 6 else "")
                err(f"--{opt} in {_FIELD} is ambiguous: it abbreviates {listed}; write the full option name")
            else:
                near = (f" (closest: {', '.join(f'--{c}' for c in candidates)})" if candidates else "")
                err(f"--{opt} in {_FIELD} is not an option of {script}{near}; the trainer would stop with "
                    f"'unrecognized arguments: {shown}': remove it or fix the name")
            continue
        if name != opt:
            out.append(Problem(_FIELD, "warning", f"--{opt} in {_FIELD} is taken as --{name} (argparse accepts a "
                                                  f"unique prefix): write --{name} in full"))
        meta = opts[name]
        explicit = "=" in tokens[0]
        dashed = [v for v in values if v.startswith("-") and len(v) > 1 and not _NEGATIVE_NUMBER.match(v)]
        if dashed:
            err(f"'{dashed[0]}' after --{name} in {_FIELD} is not a value and not an option of {script} (options "
                f"start with '--'): remove it or fix the name")
            continue
        if meta.type == "flag":
            if values:
                err(f"--{name} in {_FIELD} is a switch and takes no value, but '{shown}' gives "
                    f"{values[0]!r}: write --{name} alone to turn it on, or remove it to leave it off")
            continue
        if not values:
            err(f"--{name} in {_FIELD} needs a value ('{shown}' gives none): write --{name} <value>")
            continue
        if (not meta.list or explicit) and len(values) > 1:
            # argparse gives '--opt=v' its one value even for a list option; what follows is left over
            extra = " ".join(values[1:])
            how = ("keep one value (quote a value that holds spaces)" if not meta.list else
                   f"write --{name} {' '.join(values)} (without '=') to give several values")
            err(f"--{name} in {_FIELD} {'takes one value' if not meta.list else 'with = takes one value'}; "
                f"'{shown}' leaves '{extra}' over, which the trainer would refuse as unrecognized: {how}")
            continue
        bad = [v for v in values if not _read(v, meta.type)]
        if bad:
            err(f"--{name} in {_FIELD} takes {_TYPE_WORDS[meta.type]}, and {bad[0]!r} is not one: write e.g. "
                f"--{name} {'1' if meta.type == 'int' else '0.1' if meta.type == 'float' else '10'}")
    return out
