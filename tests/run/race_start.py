"""Runs ``lora-tui ARGS...`` (``lora_tui.cli.main``) at the wall-clock time T: ``race_start.py T ARGS...``.

Two of these started with one T race as two users pressing Start at the same moment do: the interpreter start-up,
which differs by tenths of a second between two processes, is over before T, so their checks meet."""
import sys
import time

import lora_tui.cli  # noqa: F401 - imported before T, as a running app would have it
import lora_tui.plan  # noqa: F401
import lora_tui.cli_jobs  # noqa: F401 - the train and queue commands, with the launch they share

start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))
sys.exit(lora_tui.cli.main(sys.argv[2:]))
