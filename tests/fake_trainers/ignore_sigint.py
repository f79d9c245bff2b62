"""Fake trainer: ignores SIGINT (and, with --ignore-term, SIGTERM) while 'caching latents'; a stuck trainer."""
import signal
import sys
import time

signal.signal(signal.SIGINT, signal.SIG_IGN)
if "--ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    print("caching latents", flush=True)
    time.sleep(0.1)
