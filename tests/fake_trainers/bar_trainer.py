"""Fake trainer writing what ours writes to a job log for STEPS quick steps: per step a tqdm refresh with the old
postfix, one with the new, and the LORA_TUI_PROGRESS line glued to it (stdout and stderr share the log).

usage: bar_trainer.py STEPS"""
import json
import sys

steps = int(sys.argv[1])
w = sys.stdout.write
w(f"\rsteps:   0%|          | 0/{steps} [00:00<?, ?it/s]")
post = ""
for step in range(1, steps + 1):
    loss = 1.0 / step
    bar = f"steps: {100 * step // steps:3d}%|#         | {step}/{steps} [00:01<00:10,  2.00it/s"
    w(f"\r{bar}{post}]")
    post = f", avr_loss={loss:.3g}"
    w(f"\r{bar}{post}]")
    w("LORA_TUI_PROGRESS " + json.dumps({"step": step, "total": steps, "epoch": 1, "epochs": 1,
                                         "loss": round(loss, 6), "avr_loss": round(loss, 6)}) + "\n")
w("\nmodel saved.\n")
sys.stdout.flush()
