"""``lora-tui doctor``: which trainer, Python, torch, accelerate and GPU the app will use, and what a config needs.

The first thing to run on a new rented box. The trainer's interpreter (app setting ``python``) is asked in one
short subprocess (it imports torch; the app never does), so the answer is the one the trainer will see, CUDA
build and visible GPUs included. Never raises for a missing or broken interpreter: that is part of the report.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.paths import BUNDLED_SD_SCRIPTS, is_installed_copy
from lora_tui.config.model import TrainingConfig
from lora_tui.plan.launch import find_accelerate
from lora_tui.plan.trainer_packages import package_importable, pip_command, required_packages

#: What the trainer's Python reports: its version, and per package the version or the import error. torch adds
#: its CUDA build and the GPUs it sees. One JSON object on stdout.
_PROBE = r"""
import json, sys, importlib, importlib.metadata as md
out = {"python": sys.version.split()[0], "executable": sys.executable, "packages": {}}
for name, dist in (("torch", "torch"), ("accelerate", "accelerate"), ("diffusers", "diffusers"),
                   ("transformers", "transformers"), ("safetensors", "safetensors")):
    try:
        out["packages"][name] = md.version(dist)
    except Exception as exc:
        out["packages"][name] = None
try:
    import torch
    out["cuda_build"] = torch.version.cuda
    out["cuda_available"] = bool(torch.cuda.is_available())
    out["gpus"] = []
    if out["cuda_available"]:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            out["gpus"].append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1)})
except Exception as exc:
    out["torch_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""
_TIMEOUT_S = 120.0


@dataclass
class Doctor:
    """The report. ``trainer``: the sd-scripts folder the launch uses and whether it is the bundled one;
    ``probe``: what the trainer's Python said (None when it could not run; ``error`` says why); ``accelerate``:
    the command the launch runs; ``missing``: per package a config needs that the trainer's Python lacks,
    ``(package, pip name, why, install command)``."""

    trainer: Path
    bundled: bool
    installed_copy: bool
    python: str
    accelerate: list[str]
    probe: Optional[dict[str, Any]] = None
    error: str = ""
    needs: list[tuple[str, str, str]] = field(default_factory=list)
    missing: list[tuple[str, str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the trainer's Python runs, has torch and accelerate, and nothing the config needs is missing."""
        if self.probe is None or "torch_error" in self.probe:
            return False
        pkgs = self.probe.get("packages", {})
        return bool(pkgs.get("torch") and pkgs.get("accelerate")) and not self.missing


def diagnose(settings: AppSettings, cfg: Optional[TrainingConfig] = None) -> Doctor:
    """Ask the trainer's Python (``settings.python``) what it has; with ``cfg``, also which of the packages that
    config needs (:func:`required_packages`) it cannot import. Runs one subprocess (up to 120 s: a first torch
    import on a cold disk is slow)."""
    trainer = Path(settings.sd_scripts_dir)
    report = Doctor(trainer=trainer, bundled=trainer.resolve() == BUNDLED_SD_SCRIPTS.resolve(),
                    installed_copy=is_installed_copy(), python=str(settings.python),
                    accelerate=find_accelerate(settings))
    try:
        done = subprocess.run([str(settings.python), "-c", _PROBE], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        report.error = f"could not run {settings.python}: {exc}"
    else:
        lines = done.stdout.strip().splitlines()
        try:
            report.probe = json.loads(lines[-1]) if lines else None
        except ValueError:
            report.probe = None
        if report.probe is None:
            tail = " ".join(done.stderr.strip().splitlines()[-2:])
            report.error = f"{settings.python} exited {done.returncode} without an answer: {tail}"
    if cfg is not None:
        report.needs = required_packages(cfg)
        for package, dist, why in report.needs:
            if package_importable(str(settings.python), package) is False:
                report.missing.append((package, dist, why, f"{pip_command(str(settings.python))} {dist}"))
    return report


def format_report(report: Doctor) -> str:
    """The report as the lines ``lora-tui doctor`` prints."""
    where = "bundled" if report.bundled else "upstream (app setting sd_scripts_dir)"
    if report.bundled:
        where += ", inside the installed package" if report.installed_copy else ", in this checkout"
    lines = [f"trainer:      {report.trainer} ({where})", f"python:       {report.python}"]
    probe = report.probe
    if probe is None:
        lines.append(f"              ✗ {report.error}")
    else:
        lines[-1] += f" (Python {probe.get('python')})"
        pkgs = probe.get("packages", {})
        torch = pkgs.get("torch")
        if not torch:
            lines.append("torch:        ✗ not installed (scripts/setup, or pip install torch)")
        elif "torch_error" in probe:
            lines.append(f"torch:        ✗ {torch} does not import: {probe['torch_error']}")
        else:
            build = f"CUDA {probe['cuda_build']} build" if probe.get("cuda_build") else "CPU build"
            lines.append(f"torch:        {torch} ({build})")
        acc = pkgs.get("accelerate")
        lines.append(f"accelerate:   {acc} ({' '.join(report.accelerate)})" if acc
                     else "accelerate:   ✗ not installed: the launch needs it (pip install accelerate)")
        for name in ("diffusers", "transformers", "safetensors"):
            lines.append(f"{name + ':':<14}{pkgs.get(name) or '✗ not installed'}")
        gpus = probe.get("gpus") or []
        if gpus:
            lines += [f"gpu {g['index']}:        {g['name']}, {g['memory_gib']} GiB" for g in gpus]
        elif torch and "torch_error" not in probe:
            why = "a CPU build of torch" if not probe.get("cuda_build") else "CUDA build, but no GPU visible"
            lines.append(f"gpu:          none ({why}; training runs on the CPU, slowly)")
    if report.needs:
        lines.append("config needs:")
        missing = {m[0]: m for m in report.missing}
        for package, dist, why in report.needs:
            if package in missing:
                lines.append(f"  ✗ {dist} ({why}): run `{missing[package][3]}`")
            else:
                lines.append(f"  ✓ {dist} ({why})")
    lines.append("ok" if report.ok else "not ready: see ✗ above")
    return "\n".join(lines)
