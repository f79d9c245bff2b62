"""Helper process for test_speed.py: runs the trainer's `main` several times in ONE process (one torch import)
on a tiny SDXL checkpoint and prints `RESULT {json}` with each run's exit code, per-step losses, fast-path log
lines and LoRA tensors' largest difference from the first run.

Usage: speed_check.py CKPT DATA_DIR WORK_DIR
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sd-scripts"))


def _compiled_graphs() -> int:
    """Graphs dynamo has compiled in this process so far (each recompile of a block counts)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def main() -> int:
    ckpt, data, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    import torch
    from safetensors.torch import load_file

    from lora_trainer import train

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
                                    "aot_eager"])}
    res = {}
    first = None
    for name, (env, extra) in runs.items():
        for k in ("LORA_TUI_FAST_PATH", "LORA_TUI_CPU_BF16"):
            os.environ.pop(k, None)
        os.environ.update(env)
        graphs0 = _compiled_graphs()
        # accelerate keeps one process-wide state; these runs differ in mixed_precision
        from accelerate.state import AcceleratorState
        AcceleratorState._reset_state(reset_partial_state=True)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = train.main("sdxl_train_network", base + ["--output_dir", str(work / name)] + extra)
        losses = [json.loads(ln.split(" ", 1)[1])["loss"] for ln in out.getvalue().splitlines()
                  if ln.startswith("LORA_TUI_PROGRESS ")]
        r = {"rc": rc, "losses": losses,
             "fast_lines": [ln for ln in err.getvalue().splitlines() if "fast path" in ln],
             "err_tail": err.getvalue()[-1500:], "compiled_graphs": _compiled_graphs() - graphs0}
        f = work / name / "l.safetensors"
        if rc == 0 and f.is_file():
            sd = load_file(str(f))
            if first is None:
                first = sd
            r["keys"] = len(sd)
            r["max_diff"] = max(float((sd[k].float() - first[k].float()).abs().max()) for k in first)
            r["max_up"] = max(float(v.abs().max()) for k, v in sd.items() if "lora_up" in k)
        res[name] = r
    print("RESULT " + json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
