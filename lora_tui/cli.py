"""``lora-tui``: open the app, or print/validate what Start would do (see design.md, "Command line").

Only the standard library is imported at module load; the config, plan and UI layers are imported inside the
commands so that ``lora-tui --help`` and the subcommands start fast.
"""

from __future__ import annotations

import argparse
import json
import shlex
import os
import sys
from typing import Any, Optional, Sequence


#: Exit statuses of ``print`` and ``validate``: 0 no error, 1 the config has errors, 2 the command could not run
#: (a usage error, no such file, an internal error): a crash must never read as a validation result.
EXIT_CONFIG_ERRORS = 1
EXIT_CRASH = 2


class CliError(Exception):
    """A user error to print as ``lora-tui: error: ...`` with exit status ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# --- loading a config from the command line -------------------------------------------------------------------

def apply_sets(cfg: Any, sets: Sequence[str]) -> tuple[Any, list[str]]:
    """Apply ``--set key=value`` overrides (kohya keys; values read like kohya JSON strings: ``48``, ``true``,
    ``1e-4``, empty = unset) through the JSON loader, as :func:`load_input` does for a file. Returns
    ``(config, notes)``; raises :class:`CliError` naming the key."""
    from lora_tui.config.kohya_json import ConfigError, config_from_dict, config_to_dict

    overrides = _parse_sets(sets)
    try:
        config = config_from_dict(config_to_dict(cfg), overrides=overrides).config
    except ConfigError as exc:
        raise CliError(f"--set {exc}", 2) from None
    return config, _set_notes(overrides)


def _set_notes(overrides: dict[str, str]) -> list[str]:
    return [f"{k}: set to {v!r} from the command line" for k, v in overrides.items()]


def _parse_sets(sets: Sequence[str]) -> dict[str, str]:
    from lora_tui.config.kohya_json import ConfigError, parse_sets
    from lora_tui.config.model import TrainingConfig

    try:
        return parse_sets(sets)
    except ConfigError as exc:
        if exc.field and exc.field not in TrainingConfig.model_fields:
            raise CliError(f"--set {exc.field}: {_unknown_key_hint(exc.field)}", 2) from None
        raise CliError(f"--set {exc}" if exc.field else str(exc), 2) from None


def _unknown_key_hint(key: str) -> str:
    """Why ``key`` is not a setting and what to type instead: the closest kohya keys (``difflib`` over the
    model's field names and kohya_ss's legacy names), or what a legacy or ignored kohya_ss key became."""
    import difflib

    from lora_tui.config.kohya_json import IGNORED_KEYS, LEGACY_RENAMES
    from lora_tui.config.model import TrainingConfig

    if key in LEGACY_RENAMES:
        return f"no such setting: kohya_ss's old name for {LEGACY_RENAMES[key]}; use --set {LEGACY_RENAMES[key]}=..."
    if key in IGNORED_KEYS:
        return "a kohya_ss key that has no effect in lora-tui, so it cannot be set"
    names = {n.lower(): n for n in TrainingConfig.model_fields}
    names.update({old.lower(): new for old, new in LEGACY_RENAMES.items()})
    if key.lower() in names:
        return f"no such setting; did you mean {names[key.lower()]}? (keys are case-sensitive)"
    close = list(dict.fromkeys(names[m] for m in difflib.get_close_matches(key.lower(), list(names), n=3,
                                                                           cutoff=0.6)))
    if close:
        return "no such setting; did you mean " + " or ".join(close) + "?"
    return ("no such setting (settings take kohya_ss key names, e.g. network_dim, learning_rate; "
            "`lora-tui print --json FILE` lists them all under \"settings\")")


def load_input(path: Optional[str], preset: Optional[str] = None, sets: Sequence[str] = ()) -> tuple[Any, list[str]]:
    """The config from a JSON file (ours or any kohya_ss LoRA JSON) or a preset name, with ``--set key=value``
    overrides applied to the file's values before they are read (so ``--set`` can fix an unreadable value).
    With neither file nor preset: the model defaults plus the overrides. Raises :class:`CliError` naming the
    field and the fix."""
    from pathlib import Path

    from lora_tui.config.app_settings import load_app_settings
    from lora_tui.config.kohya_json import ConfigError, FileUnreadable, config_from_dict, read_config_dict
    from lora_tui.config.presets import find_preset, list_presets

    overrides = _parse_sets(sets)
    where = path or preset or "--set"
    if not path and not preset:
        return apply_sets(_default_config(), sets)
    try:
        if path:
            data = read_config_dict(path)
        else:
            ref = find_preset(preset or "", load_app_settings())
            if ref is None:
                names = ", ".join(p.name for p in list_presets(load_app_settings())) or "none found"
                raise CliError(f"--preset {preset}: no such preset (available: {names})", 2)
            data = read_config_dict(ref.path)
        if overrides and not isinstance(data, dict):
            raise ConfigError("", "expected a JSON object of settings")
        # The overrides are applied after the file's legacy renames and argv moves (config_from_dict), so a --set
        # wins over an old key such as lora_network_weights that becomes the same field.
        result = config_from_dict(data, overrides=overrides)
    except ConfigError as exc:
        # A file-level error already starts with the path (read_config_dict): name it once.
        named = bool(path) and not exc.field and str(exc).startswith(f"{Path(path)}: ")
        # Exit 1 = the config has errors; 2 = there was no config to check (no such file, unreadable).
        code = 2 if isinstance(exc, FileUnreadable) else 1
        raise CliError(str(exc) if named else f"{where}: {exc}", code) from None
    notes = list(result.notes) + _set_notes(overrides)
    return result.config, notes


def _default_config() -> Any:
    from lora_tui.config.model import TrainingConfig

    return TrainingConfig()


# --- print / validate -----------------------------------------------------------------------------------------

def describe(cfg: Any, settings: Any) -> dict[str, Any]:
    """What Start would do, as the ``lora-tui print --json`` object: ``argv``, ``config_toml``, ``settings``,
    ``steps`` (``StepPlan.as_dict()`` plus its ``summary``), ``problems`` (``{field, severity, message}``),
    ``notes``, ``env`` (the variables the launch sets beyond the usual output settings, e.g.
    ``ACCELERATE_USE_CPU`` for CPU processes, ``TORCHINDUCTOR_CACHE_DIR`` with ``torch_compile``). Writes
    nothing."""
    from lora_tui.config.kohya_json import config_to_dict
    from lora_tui.config.rates import rates_in_force
    from lora_tui.config.shown import clip
    from lora_tui.plan import make_plan
    from lora_tui.plan.launch import LaunchError, build_launch, child_env

    plan = make_plan(cfg, settings)
    probs = [{"field": p.field, "severity": p.severity, "message": p.message} for p in plan.problems]
    argv: list[str] = []
    toml = ""
    notes: list[str] = []
    env: dict[str, str] = {}
    try:
        launch = build_launch(cfg, settings)
        argv, toml, notes = launch.argv, launch.toml_text, launch.notes
        usual = child_env()
        env = {k: v for k, v in launch.env.items() if usual.get(k) != v}
    except LaunchError as exc:
        probs.append({"field": exc.field, "severity": "error", "message": exc.message})
    except (OSError, ValueError, ArithmeticError) as exc:
        # A path the file system refuses, a number no TOML holds (validation names the field too): what Start
        # would write is unknown.
        probs.append({"field": "output_dir", "severity": "error",
                      "message": f"the launch cannot be built: {clip(str(exc), 200)}"})
    steps_obj: dict[str, Any] = plan.steps.as_dict()
    if plan.steps.summary:
        steps_obj["summary"] = plan.steps.summary
    if plan.steps.notes:
        steps_obj["notes"] = list(plan.steps.notes)
    rates = rates_in_force(cfg)
    return {"argv": argv, "config_toml": toml, "settings": config_to_dict(cfg), "steps": steps_obj,
            "learning_rates": {part: {"rate": r.rate, "from": r.source}
                               for part, r in (("unet", rates.unet), ("text_encoder", rates.text_encoder))},
            "problems": probs, "notes": notes, "env": env}


def rates_line(rates: Any) -> str:
    """``print``'s line for the rates in force, e.g. "U-Net 0.0002 (learning_rate) · text encoder 0.0001
    (text_encoder_lr)"; a part not trained says so."""
    parts = []
    for what, part in (("U-Net", rates["unet"]), ("text encoder", rates["text_encoder"])):
        parts.append(f"{what} {part['rate']:g} ({part['from']})" if part["rate"] > 0 else f"{what} not trained")
    return " · ".join(parts)


