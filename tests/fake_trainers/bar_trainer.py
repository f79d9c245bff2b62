"""Fake trainer writing what ours writes to a job log for STEPS quick steps: per step a tqdm refresh with the old
postfix, one with the new, and the LORA_TUI_PROGRESS line glued to it (stdout and stderr share the log).
EXTRA goes into the postfix before avr_loss (e.g. scale_weight_norms' "Average key norm=..., Keys Scaled=0");
with HOLD_S the last bar stays the live line that long before the end.

usage: bar_trainer.py STEPS [EXTRA [HOLD_S]]"""
import json
import sys
import time

steps = int(sys.argv[1])
extra = f", {sys.argv[2]}" if len(sys.argv) > 2 and sys.argv[2] else ""
hold_s = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
w = sys.stdout.write
w(f"\rsteps:   0%|          | 0/{steps} [00:00<?, ?it/s]")
post = ""
for step in range(1, steps + 1):
    loss = 1.0 / step
    bar = f"steps: {100 * step // steps:3d}%|#         | {step}/{steps} [00:01<00:10,  2.00it/s"
    w(f"\r{bar}{post}]")
    post = f"{extra}, avr_loss={loss:.3g}"
    w(f"\r{bar}{post}]")
    w("LORA_TUI_PROGRESS " + json.dumps({"step": step, "total": steps, "epoch": 1, "epochs": 1,
                                         "loss": round(loss, 6), "avr_loss": round(loss, 6)}) + "\n")
if hold_s:
    w(f"\r{bar}{post}]")
    sys.stdout.flush()
    time.sleep(hold_s)
w("\nmodel saved.\n")
sys.stdout.flush()
