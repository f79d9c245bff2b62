"""A queued run that fails keeps its error on screen: the next queue item starts at once, yet the Run view still
shows the failed run's error and last lines (as the earlier run's), and Enter on the failed item in the queue list
shows them again after that."""
from __future__ import annotations

import pytest

from lora_tui.config.kohya_json import config_to_dict, load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.run.jobs import start_job
from lora_tui.run.queue import Queue
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, fake, static_text, wait_for


def failure_lines(app) -> list[str]:
    return list(app.query_one("#failure-tail").lines)


@pytest.mark.parametrize("size", [SIZE, (80, 24)])
async def test_a_failed_queue_items_error_stays_on_the_run_view_and_in_the_queue_list(settings, tmp_path, size):
    cfg = load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config
    queue = Queue(settings=settings)
    for label in ("bad", "next"):
        queue.add(config=config_to_dict(cfg), label=label)
    launched: list[str] = []

    def launch(item):  # the first fails at once, the second runs on
        argv = fake("fail_after.py", 0.1) if not launched else fake("saving_trainer.py", tmp_path, 100000, 0.05)
        launched.append(item.label)
        return start_job(argv, settings=settings)

    app = LoraApp(cfg, settings=settings)
    app.queue_launch = launch
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: launched == ["bad", "next"] and app.job_running
                       and [i.status for i in app.queue_items] == ["failed", "running"], timeout=30)
        failed_job = next(i.job_id for i in app.queue_items if i.label == "bad")
        assert app.job.id != failed_job  # the app follows the next item
        # The failed run's error is still on the Run view, named as the earlier run's.
        assert app.query_one("#failure").display
        hint = static_text(app.query_one("#failure-hint"))
        assert hint.startswith("Earlier run: ") and f"Job {failed_job}" in hint and "exit code 1" in hint
        assert app.query_one("#failure-hint").display  # also at 80x24, where a failure's own hint is folded away
        assert any("fake failure: train_data_dir has no images" in line for line in failure_lines(app))
        # ... and from the queue list: Enter on the failed item shows the last lines of its log.
        app.query_one("#queue").focus()
        app.query_one("#queue").highlighted = 0
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id == "notes-dialog")
        notes = app.screen.notes
        assert any(n.startswith("last lines of its log") for n in notes), notes
        assert "ValueError: fake failure: train_data_dir has no images" in notes
        await pilot.press("escape")
        await pilot.press("f9", "f9")
        await wait_for(pilot, lambda: not app.job_running, timeout=20)
