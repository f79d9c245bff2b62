"""Fake trainer that completes (final save, `model saved.`) and then takes a while to exit (teardown), so a Stop can
arrive after its final save; interrupted there it exits 1 with a traceback. usage: slow_exit_trainer.py OUT_DIR"""
import json
import sys
import time
from pathlib import Path

path = Path(sys.argv[1]) / "done.safetensors"
for step in range(1, 4):
    print("LORA_TUI_PROGRESS " + json.dumps({"step": step, "total": 3}), flush=True)
print(f"saving checkpoint: {path}", flush=True)
path.write_bytes(b"fake lora")
print("LORA_TUI_SAVED " + json.dumps({"path": str(path), "step": 3}), flush=True)
print("model saved.", flush=True)
time.sleep(60)  # teardown: a KeyboardInterrupt here is exit 1
