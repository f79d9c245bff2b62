"""A runtime failure's headline names the file or option it failed on (issue 13 §3): the exception line with where
the trainer's own code failed, or our trainer's `ERROR: <option>: ...` refusal; the traceback stays in the tail.
Real processes: a script that fails inside a function, and the real bundled trainer refusing a missing model."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lora_tui.run.progress import ProgressState, exit_hint

SD_SCRIPTS = Path(__file__).resolve().parents[2] / "sd-scripts"


def feed(text: str) -> ProgressState:
    st = ProgressState()
    st.feed_lines(text.splitlines())
    return st


def test_a_traceback_headline_names_the_trainers_file_line_and_function(tmp_path):
    pkg = tmp_path / "lora_trainer"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "saving.py").write_text(
        "import json\n\n\ndef _metadata(meta):\n    return json.dumps(meta)\n", encoding="utf-8")
    script = tmp_path / "train_network.py"
    script.write_text("from lora_trainer.saving import _metadata\n_metadata({'ss_x': object()})\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    st = feed(done.stderr)
    # the innermost frame is the standard library's json encoder; the headline names the trainer's own frame
    assert st.exception == ("TypeError: Object of type object is not JSON serializable "
                            "(at lora_trainer/saving.py:5 in _metadata)"), st.exception
    assert exit_hint(1, st.exception).endswith("(at lora_trainer/saving.py:5 in _metadata)")
    assert any(line.startswith("Traceback") for line in st.tail)  # the traceback stays in view


def test_the_bundled_trainers_refusal_names_the_option(tmp_path):
    done = subprocess.run([sys.executable, str(SD_SCRIPTS / "sdxl_train_network.py"),
                           "--pretrained_model_name_or_path", str(tmp_path / "none.safetensors"),
                           "--train_data_dir", str(tmp_path), "--output_dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    st = feed(done.stdout + done.stderr)
    assert st.exception is not None and st.exception.startswith("pretrained_model_name_or_path: "), st.exception
    assert "none.safetensors" in exit_hint(1, st.exception)


def test_a_launcher_error_does_not_hide_the_trainers_and_chained_tracebacks_keep_the_last():
    text = """Traceback (most recent call last):
  File "/w/sd-scripts/lora_trainer/optim.py", line 40, in make_optimizer
    return cls(params, **kw)
  File "/v/lib/python3.11/site-packages/torch/optim/adamw.py", line 20, in __init__
    super().__init__(params, defaults)
TypeError: AdamW.__init__() got an unexpected keyword argument 'foo'
Traceback (most recent call last):
  File "/v/lib/python3.11/site-packages/accelerate/commands/launch.py", line 9, in simple_launcher
    raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)
subprocess.CalledProcessError: Command '[...]' returned non-zero exit status 1.
"""
    st = feed(text)
    assert st.exception == ("TypeError: AdamW.__init__() got an unexpected keyword argument 'foo' "
                            "(at lora_trainer/optim.py:40 in make_optimizer)")
