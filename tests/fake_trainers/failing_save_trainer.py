"""Fake trainer like ours whose save hits a real write error: on SIGINT (a Stop) it prints `saving checkpoint: P`
(as ours and sd-scripts do before the write), then writes P under RLIMIT_FSIZE = 1 KiB with SIGXFSZ ignored, so
the kernel refuses the write (EFBIG, as a full disk refuses with ENOSPC): a traceback, exit 1, no LORA_TUI_SAVED.

usage: failing_save_trainer.py OUT_DIR"""
import json
import resource
import signal
import sys
import time
from pathlib import Path

out = Path(sys.argv[1])
step = 0
try:
    while True:
        step += 1
        print("LORA_TUI_PROGRESS " + json.dumps({"step": step, "total": 100000}), flush=True)
        time.sleep(0.02)
except KeyboardInterrupt:
    path = out / "broken.safetensors"
    print(f"\nsaving checkpoint: {path}", flush=True)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
    with open(path, "wb") as fh:
        fh.write(b"\0" * 65536)  # raises OSError: [Errno 27] File too large
    print("LORA_TUI_SAVED " + json.dumps({"path": str(path), "step": step}), flush=True)
    sys.exit(130)
