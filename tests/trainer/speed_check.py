"""Helper process for test_speed.py: runs the trainer's `main` several times in ONE process (one torch import)
on a tiny SDXL checkpoint and prints `RESULT {json}` with each run's exit code, per-step losses, fast-path log
lines and LoRA tensors' largest difference from the first run; then the stop runs (`stop_runs`).

Usage: speed_check.py CKPT DATA_DIR WORK_DIR SHORT_DATA_DIR
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sd-scripts"))


def _compiled_graphs() -> int:
    """Graphs dynamo has compiled in this process so far (each recompile of a block counts)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _train(argv: list[str], env: dict, stop_after: int | None = None) -> tuple[int, str, str]:
    """One `train.main` run with `env` set; returns (exit code, stdout, stderr). With `stop_after`, every
    scheduler step (one a launched optimizer step) prints `LAUNCH n` to stdout, and the process sends itself a
    real SIGINT during step `stop_after`, as a user's Ctrl+C would."""
    from accelerate.state import AcceleratorState

    from lora_trainer import train

    for k in ("LORA_TUI_FAST_PATH", "LORA_TUI_CPU_BF16", "LORA_TUI_LOSS_LAG"):
        os.environ.pop(k, None)
    os.environ.update(env)
    # accelerate keeps one process-wide state; these runs differ in mixed_precision
    AcceleratorState._reset_state(reset_partial_state=True)
    orig_loop = train.Trainer._loop

    def loop(self):
        sched_step, n = self.scheduler.step, [0]

        def step(*a, **k):
            r = sched_step(*a, **k)
            n[0] += 1
            print(f"LAUNCH {n[0]}", flush=True)
            if n[0] == stop_after:
                signal.raise_signal(signal.SIGINT)
            return r
        self.scheduler.step = step
        return orig_loop(self)

    if stop_after is not None:
        train.Trainer._loop = loop
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = train.main("sdxl_train_network", argv)
    finally:
        train.Trainer._loop = orig_loop
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return rc, out.getvalue(), err.getvalue()


def stop_runs(ckpt: str, data: str, work: Path) -> dict:
    """Eight steps (two epochs of four batches) saving every 3 steps and every epoch, stopped by SIGINT during
    step 7 and a cosine LR: the plain path, the fast path (bookkeeping one step late) and the fast path with
    `LORA_TUI_LOSS_LAG=0`. Per run: exit code, stdout events in order (`launch`/`progress`/`saved`), progress
    lines without it/s, and every saved file's tensors' largest difference from the unlagged fast run's."""
    from safetensors.torch import load_file

    argv = ["--pretrained_model_name_or_path", ckpt, "--train_data_dir", data, "--resolution", "64,64",
            "--caption_extension", ".txt", "--network_module", "networks.lora", "--network_dim", "4",
            "--network_alpha", "2", "--network_train_unet_only", "--cache_latents", "--cache_text_encoder_outputs",
            "--learning_rate", "1e-3", "--lr_scheduler", "cosine", "--max_train_steps", "8",
            "--train_batch_size", "1", "--seed", "7", "--max_grad_norm", "1.0", "--optimizer_type", "AdamW",
            "--output_name", "s", "--save_every_n_steps", "3", "--save_every_n_epochs", "1"]
    runs = {"stop_fast_nolag": {"LORA_TUI_FAST_PATH": "1", "LORA_TUI_LOSS_LAG": "0"},
            "stop_fast": {"LORA_TUI_FAST_PATH": "1"}, "stop_plain": {"LORA_TUI_FAST_PATH": "0"}}
    res, ref = {}, None
    for name, env in runs.items():
        rc, out, err = _train(argv + ["--output_dir", str(work / name)], env, stop_after=7)
        events, progress = [], []
        for ln in out.splitlines():
            if ln.startswith("LAUNCH "):
                events.append(["launch", int(ln.split()[1])])
            elif ln.startswith("LORA_TUI_PROGRESS "):
                d = json.loads(ln.split(" ", 1)[1])
                events.append(["progress", d["step"]])
                d.pop("it_per_s")
                progress.append(d)
            elif ln.startswith("LORA_TUI_SAVED "):
                d = json.loads(ln.split(" ", 1)[1])
                events.append(["saved", Path(d["path"]).name, d["step"], d["epoch"]])
        files = {f.name: load_file(str(f)) for f in sorted((work / name).glob("*.safetensors"))}
        if ref is None:
            ref = files
        diffs = {k: max(float((sd[t].float() - ref[k][t].float()).abs().max()) for t in sd)
                 for k, sd in files.items() if k in ref}
        res[name] = {"rc": rc, "events": events, "progress": progress, "max_diff": diffs,
                     "fast_lines": [ln for ln in err.splitlines() if "fast path" in ln], "err_tail": err[-1500:]}
    return res


