"""Shared fixtures. Tests that need torch run it in subprocesses or in the trainer's own tests; the tiny
checkpoint is built once per session because each torch-importing process costs seconds on 2 cores."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SD_SCRIPTS = REPO / "sd-scripts"
SHARED = REPO.parent / "shared"

# One torch thread everywhere: OpenMP spin-waiting on 2 busy cores makes tiny steps 10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_sdxl_ckpt(tmp_path_factory) -> Path:
    """A tiny random SDXL-architecture single-file checkpoint (original key layout), built once per session."""
    out = tmp_path_factory.mktemp("ckpt") / "tiny_sdxl.safetensors"
    subprocess.run([sys.executable, str(SD_SCRIPTS / "make_demo_checkpoint.py"), "--family", "sdxl", str(out)],
                   check=True)
    return out


@pytest.fixture(scope="session")
def tiny_sd2_ckpt(tmp_path_factory) -> Path:
    """A tiny random SD2.x checkpoint in the original layout (OpenCLIP text encoder under cond_stage_model.model),
    built once per session."""
    out = tmp_path_factory.mktemp("ckpt2") / "tiny_sd2.safetensors"
    subprocess.run([sys.executable, str(SD_SCRIPTS / "make_demo_checkpoint.py"), "--family", "sd2", str(out)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def tiny_sd15_ckpt(tmp_path_factory) -> Path:
    """A tiny random SD1.5-architecture single-file checkpoint (original key layout), built once per session."""
    out = tmp_path_factory.mktemp("ckpt15") / "tiny_sd15.safetensors"
    subprocess.run([sys.executable, str(SD_SCRIPTS / "make_demo_checkpoint.py"), "--family", "sd1", str(out)],
                   check=True)
    return out
