"""The bundled trainer's own checks, run before a launch: ``<script> --config_file <toml> ... --preflight``.

One source of truth for what the bundled trainer accepts: its preflight parses the command line and TOML as a
run does, builds the dataset blueprint, constructs the optimizer and scheduler on a stand-in parameter, the
network arguments, the tracker and the sample prompts, loads no weights, prints one line per finding::

    LORA_TUI_PREFLIGHT {"field": "optimizer_args", "severity": "error", "message": "..."}

then ``LORA_TUI_PREFLIGHT_DONE {"ok": ..., ...}``, and exits 0 (no error), 1 (errors) or 2 (argparse) (format:
docs/architecture.md, the trainer section). Start, ``lora-tui validate``,
``lora-tui train``, ``queue add`` and a queued item's start run it (through :func:`preflight`), after the app's own
rules found no error (their errors come first and the trainer would repeat them). It runs with the trainer's Python
(the ``python`` app setting, as the launch does), in the caller's thread (the app calls it from a worker), and is
cached by the TOML and command line it checks, the prompt text, the Python and the trainer's files, so a config
checked once is not checked again until one of them changes (or the answer is older than ``max_age_s``, for the
files the config names). An upstream sd-scripts checkout has no ``--preflight``: nothing runs, a note says so.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lora_tui.plan.problems import Problem

PREFIX = "LORA_TUI_PREFLIGHT "
DONE_PREFIX = "LORA_TUI_PREFLIGHT_DONE "
TIMEOUT_S = 180.0
#: Start, ``train`` and ``queue add`` take a cached answer only this young: the folders and files a config names
#: may have changed since (the form's settle check may be minutes old).
START_MAX_AGE_S = 30.0
_CACHE_SIZE = 64


@dataclass
class PreflightResult:
    """What the preflight said. ``problems``: its findings on our field names (errors block Start);
    ``notes``: what the caller should say besides (skipped, and why); ``ran``: the trainer was asked (False when
    skipped); ``wall_s``: seconds the process took; ``at``: ``time.monotonic()`` when it ended; ``key``: the cache
    key; ``output``: the process's stderr tail (for a failure the findings do not explain)."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ran: bool = False
    wall_s: float = 0.0
    at: float = 0.0
    key: str = ""
    output: str = ""

    @property
    def errors(self) -> list[Problem]:
        """The findings that block Start."""
        return [p for p in self.problems if p.severity == "error"]


class PreflightCancelled(Exception):
    """The check was ended by :func:`cancel_running` (the app closed); it has no answer and nothing is cached."""


_running: dict = {}  # the preflight processes now running (subprocess.Popen) → the thread that waits for it
_cancelled: set = set()


def cancel_running(thread_id: Optional[int] = None) -> int:
    """End the preflight processes now running (SIGKILL; a check has nothing to save), those a thread waits for
    when ``thread_id`` (``threading.get_ident()``) is given: the app ends its settle check's when it closes, so no
    trainer process outlives it. Their callers get :class:`PreflightCancelled`. Returns how many."""
    with _cache_lock:
        procs = [p for p, t in _running.items() if thread_id is None or t == thread_id]
        _cancelled.update(procs)
    for proc in procs:
        try:
            proc.kill()
        except OSError:
            pass
    return len(procs)


_cache: "OrderedDict[str, PreflightResult]" = OrderedDict()
_cache_lock = threading.Lock()
_key_locks: dict[str, threading.Lock] = {}


def is_bundled(settings: Any) -> bool:
    """Whether ``settings.sd_scripts_dir`` is lora-tui's bundled trainer (it has ``lora_trainer/``, which an
    upstream sd-scripts checkout has not): only that trainer has ``--preflight``."""
    base = getattr(settings, "sd_scripts_dir", None)
    return bool(base) and (Path(base) / "lora_trainer" / "train.py").is_file()


