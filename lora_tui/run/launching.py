"""The launch that Start, ``lora-tui train`` and the queue share: load a config file for a run, plan it, run the
trainer's preflight, write the launch files and start the job under the state dir's start lock.

The UI's Start, :mod:`lora_tui.cli_jobs` (``train``, ``queue add``) and :mod:`lora_tui.run.queue` (an item's turn)
all call :func:`launch_config`, so a run starts the same way from each. The config and plan layers are imported
inside the functions that need them: the queue and the job commands that only list or stop need neither.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lora_tui.run.jobs import Job, JobBusy, resolve_state_dir, running_jobs, start_job, start_lock


class PlanRefused(ValueError):
    """The plan has errors; ``problems`` are the plan's ``Problem`` objects."""

    def __init__(self, problems: list) -> None:
        self.problems = problems
        lines = [f"  {p.field or '(config)'}: {p.message}" for p in problems]
        super().__init__("the config has errors; nothing was started:\n" + "\n".join(lines))


def settings_or_loaded(settings: Any):
    if settings is not None:
        return settings
    from lora_tui.config.app_settings import load_app_settings

    return load_app_settings()


def load_config_for_run(path: str | os.PathLike | None, sets: list[str] | None = None):
    """Load our JSON or a kohya_ss LoRA JSON and apply ``--set`` overrides (after the file's legacy renames, so
    they win). Raises ``ConfigError``."""
    from lora_tui.config.kohya_json import ConfigError, config_from_dict, parse_sets, read_config_dict

    if path is None:
        raise ConfigError("", "no config file given")
    return config_from_dict(read_config_dict(path), overrides=parse_sets(sets or [])).config


def preflight_errors(cfg, settings: Any) -> list:
    """The errors the bundled trainer's own preflight finds in ``cfg`` (``run.preflight``; a cached answer younger
    than ``START_MAX_AGE_S`` is taken), [] for none or an upstream trainer. What every launch checks after the
    plan: Start, ``train``, ``queue add`` and a queued item's turn."""
    from lora_tui.run.preflight import START_MAX_AGE_S, preflight

    return preflight(cfg, settings, max_age_s=START_MAX_AGE_S).errors


def launch_config(cfg, settings: Any = None, state_dir: str | os.PathLike | None = None, meta: dict | None = None,
                  now=None, exclusive: bool = True) -> Job:
    """What Start does: plan → refuse on errors → the trainer's preflight (:func:`preflight_errors`) → refuse on
    its errors → (under ``start_lock``: refuse when a job runs → write the TOML and settings JSON → start and
    record the job).

    The check and the launch are one step across processes (``start_lock``), so of two Starts at the same moment
    exactly one trains; ``exclusive=False`` skips the check (the lock is still taken). ``meta`` is merged into the
    job's meta (which also records the TOML/JSON paths, output dir and name, and the planned step count).
    Raises ``PlanRefused`` when the plan has errors, ``JobBusy`` when a job runs, ``OSError`` naming the file when
    one cannot be written, ``JobError`` when the process cannot start; a refused or failed launch removes the
    TOML/JSON/prompt files it wrote."""
    from lora_tui.plan import make_plan
    from lora_tui.plan.launch import build_launch, write_launch_files

    settings = settings_or_loaded(settings)
    plan = make_plan(cfg, settings)
    if plan.errors:
        raise PlanRefused(list(plan.errors))
    checked = preflight_errors(cfg, settings)
    if checked:
        raise PlanRefused(checked)
    launch = build_launch(cfg, settings, now=now)
    steps = getattr(plan, "steps", None)
    gpus = launch_gpus(launch.argv)
    with start_lock(settings, state_dir):
        if exclusive:
            # one training per GPU set: a job on other GPUs (gpu_ids 0 and 1 on a two-GPU box) does not hold it
            busy = running_jobs(settings, state_dir, gpus=gpus)
            if busy:
                raise JobBusy(busy[0])
        try:
            launch = write_launch_files(launch, cfg)  # may pick a free file name suffix: use what was written
        except BaseException as exc:
            _remove_launch_files(launch, written=False)
            if isinstance(exc, OSError):
                raise _with_path(exc, launch.toml_path) from None
            raise
        job_meta = {
            "config_toml": str(launch.toml_path), "config_json": str(launch.json_path),
            "output_dir": str(getattr(cfg, "output_dir", "") or ""), "output_name": getattr(cfg, "output_name", None),
            "max_train_steps": getattr(steps, "max_train_steps", None),
            "gpu_ids": gpus,  # None: every GPU (`jobs.job_gpus`)
        }
        job_meta.update(meta or {})
        try:
            return start_job(list(launch.argv), dict(launch.env or {}), launch.cwd, job_meta, settings=settings,
                             state_dir=state_dir)
        except OSError as exc:
            _remove_launch_files(launch)
            raise _with_path(exc, resolve_state_dir(settings, state_dir) / "jobs") from None
        except BaseException:
            _remove_launch_files(launch)
            raise


def launch_gpus(argv: list[str]) -> list[str] | None:
    """The GPU ids a launch's `accelerate launch` argv trains on: its `--gpu_ids` value (from the `gpu_ids` field
    or `extra_accelerate_launch_args`), as a list; None when it passes none (every GPU the machine shows)."""
    for i, token in enumerate(argv):
        value = None
        if token == "--gpu_ids" and i + 1 < len(argv):
            value = argv[i + 1]
        elif token.startswith("--gpu_ids="):
            value = token.partition("=")[2]
        if value is not None:
            ids = [part.strip() for part in value.split(",") if part.strip()]
            return None if not ids or value.strip().lower() == "all" else ids
        if token.endswith(".py"):
            break  # the script's own arguments follow
    return None


def config_gpus(cfg: Any, settings: Any = None) -> list[str] | None:
    """The GPU ids a Start of `cfg` would train on (`launch_gpus` of its launch); None: every GPU, also when the
    launch cannot be built (Start then says why)."""
    from lora_tui.plan.launch import build_launch

    try:
        return launch_gpus(build_launch(cfg, settings_or_loaded(settings)).argv)
    except Exception:  # noqa: BLE001 - a launch that cannot be built is refused by Start with its reason
        return None


def _with_path(exc: OSError, fallback: Path) -> OSError:
    """``exc`` with a file name: a full disk's ``[Errno 28] No space left on device`` names no file by itself."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(fallback))


def _remove_launch_files(launch, written: bool = True) -> None:
    """Remove what a launch that did not start wrote: its TOML and settings JSON (its own time-stamped names; the
    sample prompt file of the output folder is rewritten at every Start and stays). ``written=False``: the writes
    failed part way, so ``launch`` holds the planned names: the TOML there is removed only when it holds this
    launch's text (another Start's file of that name is never touched)."""
    paths = [launch.toml_path, launch.json_path]
    for path in paths:
        if not path:
            continue
        try:
            if not written and path == launch.toml_path and Path(path).read_text(encoding="utf-8") != launch.toml_text:
                continue
            if not written and path == launch.json_path:
                continue  # written after the TOML; a failed launch never got there, or wrote it whole elsewhere
            os.unlink(path)
        except (OSError, ValueError):
            pass
