"""The trainer's preflight in the app (issue 13 §3): once the config settles without an error, a worker runs it and
its findings join the problems panel on their fields; Start runs it always and refuses on its errors. The trainer
here is the preflight stand-in with the bundled trainer's layout (a real process, tests/fake_trainers)."""
from __future__ import annotations

import shutil

from lora_tui.config.model import TrainingConfig
from lora_tui.run.preflight import forget_preflights
from lora_tui.ui.app import LoraApp

from ui_helpers import FAKE, SIZE, type_into, valid_sdxl_setup, wait_for


def _bundled_stand_in(tmp_path, settings, monkeypatch):
    sd = tmp_path / "sd-scripts"
    (sd / "lora_trainer").mkdir(parents=True)
    (sd / "lora_trainer" / "train.py").write_text("# the bundled trainer's package (layout only)\n")
    shutil.copy(FAKE / "preflight_trainer.py", sd / "sdxl_train_network.py")
    settings.sd_scripts_dir = sd
    log = tmp_path / "preflight.log"
    log.touch()
    monkeypatch.setenv("PREFLIGHT_LOG", str(log))
    forget_preflights()
    return log


def _preflight_errors(app):
    return [p for p in app.all_problems() if p.field == "optimizer_args" and "unexpected keyword" in p.message]


async def test_settled_config_gets_the_trainers_findings_and_start_refuses_on_them(settings, tmp_path, monkeypatch):
    log = _bundled_stand_in(tmp_path, settings, monkeypatch)
    cfg = TrainingConfig(**valid_sdxl_setup(tmp_path), sdxl=True, output_name="x", optimizer="AdamW",
                         optimizer_args="foo=1")
    monkeypatch.setenv("PREFLIGHT_SLEEP", "4")
    app = LoraApp(cfg, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        # no F5: the check runs by itself once the config has settled, in a worker: the form takes keys meanwhile
        await wait_for(pilot, lambda: log.read_text() != "", timeout=30)
        await type_into(pilot, app, "output_name", "y")
        assert app.config.output_name == "y" and app.planner.preflight_running
        await type_into(pilot, app, "output_name", "x")  # back to the config being checked
        await wait_for(pilot, lambda: _preflight_errors(app), timeout=30)
        shown = [str(o.prompt) for o in app.query_one("#problems").options]
        assert any("unexpected keyword argument 'foo'" in s for s in shown), shown
        before = len(log.read_text().splitlines())
        await pilot.press("f5")
        await wait_for(pilot, lambda: any("Not started" in n.message for n in app._notifications), timeout=20)
        assert app.job is None and app.focused is app.query_one("#problems")
        assert len(log.read_text().splitlines()) == before  # Start took the fresh cached answer
        # fixing the value clears the finding after the next settled check
        assert app.apply_edit("optimizer_args", "weight_decay=0.1")
        await wait_for(pilot, lambda: not _preflight_errors(app) and any(
            p.field == "optimizer" and p.message == "checked optimizer AdamW" for p in app.all_problems()), timeout=30)
        assert len(log.read_text().splitlines()) > before


async def test_a_settle_check_still_running_ends_with_the_app(settings, tmp_path, monkeypatch):
    import psutil

    log = _bundled_stand_in(tmp_path, settings, monkeypatch)
    monkeypatch.setenv("PREFLIGHT_SLEEP", "60")
    cfg = TrainingConfig(**valid_sdxl_setup(tmp_path), sdxl=True, output_name="x")
    app = LoraApp(cfg, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: log.read_text() != "", timeout=30)
        pid = int(log.read_text().split()[0])
        assert psutil.pid_exists(pid)
    # the app closed while its check ran: the trainer process is gone, nothing left behind
    proc = psutil.Process(pid) if psutil.pid_exists(pid) else None
    if proc is not None:
        proc.wait(timeout=10)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
