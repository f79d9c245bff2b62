"""Fake trainer: prints a few lines, then raises after SECONDS (default 2) → exit code 1 with a traceback."""
import sys
import time

delay = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
print("prepare optimizer, data loader etc.", flush=True)
print("epoch 1/3", flush=True)
time.sleep(delay)
raise ValueError("fake failure: train_data_dir has no images")