def op_gradients() -> dict:
    """Largest differences (float64, CPU) between the fused LoRA operators' outputs and gradients and plain
    autograd through the unfused formula `x W^T + b + s (x D^T) U^T` (then GEGLU's halves)."""
    import torch

    from lora_trainer import speed

    g = torch.Generator().manual_seed(0)
    M, K, N, r, s = 6, 5, 8, 3, 0.75
    x = torch.randn(M, K, generator=g, dtype=torch.float64, requires_grad=True)
    w, b = torch.randn(N, K, generator=g, dtype=torch.float64), torch.randn(N, generator=g, dtype=torch.float64)
    d = torch.randn(r, K, generator=g, dtype=torch.float64, requires_grad=True)
    u = torch.randn(N, r, generator=g, dtype=torch.float64, requires_grad=True)

    def diffs(outs, refs, seed):
        go = [torch.randn(o.shape, generator=torch.Generator().manual_seed(seed + i), dtype=torch.float64)
              for i, o in enumerate(outs)]
        got = torch.autograd.grad(outs, (x, d, u), go)
        want = torch.autograd.grad(refs, (x, d, u), go)
        return max([float((a - c).detach().abs().max()) for a, c in zip(outs, refs)]
                   + [float((a - c).abs().max()) for a, c in zip(got, want)])

    def ref():
        return x @ w.t() + b + s * (x @ d.t()) @ u.t()

    n = N // 2
    y, _h = speed._lora_linear_op()(x, w, b, d, u, s)
    fn = speed._lora_linear_function().apply(x, w, b, d, u, s)
    a, gate, _h = speed._geglu_proj_op()(x, w, b, d, u, s)
    r = ref()
    return {"linear_op": diffs([y], [ref()], 1), "linear_function": diffs([fn], [ref()], 1),
            "geglu_op": diffs([a, gate], [r[:, :n], r[:, n:]], 3)}


def main() -> int:
    ckpt, data, work, short = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    import torch
    from safetensors.torch import load_file

    torch.set_num_threads(1)
    base = ["--pretrained_model_name_or_path", ckpt, "--train_data_dir", data, "--resolution", "64,64",
            "--caption_extension", ".txt", "--network_module", "networks.lora", "--network_dim", "4",
            "--network_alpha", "2", "--network_train_unet_only", "--cache_latents", "--cache_text_encoder_outputs",
            "--learning_rate", "1e-3", "--max_train_steps", "10", "--train_batch_size", "2", "--seed", "42",
            "--max_grad_norm", "1.0", "--optimizer_type", "AdamW", "--output_name", "l"]
    runs = {"plain": ({"LORA_TUI_FAST_PATH": "0"}, []),
            "fast": ({"LORA_TUI_FAST_PATH": "1"}, ["--no_cuda_graphs", "--channels_last"]),
            "fast_fp32": ({"LORA_TUI_FAST_PATH": "1"}, ["--lora_fp32_weights"]),
            "shuffled": ({"LORA_TUI_FAST_PATH": "1"}, ["--shuffle_caption"]),
            # bf16 (CPU autocast, test hook LORA_TUI_CPU_BF16): the plain path under autocast against the fast
            # path's bf16 compute weights, U-Net without autocast and addmm LoRA sums; then the same under
            # autocast, and with the transformer blocks compiled (aot_eager: dynamo + AOTAutograd, no codegen)
            "plain_bf16": ({"LORA_TUI_FAST_PATH": "0", "LORA_TUI_CPU_BF16": "1"}, ["--mixed_precision", "bf16"]),
            "fast_bf16": ({"LORA_TUI_FAST_PATH": "1", "LORA_TUI_CPU_BF16": "1"}, ["--mixed_precision", "bf16"]),
            "fast_bf16_autocast": ({"LORA_TUI_FAST_PATH": "1", "LORA_TUI_CPU_BF16": "1"},
                                   ["--mixed_precision", "bf16", "--unet_autocast"]),
            "fast_bf16_compiled": ({"LORA_TUI_FAST_PATH": "1", "LORA_TUI_CPU_BF16": "1"},
                                   ["--mixed_precision", "bf16", "--torch_compile", "--dynamo_backend",
                                    "aot_eager"]),
            # --torch_compile_resnets alone (it implies --torch_compile): the ResNet blocks compiled too
            "fast_bf16_compiled_resnets": ({"LORA_TUI_FAST_PATH": "1", "LORA_TUI_CPU_BF16": "1"},
                                           ["--mixed_precision", "bf16", "--torch_compile_resnets",
                                            "--dynamo_backend", "aot_eager"])}
    res = {}
    first = None
    for name, (env, extra) in runs.items():
        graphs0 = _compiled_graphs()
        rc, out, err = _train(base + ["--output_dir", str(work / name)] + extra, env)
        losses = [json.loads(ln.split(" ", 1)[1])["loss"] for ln in out.splitlines()
                  if ln.startswith("LORA_TUI_PROGRESS ")]
        r = {"rc": rc, "losses": losses,
             "fast_lines": [ln for ln in err.splitlines() if "fast path" in ln],
             "err_tail": err[-1500:], "compiled_graphs": _compiled_graphs() - graphs0}
        f = work / name / "l.safetensors"
        if rc == 0 and f.is_file():
            sd = load_file(str(f))
            if first is None:
                first = sd
            r["keys"] = len(sd)
            r["max_diff"] = max(float((sd[k].float() - first[k].float()).abs().max()) for k in first)
            r["max_up"] = max(float(v.abs().max()) for k, v in sd.items() if "lora_up" in k)
        res[name] = r
    res["stop"] = stop_runs(ckpt, short, work)
    res["op_gradients"] = op_gradients()
    print("RESULT " + json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
