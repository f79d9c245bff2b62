"""Stand-in for the bundled trainer's `sdxl_train_network.py --preflight` (the app side's tests; the real
trainer's preflight is tested on the real trainer). Reads --config_file and the argv after it as sd-scripts does,
appends one line to $PREFLIGHT_LOG per run, its pid first (so a test can count the processes), sleeps $PREFLIGHT_SLEEP s the first time,
and prints findings in the
trainer's format, one `LORA_TUI_PREFLIGHT {json}` line each:
- optimizer_args holding `foo=...`: error on optimizer_args (an optimizer keyword AdamW does not take);
- sample_prompts: a warning quoting the file's first line (the app passes the prompt text in a file);
- `--max_grad_norm` on the command line: a warning on max_grad_norm;
- network_dim 13: a crash (traceback) without a finding; network_dim 14: `ERROR: network_alpha: ...` only.
Then the closing `LORA_TUI_PREFLIGHT_DONE {json}` line; exit 1 when an error was printed, else 0. Without --preflight it exits 3."""
import json
import os
import sys
import time
import tomllib

argv = sys.argv[1:]
if "--preflight" not in argv:
    sys.exit(3)
first = os.path.getsize(os.environ["PREFLIGHT_LOG"]) == 0
with open(os.environ["PREFLIGHT_LOG"], "a", encoding="utf-8") as fh:
    fh.write(f"{os.getpid()} " + " ".join(argv) + "\n")
if first:
    time.sleep(float(os.environ.get("PREFLIGHT_SLEEP", "0")))  # a slow check (torch import on a busy machine)
toml = tomllib.load(open(argv[argv.index("--config_file") + 1], "rb"))
found = []


def say(field, severity, message):
    found.append(severity)
    print("LORA_TUI_PREFLIGHT " + json.dumps({"field": field, "severity": severity, "message": message}), flush=True)


if toml.get("network_dim") == 13:
    raise TypeError("Object of type Tensor is not JSON serializable")
if toml.get("network_dim") == 14:
    print("ERROR: network_alpha: must be at most network_dim", file=sys.stderr)
    sys.exit(1)
for arg in toml.get("optimizer_args", []):
    if arg.startswith("foo="):
        say("optimizer_args", "error", f"AdamW.__init__() got an unexpected keyword argument 'foo' ({arg})")
if "sample_prompts" in toml:
    with open(toml["sample_prompts"], encoding="utf-8") as fh:
        say("sample_prompts", "warning", "first prompt: " + fh.readline().strip())
if "--max_grad_norm" in argv:
    say("max_grad_norm", "warning", "max_grad_norm given on the command line")
say("optimizer_type", "warning", "checked optimizer " + str(toml.get("optimizer_type")))
print("LORA_TUI_PREFLIGHT_DONE " + json.dumps({"ok": "error" not in found, "errors": found.count("error"),
                                               "warnings": found.count("warning"), "seconds": 0.0}), flush=True)
sys.exit(1 if "error" in found else 0)
