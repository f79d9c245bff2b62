"""A LyCORIS LoRA type needs the lycoris-lora package in the trainer's Python (network_module lycoris.kohya is
imported by name by the bundled trainer and by upstream sd-scripts): validation says so, naming the install
command, instead of "no problems" followed by a failing Start (found in a new user's trial)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.model import TrainingConfig
from lora_tui.plan.dataset import scan_dataset
from lora_tui.plan.rules import validate
from lora_tui.plan.trainer_packages import package_importable, pip_command


@pytest.fixture
def bare_python(tmp_path):
    """A real interpreter without site-packages (so without lycoris): this venv's Python run with -S."""
    path = tmp_path / "venv" / "bin" / "python"
    path.parent.mkdir(parents=True)
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n', encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def lycoris_problems(lora_type, settings):
    cfg = TrainingConfig(sdxl=True, LoRA_type=lora_type)
    return [p for p in validate(cfg, scan_dataset(cfg), settings) if "lycoris-lora" in p.message]


def test_lycoris_type_without_the_package_is_an_error_naming_the_install(bare_python):
    found = lycoris_problems("LyCORIS/LoKr", AppSettings(python=bare_python))
    assert len(found) == 1, found
    p = found[0]
    assert (p.field, p.severity) == ("LoRA_type", "error")
    assert "lycoris-lora" in p.message and bare_python in p.message
    assert f"{bare_python} -m pip install lycoris-lora" in p.message
    # a Kohya type needs no package
    assert lycoris_problems("Standard", AppSettings(python=bare_python)) == []


def test_upstream_checkout_needs_the_package_too(bare_python, tmp_path):
    upstream = tmp_path / "sd-scripts"
    upstream.mkdir()
    (upstream / "sdxl_train_network.py").write_text("", encoding="utf-8")
    found = lycoris_problems("LyCORIS/LoHa", AppSettings(python=bare_python, sd_scripts_dir=upstream))
    assert [p.field for p in found] == ["LoRA_type"]


def test_this_interpreter_has_it_and_the_answer_is_cached(bare_python):
    # the test venv installs lycoris-lora (the [train] extra), so this interpreter's answer is "importable"
    assert lycoris_problems("LyCORIS/iA3", AppSettings()) == []
    package_importable(bare_python, "lycoris")
    before = package_importable.cache_info()
    for _ in range(3):
        lycoris_problems("LyCORIS/LoCon", AppSettings(python=bare_python))
        lycoris_problems("LyCORIS/LoCon", AppSettings())
    after = package_importable.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 6


def test_the_check_does_not_import_the_package():
    code = ("import sys; from lora_tui.plan.trainer_packages import package_importable; "
            "assert package_importable(sys.executable, 'lycoris') is True; "
            "assert not any(m.split('.')[0] == 'lycoris' for m in sys.modules), 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unknown_interpreter_is_not_guessed(tmp_path):
    missing = str(tmp_path / "nope" / "python")
    assert package_importable(missing, "lycoris") is None
    assert lycoris_problems("LyCORIS/LoKr", AppSettings(python=missing)) == []


def test_pip_command_uses_the_venv_pip_when_there_is_one(tmp_path):
    py = tmp_path / "bin" / "python"
    py.parent.mkdir()
    assert pip_command(str(py)) == f"{py} -m pip install"
    (tmp_path / "bin" / "pip").write_text("", encoding="utf-8")
    assert pip_command(str(py)) == f"{tmp_path / 'bin' / 'pip'} install"


def test_a_package_installed_since_counts_after_forget_package_answers(tmp_path):
    # Start calls forget_package_answers: the user who read the error and ran pip in another shell is not told
    # again from a stale cache.
    from lora_tui.plan.trainer_packages import forget_package_answers

    site = tmp_path / "site"
    site.mkdir()
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" -S "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    assert package_importable(str(python), "lycoris") is False
    (site / "lycoris").mkdir()
    (site / "lycoris" / "__init__.py").write_text("", encoding="utf-8")
    assert package_importable(str(python), "lycoris") is False  # cached for the keystrokes in between
    forget_package_answers()
    assert package_importable(str(python), "lycoris") is True
    assert lycoris_problems("LyCORIS/LoKr", AppSettings(python=str(python))) == []
