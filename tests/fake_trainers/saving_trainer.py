"""Fake trainer that behaves like ours: tqdm-style progress + LORA_TUI lines; on SIGINT it 'saves' and exits 130.

usage: saving_trainer.py OUT_DIR [STEPS] [STEP_S] [SAVE_S] [STOP_NAME]
STOP_NAME: the stopped run's file (default fake-interrupted.safetensors; "{step}" becomes the step, 8 digits)."""
import json
import sys
import time
from pathlib import Path

out = Path(sys.argv[1])
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
step_s = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05


def save(name, step):
    path = out / name
    path.write_bytes(b"fake lora")
    print(f"saving checkpoint: {path}", flush=True)
    print("LORA_TUI_SAVED " + json.dumps({"path": str(path), "step": step}), flush=True)


step = 0
bar = ""
try:
    print("epoch 1/1", flush=True)
    for step in range(1, steps + 1):
        time.sleep(step_s)
        loss = 1.0 / step
        bar = (f"steps: {100 * step // steps:3d}%|#         | {step}/{steps} "
               f"[00:01<00:10, {1 / step_s:.2f}it/s, avr_loss={loss:.3g}]")
        sys.stderr.write("\r" + bar)
        sys.stderr.flush()
        print("LORA_TUI_PROGRESS " + json.dumps({"step": step, "total": steps, "epoch": 1, "epochs": 1,
                                                 "loss": loss, "avr_loss": loss}), flush=True)
    sys.stderr.write("\r" + bar + "\n")  # tqdm's close(): the final state, then a newline
    save("fake.safetensors", step)
    print("model saved.", flush=True)
except KeyboardInterrupt:
    sys.stderr.write("\r" + bar + "\n")  # tqdm's close(): the final state, then a newline
    time.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)  # a save takes a while
    name = (sys.argv[5] if len(sys.argv) > 5 else "fake-interrupted.safetensors").replace("{step}", f"{step:08d}")
    save(name, step)
    print(f"interrupted: saved {out / name}", flush=True)
    sys.exit(130)
