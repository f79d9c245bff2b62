"""One table (sd-scripts/lora_trainer/unsupported_options.json) drives the trainer's refusals and the app's
validation: for every refusal the trainer can raise from it, a config that triggers it is reported by
`lora-tui validate` before launch, and the trainer, given that config's launch, refuses the same options.
Cheap: one config sets every refused option at once; no torch is imported.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lora_tui import cli
from lora_tui.config.app_settings import AppSettings
from lora_tui.config.kohya_json import load_config_file, save_config_file
from lora_tui.config.model import TrainingConfig, all_field_meta, applies
from lora_tui.plan.launch import build_launch

REPO = Path(__file__).resolve().parents[2]
SD = REPO / "sd-scripts"
TABLE = json.loads((SD / "lora_trainer" / "unsupported_options.json").read_text())
CATALOGUES = json.loads((SD / "lora_trainer" / "args_catalogue.json").read_text())
CATALOGUE = {**CATALOGUES["train_network"], **CATALOGUES["sdxl_train_network"]}


def _argv_value(opt: str) -> list[str]:
    """A non-default command-line value for option `opt` of sd-scripts' train_network.py."""
    spec = CATALOGUE[opt]
    if spec["action"] == "_StoreTrueAction":
        return [f"--{opt}"]
    if spec["choices"]:
        return [f"--{opt}", str(spec["choices"][-1])]
    return [f"--{opt}", {"int": "3", "float": "0.5", "int_or_float": "3"}.get(spec["type"], "x")]


def _refusing_config(tmp_path: Path, sdxl: bool) -> tuple[TrainingConfig, dict[str, str]]:
    """A config that sets every option of the table (a form field where one holds it, else an additional
    parameter) and a refused value for every value rule. Returns it and {option: how it was set}."""
    cfg = TrainingConfig()
    cfg.sdxl = sdxl
    data = tmp_path / "img" / "1_x"
    data.mkdir(parents=True)
    cfg.pretrained_model_name_or_path = str(tmp_path / "model.safetensors")
    cfg.train_data_dir, cfg.output_dir, cfg.output_name = str(tmp_path / "img"), str(tmp_path / "out"), "t"
    by_key = {m.toml_key or m.name: m for m in all_field_meta()}
    how, extra = {}, []
    script = "sdxl_train_network" if sdxl else "train_network"
    per_script = [o for o, r in TABLE.get("script_options", {}).items()
                  if not o.startswith("_") and script not in r["scripts"]]
    for opt in [*TABLE["options"], *per_script]:
        meta = by_key.get(opt)
        if meta is not None and meta.kind in ("bool", "int", "float", "str") and not meta.choices \
                and applies(meta, cfg):
            setattr(cfg, meta.name, {"bool": True, "int": 3, "float": 0.5, "str": "x"}[meta.kind])
            how[opt] = f"field {meta.name}"
        elif opt in CATALOGUE:
            extra += _argv_value(opt)
            how[opt] = "additional_parameters"
    for opt, rule in TABLE["values"].items():
        if opt not in CATALOGUE:
            continue  # an option of another family's script (Flux.1's model_type)
        # a refused value: one of sd-scripts' choices for it, else a module name no table allows
        choices = CATALOGUE[opt]["choices"] or ["networks.oft"]
        bad = next((c for c in choices if c not in rule["allowed"]), None)
        if bad is None:
            continue  # every value sd-scripts accepts is allowed: nothing to refuse
        meta = by_key.get(opt)
        try:
            setattr(cfg, meta.name, bad)
            how[opt] = f"field {meta.name}"
        except (AttributeError, ValueError):  # no field, or the form itself refuses the value
            extra += [f"--{opt}", bad]
            how[opt] = "additional_parameters"
    cfg.additional_parameters = " ".join(extra)
    return cfg, how


@pytest.fixture
def private_xdg(tmp_path, monkeypatch):
    for v in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(v, str(tmp_path / v.lower()))


@pytest.mark.parametrize("script", ["train_network", "sdxl_train_network"])
def test_every_refusal_of_the_table_is_reported_by_validate_and_raised_by_the_trainer(script, tmp_path, private_xdg,
                                                                                     capsys):
    cfg, how = _refusing_config(tmp_path, script.startswith("sdxl"))
    assert set(how) >= set(TABLE["options"]) - {o for o in TABLE["options"] if o not in CATALOGUE}
    path = tmp_path / "cfg.json"
    save_config_file(cfg, path)
    rc = cli.main(["validate", str(path)])
    shown = capsys.readouterr().out
    assert rc == 1

    # the trainer, given the launch the app builds for the same config, refuses ...
    sys.path.insert(0, str(SD))
    try:
        from lora_trainer.args import check_unsupported, parse_args
    finally:
        sys.path.remove(str(SD))
    loaded = load_config_file(path).config  # what validate read and `lora-tui train` would launch
    launch = build_launch(loaded, AppSettings(sd_scripts_dir=SD), cwd=tmp_path)
    toml = tmp_path / "c.toml"
    toml.write_text(launch.toml_text)
    at = next(i for i, a in enumerate(launch.argv) if a.endswith(f"/{script}.py"))
    argv = ["--config_file", str(toml)] + launch.argv[at + 3:]
    refused = check_unsupported(parse_args(script, argv), script)
    named = {m.split(" ", 1)[0] for m in refused}
    # ... and validate reported each of those refusals before launch
    missed = [f"{opt} ({how.get(opt)})" for opt in named if f"{opt} = " not in shown and f"--{opt} " not in shown]
    assert not missed, f"validate does not report: {missed}\n{shown}"
    if script == "sdxl_train_network":
        # every row of the table was triggered (for SD1.x, a field of SDXL-only options is dropped from the launch
        # with a load note, so the trainer never sees it there)
        by_key = {m.toml_key or m.name: m for m in all_field_meta()}
        dropped = {o for o in how if o in by_key and not applies(by_key[o], loaded)}  # Flux.1-only fields
        expected = {o for o in how if o in CATALOGUES[script]}
        assert named <= expected and expected - named <= dropped, (sorted(expected - named), sorted(dropped))
        assert len(expected) >= len(TABLE["options"]) - 5
