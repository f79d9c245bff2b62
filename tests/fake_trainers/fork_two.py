"""Fake trainer: starts two children (like data-loader workers) and sleeps; default SIGINT handling."""
import subprocess
import sys
import time

kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(2)]
print("children:", " ".join(str(k.pid) for k in kids), flush=True)
time.sleep(600)
