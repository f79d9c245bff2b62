"""The trainer's fast path (`lora_trainer/speed.py`) trains the same thing as the plain path.

On this CPU box the fast path runs eagerly (`LORA_TUI_FAST_PATH=1` forces it on), in fp32 and, through the test
hook `LORA_TUI_CPU_BF16=1`, under CPU bf16 autocast (CUDA graphs need the GPU: `benchmarks/train_speed.py`
checks those, see docs/performance.md). What is checked
here: flat master weights and pre-assigned gradients, the fused clip + optimizer step, the scheduler, cached
conditioning with the text encoders moved off, the `_forward_loss` split, the speed options' parsing, and the
refusal when captions change between epochs; in bf16: the compute weights, the U-Net without autocast, the
addmm LoRA sums and `--torch_compile` of the transformer blocks; and the loop that finishes a fast-path step's
bookkeeping after launching the next (`lora_trainer/pending.py`), with saves, an epoch end and a real SIGINT.
One helper process runs all trainings (one torch import).
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
def check_output(tiny_sdxl_ckpt, tmp_path_factory):
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("speed")
    rs = np.random.RandomState(0)
    for sub in (root / "img" / "10_name", root / "short" / "1_name"):  # 20 batches of 2 / 4 batches of 1
        sub.mkdir(parents=True)
        for i in range(4):
            Image.fromarray((rs.rand(8, 8, 3) * 255).astype("uint8")).resize((64, 64)).save(sub / f"i{i}.png")
            (sub / f"i{i}.txt").write_text(f"name, photo {i}, detailed")
    r = subprocess.run([sys.executable, str(HERE / "speed_check.py"), str(tiny_sdxl_ckpt), str(root / "img"),
                        str(root / "out"), str(root / "short")], capture_output=True, text=True, env=ENV,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def speed_runs(check_output):
    return {k: v for k, v in check_output.items() if k not in ("stop", "op_gradients")}


@pytest.fixture(scope="module")
def stop_runs(check_output):
    return check_output["stop"]


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
    # dynamo + AOTAutograd without code generation: the same arithmetic as the eager bf16 fast path (the fused
    # LoRA sums run as custom operators inside the compiled blocks)
    for a, b in zip(fast["losses"], comp["losses"], strict=True):
        assert abs(a - b) <= 1e-4 * abs(a), (fast["losses"], comp["losses"])


def test_torch_compile_resnets_adds_the_resnet_blocks(speed_runs):
    comp, fast = speed_runs["fast_bf16_compiled_resnets"], speed_runs["fast_bf16"]
    assert comp["rc"] == 0, comp["err_tail"]
    line = " ".join(comp["fast_lines"])
    assert "torch.compile (aot_eager) of" in line and "BasicTransformerBlock, ResnetBlock2D" in line
    # one graph per distinct ResNet block shape beside the transformer block's: more than the transformer alone
    assert comp["compiled_graphs"] > speed_runs["fast_bf16_compiled"]["compiled_graphs"]
    # AOTAutograd traces GroupNorm/SiLU into other kernels than eager bf16 runs: bf16 rounding differs, so the
    # tolerance is the bf16 one of the plain-path comparison (one rounding, 3.9e-3; far less on average)
    rel = [abs(a - b) / abs(a) for a, b in zip(fast["losses"], comp["losses"], strict=True)]
    assert max(rel) <= 3.9e-3 and sum(rel) / len(rel) <= 1e-3, rel


def test_geglu_halves_are_computed_apart_on_the_bf16_fast_path(speed_runs):
    # the tiny U-Net's 12 transformer blocks each have a LoRA-wrapped GEGLU projection; the bf16 fast path
    # computes its two halves as two products (its losses are checked against the plain path above)
    assert "GEGLU halves computed apart (12 layers)" in " ".join(speed_runs["fast_bf16"]["fast_lines"])
    assert "GEGLU" not in " ".join(speed_runs["fast_fp32"]["fast_lines"])


def test_fast_path_bookkeeping_one_step_late_matches_step_order(stop_runs):
    # 8 steps, 4 a epoch, saves every 3 steps and every epoch, SIGINT during step 7 (see speed_check.stop_runs)
    lag, nolag, plain = stop_runs["stop_fast"], stop_runs["stop_fast_nolag"], stop_runs["stop_plain"]
    for r in (lag, nolag, plain):
        assert r["rc"] == 130, r["err_tail"]
    assert "fast path:" in " ".join(lag["fast_lines"])

    def launch(k):
        return ["launch", k]

    def progress(k):
        return ["progress", k]
    saves = {3: ["saved", "s-step00000003.safetensors", 3, 0], 6: ["saved", "s-step00000006.safetensors", 6, 1],
             "e1": ["saved", "s-000001.safetensors", 4, 1], 7: ["saved", "s-step00000007.safetensors", 7, 2]}
    # unlagged (plain path, LORA_TUI_LOSS_LAG=0): each step's bookkeeping before the next launch
    in_order = [launch(1), progress(1), launch(2), progress(2), launch(3), progress(3), saves[3],
                launch(4), progress(4), saves["e1"], launch(5), progress(5), launch(6), progress(6), saves[6],
                launch(7), progress(7), saves[7]]
    assert plain["events"] == nolag["events"] == in_order
    # lagged: step k's bookkeeping after step k+1's launch, except where it saves (3, 6), ends the epoch (4)
    # or sees the stop request before launching step 8 (7): those finish before any later launch
    assert lag["events"] == [launch(1), launch(2), progress(1), launch(3), progress(2), progress(3), saves[3],
                             launch(4), progress(4), saves["e1"], launch(5), launch(6), progress(5), progress(6),
                             saves[6], launch(7), progress(7), saves[7]]
    # every step's progress line (step, epoch, loss, avr_loss window, lr after its scheduler step) is the
    # unlagged one to the bit (same CPU arithmetic), and follows the plain path's to float32 rounding
    assert [p["step"] for p in lag["progress"]] == list(range(1, 8))
    assert lag["progress"] == nolag["progress"]
    assert len({p["lr"] for p in lag["progress"]}) == 7  # cosine: a wrong step's lr would show
    for a, b in zip(plain["progress"], lag["progress"], strict=True):
        assert {k: v for k, v in a.items() if "loss" not in k} == {k: v for k, v in b.items() if "loss" not in k}
        for k in ("loss", "avr_loss"):
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(a[k])), (plain["progress"], lag["progress"])
    # every save holds the weights after exactly its step: bit-equal to the unlagged run's
    assert sorted(lag["max_diff"]) == sorted(x[1] for x in saves.values())
    assert lag["max_diff"] == {k: 0.0 for k in lag["max_diff"]}
    assert sorted(plain["max_diff"]) == sorted(lag["max_diff"])
    assert max(plain["max_diff"].values()) < 2e-3, plain["max_diff"]  # AdamW's last-bit effect, as above


def test_fused_lora_operators_give_autograd_gradients(check_output):
    # float64 on the CPU: the fused forms (the eager autograd function, the custom operators used inside
    # compiled blocks, the GEGLU half-products) against autograd through the unfused formula
    assert set(check_output["op_gradients"]) == {"linear_op", "linear_function", "geglu_op"}
    for name, diff in check_output["op_gradients"].items():
        assert diff < 1e-10, (name, diff)
