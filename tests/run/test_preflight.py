"""The app side of the trainer's preflight (issue 13 §3): `run.preflight` runs `<script> --config_file ...
--preflight` with the trainer's Python, maps its findings to our fields, caches the answer by config, and Start,
`validate`, `train` and `queue add` refuse on its errors. Here the trainer is a stand-in with the bundled trainer's
layout (tests/fake_trainers/preflight_trainer.py, a real process); the real trainer's preflight is tested in
test_preflight_real.py."""
from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
import tomli_w

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.model import TrainingConfig
from lora_tui import cli_jobs
from lora_tui.run.preflight import field_for, forget_preflights, preflight
from lora_tui.run.queue import Queue
from run_helpers import FAKE, cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
from ui_helpers import valid_sdxl_setup  # noqa: E402


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """Settings whose sd_scripts_dir has the bundled trainer's layout, its entry point the preflight stand-in;
    returns (settings, the stand-in's run log)."""
    sd = tmp_path / "sd-scripts"
    (sd / "lora_trainer").mkdir(parents=True)
    (sd / "lora_trainer" / "train.py").write_text("# the bundled trainer's package (layout only)\n")
    shutil.copy(FAKE / "preflight_trainer.py", sd / "sdxl_train_network.py")
    log = tmp_path / "preflight.log"
    log.touch()
    monkeypatch.setenv("PREFLIGHT_LOG", str(log))
    forget_preflights()
    yield AppSettings(sd_scripts_dir=sd, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache"), log
    forget_preflights()


def runs(log: Path) -> int:
    return len(log.read_text().splitlines())


def test_findings_land_on_our_fields_and_the_answer_is_cached_by_config(bundled):
    settings, log = bundled
    cfg = TrainingConfig(sdxl=True, optimizer="AdamW", optimizer_args="foo=1 weight_decay=0.1",
                         sample_prompts="a cat --w 64 --h 64")
    res = preflight(cfg, settings)
    assert res.ran and runs(log) == 1
    got = {(p.field, p.severity): p.message for p in res.problems}
    assert "unexpected keyword argument 'foo'" in got[("optimizer_args", "error")]
    assert got[("sample_prompts", "warning")] == "first prompt: a cat --w 64 --h 64"  # the text, via a file
    assert got[("optimizer", "warning")] == "checked optimizer AdamW"  # optimizer_type → optimizer
    assert [p.field for p in res.errors] == ["optimizer_args"]
    # the same config again: the cached answer, no process
    assert preflight(cfg, settings).problems == res.problems and runs(log) == 1
    # a changed value, or an answer older than max_age_s, runs it again
    fixed = cfg.model_copy(update={"optimizer_args": "weight_decay=0.1"})
    assert preflight(fixed, settings).errors == [] and runs(log) == 2
    preflight(fixed, settings, max_age_s=0)
    assert runs(log) == 3


def test_an_option_given_in_additional_parameters_is_reported_there(bundled):
    settings, _ = bundled
    res = preflight(TrainingConfig(sdxl=True, additional_parameters="--max_grad_norm 0.5"), settings)
    assert ("additional_parameters", "warning") in {(p.field, p.severity) for p in res.problems}
    assert field_for("max_grad_norm") == "max_grad_norm" and field_for("resolution") == "max_resolution"
    assert field_for("network_train_unet_only") == "text_encoder_lr" and field_for("no_such_option") == ""


def test_a_crash_or_an_error_line_without_a_finding_is_an_error_naming_it(bundled):
    settings, _ = bundled
    crash = preflight(TrainingConfig(sdxl=True, network_dim=13, network_alpha=1), settings)
    assert [(p.field, p.severity) for p in crash.problems if p.severity == "error"] == [("", "error")]
    assert "TypeError: Object of type Tensor is not JSON serializable" in crash.errors[0].message
    refused = preflight(TrainingConfig(sdxl=True, network_dim=14, network_alpha=1), settings)
    assert [(p.field, p.severity) for p in refused.errors] == [("network_alpha", "error")]


def test_an_upstream_trainer_has_no_preflight_and_a_note_says_so(tmp_path):
    up = tmp_path / "upstream"
    up.mkdir()
    (up / "sdxl_train_network.py").write_text("raise SystemExit(9)\n")
    res = preflight(TrainingConfig(sdxl=True), AppSettings(sd_scripts_dir=up))
    assert not res.ran and res.problems == [] and "has no --preflight" in res.notes[0]


def _valid(tmp_path: Path, **kw) -> TrainingConfig:
    root = tmp_path / "data"
    if not root.is_dir():
        root.mkdir()
        valid_sdxl_setup(root)
    fields = {"pretrained_model_name_or_path": str(root / "sdxl.safetensors"), "train_data_dir": str(root / "img"),
              "output_dir": str(root / "out"), "max_resolution": "64,64"}
    return TrainingConfig(**{**fields, "sdxl": True, "output_name": "x", **kw})


def test_queue_add_and_train_refuse_a_config_the_trainer_refuses(bundled, tmp_path):
    settings, log = bundled
    bad = _valid(tmp_path, optimizer="AdamW", optimizer_args="foo=1")
    out = io.StringIO()
    assert cli_jobs.queue_add("bad.json", settings=settings, cfg=bad, out=out) == 1
    assert "nothing was queued" in out.getvalue() and "unexpected keyword argument 'foo'" in out.getvalue()
    assert Queue(settings).items() == []
    out = io.StringIO()
    assert cli_jobs.train("bad.json", settings=settings, cfg=bad, out=out) == 1
    assert "nothing was started" in out.getvalue() and "optimizer_args" in out.getvalue()
    assert runs(log) == 1  # train took queue add's fresh answer
    assert not list(Path(bad.output_dir).glob("config_lora-*.toml"))  # nothing written
    # a config our own rules refuse is not queued either (before: queued, and failed at its turn)
    out = io.StringIO()
    missing = _valid(tmp_path, train_data_dir=str(tmp_path / "no-such-folder"))
    assert cli_jobs.queue_add("missing.json", settings=settings, cfg=missing, out=out) == 1
    assert "train_data_dir" in out.getvalue() and Queue(settings).items() == []
    # a good config is queued
    out = io.StringIO()
    assert cli_jobs.queue_add("good.json", settings=settings, cfg=_valid(tmp_path), out=out) == 0, out.getvalue()
    assert len(Queue(settings).items()) == 1


def test_validate_reports_the_trainers_findings_and_exits_1(bundled, tmp_path):
    settings, log = bundled
    (tmp_path / "xconfig" / "lora-tui").mkdir(parents=True)
    (tmp_path / "xconfig" / "lora-tui" / "settings.toml").write_text(tomli_w.dumps(
        {"sd_scripts_dir": str(settings.sd_scripts_dir)}), encoding="utf-8")
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({**valid_sdxl_setup(tmp_path), "sdxl": True, "optimizer": "AdamW",
                               "optimizer_args": "foo=1"}))
    done = cli(["validate", str(cfg)], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: optimizer_args: AdamW.__init__() got an unexpected keyword argument 'foo'" in done.stdout
    assert runs(log) == 1
    queued = cli(["queue", "add", str(cfg)], tmp_path)  # as the app's "Queue this config": refused, nothing queued
    assert queued.returncode == 1 and "nothing was queued" in queued.stdout, queued.stdout + queued.stderr
    assert "unexpected keyword argument 'foo'" in queued.stdout and cli(["queue"], tmp_path).stdout == "queue is empty\n"
    done = cli(["--set", "optimizer_args=weight_decay=0.1", "validate", str(cfg)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning: optimizer: checked optimizer AdamW" in done.stdout
