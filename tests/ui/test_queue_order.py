"""Queue items are reordered on the Run view's queue list: shift+up / shift+down (or K / J) move the highlighted
item one place, the new order is written to the queue file (what the runner reads) and the cursor stays on it."""
from __future__ import annotations

import json

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.run.jobs import start_job
from lora_tui.run.queue import QUEUE_FILE, Queue
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, fake, record_launches, wait_for


def labels(settings) -> list[str]:
    return [i.label for i in Queue(settings=settings).items()]


def shown(app) -> list[str]:
    lst = app.query_one("#queue")
    return [str(lst.get_option_at_index(i).prompt).split(" ")[1] for i in range(lst.option_count)]


async def test_queue_items_move_with_shift_arrows_and_letters(settings, tmp_path):
    cfg = load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config
    app = LoraApp(cfg, settings=settings)
    launched = record_launches(app, settings, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        running = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), settings=settings)
        app.attach(running)  # a running job: the queue waits, so the items stay pending while they are moved
        queue = Queue(settings=settings)
        # first and third write the same LoRA (record_launches' <tmp_path>/fake.safetensors); third was not
        # queued with overwrite, so at its turn (after first wrote it) it is refused and launches nothing.
        target = {"output_dir": str(tmp_path), "output_name": "fake"}
        for label in ("first", "second", "third", "fourth"):
            queue.add(config={"output_name": label, **(target if label in ("first", "third") else {})}, label=label)
        await wait_for(pilot, lambda: shown(app) == ["first", "second", "third", "fourth"], timeout=10)
        lst = app.query_one("#queue")
        assert "Tab to the list for Del/x, K/J" in str(lst.border_title)  # the log pane has the focus
        lst.focus()
        lst.highlighted = 2  # third
        await pilot.pause()
        assert "K/J moves" in str(lst.border_title)

        await pilot.press("shift+up")
        await wait_for(pilot, lambda: labels(settings) == ["first", "third", "second", "fourth"])
        await wait_for(pilot, lambda: shown(app) == labels(settings))
        assert lst.highlighted == 1  # the cursor moved with the item

        await pilot.press("K")
        await wait_for(pilot, lambda: labels(settings) == ["third", "first", "second", "fourth"])
        await pilot.press("shift+up")  # already first: stays, nothing else changes
        await pilot.pause(0.3)
        assert labels(settings) == ["third", "first", "second", "fourth"]

        await pilot.press("shift+down", "J", "J")
        await wait_for(pilot, lambda: labels(settings) == ["first", "second", "fourth", "third"])
        await wait_for(pilot, lambda: shown(app) == labels(settings))
        assert lst.highlighted == 3
        await pilot.press("J")  # already last
        await pilot.pause(0.3)
        assert labels(settings) == ["first", "second", "fourth", "third"]

        # The file on disk holds the order (valid JSON, every item kept) and the runner follows it.
        data = json.loads((settings.state_dir / QUEUE_FILE).read_text())
        assert [d["label"] for d in data["items"]] == ["first", "second", "fourth", "third"]
        await pilot.press("f9")  # Stop pauses the queue (items wait); p on the list lets it go on
        await wait_for(pilot, lambda: not app.job_running, timeout=30)
        assert Queue(settings=settings).paused and launched == []
        lst.focus()
        await pilot.press("p")
        def settled() -> bool:
            return all(i.status not in ("pending", "running") for i in Queue(settings=settings).items())

        await wait_for(pilot, lambda: settled() and not app.job_running, timeout=60)
        assert launched == ["first", "second", "fourth"]
        third = next(i for i in Queue(settings=settings).items() if i.label == "third")
        assert third.status == "error" and third.job_id is None
        assert "fake.safetensors already exists (written by queue item “first”" in third.message, third.message
        await wait_for(pilot, lambda: "third (output_name fake) (error)" in " ".join(
            str(lst.get_option_at_index(i).prompt) for i in range(lst.option_count)), timeout=5)
        # Enter on the refused item shows why, after its toast is gone
        lst.focus()
        prompts = [str(lst.get_option_at_index(i).prompt) for i in range(lst.option_count)]
        lst.highlighted = next(i for i, prompt in enumerate(prompts) if "third" in prompt)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.query("#notes-list"), timeout=5)
        details = [str(o.prompt) for o in app.screen.query_one("#notes-list").options]
        assert details[:2] == ["status: error", "settings: output_name fake"], details
        assert any("(written by queue item “first”" in d for d in details), details
        assert any(d.startswith("writes: ") and d.endswith("/fake") for d in details), details
        await pilot.press("escape")


async def test_move_from_the_app_api_clamps_and_reports(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        queue = Queue(settings=settings)
        a = queue.add(config={"output_name": "a"}, label="a")
        queue.add(config={"output_name": "b"}, label="b")
        assert not await app.move_queued(a.id, -1)  # first already
        assert await app.move_queued(a.id, 5)  # clamped to the end
        assert labels(settings) == ["b", "a"]
        await pilot.pause()
        assert [i.label for i in app.queue_items] == ["b", "a"]
