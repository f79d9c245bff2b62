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
from typing import Optional

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
    importlib.invalidate_caches()