def _trainer_fingerprint(base: Path, script: str) -> str:
    """The trainer's version as far as a check's answer goes: name, size and mtime of the entry script and every
    file of ``lora_trainer/`` (an edited or updated trainer checks again). Stat calls only."""
    parts = []
    for p in [base / script, *sorted((base / "lora_trainer").glob("*.py")),
              *sorted((base / "lora_trainer").glob("*.json"))]:
        try:
            st = p.stat()
        except OSError:
            continue
        parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


@dataclass
class _Job:
    key: str
    argv_tail: list[str]
    toml: dict
    prompts: str
    script: Path
    python: str
    cwd: Path
    env: dict


def _prepare(cfg: Any, settings: Any) -> _Job:
    """The check's inputs for ``cfg``: TOML dict, command-line tail, prompt text, and the cache key. Raises
    ``LaunchError`` for an argument string that does not split (the rules report it)."""
    from lora_tui.config.model import script_name
    from lora_tui.plan.launch import accelerate_launch, child_env, split_args, toml_dict

    data, _ = toml_dict(cfg)
    tail = split_args(getattr(cfg, "additional_parameters", ""), "additional_parameters")
    prompts = getattr(cfg, "sample_prompts", "") or ""
    base = Path(settings.sd_scripts_dir)
    script = base / script_name(cfg)
    python = str(getattr(settings, "python", "") or sys.executable)
    cwd = Path.cwd()
    env = child_env()
    env.update(accelerate_launch(cfg).env)
    blob = json.dumps({"toml": data, "tail": tail, "prompts": prompts, "python": python, "script": str(script),
                       "cwd": str(cwd), "trainer": _trainer_fingerprint(base, script.name)},
                      sort_keys=True, default=str)
    key = hashlib.sha256(blob.encode("utf-8")).hexdigest()
    return _Job(key, tail, data, prompts, script, python, cwd, env)


def cached_preflight(cfg: Any, settings: Any, max_age_s: Optional[float] = None) -> Optional[PreflightResult]:
    """The cached answer for ``cfg`` (no process started), None when there is none (or it is older than
    ``max_age_s``). Cheap: builds the TOML and stats the trainer's files."""
    if not is_bundled(settings):
        return None
    try:
        job = _prepare(cfg, settings)
    except Exception:  # noqa: BLE001 - a config the launch cannot build has no preflight
        return None
    return _cached(job.key, max_age_s)


def _cached(key: str, max_age_s: Optional[float]) -> Optional[PreflightResult]:
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is None or (max_age_s is not None and time.monotonic() - hit.at > max_age_s):
        return None
    return hit


def forget_preflights() -> None:
    """Drop every cached answer (a test, or after the trainer's Python changed)."""
    with _cache_lock:
        _cache.clear()


def preflight(cfg: Any, settings: Any, max_age_s: Optional[float] = None,
              timeout_s: float = TIMEOUT_S) -> PreflightResult:
    """Run (or take from the cache) the bundled trainer's preflight for ``cfg`` with ``settings.python``.

    Blocks for the process (about a second or two; call it from a worker thread in the app). A second caller with
    the same config waits for the first one's answer instead of starting another process. ``max_age_s``: take a
    cached answer only this young (None: any). Raises only :class:`PreflightCancelled` (:func:`cancel_running`):
    a trainer that cannot start, crashes or times out becomes an error (or, for a timeout, a warning) naming what
    happened; an upstream checkout gives a note only.
    """
    from lora_tui.plan.launch import LaunchError

    if not is_bundled(settings):
        base = getattr(settings, "sd_scripts_dir", "")
        return PreflightResult(notes=[f"the trainer in '{base}' (an upstream sd-scripts checkout) has no "
                                      f"--preflight: its own checks run only when training starts"])
    try:
        job = _prepare(cfg, settings)
    except LaunchError as exc:
        return PreflightResult(notes=[f"preflight skipped: {exc}"])
    except Exception as exc:  # noqa: BLE001 - a value the launch cannot write is the plan's finding, not a crash
        return PreflightResult(notes=[f"preflight skipped: the launch cannot be built ({exc.__class__.__name__}: "
                                      f"{exc})"])
    hit = _cached(job.key, max_age_s)
    if hit is not None:
        return hit
    with _cache_lock:
        lock = _key_locks.setdefault(job.key, threading.Lock())
    with lock:
        hit = _cached(job.key, max_age_s)  # another thread may have run it while this one waited
        if hit is not None:
            return hit
        try:
            result = _run(job, cfg, timeout_s)
        except PreflightCancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - never raises (docstring); the launch itself will say more
            return PreflightResult([Problem("", "warning", f"the trainer's preflight could not run "
                                                           f"({exc.__class__.__name__}: {exc}), so its checks "
                                                           f"were skipped")])
        with _cache_lock:
            _cache[job.key] = result
            _cache.move_to_end(job.key)
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
            _key_locks.pop(job.key, None)
    return result