def _out(text: str) -> None:
    """Write to stdout as UTF-8 whatever the locale (the TOML is UTF-8; LANG=C must not break it)."""
    buf = getattr(sys.stdout, "buffer", None)
    if buf is None:
        sys.stdout.write(text)
    else:
        sys.stdout.flush()
        # backslashreplace: a lone surrogate (from a broken \u escape in a file's key) prints as \udXXX
        buf.write(text.encode("utf-8", "backslashreplace"))
        buf.flush()


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
        _out(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    else:
        env = [f"{k}={v}" for k, v in sorted(info["env"].items())]
        out = ["# command", shlex.join((["env"] + env if env else []) + info["argv"]), "", "# config TOML", info["config_toml"].rstrip("\n"), ""]
        if info["steps"]:
            out += ["# steps", info["steps"].get("summary") or json.dumps(info["steps"])]
            out += [f"- {n}" for n in info["steps"].get("notes", [])] + [""]
        out += ["# learning rates", rates_line(info["learning_rates"]), ""]
        out += ["# problems", _format_problems(info["problems"])]
        if info["notes"]:
            out += ["", "# notes"] + [f"- {n}" for n in info["notes"]]
        _out("\n".join(out) + "\n")
    return EXIT_CONFIG_ERRORS if _has_error(info["problems"]) else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from lora_tui.config.app_settings import load_app_settings

    cfg, load_notes = load_input(args.file, sets=args.set)
    settings = load_app_settings()
    info = describe(cfg, settings)
    check_notes: list[str] = []
    if not _has_error(info["problems"]):
        # The trainer's own checks (its --preflight), after ours found nothing: validate OK means the run starts.
        from lora_tui.run.preflight import cached_preflight, is_bundled, preflight

        if is_bundled(settings) and sys.stderr.isatty() and cached_preflight(cfg, settings) is None:
            sys.stderr.write("lora-tui: running the trainer's own checks (--preflight)…\n")
            sys.stderr.flush()
        checked = preflight(cfg, settings)
        info["problems"] += [{"field": p.field, "severity": p.severity, "message": p.message}
                             for p in checked.problems]
        check_notes = checked.notes
    out = [_format_problems(info["problems"])]
    if check_notes:
        out += ["", "# notes (the trainer's checks)"] + [f"- {n}" for n in check_notes]
    if load_notes:
        # What reading the file did (the app's ctrl+n): a kohya user learns here which keys were dropped.
        out += ["", "# notes (reading the file)"] + [f"- {n}" for n in load_notes]
    _out("\n".join(out) + "\n")
    return EXIT_CONFIG_ERRORS if _has_error(info["problems"]) else 0


def cmd_app(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.demo:
        from lora_tui.config.app_settings import load_app_settings
        from lora_tui.demo import demo_config, prepare_demo

        try:
            files = prepare_demo(load_app_settings(), log=lambda msg: sys.stderr.write(msg + "\n"),
                                 family=args.demo)
        except RuntimeError as exc:
            raise CliError(f"--demo: {exc}") from None
        cfg, notes = demo_config(files), []
        if args.set:
            cfg, notes = apply_sets(cfg, args.set)
    else:
        from lora_tui.config.presets import DEFAULT_PRESET

        # Nothing named: the form opens on the Minimal defaults (the SDXL face LoRA preset), as the app does.
        preset = args.preset or (None if args.config else DEFAULT_PRESET)
        cfg, notes = load_input(args.config, preset=preset, sets=args.set)

    from lora_tui.ui.app import run_app

    if args.demo:
        source = "demo"
    elif args.config:
        source = Path(args.config).name
    else:
        source = f"preset {Path(preset).stem}"  # a name, or a name with .json (find_preset takes both)
    return run_app(cfg, notes, demo=bool(args.demo), config_path=Path(args.config) if args.config else None,
                   source=source)


def cmd_doctor(args: argparse.Namespace) -> int:
    """What the app will use (trainer, Python, torch and its CUDA build, accelerate, GPUs) and what the chosen
    config needs that the trainer's Python lacks; exit 0 when ready, 1 when not."""
    from lora_tui.config.app_settings import load_app_settings
    from lora_tui.run.doctor import diagnose, format_report

    cfg = None
    if args.config or args.preset:
        cfg, _ = load_input(args.config, preset=args.preset)
    else:  # the config the app opens on: the Minimal defaults
        from lora_tui.config.presets import DEFAULT_PRESET

        cfg, _ = load_input(None, preset=DEFAULT_PRESET)
    report = diagnose(load_app_settings(), cfg)
    _out(format_report(report) + "\n")
    return 0 if report.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Prepare the demo (as ``lora-tui --demo`` does) and write its config as JSON for the headless commands:
    ``lora-tui train "$(lora-tui demo)"`` trains it without the app. Prints the file's path."""
    from lora_tui.config.app_settings import load_app_settings
    from lora_tui.config.kohya_json import save_config_file
    from lora_tui.demo import demo_config, prepare_demo

    try:
        files = prepare_demo(load_app_settings(), log=lambda msg: sys.stderr.write(msg + "\n"),
                             family=args.family)
    except RuntimeError as exc:
        raise CliError(f"demo: {exc}") from None
    path = files.root / {"flux": "demo_flux.json", "sd3": "demo_sd3.json"}.get(args.family, "demo.json")
    save_config_file(demo_config(files), path)
    _out(f"{path}\n")
    return 0


# --- job commands (run layer) ---------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from lora_tui import cli_jobs

    cfg, _ = load_input(args.file, sets=args.set)
    return cli_jobs.train(args.file, detach=args.detach, cfg=cfg, overwrite=args.overwrite)


def cmd_jobs(args: argparse.Namespace) -> int:
    from lora_tui import cli_jobs

    return cli_jobs.jobs(limit=args.limit)


def cmd_stop(args: argparse.Namespace) -> int:
    from lora_tui import cli_jobs

    return cli_jobs.stop(args.job, grace_s=args.grace, escalate=args.now)


def cmd_attach(args: argparse.Namespace) -> int:
    from lora_tui import cli_jobs

    if not args.text:
        from lora_tui.run.jobs import JobError, load_job
        from lora_tui.ui.app import run_attach

        try:
            job = load_job(args.job)
        except JobError as exc:
            raise CliError(str(exc)) from None
        if job.broken is not None:
            raise CliError(f"job {job.id}: state unreadable ({job.broken}); its log is {job.log_path}")
        return run_attach(job)
    return cli_jobs.attach_text(args.job, lines=args.lines)


def cmd_queue(args: argparse.Namespace) -> int:
    from lora_tui import cli_jobs

    targets = list(args.targets or [])
    if args.action == "add":
        if len(targets) != 1:
            raise CliError("queue add: one config FILE is needed", 2)
        cfg, _ = load_input(targets[0], sets=args.set)
        return cli_jobs.queue_add(targets[0], cfg=cfg, overwrite=args.overwrite, sets=args.set)
    if args.action == "remove":
        if not targets:
            raise CliError("queue remove: give the ID of each item to remove (`lora-tui queue list` shows them)", 2)
        return cli_jobs.queue_remove(targets)
    if targets:
        raise CliError(f"queue {args.action}: takes no FILE or ID (got {' '.join(targets)})", 2)
    if args.finished and args.action != "clear":
        raise CliError(f"queue {args.action}: --finished goes with `queue clear`", 2)
    if args.action == "clear":
        return cli_jobs.queue_clear(finished=args.finished)
    if args.action == "run":
        return cli_jobs.run_queue()
    if args.action == "pause":
        return cli_jobs.queue_pause()
    if args.action == "resume":
        return cli_jobs.queue_resume()
    return cli_jobs.queue_list()


def _log_lines(text: str) -> int | None:
    """``--lines``: a count of lines (0 or more), or ``all`` → ``None`` (the whole log)."""
    if text.strip().lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of lines (0 or more) or 'all'")
    return n


def _add_job_commands(sub: Any) -> None:
    p = sub.add_parser("train", help="launch training headless as Start would; the log on stdout")
    _add_file_args(p)
    p.add_argument("--detach", action="store_true", help="start it and return at once (it keeps running)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing <output_dir>/<output_name> LoRA (refused without it)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("jobs", help="list training jobs, newest first")
    p.add_argument("--limit", type=int, default=20, help="show at most this many (default 20)")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("attach", help="open the app on a running or finished job (default: the running one)")
    p.add_argument("job", nargs="?", metavar="JOB", help="job id or unique prefix (see `lora-tui jobs`)")
    p.add_argument("--text", action="store_true", help="follow the log on stdout instead of opening the app")
    p.add_argument("--lines", type=_log_lines, default=40, metavar="N|all",
                   help="--text: show the log's last N lines before following it (default 40; all: the whole log; "
                        "0: only what comes next), as tail -n N -f")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("stop", help="stop a job as the Stop key does (SIGINT, then SIGTERM/SIGKILL)")
    p.add_argument("job", nargs="?", metavar="JOB", help="job id or unique prefix (default: the running one)")
    p.add_argument("--grace", type=float, default=None, metavar="S",
                   help="seconds to wait after SIGINT before escalating (default: the app setting, 60)")
    p.add_argument("--now", action="store_true", help="skip SIGINT: SIGTERM, then SIGKILL")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("queue", help="the run queue: list (default), add FILE, run, pause, resume, remove ID..., "
                                     "clear [--finished]")
    p.add_argument("action", nargs="?", choices=["list", "add", "run", "pause", "resume", "remove", "clear"],
                   default="list", help="pause: nothing more starts (a running item goes on) until resume; remove: "
                                        "those items (not a running one); clear: every pending item")
    p.add_argument("targets", nargs="*", metavar="FILE|ID",
                   help="add: the config to queue; remove: item ids or unique prefixes (see `queue list`)")
    p.add_argument("--finished", action="store_true",
                   help="clear: remove the ended items (done, failed, stopped, error) instead of the pending ones")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    p.add_argument("--overwrite", action="store_true",
                   help="add: the run may replace an existing <output_dir>/<output_name> LoRA (refused without it)")
    p.set_defaults(func=cmd_queue)


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
    parser.add_argument("--demo", nargs="?", const="sdxl", default=None, choices=("sdxl", "flux", "sd3"),
                        help="prepare the offline demo (tiny SDXL model, or a tiny Flux.1 with `--demo flux`, a tiny "
                             "SD3.5 Medium with `--demo sd3`; "
                             "sample photos) and open the form for it")
    # Its own dest: a subcommand's --set default ([]) would otherwise overwrite it. main() hands it on.
    parser.add_argument("--set", dest="top_set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting of the opened config; repeatable (before print, validate, "
                             "train or queue add it applies to their FILE)")
    parser.set_defaults(func=cmd_app)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("print", help="show what Start would run (argv, TOML, steps, problems); writes nothing")
    _add_file_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_print)

    p = sub.add_parser("validate", help="list the problems Start would report; exit 1 when there is an error")
    _add_file_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("doctor", help="which trainer, Python, torch (CPU/CUDA), accelerate and GPUs the app "
                                      "will use, and what a config needs that is missing")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--config", metavar="FILE", help="check the packages this config needs")
    which.add_argument("--preset", metavar="NAME", help="check the packages this preset needs (default: the one "
                                                        "the app opens on)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", help="prepare the offline demo and print the path of its config JSON (for "
                                    "`lora-tui train`)")
    p.add_argument("--family", choices=("sdxl", "flux", "sd3"), default="sdxl", help="the demo model's family")
    p.set_defaults(func=cmd_demo)

    # --- job commands (run layer): train, jobs, attach, stop ---------------------------------------------------
    _add_job_commands(sub)
    # --- end of job commands -----------------------------------------------------------------------------------

    return parser


#: The subcommands that read a config FILE (or, for the app, the opened config): a top-level --set applies there.
_TAKES_SETS = ("print", "validate", "train", "queue add")


def _hand_on_top_sets(args: argparse.Namespace) -> None:
    """``lora-tui --set k=v COMMAND ...``: the top-level overrides go before the subcommand's own (so a later
    ``--set`` of the same key wins); a command that reads no config refuses them rather than ignore them."""
    top = list(getattr(args, "top_set", []) or [])
    command = args.command or ""
    if command == "queue":
        command = f"queue {args.action}"
    if not command:
        args.set = top
        return
    if command in _TAKES_SETS:
        args.set = top + list(getattr(args, "set", []) or [])
    elif top or getattr(args, "set", None):
        raise CliError(f"--set: `lora-tui {command}` reads no config, so it has nothing to set; --set applies to "
                       "the app and to " + ", ".join(f"`{c}`" for c in _TAKES_SETS), 2)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``lora-tui`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _hand_on_top_sets(args)
        return int(args.func(args) or 0)
    except CliError as exc:
        sys.stderr.write(f"lora-tui: error: {exc}\n")
        return exc.code
    except ValueError as exc:
        from lora_tui.config.app_settings import SettingsError
        from lora_tui.run.queue import QueueFileError

        if isinstance(exc, QueueFileError):
            sys.stderr.write(f"lora-tui: error: {exc}\n")
            return 2
        if not isinstance(exc, SettingsError):
            raise
        sys.stderr.write(f"lora-tui: error: {exc}; fix that setting or delete the file\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `lora-tui jobs | head`: the reader left; say nothing more (and keep Python from complaining at exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug: never let it look like a result (exit 1 = config errors)
        import traceback

        traceback.print_exc()
        sys.stderr.write(f"lora-tui: internal error: {type(exc).__name__}: {str(exc)[:500]}; the command could "
                         f"not run (exit {EXIT_CRASH}): please report it with the lines above\n")
        return EXIT_CRASH


if __name__ == "__main__":
    raise SystemExit(main())
