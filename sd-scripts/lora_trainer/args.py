"""Command line and `--config_file` handling with sd-scripts' option names and semantics.

The parser is built from `args_catalogue.json` (every option of kohya's `train_network.py` /
`sdxl_train_network.py`: action, type, nargs, choices, default), so names, abbreviations and `nargs` behave
as in sd-scripts. `--config_file` follows spec sd_scripts_interface.md §1.2: `.toml` appended when missing,
top-level tables flattened one level (last one wins), then the command line parsed again on top
(CLI > TOML > default), TOML values taken as-is. Unlike sd-scripts, unknown TOML keys get a warning.
"""
from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).parent
CATALOGUE = HERE / "args_catalogue.json"
UNSUPPORTED = HERE / "unsupported_options.json"


class OptionError(Exception):
    """An option value we cannot run with; the message names the option."""


def _int_or_float(s: str):
    try:
        return int(s)
    except ValueError:
        return float(s)


_TYPES = {"str": str, "int": int, "float": float, "int_or_float": _int_or_float, "Path": Path, None: None}


def catalogue(script: str) -> dict:
    """{option: {action, type, nargs, choices, default}} of `script` ("train_network", "sdxl_train_network",
    "flux_train_network")."""
    from .flux_options import catalogue_for

    return catalogue_for(script, json.loads(CATALOGUE.read_text()))


def build_parser(script: str) -> argparse.ArgumentParser:
    """argparse parser for `script` ("train_network" or "sdxl_train_network")."""
    cat = catalogue(script)
    from .speed import SPEED_OPTIONS  # this trainer's speed switches (no torch import)
    cat = {**cat, **SPEED_OPTIONS}
    p = argparse.ArgumentParser(prog=f"{script}.py", description="LoRA trainer with kohya sd-scripts' interface")
    for name, spec in cat.items():
        if spec["action"] == "_StoreTrueAction":
            p.add_argument(f"--{name}", action="store_true")
            continue
        kw = {"default": spec["default"]}
        if spec["type"] in _TYPES and spec["type"] is not None:
            kw["type"] = _TYPES[spec["type"]]
        if spec["nargs"] is not None:
            kw["nargs"] = spec["nargs"]
        if spec["choices"]:
            kw["choices"] = spec["choices"]
        p.add_argument(f"--{name}", **kw)
    return p


def _warn(msg: str) -> None:
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)


def parse_args(script: str, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (and `--config_file`) as sd-scripts does; exits 1 when the TOML is missing or
    unreadable (message names the file), 2 on argparse errors."""
    parser = build_parser(script)
    args = parser.parse_args(argv)
    if not args.config_file:
        return _implied(args)
    path = Path(args.config_file)
    if path.suffix != ".toml":
        path = Path(str(path) + ".toml")
    if not path.is_file():
        print(f"ERROR: config_file: {path} not found.", file=sys.stderr)
        raise SystemExit(1)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        print(f"ERROR: config_file: {path} is not valid TOML: {e}", file=sys.stderr)
        raise SystemExit(1)
    flat: dict = {}
    for k, v in data.items():
        if isinstance(v, dict):
            flat.update(v)
        else:
            flat[k] = v
    known = {a.dest for a in parser._actions}
    for k in sorted(set(flat) - known):
        _warn(f"config_file: unknown key {k!r} ignored")
    ns = argparse.Namespace(**flat)
    args = parser.parse_args(argv, namespace=ns)
    args.config_file = str(path.with_suffix(""))
    if getattr(args, "output_config", False):
        _warn("output_config is not supported by this trainer; training proceeds")
    return _implied(args)


def _implied(args: argparse.Namespace) -> argparse.Namespace:
    """Options that switch on another: `torch_compile_resnets` compiles more than `torch_compile` does."""
    if getattr(args, "torch_compile_resnets", False):
        args.torch_compile = True
    return args


def _is_unset(value, default) -> bool:
    return value is None or value is False or value == "" or value == [] or value == default \
        or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0 and not default)


def check_unsupported(args: argparse.Namespace, script: str) -> list[str]:
    """Messages for every option set to a value this trainer does not implement (empty list = fine)."""
    spec = json.loads(UNSUPPORTED.read_text())
    cat = catalogue(script)
    msgs = []
    for name, why in spec["options"].items():
        if name in cat and not _is_unset(getattr(args, name, None), cat[name]["default"]):
            msgs.append(f"{name} = {getattr(args, name)!r}: not supported by this trainer ({why}); remove it")
    for name, scripts in spec.get("script_options", {}).items():
        if name.startswith("_"):
            continue
        if script not in scripts["scripts"] and name in cat \
                and not _is_unset(getattr(args, name, None), cat[name]["default"]):
            msgs.append(f"{name} = {getattr(args, name)!r}: not supported by this trainer for {script}.py "
                        f"({scripts['reason']}); remove it")
    for name, rule in spec["values"].items():
        if name not in cat:
            continue
        v = getattr(args, name, None)
        if v not in rule["allowed"]:
            msgs.append(f"{name} = {v!r}: not supported by this trainer ({rule['reason']}); "
                        f"allowed: {rule['allowed']}")
    return msgs
