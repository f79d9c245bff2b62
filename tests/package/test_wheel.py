"""The built wheel is the whole product (issue 18): installed into a fresh virtual environment, away from the
checkout, it prints a bundled preset's launch with the trainer inside the installed package and trains the demo.

The fresh environment gets lora-tui from the wheel only; its dependencies come from the test environment's
site-packages through a `.pth` line (no network, and the checkout is not on its path: a `.pth` file in a folder
that a `.pth` line adds is not read, so the editable install's own `.pth` stays out)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, its site-packages, an environment with private user dirs, a work folder outside the repo)."""
    root = tmp_path_factory.mktemp("wheel")
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    wheels = root / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                  "-w", str(wheels)], cwd=root, env=clean)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("lora_tui-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=root, env=clean).stdout.strip())
    # The wheel first: with the test environment on its path, pip would find the editable lora-tui there and call
    # it installed.
    done = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                cwd=root, env=clean)
    assert done.returncode == 0, done.stderr
    assert (purelib / "lora_tui").is_dir(), done.stdout
    (purelib / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    env = dict(clean)
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        env[name] = str(root / name.lower())
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = root / "work"
    work.mkdir()
    return python, purelib, env, work


def test_the_wheel_carries_the_trainer_and_presets_and_print_uses_them(installed):
    python, purelib, env, work = installed
    package = purelib / "lora_tui"
    preset = package / "_bundled" / "presets" / "sdxl-face-lora.json"
    assert preset.is_file()
    done = _run([str(python.parent / "lora-tui"), "print", "--json", str(preset)], cwd=work, env=env)
    assert done.returncode in (0, 1), done.stderr  # a preset has no paths: errors about them are expected
    argv = json.loads(done.stdout)["argv"]
    script = Path(next(a for a in argv if a.endswith("sdxl_train_network.py")))
    assert script.is_file()
    assert script.resolve().is_relative_to(package.resolve()), script
    assert not (REPO / "lora_tui") in [p.resolve() for p in script.parents]


def _package_files(purelib: Path) -> dict[str, tuple[int, int]]:
    """Every file of the installed package but Python's byte-code caches: path → (size, mtime in ns)."""
    return {str(p.relative_to(purelib)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in (purelib / "lora_tui").rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_the_installed_wheel_trains_the_demo_headless(installed):
    python, purelib, env, work = installed
    installed_files = _package_files(purelib)
    lora_tui = str(python.parent / "lora-tui")
    made = _run([lora_tui, "demo"], cwd=work, env=env)
    assert made.returncode == 0, made.stderr
    config = Path(made.stdout.strip().splitlines()[-1])
    trained = _run([lora_tui, "train", str(config), "--set", "max_train_steps=2", "--set", "save_every_n_epochs="],
                   cwd=work, env=env, timeout=600)
    assert trained.returncode == 0, (trained.stdout + trained.stderr)[-3000:]
    out = Path(env["XDG_CACHE_HOME"]) / "lora-tui" / "demo" / "outputs"
    assert (out / "demo_lora.safetensors").is_file(), sorted(p.name for p in out.iterdir())
    # nothing was written inside the installed package (jobs, the demo and the launch files live in user dirs)
    assert _package_files(purelib) == installed_files


def test_doctor_names_the_installed_trainer_the_torch_build_and_a_missing_package(installed):
    python, purelib, env, work = installed
    config = work / "absent_optimizer.json"
    config.write_text(json.dumps({"LoRA_type": "Standard", "sdxl": True, "optimizer": "absent_optim_pkg.Fancy"}),
                      encoding="utf-8")
    done = _run([str(python.parent / "lora-tui"), "doctor", "--config", str(config)], cwd=work, env=env)
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    trainer = next(line for line in lines if line.startswith("trainer:"))
    assert "inside the installed package" in trainer and str(purelib / "lora_tui") in trainer
    assert any(line.startswith("torch:") and "build)" in line for line in lines), lines
    assert any("✗ absent-optim-pkg (optimizer absent_optim_pkg.Fancy)" in line for line in lines), lines
    assert lines[-1].startswith("not ready")
