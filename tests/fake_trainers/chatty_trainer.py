"""Fake trainer for the run view: a burst of start-up lines, then either steps (with LORA_TUI_PROGRESS and one log
line each) or a wait before training; on SIGINT it says what it saved, like ours, after the KeyboardInterrupt
traceback that `accelerate launch` prints, and exits 130.

usage: chatty_trainer.py OUT_DIR MODE [STEPS] [STEP_S]   (MODE: steps | wait)"""
import json
import sys
import time
import traceback
from pathlib import Path

out, mode = Path(sys.argv[1]), sys.argv[2]
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
step_s = float(sys.argv[4]) if len(sys.argv) > 4 else 0.03
step = 0
try:
    for i in range(80):
        print(f"loading part {i}", flush=True)
    print("epoch 1/1", flush=True)
    if mode == "wait":
        while True:
            print("caching latents", flush=True)
            time.sleep(0.2)
    for step in range(1, steps + 1):
        time.sleep(step_s)
        print(f"step line {step}", flush=True)
        print("LORA_TUI_PROGRESS " + json.dumps({"step": step, "total": steps, "epoch": 1, "epochs": 1,
                                                 "loss": 1.0 / step, "avr_loss": 1.0 / step}), flush=True)
except KeyboardInterrupt:
    traceback.print_exc()
    if step:
        path = out / "chatty-interrupted.safetensors"
        path.write_bytes(b"fake lora")
        print("LORA_TUI_SAVED " + json.dumps({"path": str(path), "step": step}), flush=True)
        print(f"interrupted: saved {path}", file=sys.stderr, flush=True)
    else:
        print("interrupted: nothing saved (training had not started)", file=sys.stderr, flush=True)
    sys.exit(130)
