"""Fake trainer whose helper leaves the process group (its own session, like a daemonised worker), so only
descendant tracking finds it. usage: setsid_grandchild.py [exit|wait]"""
import subprocess
import sys
import time

helper = subprocess.Popen(["sleep", "600"], start_new_session=True)
print("helper:", helper.pid, flush=True)
if sys.argv[1:] == ["exit"]:
    sys.exit(0)
time.sleep(600)
