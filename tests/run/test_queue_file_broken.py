"""A torn queue.json (issue 19 item 5): every queue command names the file and the way out (exit 2, no traceback),
and `lora-tui queue clear` sets the broken file aside and starts an empty queue, so nothing is lost."""
from __future__ import annotations

import os
import subprocess
import sys


def _queue(tmp_path, *args):
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "lora_tui", "queue", *args], capture_output=True, text=True,
                          env=env, timeout=60, stdin=subprocess.DEVNULL)


def test_a_torn_queue_file_is_named_and_clear_sets_it_aside(tmp_path):
    state = tmp_path / "state" / "lora-tui"
    state.mkdir(parents=True)
    torn = '{"items": [{"id": 5, "garb'
    (state / "queue.json").write_text(torn)
    for action in ("list", "pause", "resume"):
        done = _queue(tmp_path, action)
        assert done.returncode == 2, (action, done.stderr)
        assert "Traceback" not in done.stderr
        assert "queue.json is unreadable" in done.stderr and "lora-tui queue clear" in done.stderr
    assert (state / "queue.json").read_text() == torn  # no edit replaced it
    cleared = _queue(tmp_path, "clear")
    assert cleared.returncode == 0, cleared.stderr
    assert (state / "queue.json.unreadable").read_text() == torn
    listed = _queue(tmp_path, "list")
    assert listed.returncode == 0 and "empty" in listed.stdout
