"""``lora-tui``: open the app, or print/validate what Start would do (see design.md, "Command line").

Only the standard library is imported at module load; the config, plan and UI layers are imported inside the
commands so that ``lora-tui --help`` and the subcommands start fast.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any, Optional, Sequence


class CliError(Exception):
    """A user error to print as ``lora-tui: error: ...`` with exit status ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# --- loading a config from the command line -------------------------------------------------------------------

def apply_sets(cfg: Any, sets: Sequence[str]) -> tuple[Any, list[str]]:
    """Apply ``--set key=value`` overrides (kohya keys; values read like kohya JSON strings: ``48``, ``true``,
    ``1e-4``, empty = unset). Returns ``(config, notes)``; raises :class:`CliError` naming the key."""
    from lora_tui.config.kohya_json import ConfigError, coerce_value
    from lora_tui.config.model import TrainingConfig, field_meta

    notes: list[str] = []
    values = cfg.model_dump()
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise CliError(f"--set {item!r}: expected key=value, e.g. --set network_dim=32", 2)
        try:
            meta = field_meta(key)
        except KeyError:
            raise CliError(f"--set {key}: no such setting (use a kohya_ss key such as network_dim)", 2) from None
        try:
            value, _ = coerce_value(meta, raw)
        except ConfigError as exc:
            raise CliError(f"--set {exc}", 2) from None
        values[key] = value
        notes.append(f"{key}: set to {value!r} from the command line")
    try:
        return TrainingConfig.model_validate(values), notes
    except Exception as exc:  # pydantic ValidationError: report the first field
        errors = getattr(exc, "errors", lambda: [])()
        if errors:
            err = errors[0]
            raise CliError(f"--set {err['loc'][0]}: {err['msg'].removeprefix('Value error, ')}", 2) from None
        raise CliError(f"--set: {exc}", 2) from None


def load_input(path: Optional[str], preset: Optional[str] = None, sets: Sequence[str] = ()) -> tuple[Any, list[str]]:
    """The config from a JSON file (ours or any kohya_ss LoRA JSON) or a preset name, plus ``--set`` overrides.
    With neither, the model defaults. Raises :class:`CliError` with the field and the fix."""
    from lora_tui.config.app_settings import load_app_settings
    from lora_tui.config.kohya_json import ConfigError, load_config_file
    from lora_tui.config.model import TrainingConfig
    from lora_tui.config.presets import find_preset, list_presets

    notes: list[str] = []
    try:
        if path:
            result = load_config_file(path)
            cfg, notes = result.config, list(result.notes)
        elif preset:
            ref = find_preset(preset, load_app_settings())
            if ref is None:
                names = ", ".join(p.name for p in list_presets(load_app_settings())) or "none found"
                raise CliError(f"--preset {preset}: no such preset (available: {names})", 2)
            result = load_config_file(ref.path)
            cfg, notes = result.config, list(result.notes)
        else:
            cfg = TrainingConfig()
    except ConfigError as exc:
        where = path or preset
        raise CliError(f"{where}: {exc}") from None
    if sets:
        cfg, more = apply_sets(cfg, sets)
        notes += more
    return cfg, notes


# --- print / validate -----------------------------------------------------------------------------------------

_STEP_KEYS = ("images", "repeats_images", "reg_images", "batches_per_epoch", "epochs", "max_train_steps",
              "lr_warmup_steps")


def _plan(cfg: Any, settings: Any) -> tuple[Any, list[Any]]:
    """(steps or None, problems) from the plan layer, whatever parts of it exist."""
    try:
        from lora_tui.plan import make_plan  # type: ignore[attr-defined]
    except ImportError:
        make_plan = None
    if make_plan is not None:
        plan = make_plan(cfg, settings)
        return plan.steps, list(plan.problems)
    steps, problems = None, []
    try:
        from lora_tui.plan.dataset import scan_dataset
        from lora_tui.plan.steps import plan_steps

        scan = scan_dataset(cfg)
        problems = list(getattr(scan, "problems", []))
        steps = plan_steps(cfg, scan, num_processes=cfg.num_processes)
    except ImportError:
        pass
    return steps, problems


