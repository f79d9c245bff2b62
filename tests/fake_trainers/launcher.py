"""Launcher-like fake, as `accelerate launch` runs one process (`simple_launcher`): Popen the real child and
wait, forwarding no signal. On SIGINT, Popen.wait gives the child 0.25 s and then re-raises KeyboardInterrupt,
so the launcher dies first and the real trainer is left running, as with accelerate.

usage: launcher.py CHILD_SCRIPT ARGS...  (the child's exit code is passed on)."""
import subprocess
import sys

proc = subprocess.Popen([sys.executable, *sys.argv[1:]])
rc = proc.wait()
sys.exit(rc if rc >= 0 else 128 - rc)
