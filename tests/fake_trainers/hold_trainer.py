"""Fake trainer that runs until told to stop: prints a few lines, then waits until RELEASE_FILE exists and exits
with EXIT_CODE (default 0). For tests that need a job to still be running when they act, however loaded the machine
is (a trainer that sleeps a fixed time may have ended by then). SIGINT exits 130, as a stopped trainer does.

usage: hold_trainer.py RELEASE_FILE [EXIT_CODE]"""
import sys
import time
from pathlib import Path

release = Path(sys.argv[1])
code = int(sys.argv[2]) if len(sys.argv) > 2 else 0
print("prepare optimizer, data loader etc.", flush=True)
print("epoch 1/1", flush=True)
try:
    while not release.exists():
        time.sleep(0.05)
except KeyboardInterrupt:
    sys.exit(130)
if code:
    print(f"fake failure: released with exit code {code}", file=sys.stderr, flush=True)
sys.exit(code)
