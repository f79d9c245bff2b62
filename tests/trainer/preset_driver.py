"""Runs many trainer launches in ONE process (test_presets_train.py): imports the trainer once and calls the
entry function the scripts call (`lora_trainer.train.main(script, argv)`) for each launch in turn, first with
`--preflight`, then for real. Each launch's output goes to its own log file.
Usage: preset_driver.py SPEC.json, SPEC = [{"name", "script", "argv", "log", "preflight_only"?}]; prints
`RESULT <json list>` with rc, preflight rc/findings, seconds.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "sd-scripts"))

import torch  # noqa: E402

torch.set_num_threads(1)


def _reset_accelerate() -> None:
    """accelerate keeps its process state in singletons; each launch starts as a fresh process would."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def main() -> None:
    from lora_trainer.train import main as train_main

    spec = json.loads(Path(sys.argv[1]).read_text())
    results = []
    for item in spec:
        row = {"name": item["name"]}
        log = open(item["log"], "w", encoding="utf-8")
        t0 = time.time()
        pre = io.StringIO()
        with contextlib.redirect_stdout(pre), contextlib.redirect_stderr(log):
            row["preflight_rc"] = train_main(item["script"], item["argv"] + ["--preflight"])
        row["preflight"] = [json.loads(ln.split(" ", 1)[1]) for ln in pre.getvalue().splitlines()
                            if ln.startswith("LORA_TUI_PREFLIGHT ")]
        row["preflight_s"] = round(time.time() - t0, 2)
        row["preflight_done"] = [json.loads(ln.split(" ", 1)[1]) for ln in pre.getvalue().splitlines()
                                 if ln.startswith("LORA_TUI_PREFLIGHT_DONE ")]
        if item.get("preflight_only"):
            log.close()
            results.append(row)
            continue
        t0 = time.time()
        _reset_accelerate()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                row["rc"] = train_main(item["script"], item["argv"])
            except BaseException as e:  # noqa: BLE001 - a crash is a result to report, not the driver's end
                import traceback
                traceback.print_exc(file=log)
                row["rc"] = f"{type(e).__name__}: {e}"
        row["seconds"] = round(time.time() - t0, 2)
        log.close()
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"CPU {ru.ru_utime + ru.ru_stime:.1f}", flush=True)  # the process's own CPU seconds (load-independent)
    print("RESULT " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
