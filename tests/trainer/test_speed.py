"""The trainer's fast path (`lora_trainer/speed.py`) trains the same thing as the plain path.

On this CPU box the fast path runs eagerly (`LORA_TUI_FAST_PATH=1` forces it on), in fp32 and, through the test
hook `LORA_TUI_CPU_BF16=1`, under CPU bf16 autocast (CUDA graphs need the GPU: `benchmarks/train_speed.py`
checks those, see docs/performance.md). What is checked
here: flat master weights and pre-assigned gradients, the fused clip + optimizer step, the scheduler, cached
conditioning with the text encoders moved off, the `_forward_loss` split, the speed options' parsing, and the
refusal when captions change between epochs; in bf16: the compute weights, the U-Net without autocast, the
addmm LoRA sums and `--torch_compile` of the transformer blocks. One helper process runs all trainings (one torch
import).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def speed_runs(tiny_sdxl_ckpt, tmp_path_factory):
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("speed")
    sub = root / "img" / "10_name"
    sub.mkdir(parents=True)
    rs = np.random.RandomState(0)
    for i in range(4):
        Image.fromarray((rs.rand(8, 8, 3) * 255).astype("uint8")).resize((64, 64)).save(sub / f"i{i}.png")
        (sub / f"i{i}.txt").write_text(f"name, photo {i}, detailed")
    r = subprocess.run([sys.executable, str(HERE / "speed_check.py"), str(tiny_sdxl_ckpt), str(root / "img"),
                        str(root / "out")], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_fast_path_used_and_refused_when_it_must_be(speed_runs):
    assert all(r["rc"] == 0 for r in speed_runs.values()), {k: r["err_tail"] for k, r in speed_runs.items()}
    assert any("fast path off (LORA_TUI_FAST_PATH=0)" in ln for ln in speed_runs["plain"]["fast_lines"])
    fast = " ".join(speed_runs["fast"]["fast_lines"])
    assert "fast path:" in fast and "channels_last" in fast and "eager steps (no_cuda_graphs)" in fast
    assert any("captions change between epochs" in ln for ln in speed_runs["shuffled"]["fast_lines"])


def test_fast_path_trains_the_same_lora(speed_runs):
    plain = speed_runs["plain"]
    assert len(plain["losses"]) == 10 and plain["max_up"] > 0  # it trained: lora_up left zero
    for name in ("fast", "fast_fp32"):
        r = speed_runs[name]
        assert r["keys"] == plain["keys"]
        # same noise, timesteps and arithmetic: the per-step losses agree to float32 rounding
        for a, b in zip(plain["losses"], r["losses"], strict=True):
            assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), (name, plain["losses"], r["losses"])
        # weights: AdamW divides by sqrt(v) + 1e-8, so an element whose gradient is ~0 can move by up to one
        # lr (1e-3) on a last-bit difference in its gradient; anything larger is a real divergence
        assert r["max_diff"] < 2e-3, (name, r["max_diff"])


def test_bf16_fast_path_tracks_the_autocast_plain_path(speed_runs):
    plain, fast = speed_runs["plain_bf16"], speed_runs["fast_bf16"]
    assert "U-Net bfloat16 without autocast" in " ".join(fast["fast_lines"])
    assert "without autocast" not in " ".join(speed_runs["fast_bf16_autocast"]["fast_lines"])
    assert len(plain["losses"]) == len(fast["losses"]) == 10
    # Same noise and timesteps; the arithmetic differs only in bf16 rounding (norm outputs rounded to bf16
    # before SiLU, addmm summing in fp32, input-gradients of q/k/v summed in bf16). One bf16 rounding of the
    # prediction is 2^-8 ~ 3.9e-3 relative: each step's loss must agree within that, and on average far closer.
    rel = [abs(a - b) / abs(a) for a, b in zip(plain["losses"], fast["losses"], strict=True)]
    assert max(rel) <= 3.9e-3, rel
    assert sum(rel) / len(rel) <= 1e-3, rel
    for name in ("fast_bf16_autocast", "fast_bf16_compiled"):
        assert speed_runs[name]["rc"] == 0, speed_runs[name]["err_tail"]
        assert speed_runs[name]["keys"] == plain["keys"]


def test_torch_compile_compiles_each_block_shape_once(speed_runs):
    comp, fast = speed_runs["fast_bf16_compiled"], speed_runs["fast_bf16"]
    line = " ".join(comp["fast_lines"])
    assert "torch.compile (aot_eager) of" in line and "BasicTransformerBlock" in line
    # the tiny U-Net's 12 transformer blocks share one shape: the LoRA-wrapped layers (closures over each
    # block's own weights) must not make dynamo recompile per block
    assert 1 <= comp["compiled_graphs"] <= 2, comp["compiled_graphs"]
    # dynamo + AOTAutograd without code generation: the same arithmetic as the eager bf16 fast path
    for a, b in zip(fast["losses"], comp["losses"], strict=True):
        assert abs(a - b) <= 1e-4 * abs(a), (fast["losses"], comp["losses"])
