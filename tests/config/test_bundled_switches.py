"""The bundled trainer's speed switches (docs/performance.md): fields of the model, written to the TOML for our
scripts, and flagged as having no effect when the app points at an upstream sd-scripts checkout."""
from __future__ import annotations

import tomllib

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.model import TrainingConfig, all_field_meta, field_meta
from lora_tui.config.sd_scripts import BUNDLED_ONLY_OPTIONS, BUNDLED_ONLY_SCRIPTS, script_options
from lora_tui.plan.launch import toml_text
from lora_tui.plan.rules import validate
from lora_tui.plan.dataset import scan_dataset

SWITCHES = BUNDLED_ONLY_OPTIONS


def test_the_switches_are_the_fields_marked_bundled_only():
    # one source of truth: the field's bundled_only flag; its help says the same in words
    assert {"no_cuda_graphs", "unet_autocast", "torch_compile_resnets"} <= set(SWITCHES)
    said = {m.name for m in all_field_meta() if "lora-tui trainer only" in m.help}
    assert said == set(SWITCHES)
    for name in SWITCHES:
        meta = field_meta(name)
        assert meta.kind == "bool" and meta.toml_key == name
        for script in BUNDLED_ONLY_SCRIPTS:
            assert script_options(script)[name].type == "flag"
        assert name not in script_options("flux_train_network.py")


def test_switches_are_advanced_fields_written_only_when_on():
    cfg = TrainingConfig(sdxl=True)
    assert not set(SWITCHES) & set(tomllib.loads(toml_text(cfg)))
    for name in SWITCHES:
        assert field_meta(name).section == "Advanced"
        on = TrainingConfig.model_validate({**cfg.model_dump(), name: True})
        assert tomllib.loads(toml_text(on))[name] is True


def test_switch_with_an_upstream_checkout_is_a_warning(tmp_path):
    upstream = tmp_path / "sd-scripts"
    upstream.mkdir()
    for script in ("train_network.py", "sdxl_train_network.py"):
        (upstream / script).write_text("# upstream stand-in: no lora_trainer/ beside it\n")
    cfg = TrainingConfig(sdxl=True, no_cuda_graphs=True)
    problems = validate(cfg, scan_dataset(cfg), AppSettings(sd_scripts_dir=upstream))
    mine = [p for p in problems if p.field == "no_cuda_graphs"]
    assert len(mine) == 1 and mine[0].severity == "warning" and "ignores it" in mine[0].message
    bundled = validate(cfg, scan_dataset(cfg), AppSettings())
    assert not [p for p in bundled if p.field == "no_cuda_graphs"]


def test_the_bundled_scripts_accept_the_switches():
    import subprocess
    import sys
    from pathlib import Path

    sd = Path(__file__).resolve().parents[2] / "sd-scripts"
    for script in BUNDLED_ONLY_SCRIPTS:
        out = subprocess.run([sys.executable, str(sd / script), "--help"], capture_output=True, text=True,
                             check=True).stdout
        for name in BUNDLED_ONLY_OPTIONS:
            assert f"--{name}" in out, (script, name)
