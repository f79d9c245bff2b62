"""Whether the trainer's Python (``AppSettings.python``) can import an optional package a config needs, such as
``lycoris`` (PyPI ``lycoris-lora``) for ``network_module = "lycoris.kohya"``.

Validation runs at every keystroke, so each answer is cached for the process lifetime, keyed by interpreter path
and package: this interpreter is asked through ``importlib.util.find_spec`` (nothing is imported), another one
through one short subprocess (``<python> -c ...find_spec...``, no shell). Installing the package while lora-tui runs
is seen at the next Start (which calls ``forget_package_answers``) or after a restart.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Optional

from lora_tui.plan.network import network_module

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig

_PROBE = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 3)"
_TIMEOUT_S = 30.0


def _same_interpreter(python: str) -> bool:
    # Paths, not files: a venv's python is a link to the base interpreter, whose packages differ.
    return not python or os.path.normpath(os.path.abspath(python)) == os.path.normpath(os.path.abspath(sys.executable))


@functools.cache
def package_importable(python: str, package: str) -> Optional[bool]:
    """True/False: whether ``python`` (an interpreter path; "" = this one) finds top-level ``package`` on its
    path, without importing it. None when that is unknown: the interpreter is missing, does not start or does not
    answer within 30 s (a missing trainer Python is another rule's finding). Never raises."""
    if _same_interpreter(python):
        try:
            return importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            return False
    try:
        done = subprocess.run([python, "-c", _PROBE, package], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 3: False}.get(done.returncode)


_LOCATE = ("import importlib.util, sys; s = importlib.util.find_spec(sys.argv[1]); "
           "sys.stdout.write((list(s.submodule_search_locations or []) or [s.origin or ''])[0] if s else ''); "
           "sys.exit(0 if s else 3)")


@functools.cache
def package_location(python: str, package: str) -> Optional[str]:
    """Where ``python`` (an interpreter path; "" = this one) finds top-level ``package``: its folder (or module
    file) as a path, "" when it does not find it, None when that is unknown (the interpreter is missing, does not
    start or does not answer within 30 s). Nothing is imported (``importlib.util.find_spec``); cached per
    interpreter and package like :func:`package_importable`. Never raises."""
    if _same_interpreter(python):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            return ""
        if spec is None:
            return ""
        return (list(spec.submodule_search_locations or []) or [spec.origin or ""])[0]
    try:
        done = subprocess.run([python, "-c", _LOCATE, package], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode == 3:
        return ""
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace").strip()


def python_problem(python: str) -> Optional[str]:
    """Why the interpreter ``python`` (the ``python`` app setting) cannot run the trainer at all, or None: the
    path does not exist, is not executable, or does not start. The message names the path and the fix."""
    if not python or _same_interpreter(python):
        return None
    where = "the trainer's Python (the `python` app setting in settings.toml)"
    if os.sep not in python and (os.altsep is None or os.altsep not in python):
        import shutil

        if shutil.which(python) is None:
            return f"{where} '{python}' is not found in PATH: give the interpreter's full path, or remove the setting"
        return None if package_location(python, "sys") is not None else (
            f"{where} '{python}' does not start as a Python interpreter: set it to one, or remove it")
    if not os.path.exists(python):
        return f"{where} '{python}' does not exist: set it to an interpreter with the trainer's packages, or remove it"
    if not os.access(python, os.X_OK) or os.path.isdir(python):
        return f"{where} '{python}' is not an executable file: set it to a python interpreter, or remove it"
    if package_location(python, "sys") is None:
        return f"{where} '{python}' does not start as a Python interpreter: set it to one, or remove it"
    return None


def pip_command(python: str) -> str:
    """The command line that installs into ``python``'s environment: ``<bin>/pip install`` where a pip script sits
    next to the interpreter (a venv's ``.venv/bin/pip``), else ``<python> -m pip install``."""
    python = python or sys.executable
    pip = os.path.join(os.path.dirname(python), "pip.exe" if os.name == "nt" else "pip")
    if os.path.isfile(pip):
        return f"{pip} install"
    return f"{python} -m pip install"


def forget_package_answers() -> None:
    """Drop every cached answer of :func:`package_importable` and the import system's directory caches, so a
    package installed from another shell since (``pip install lycoris-lora`` after the error told how) is found
    by the next check. Called by Start before its last validation; cheap (no I/O)."""
    package_importable.cache_clear()
    package_location.cache_clear()
    importlib.invalidate_caches()


#: network_module → (the top-level package the trainer imports it from, its PyPI name). The bundled trainer and
#: upstream sd-scripts both import the module by name (importlib), so either needs the package in its Python.
NETWORK_PACKAGES = {"lycoris.kohya": ("lycoris", "lycoris-lora")}

#: optimizer_type prefix (lower case) → (package, PyPI name): the packages sd-scripts' get_optimizer imports for
#: its named optimizers (the 8-bit and paged ones from bitsandbytes, Lion from lion-pytorch, the D-Adaptation
#: family, Prodigy, the schedule-free ones). A dotted class path needs its top-level module.
_OPTIMIZER_PACKAGES = (
    ("adamw8bit", ("bitsandbytes", "bitsandbytes")), ("sgdnesterov8bit", ("bitsandbytes", "bitsandbytes")),
    ("lion8bit", ("bitsandbytes", "bitsandbytes")), ("paged", ("bitsandbytes", "bitsandbytes")),
    ("lion", ("lion_pytorch", "lion-pytorch")), ("dadapt", ("dadaptation", "dadaptation")),
    ("prodigy", ("prodigyopt", "prodigyopt")), ("adamwschedulefree", ("schedulefree", "schedulefree")),
    ("radamschedulefree", ("schedulefree", "schedulefree")), ("sgdschedulefree", ("schedulefree", "schedulefree")),
)
#: log_with value → the tracker packages accelerate needs for it.
_TRACKER_PACKAGES = {"tensorboard": [("tensorboard", "tensorboard")], "wandb": [("wandb", "wandb")],
                     "all": [("tensorboard", "tensorboard"), ("wandb", "wandb")]}


def required_packages(cfg: TrainingConfig) -> list[tuple[str, str, str]]:
    """The optional packages the trainer's Python must import for ``cfg``, beyond torch/accelerate/diffusers:
    ``[(package, pip name, why)]`` for its optimizer, network_module and log_with (kohya sd-scripts imports each
    by name at start-up). Pure; no I/O."""
    needs: list[tuple[str, str, str]] = []
    optimizer = str(getattr(cfg, "optimizer", "") or "")
    if "." in optimizer:
        top = optimizer.split(".", 1)[0]
        needs.append((top, top.replace("_", "-"), f"optimizer {optimizer}"))
    else:
        low = optimizer.lower()
        for prefix, (package, dist) in _OPTIMIZER_PACKAGES:
            if low.startswith(prefix):
                needs.append((package, dist, f"optimizer {optimizer}"))
                break
    try:
        module = network_module(cfg)
    except Exception:  # noqa: BLE001 - an unknown LoRA type is reported by its own rule
        module = ""
    if module in NETWORK_PACKAGES:
        package, dist = NETWORK_PACKAGES[module]
        needs.append((package, dist, f"network_module {module}"))
    for package, dist in _TRACKER_PACKAGES.get(str(getattr(cfg, "log_with", "") or ""), []):
        needs.append((package, dist, f"log_with {cfg.log_with}"))
    return needs
