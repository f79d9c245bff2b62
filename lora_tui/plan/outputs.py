"""Where a run writes its LoRA, and what it would overwrite there: the one home of output-file naming.

sd-scripts names the final file ``<output_dir>/<output_name>.<save_model_as>`` (defaults ``last`` and
``safetensors``) and the epoch/step saves ``<output_name>-000001.<ext>`` / ``<output_name>-step00000010.<ext>``.
The output-exists warning of ``validate``, Start's overwrite question, ``lora-tui train`` and the queue all ask
here. Functions take a ``TrainingConfig``, any object with those attributes, or a kohya-key dict (a queue item's
snapshot). Stdlib and the config layer only; never raises unless it says so.
"""
from __future__ import annotations

import os
import re
import shlex
from typing import Any

from lora_tui.config.sd_scripts import all_script_options, last_uses, read_argv
from lora_tui.plan.dataset import resolve_path
from lora_tui.plan.wording import agree


def _field(cfg: Any, name: str) -> str:
    """A text field of ``cfg`` (object or dict) stripped; None or missing → ""."""
    v = cfg.get(name) if isinstance(cfg, dict) else getattr(cfg, name, "")
    return "" if v is None else str(v).strip()


def existing_outputs(cfg: Any) -> list[str]:
    """The LoRA files a run of ``cfg`` would overwrite: ``<output_dir>/<output_name>.<ext>`` and the epoch/step
    files ``<output_name>-000001.<ext>`` / ``<output_name>-step00000010.<ext>`` (sd-scripts' names), final file
    first, then the others sorted. ``ext`` is ``save_model_as`` (default safetensors), the name defaults to
    sd-scripts' ``last``; each as the trainer will take it (:func:`output_target`: additional_parameters can
    override them). An unset, missing or unreadable ``output_dir`` gives ``[]``; never raises."""
    od, name, ext = output_target(cfg)
    folder, names = _output_listing(od)
    return _outputs_named(folder, names, name, ext)


def output_target(cfg: Any) -> tuple[str, str, str]:
    """``(output_dir, output_name, save_model_as)`` the trainer will write to: the fields, unless
    ``additional_parameters`` gives the option (read as argparse reads it, the last one winning: it overrides the
    TOML). Validation refuses such an option; the overwrite check still looks where the trainer would write."""
    target = {"output_dir": _field(cfg, "output_dir"), "output_name": _field(cfg, "output_name") or "last",
              "save_model_as": _field(cfg, "save_model_as") or "safetensors"}
    text = _field(cfg, "additional_parameters")
    if "--" in text:
        try:
            given = last_uses(read_argv(shlex.split(text), all_script_options()))
        except ValueError:
            given = {}
        for key in target:
            values = given[key][-1].values if key in given else ()
            if len(values) == 1 and values[0]:
                target[key] = values[0]
    return target["output_dir"], target["output_name"], target["save_model_as"]


def existing_outputs_phrase(found: list[str]) -> str:
    """``found`` (as from :func:`existing_outputs`, non-empty) as the subject and verb of a sentence, the verb
    agreeing with the subject: ``"/o/face.safetensors already exists"``, ``"/o/face.safetensors and 1 more file
    of that name already exist"``, ``"... and 2 more files of that name already exist"``."""
    n = len(found) - 1
    more = f" and {n} more {agree(n, 'file', 'files')} of that name" if n else ""
    return f"{found[0]}{more} already {agree(len(found), 'exists', 'exist')}"


def free_output_name(cfg: Any, limit: int = 10000) -> str:
    """The first of ``<output_name>_2``, ``_3``, ... for which ``existing_outputs`` finds nothing (a name already
    ending in ``_N`` counts on from N+1). Raises ``ValueError`` after ``limit`` tries."""
    base = _field(cfg, "output_name") or "last"
    m = re.fullmatch(r"(.*\S)_(\d+)", base)
    stem, n = (m.group(1), int(m.group(2)) + 1) if m else (base, 2)
    folder, names = _output_listing(_field(cfg, "output_dir"))  # once: the candidates are checked against one listing
    ext = _field(cfg, "save_model_as") or "safetensors"
    for i in range(n, n + limit):
        candidate = f"{stem}_{i}"
        if not _outputs_named(folder, names, candidate, ext):
            return candidate
    raise ValueError(f"output_name: no free name from {stem}_{n} to {stem}_{n + limit - 1}")


def _output_listing(od: str) -> tuple[str, list[str]]:
    """``(output_dir resolved, its entries sorted)``; ``("", [])`` where it is unset, missing or unreadable."""
    if not od:
        return "", []
    try:
        folder = resolve_path(od)
        return folder, sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    except (OSError, ValueError):
        return "", []


def _outputs_named(folder: str, names: list[str], name: str, ext: str) -> list[str]:
    found = [os.path.join(folder, f"{name}.{ext}")] if f"{name}.{ext}" in names else []
    found += [os.path.join(folder, n) for n in names
              if n.startswith(f"{name}-") and n.endswith(f".{ext}")
              and n[len(name) + 1:-len(ext) - 1].replace("step", "").isdigit()]
    return [p for p in found if os.path.isfile(p)]


def output_key(cfg: Any) -> tuple[str, str, str] | None:
    """``(output_dir resolved, output_name, extension)`` of the fields alone, sd-scripts' defaults ``last`` and
    ``safetensors`` filled in; ``None`` when ``output_dir`` is unset. Two runs with one key write the same files
    (the queue compares items and jobs by it)."""
    folder = _field(cfg, "output_dir")
    if not folder:
        return None
    return resolve_path(folder), _field(cfg, "output_name") or "last", _field(cfg, "save_model_as") or "safetensors"
