"""Fake multi-process launcher: runs saving_trainer.py as its worker and, like torchrun under
`accelerate launch --multi_gpu`, turns the worker's clean exit after SIGINT into its own exit status 1.

usage: torchrun_like.py OUT_DIR"""
import signal
import subprocess
import sys
from pathlib import Path

signal.signal(signal.SIGINT, lambda *_: None)  # the worker gets the group's SIGINT itself and saves
worker = subprocess.Popen([sys.executable, str(Path(__file__).with_name("saving_trainer.py")), sys.argv[1]])
code = worker.wait()
sys.exit(0 if code == 0 else 1)
