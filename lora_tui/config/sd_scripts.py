"""The options each sd-scripts LoRA entry point accepts (sd-scripts v0.10.1 argparse tables, bundled as JSON).

Used to keep the TOML to keys the chosen script knows, with the type it expects (sd-scripts does not coerce TOML
values: a float option must be a TOML float, a flag a boolean, ``resolution`` a string).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lora_tui.config.model import all_field_meta


@dataclass(frozen=True)
class ScriptOption:
    """One argparse option: ``type`` is ``flag``, ``str``, ``int``, ``float``, ``int_or_float`` or ``Path``;
    ``list`` is true for ``nargs="*"`` options (a TOML array)."""

    name: str
    type: str
    list: bool


@lru_cache(maxsize=None)
def script_options(script: str) -> dict[str, ScriptOption]:
    """Options of ``script`` (``train_network.py``, ``sdxl_train_network.py``, ``flux_train_network.py``,
    ``sd3_train_network.py``). Raises KeyError for another script name."""
    data = json.loads((Path(__file__).with_name("sd_scripts_options.json")).read_text(encoding="utf-8"))
    opts = {k: ScriptOption(k, v["type"], v["list"]) for k, v in data["scripts"][script].items()}
    if script in BUNDLED_ONLY_SCRIPTS:
        opts.update({k: ScriptOption(k, "flag", False) for k in BUNDLED_ONLY_OPTIONS})
    return opts


#: Options only our bundled trainer knows (its speed switches): the ``TrainingConfig`` fields declared with
#: ``bundled_only=True``, each a flag under its field name. Upstream sd-scripts ignores unknown TOML keys, so
#: writing them is harmless there; validation warns that they have no effect with an upstream checkout.
BUNDLED_ONLY_OPTIONS: tuple[str, ...] = tuple(m.name for m in all_field_meta() if m.bundled_only)
BUNDLED_ONLY_SCRIPTS: tuple[str, ...] = ("train_network.py", "sdxl_train_network.py")
