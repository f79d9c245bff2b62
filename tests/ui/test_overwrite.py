"""Start never overwrites a LoRA without asking (issue 4 §3): an existing `<output_dir>/<output_name>.safetensors`
(or epoch file) opens a dialog: Overwrite launches as is, "Use a new name" sets the first free `<output_name>_N`
and launches under it, Cancel and Escape launch nothing and write nothing."""
from __future__ import annotations

import tomllib
from pathlib import Path

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, stand_ins, valid_sdxl_setup, wait_for


def _app(settings, tmp_path, existing: tuple[str, ...]) -> tuple[LoraApp, Path, dict]:
    stand_ins(tmp_path, settings)
    fields = valid_sdxl_setup(tmp_path)
    out = Path(fields["output_dir"])
    for name in existing:
        (out / name).write_bytes(b"a finished LoRA")
    fields["output_name"] = "face"
    return LoraApp(load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config, settings=settings), out, fields


async def _fill_and_start(pilot, app, fields: dict) -> None:
    """Enter `fields` the way the form does (`apply_edit`), then F5 up to the overwrite dialog."""
    for name, value in fields.items():
        assert app.apply_edit(name, value)
    await _press_start(pilot, app)


async def _press_start(pilot, app) -> None:
    await pilot.press("f5")
    # The dialog's buttons mounted and one focused, not only its screen pushed: a key pressed before that is lost.
    await wait_for(pilot, lambda: app.screen.id == "overwrite-dialog" and app.screen.is_mounted
                   and app.screen.query_one_optional("#choice-cancel") is not None
                   and app.screen.focused is not None, timeout=20)


def _toml_output_name(out: Path) -> str:
    tomls = list(out.glob("config_lora-*.toml"))
    assert len(tomls) == 1
    return tomllib.loads(tomls[0].read_text(encoding="utf-8"))["output_name"]


async def test_overwrite_launches_under_the_same_name(settings, tmp_path):
    app, out, fields = _app(settings, tmp_path, ("face.safetensors",))
    async with app.run_test(size=SIZE) as pilot:
        await _fill_and_start(pilot, app, fields)
        assert "face.safetensors" in str(app.screen.question)
        await pilot.click("#choice-overwrite")
        await wait_for(pilot, lambda: app.job is not None, timeout=20)
        assert app.config.output_name == "face"
        await wait_for(pilot, lambda: not app.job_running, timeout=30)
    assert _toml_output_name(out) == "face"


async def test_new_name_is_the_first_free_one_and_is_set_in_the_field(settings, tmp_path):
    # face_2 is taken by an epoch file, so the proposal is face_3.
    app, out, fields = _app(settings, tmp_path, ("face.safetensors", "face_2-000001.safetensors"))
    async with app.run_test(size=SIZE) as pilot:
        await _fill_and_start(pilot, app, fields)
        await pilot.press("enter")  # the default button: the new name (a stray Enter must not overwrite)
        await wait_for(pilot, lambda: app.job is not None, timeout=20)
        assert app.config.output_name == "face_3"
        await wait_for(pilot, lambda: not app.job_running, timeout=30)
        await pilot.press("f2")
        await wait_for(pilot, lambda: app.query_one_optional("#f-output_name") is not None)
        assert app.query_one("#f-output_name").value == "face_3"
    assert _toml_output_name(out) == "face_3"


async def test_cancel_and_escape_launch_nothing(settings, tmp_path):
    app, out, fields = _app(settings, tmp_path, ("face-000001.safetensors",))
    async with app.run_test(size=SIZE) as pilot:
        await _fill_and_start(pilot, app, fields)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id != "overwrite-dialog")
        await _press_start(pilot, app)
        await pilot.click("#choice-cancel")
        await wait_for(pilot, lambda: app.screen.id != "overwrite-dialog")
        await wait_for(pilot, lambda: not app.starting)
        assert app.job is None and app.config.output_name == "face"
    assert sorted(p.name for p in out.iterdir()) == ["face-000001.safetensors"]


def test_headless_train_refuses_an_existing_output_unless_overwrite(tmp_path):
    import os
    import subprocess
    import sys

    import tomli_w

    from lora_tui.config.app_settings import AppSettings
    from lora_tui.config.kohya_json import config_to_json

    settings = AppSettings()
    stand_ins(tmp_path, settings)
    fields = valid_sdxl_setup(tmp_path)
    out = Path(fields["output_dir"])
    (out / "face.safetensors").write_bytes(b"a finished LoRA")
    cfg = load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config
    data = {**cfg.model_dump(), **fields, "output_name": "face"}
    cfg_file = tmp_path / "face.json"
    cfg_file.write_text(config_to_json(type(cfg).model_validate(data)), encoding="utf-8")
    (tmp_path / "xconfig" / "lora-tui").mkdir(parents=True)
    (tmp_path / "xconfig" / "lora-tui" / "settings.toml").write_text(tomli_w.dumps(
        {"python": settings.python, "sd_scripts_dir": str(settings.sd_scripts_dir)}), encoding="utf-8")
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xstate"), XDG_CONFIG_HOME=str(tmp_path / "xconfig"),
               XDG_CACHE_HOME=str(tmp_path / "xcache"))

    def train(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lora_tui", "train", str(cfg_file), *extra],
                              capture_output=True, text=True, env=env, timeout=120)

    refused = train()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "face.safetensors already exists" in refused.stdout and "--overwrite" in refused.stdout
    assert sorted(p.name for p in out.iterdir()) == ["face.safetensors"]
    assert not (tmp_path / "xstate" / "lora-tui" / "jobs").exists()
    done = train("--overwrite")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "config: network_dim=" in done.stdout and "output_name=face" in done.stdout
    assert len(list(out.glob("config_lora-*.toml"))) == 1
