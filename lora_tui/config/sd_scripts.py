"""The options each sd-scripts LoRA entry point accepts (sd-scripts v0.10.1 argparse tables, bundled as JSON).

Used to keep the TOML to keys the chosen script knows, with the type it expects (sd-scripts does not coerce TOML
values: a float option must be a TOML float, a flag a boolean, ``resolution`` a string).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

from lora_tui.config.model import all_field_meta


@dataclass(frozen=True)
class ScriptOption:
    """One argparse option: ``type`` is ``flag``, ``str``, ``int``, ``float``, ``int_or_float`` or ``Path``;
    ``list`` is true for ``nargs="*"`` options (a TOML array)."""

    name: str
    type: str
    list: bool


@lru_cache(maxsize=None)
def script_options(script: str) -> dict[str, ScriptOption]:
    """Options of ``script`` (``train_network.py``, ``sdxl_train_network.py``, ``flux_train_network.py``,
    ``sd3_train_network.py``). Raises KeyError for another script name."""
    data = json.loads((Path(__file__).with_name("sd_scripts_options.json")).read_text(encoding="utf-8"))
    opts = {k: ScriptOption(k, v["type"], v["list"]) for k, v in data["scripts"][script].items()}
    if script in BUNDLED_ONLY_SCRIPTS:
        opts.update({k: ScriptOption(k, "flag", False) for k in BUNDLED_ONLY_OPTIONS})
    return opts


#: Options only our bundled trainer knows (its speed switches): the ``TrainingConfig`` fields declared with
#: ``bundled_only=True``, each a flag under its field name. Upstream sd-scripts ignores unknown TOML keys, so
#: writing them is harmless there; validation warns that they have no effect with an upstream checkout.
BUNDLED_ONLY_OPTIONS: tuple[str, ...] = tuple(m.name for m in all_field_meta() if m.bundled_only)
BUNDLED_ONLY_SCRIPTS: tuple[str, ...] = ("train_network.py", "sdxl_train_network.py")


# --- the trainer's command line as its argparse reads it ------------------------------------------------------------

#: Options that the launch itself decides, so that ``additional_parameters`` (argv after ``--config_file``, which
#: argparse lets win over the TOML) must not set them: where the LoRA and the launch files go (the overwrite check
#: looks there), which config file the trainer reads, the data, base model and weights the plan scanned and
#: checked, the prompt file Start writes. Option → the field that holds it (None: no field; refused).
#: Loading a file moves such an option into its field (kohya_json.move_argv_settings); validate refuses one typed
#: later (lora_tui.plan.rules_argv).
FORM_OWNED: dict[str, str | None] = {
    "output_dir": "output_dir", "output_name": "output_name", "save_model_as": "save_model_as",
    "config_file": None, "output_config": None, "dataset_config": "dataset_config",
    "train_data_dir": "train_data_dir", "reg_data_dir": "reg_data_dir", "in_json": None,
    "pretrained_model_name_or_path": "pretrained_model_name_or_path", "network_weights": "network_weights",
    "vae": "vae", "sample_prompts": "sample_prompts",
}


class ArgvParseError(ValueError):
    """Where argparse would stop the trainer with a usage error (an ambiguous prefix, a missing value)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise ArgvParseError(message)


class _Record(argparse.Action):
    """Records each option as argparse reads it (the full name, its values as text), in order."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: D102
        if values is None:
            got: list[str] = []
        elif isinstance(values, str):
            got = [values]
        else:
            got = list(values)
        namespace.__dict__.setdefault("_uses", []).append((self.dest, got))


@dataclass(frozen=True)
class ArgvUse:
    """One option of an argv as argparse reads it: ``name`` (the option's full name, None when the script has
    no such option), ``values`` (text), ``tokens`` (as typed), ``error`` (argparse's usage error for it, e.g.
    an ambiguous prefix or a missing value; "" when none), ``left`` (tokens argparse would leave over:
    "unrecognized arguments")."""

    name: Optional[str]
    values: tuple[str, ...]
    tokens: tuple[str, ...]
    error: str = ""
    left: tuple[str, ...] = ()


@lru_cache(maxsize=16)
def _parser(options: frozenset[tuple[str, str, bool]]) -> argparse.ArgumentParser:
    # allow_abbrev as sd-scripts' parsers (argparse's default), values kept as text; no -h (a prefix of nothing)
    p = _Parser(add_help=False, allow_abbrev=True, exit_on_error=False)
    for name, kind, is_list in sorted(options):
        nargs = 0 if kind == "flag" else "*" if is_list else None
        p.add_argument(f"--{name}", dest=name, action=_Record, nargs=nargs, default=argparse.SUPPRESS)
    return p


def read_argv(tokens: Sequence[str], options: dict[str, ScriptOption]) -> list[ArgvUse]:
    """``tokens`` (already shell-split) read with an argparse parser built from ``options`` the way the trainer's
    parser reads them: unique prefixes (``--output_nam``), ``--opt=value``, ``--opt value``, repeats (the caller
    takes the last: argparse's store action overwrites). One :class:`ArgvUse` per option occurrence, in order;
    tokens before the first option come as one use with name None. Never raises."""
    parser = _parser(frozenset((o.name, o.type, o.list) for o in options.values()))
    uses: list[ArgvUse] = []
    for tokens_of in _occurrences(list(tokens)):
        if not tokens_of[0].startswith("-"):
            uses.append(ArgvUse(None, tuple(tokens_of), tuple(tokens_of), left=tuple(tokens_of)))
            continue
        try:
            ns, left = parser.parse_known_args(tokens_of)
        except (ArgvParseError, argparse.ArgumentError) as exc:
            uses.append(ArgvUse(None, tuple(tokens_of[1:]), tuple(tokens_of), error=str(exc)))
            continue
        recorded = getattr(ns, "_uses", [])
        if not recorded:
            uses.append(ArgvUse(None, tuple(tokens_of[1:]), tuple(tokens_of), left=tuple(left)))
            continue
        name, values = recorded[-1]
        uses.append(ArgvUse(name, tuple(values), tuple(tokens_of), left=tuple(left)))
    return uses


def _occurrences(tokens: list[str]) -> list[list[str]]:
    """``tokens`` cut before each token that starts an option (``--x``); what comes before the first stays one
    piece. Each piece is read by the parser on its own: the trainer's options take no positionals, so a piece
    reads the same alone as within the whole command line."""
    pieces: list[list[str]] = []
    for tok in tokens:
        if tok.startswith("--") and len(tok) > 2 or not pieces:
            pieces.append([tok])
        else:
            pieces[-1].append(tok)
    return pieces


def last_uses(uses: Sequence[ArgvUse]) -> dict[str, list[ArgvUse]]:
    """The uses of each option name, in order (argparse keeps the last one's value)."""
    out: dict[str, list[ArgvUse]] = {}
    for use in uses:
        if use.name:
            out.setdefault(use.name, []).append(use)
    return out


def all_script_options() -> dict[str, ScriptOption]:
    """Every option of every script the app launches, plus the bundled trainer's switches (for reading an argv
    before the script is known: a prefix unique here is unique, and means the same, in each script)."""
    out: dict[str, ScriptOption] = {}
    for script in ("train_network.py", "sdxl_train_network.py", "flux_train_network.py", "sd3_train_network.py"):
        out.update(script_options(script))
    return out
