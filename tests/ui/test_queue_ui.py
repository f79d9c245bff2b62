"""Start while a job runs offers the queue; queued configs run one after another, a failed one does not stop the
next, and the Run view lists every item with its result."""
from __future__ import annotations

from pathlib import Path

from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.paths import BUNDLED_PRESETS
from lora_tui.run.jobs import start_job
from lora_tui.run.queue import Queue
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, fake, stand_ins, valid_sdxl_setup, wait_for


def queue_text(app) -> str:
    """The Run view's queue list as text, one item a line."""
    lst = app.query_one("#queue")
    return "\n".join(str(lst.get_option_at_index(i).prompt) for i in range(lst.option_count))


async def test_start_while_running_queues_and_the_queue_runs_after(settings, tmp_path):
    cfg = load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config
    # Items start as fakes (queue_launch): a stand-in trainer folder, so no F5 here waits for the bundled trainer's
    # preflight (a torch process each; the preflight has its own tests)
    stand_ins(tmp_path, settings)
    fields = valid_sdxl_setup(tmp_path)
    out = tmp_path / "fake-out"
    out.mkdir()
    launched = []

    def launch(item):  # a fake trainer per item: the first fails, the second finishes
        argv = fake("fail_after.py", 0.3) if not launched else fake("saving_trainer.py", out, 5, 0.02)
        launched.append(item.label)
        return start_job(argv, settings=settings)

    app = LoraApp(cfg, settings=settings)
    app.queue_launch = launch
    (Path(fields["output_dir"]) / "one.safetensors").write_bytes(b"a finished LoRA")
    async with app.run_test(size=SIZE) as pilot:
        for name, value in fields.items():
            assert app.apply_edit(name, value)
        # runs (and fails) only when released below: the Starts must find it running, however slow the machine
        release = tmp_path / "release-first"
        first = start_job(fake("hold_trainer.py", release, 1), settings=settings)
        app.attach(first)
        for label in ("one", "two"):
            assert app.apply_edit("output_name", label)
            await pilot.press("f5")
            if label == "one":  # its LoRA exists: F5 asks as Start does, and the answer is kept with the item
                await wait_for(pilot, lambda: app.screen.id == "overwrite-dialog", timeout=15)
                await pilot.click("#choice-overwrite")
            await wait_for(pilot, lambda: app.screen.id == "queue-dialog", timeout=15)
            await pilot.press("enter")  # "Queue it" is the default button
            await wait_for(pilot, lambda: app.screen.id != "queue-dialog")
            await wait_for(pilot, lambda: any(i.label == label for i in Queue(settings=settings).items()))
        assert any("“two”: it starts when the running job ends" in str(n.message) for n in app._notifications)
        # Queueing "two" again: no file yet, but the waiting item "two" will write it: asked, and Enter cancels.
        app.action_queue_config()
        await wait_for(pilot, lambda: app.screen.id == "queued-output-dialog", timeout=15)
        assert "“two” (pending)" in str(app.screen.question)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id != "queued-output-dialog" and not app.starting)
        assert len(Queue(settings=settings).items()) == 2
        # The palette's "Queue this config" asks too; Enter takes the free name (one_2), not an overwrite.
        assert app.apply_edit("output_name", "one")
        app.action_queue_config()
        await wait_for(pilot, lambda: app.screen.id == "overwrite-dialog", timeout=15)
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(Queue(settings=settings).items()) == 3)
        stored = [(i.label, i.config["output_name"], i.overwrite) for i in Queue(settings=settings).items()]
        assert stored == [("one", "one", True), ("two", "two", False), ("one_2", "one_2", False)]
        assert app.job.id == first.id  # nothing else started while it runs
        release.touch()
        done = lambda: [i.status for i in Queue(settings=settings).items()] == ["failed", "done", "done"]  # noqa: E731
        await wait_for(pilot, lambda: done() and not app.job_running, timeout=40)
        assert launched == ["one", "two", "one_2"]
        await wait_for(pilot, lambda: "one_2 (done)" in queue_text(app), timeout=5)
        text = queue_text(app)
        assert "one (overwrite) (failed, exit 1)" in text and "two (done)" in text  # its Overwrite answer shows
        assert app.job.id != first.id  # the app followed the queued runs


async def test_queue_items_are_removed_with_delete_on_the_queue_list(settings, tmp_path):
    cfg = load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config
    app = LoraApp(cfg, settings=settings)
    app.queue_launch = lambda item: start_job(fake("fail_after.py", 0), settings=settings)  # not reached
    async with app.run_test(size=SIZE) as pilot:
        running = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), settings=settings)
        app.attach(running)  # a running job: the queue waits, so its items stay pending
        queue = Queue(settings=settings)
        for label in ("first", "second", "third"):
            queue.add(config={"output_name": label}, label=label)
        await wait_for(pilot, lambda: queue_text(app).count("(pending)") == 3, timeout=10)
        lst = app.query_one("#queue")
        lst.focus()
        lst.highlighted = 1
        await pilot.press("delete")
        await wait_for(pilot, lambda: [i.label for i in Queue(settings=settings).items()] == ["first", "third"])
        await wait_for(pilot, lambda: "second" not in queue_text(app))
        assert lst.highlighted == 1 and "third" in str(lst.get_option_at_index(1).prompt)
        await pilot.press("x")
        await wait_for(pilot, lambda: [i.label for i in Queue(settings=settings).items()] == ["first"])
        # A running item is not removed: its job must be stopped first.
        busy = Queue(settings=settings).items()[0]
        Queue(settings=settings).mark(busy.id, "running")
        assert not await app.remove_queued(busy.id)
        assert [i.label for i in Queue(settings=settings).items()] == ["first"]
        await pilot.press("f9", "f9")
        await wait_for(pilot, lambda: not app.job_running, timeout=20)