def describe(cfg: Any, settings: Any) -> dict[str, Any]:
    """What Start would do, as the ``lora-tui print --json`` object: ``argv``, ``config_toml``, ``settings``,
    ``steps`` (or null), ``problems`` (``{field, severity, message}``), ``notes``. Writes nothing."""
    from lora_tui.config.kohya_json import config_to_dict
    from lora_tui.plan.launch import LaunchError, build_launch

    steps, problems = _plan(cfg, settings)
    probs = [{"field": p.field, "severity": p.severity, "message": p.message} for p in problems]
    argv: list[str] = []
    toml = ""
    notes: list[str] = []
    try:
        launch = build_launch(cfg, settings)
        argv, toml, notes = launch.argv, launch.toml_text, launch.notes
    except LaunchError as exc:
        probs.append({"field": exc.field, "severity": "error", "message": exc.message})
    steps_obj = None
    if steps is not None:
        steps_obj = {k: getattr(steps, k, None) for k in _STEP_KEYS}
        if getattr(steps, "summary", None):
            steps_obj["summary"] = steps.summary
    return {"argv": argv, "config_toml": toml, "settings": config_to_dict(cfg), "steps": steps_obj,
            "problems": probs, "notes": notes}


def _has_error(problems: list[dict[str, Any]]) -> bool:
    return any(p["severity"] == "error" for p in problems)


def _format_problems(problems: list[dict[str, Any]]) -> str:
    if not problems:
        return "no problems"
    return "\n".join(f"{p['severity']}: {p['field'] or '-'}: {p['message']}" for p in problems)


def cmd_print(args: argparse.Namespace) -> int:
    from lora_tui.config.app_settings import load_app_settings

    cfg, load_notes = load_input(args.file, sets=args.set)
    info = describe(cfg, load_app_settings())
    info["notes"] = load_notes + info["notes"]
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    else:
        out = ["# command", shlex.join(info["argv"]), "", "# config TOML", info["config_toml"].rstrip("\n"), ""]
        if info["steps"]:
            out += ["# steps", info["steps"].get("summary") or json.dumps(info["steps"]), ""]
        out += ["# problems", _format_problems(info["problems"])]
        if info["notes"]:
            out += ["", "# notes"] + [f"- {n}" for n in info["notes"]]
        sys.stdout.write("\n".join(out) + "\n")
    return 1 if _has_error(info["problems"]) else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from lora_tui.config.app_settings import load_app_settings

    cfg, _ = load_input(args.file, sets=args.set)
    info = describe(cfg, load_app_settings())
    sys.stdout.write(_format_problems(info["problems"]) + "\n")
    return 1 if _has_error(info["problems"]) else 0


def cmd_app(args: argparse.Namespace) -> int:
    cfg, notes = load_input(args.config, preset=args.preset, sets=args.set)
    from pathlib import Path

    from lora_tui.ui.app import run_app

    return run_app(cfg, notes, demo=args.demo, config_path=Path(args.config) if args.config else None)


# --- the parser -----------------------------------------------------------------------------------------------

def _add_file_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="our JSON or any kohya_ss LoRA JSON")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting (kohya key), e.g. --set network_dim=32; repeatable")


def build_parser() -> argparse.ArgumentParser:
    """The whole ``lora-tui`` command line. Each subcommand sets ``func(args) -> exit status``."""
    parser = argparse.ArgumentParser(
        prog="lora-tui", description="Configure, launch, watch and stop LoRA training from the terminal.")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="FILE", help="open the app with this JSON config (ours or kohya_ss)")
    src.add_argument("--preset", metavar="NAME", help="open the app with this preset (bundled or user)")
    parser.add_argument("--demo", action="store_true",
                        help="prepare the offline demo (tiny SDXL model, sample photos) and open the form for it")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting of the opened config; repeatable")
    parser.set_defaults(func=cmd_app)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("print", help="show what Start would run (argv, TOML, steps, problems); writes nothing")
    _add_file_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_print)

    p = sub.add_parser("validate", help="list the problems Start would report; exit 1 when there is an error")
    _add_file_args(p)
    p.set_defaults(func=cmd_validate)

    # --- job commands (run layer): train, jobs, attach, stop ---------------------------------------------------
    # Added here by the run engineer: one `sub.add_parser(...)` each with `set_defaults(func=...)`, their
    # handlers importing lora_tui.run lazily.
    # --- end of job commands -----------------------------------------------------------------------------------

    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``lora-tui`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        sys.stderr.write(f"lora-tui: error: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
