"""Fake trainer: starts a grandchild `sleep 600` that inherits stdout (holds the log open), then exits 1."""
import subprocess
import sys

p = subprocess.Popen(["sleep", "600"])
print("grandchild:", p.pid, flush=True)
sys.exit(1)