def _run(job: _Job, cfg: Any, timeout_s: float) -> PreflightResult:
    import tomli_w

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lora-tui-preflight-") as tmp:
        data = dict(job.toml)
        if job.prompts.strip() and "sample_prompts" in data:
            # Start writes the prompt text to <output_dir>/sample/prompt.txt; the check reads the same text here.
            prompts = Path(tmp) / "prompt.txt"
            prompts.write_text(job.prompts.rstrip("\n") + "\n", encoding="utf-8")
            data["sample_prompts"] = str(prompts)
        toml_path = Path(tmp) / "config_lora-preflight.toml"
        toml_path.write_text(tomli_w.dumps(data), encoding="utf-8")
        argv = [job.python, str(job.script), "--config_file", str(toml_path), *job.argv_tail, "--preflight"]
        try:
            proc = subprocess.Popen(argv, cwd=job.cwd, env=job.env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            return PreflightResult([Problem("", "error", f"the trainer's Python '{job.python}' does not start "
                                                         f"({exc.strerror or exc}): set the `python` app setting "
                                                         f"to an interpreter with the trainer's packages")],
                                   ran=True, at=time.monotonic(), key=job.key)
        with _cache_lock:
            _running[proc] = threading.get_ident()
        try:
            out_b, err_b = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            wall = time.monotonic() - started
            return PreflightResult([Problem("", "warning", f"the trainer's preflight did not answer within "
                                                           f"{timeout_s:.0f} s, so its checks were skipped")],
                                   ran=True, wall_s=wall, at=time.monotonic(), key=job.key)
        finally:
            with _cache_lock:
                _running.pop(proc, None)
                cancelled = proc in _cancelled
                _cancelled.discard(proc)
        if cancelled:
            raise PreflightCancelled()
    wall = time.monotonic() - started
    stdout = out_b.decode("utf-8", "replace")
    stderr = err_b.decode("utf-8", "replace")
    done = proc
    problems = parse_findings(stdout, cfg)
    notes: list[str] = []
    tail = "\n".join(stderr.strip().splitlines()[-15:])
    # The trainer closes a finished check with its DONE line; without it (and a failing exit) it crashed, even
    # after some findings: that is shown too, with its stderr.
    finished = DONE_PREFIX in stdout
    if done.returncode != 0 and (not finished or not any(p.severity == "error" for p in problems)):
        if "unrecognized arguments: --preflight" in stderr:
            notes.append(f"the trainer in '{job.script.parent}' has no --preflight (an older lora-tui trainer): its "
                         f"own checks run only when training starts")
        else:
            problems.extend(_failure_problems(done.returncode, stderr, cfg, job.python))
    return PreflightResult(problems, notes, ran=True, wall_s=wall, at=time.monotonic(), key=job.key, output=tail)


def parse_findings(stdout: str, cfg: Any = None) -> list[Problem]:
    """The ``LORA_TUI_PREFLIGHT {json}`` lines of ``stdout`` as Problems on our field names (see
    :func:`field_for`); a line that does not read as such JSON is skipped. ``severity`` other than error/warning
    counts as a warning."""
    out: list[Problem] = []
    seen: set[tuple[str, str, str]] = set()
    for line in stdout.splitlines():
        if not line.startswith(PREFIX):
            continue
        try:
            item = json.loads(line[len(PREFIX):])
        except ValueError:
            continue
        if not isinstance(item, dict) or not item.get("message"):
            continue
        sev = "error" if str(item.get("severity", "error")).lower() == "error" else "warning"
        p = Problem(field_for(str(item.get("field") or ""), cfg), sev, str(item["message"]))
        if (p.field, p.severity, p.message) not in seen:
            seen.add((p.field, p.severity, p.message))
            out.append(p)
    return out


#: Trainer options that no field carries under that name (the launch writes them from another field).
_OPTION_FIELDS = {
    "resolution": "max_resolution", "max_train_epochs": "epoch", "network_module": "LoRA_type",
    "network_args": "LoRA_type", "network_train_unet_only": "text_encoder_lr",
    "network_train_text_encoder_only": "unet_lr", "xformers": "xformers", "sdpa": "xformers",
    "config_file": "",
}


def field_for(option: str, cfg: Any = None) -> str:
    """The config field a trainer option name stands for: the field whose TOML key it is (``resolution`` →
    ``max_resolution``, ``optimizer_type`` → ``optimizer``), our field name as is, ``additional_parameters`` when
    the option is given there (``--name`` in it), else "" (the config as a whole). ``optimizer_args.betas`` style
    names map on their first part."""
    from lora_tui.config.model import TrainingConfig, all_field_meta

    name = option.strip().lstrip("-").replace("-", "_").split(".", 1)[0].split("[", 1)[0]
    if not name:
        return ""
    if cfg is not None:
        try:
            import shlex

            tokens = shlex.split(getattr(cfg, "additional_parameters", "") or "")
        except ValueError:
            tokens = []
        if any(t.lstrip("-").split("=", 1)[0].replace("-", "_") == name for t in tokens if t.startswith("--")):
            return "additional_parameters"
    if name in _OPTION_FIELDS:
        return _OPTION_FIELDS[name]
    for meta in all_field_meta():
        if meta.toml_key == name:
            return meta.name
    if name in TrainingConfig.model_fields:
        return name
    return ""


def _failure_problems(code: int, stderr: str, cfg: Any, python: str) -> list[Problem]:
    """A preflight that ended badly without a finding: argparse's error (exit 2), our trainer's ``ERROR:``
    lines, or a crash (its exception line), as errors on the option they name where one is named."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    errs = [ln[len("ERROR: "):] for ln in lines if ln.startswith("ERROR: ")]
    out: list[Problem] = []
    for e in errs:
        opt, sep, _ = e.partition(":")
        fld = field_for(opt, cfg) if sep and " " not in opt.strip() else ""
        out.append(Problem(fld, "error", f"the trainer refuses this config: {e}"))
    if out:
        return out
    usage = [ln for ln in lines if ": error: " in ln]
    if code == 2 and usage:
        msg = usage[-1].split(": error: ", 1)[1]
        return [Problem("additional_parameters" if getattr(cfg, "additional_parameters", "") else "", "error",
                        f"the trainer's command line does not parse: {msg}")]
    last = next((ln for ln in reversed(lines) if not ln[0].isspace()), f"exit code {code}")
    if "No module named" in last:
        return [Problem("", "error", f"the trainer cannot start with the Python '{python}': {last.strip()}: install "
                                     f"the trainer's packages there (`pip install -e '.[train]'` in lora-tui's "
                                     f"folder), or set the `python` app setting to an interpreter that has them")]
    return [Problem("", "error", f"the trainer's preflight failed (exit code {code}): {last.strip()}")]
