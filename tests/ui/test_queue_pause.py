"""Pausing the queue from the Run view (p, from the log pane or the queue list), and what Stop does to it: the
pause is the queue file's flag (shared with `lora-tui queue`), nothing starts while it is set, a running item is
not stopped by it, and Stop on a run with items waiting pauses the queue so the next does not start at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from lora_tui.run.jobs import load_job, start_job
from lora_tui.run.queue import QUEUE_FILE, Queue
from lora_tui.ui.app import LoraApp
from ui_helpers import SIZE, fake, record_launches, wait_for


def labels_and_status(settings) -> list[tuple[str, str]]:
    return [(i.label, i.status) for i in Queue(settings=settings).items()]


def footer_keys(app) -> dict[str, str]:
    """The bindings the footer offers for the focused widget: key → description."""
    return {b.key: b.description for _, b, enabled, _ in app.active_bindings.values() if enabled}


async def test_p_on_the_run_view_pauses_and_resumes_the_queue(settings, tmp_path):
    app = LoraApp(settings=settings)
    release_first = tmp_path / "release-first"  # "first" runs until the test has paused the queue under it
    launched = record_launches(app, settings, tmp_path, held={"first": release_first})
    async with app.run_test(size=SIZE) as pilot:
        queue = Queue(settings=settings)
        for label in ("first", "second"):
            queue.add(config={"output_name": label}, label=label)
        queue.pause("set up by the test")  # as if paused before the app started: nothing starts
        await app.show_view("run")
        lst = app.query_one("#queue")
        await wait_for(pilot, lambda: lst.option_count == 2 and "PAUSED" in str(lst.border_title), timeout=10)
        assert "p resumes" in str(lst.border_title)
        # The Run view opens on the log pane: p works from there, and the footer offers it and the way to the
        # list whose highlighted item Del/x and K/J act on.
        assert app.focused is app.query_one("#log")
        await wait_for(pilot, lambda: footer_keys(app).get("p") == "Resume queue", timeout=5)
        assert footer_keys(app).get("tab") == "To queue list"
        assert "Tab to the list for Del/x, K/J" in str(lst.border_title)  # also where the footer has no room
        await pilot.pause(2.5)  # two queue ticks
        assert launched == [] and labels_and_status(settings) == [("first", "pending"), ("second", "pending")]
        await pilot.press("x", "J")  # item keys off the list: nothing removed or moved, and the user is told why
        await wait_for(pilot, lambda: any("Tab to the queue list first" in str(n.message)
                                          for n in app._notifications), timeout=5)
        assert labels_and_status(settings) == [("first", "pending"), ("second", "pending")]

        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Resume queue" in titles and "Pause queue" not in titles  # in the command palette too
        await pilot.press("p")  # resume, from the log pane: the queue runs, one item after another
        await wait_for(pilot, lambda: not Queue(settings=settings).paused)
        await wait_for(pilot, lambda: launched == ["first"], timeout=10)
        await wait_for(pilot, lambda: "p pauses" in str(lst.border_title) and "PAUSED" not in str(lst.border_title)
                       and footer_keys(app).get("p") == "Pause queue", timeout=10)
        assert "Pause queue" in [c.title for c in app.get_system_commands(app.screen)]
        await pilot.press("tab")
        assert app.focused is lst and footer_keys(app).get("tab") != "To queue list"  # the item keys instead:
        assert footer_keys(app).get("x") == "Remove" and "Del/x removes" in str(lst.border_title)
        await pilot.press("p")  # on the list too; pause while "first" runs: it goes on, "second" waits
        await wait_for(pilot, lambda: Queue(settings=settings).paused)
        data = json.loads((settings.state_dir / QUEUE_FILE).read_text())
        assert data["paused"]["reason"] == "paused in the app" and len(data["items"]) == 2
        assert labels_and_status(settings)[0] == ("first", "running")
        release_first.touch()
        await wait_for(pilot, lambda: labels_and_status(settings)[0] == ("first", "done"), timeout=30)
        await wait_for(pilot, lambda: not app.job_running, timeout=10)
        await wait_for(pilot, lambda: "PAUSED" in str(lst.border_title) and "(done)" in str(
            lst.get_option_at_index(0).prompt), timeout=5)
        await pilot.pause(2.5)
        assert launched == ["first"] and labels_and_status(settings)[1] == ("second", "pending")

        # Resumed from another process (`lora-tui queue resume`, its settings.toml naming this state dir): the app
        # sees it and starts the next.
        (tmp_path / "xconfig" / "lora-tui").mkdir(parents=True)
        (tmp_path / "xconfig" / "lora-tui" / "settings.toml").write_text(
            f"state_dir = {json.dumps(str(settings.state_dir))}\n")
        env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xconfig"), XDG_STATE_HOME=str(tmp_path / "xstate"))
        resumed = subprocess.run([sys.executable, "-m", "lora_tui", "queue", "resume"], capture_output=True,
                                 text=True, env=env, timeout=60)
        assert resumed.returncode == 0 and "queue resumed (1 waiting" in resumed.stdout, resumed.stdout
        await wait_for(pilot, lambda: launched == ["first", "second"], timeout=10)
        await wait_for(pilot, lambda: "PAUSED" not in str(lst.border_title), timeout=5)
        await wait_for(pilot, lambda: labels_and_status(settings)[1] == ("second", "done"), timeout=30)


async def test_stop_on_a_queued_run_pauses_the_queue_and_says_so(settings, tmp_path):
    app = LoraApp(settings=settings)
    launched = record_launches(app, settings, tmp_path, lambda item: 100000 if item.label == "long" else 2, 0.02)
    async with app.run_test(size=SIZE) as pilot:
        queue = Queue(settings=settings)
        for label in ("long", "next"):
            queue.add(config={"output_name": label}, label=label)
        await wait_for(pilot, lambda: launched == ["long"] and app.job_running, timeout=15)
        running = queue.get(queue.items()[0].id)
        assert app.job.id == running.job_id

        await pilot.press("f9")
        assert "The queue is paused (1 waiting): p on the Run view resumes it." in app.last_stop_message
        assert Queue(settings=settings).pause_info()["reason"] == "stopped by the user"
        await wait_for(pilot, lambda: not app.job_running, timeout=30)
        assert load_job(running.job_id, settings).state["status"] == "stopped"
        await wait_for(pilot, lambda: labels_and_status(settings)[0] == ("long", "stopped"), timeout=10)
        await pilot.pause(2.5)  # the stopped run ended: the next does NOT start behind it
        assert launched == ["long"] and labels_and_status(settings)[1] == ("next", "pending")
        lst = app.query_one("#queue")
        assert "PAUSED" in str(lst.border_title)

        lst.focus()
        await pilot.press("p")
        await wait_for(pilot, lambda: launched == ["long", "next"], timeout=10)
        await wait_for(pilot, lambda: labels_and_status(settings)[1] == ("next", "done"), timeout=30)
        # With nothing waiting, Stop leaves the queue as it is (no pause left behind for later items).
        last = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), settings=settings)
        await wait_for(pilot, lambda: not app.job_running, timeout=10)
        app.attach(last)
        await wait_for(pilot, lambda: "LORA_TUI_PROGRESS" in last.log_path.read_text(), timeout=15)  # it is up
        await pilot.press("f9")
        assert "queue" not in app.last_stop_message and not Queue(settings=settings).paused
        await wait_for(pilot, lambda: not app.job_running, timeout=30)


async def test_start_while_running_on_a_paused_queue_says_the_queue_is_paused(settings, tmp_path):
    from lora_tui.config.kohya_json import load_config_file
    from lora_tui.config.paths import BUNDLED_PRESETS
    from ui_helpers import stand_ins, valid_sdxl_setup

    stand_ins(tmp_path, settings)  # nothing is launched: no bundled trainer's preflight to wait for at F5
    app = LoraApp(load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config, settings=settings)
    app.queue_launch = lambda item: start_job(fake("fail_after.py", 0), settings=settings)  # must not be reached
    async with app.run_test(size=SIZE) as pilot:
        for name, value in valid_sdxl_setup(tmp_path).items():
            assert app.apply_edit(name, value)
        Queue(settings=settings).pause()
        running = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.02), settings=settings)
        app.attach(running)
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.screen.id == "queue-dialog", timeout=15)
        await pilot.press("enter")  # "Queue it"
        await wait_for(pilot, lambda: any("the queue is paused: p on the Run view resumes it"
                                          in str(n.message) for n in app._notifications), timeout=10)
        assert [i.status for i in Queue(settings=settings).items()] == ["pending"]
        await wait_for(pilot, lambda: "LORA_TUI_PROGRESS" in running.log_path.read_text(), timeout=15)
        await pilot.press("f9")  # the queue was paused already: it stays so, and the message says why
        assert "The queue is paused (1 waiting)" in app.last_stop_message
        await wait_for(pilot, lambda: not app.job_running, timeout=30)
        await pilot.pause(1.5)
        assert [i.status for i in Queue(settings=settings).items()] == ["pending"]
        assert Queue(settings=settings).pause_info()["reason"] == ""  # the first pause is kept


async def test_queue_this_config_from_the_palette_checks_then_queues(settings, tmp_path):
    from lora_tui.config.kohya_json import load_config_file
    from lora_tui.config.presets import BUNDLED_PRESETS
    from ui_helpers import stand_ins, valid_sdxl_setup

    stand_ins(tmp_path, settings)
    app = LoraApp(load_config_file(BUNDLED_PRESETS / "sdxl-face-lora.json").config, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        Queue(settings=settings).pause("set up by the test")  # so the queued item waits instead of starting
        assert "Queue this config" in [c.title for c in app.get_system_commands(app.screen)]
        app.action_queue_config()  # the default preset has no data set: refused like Start
        await wait_for(pilot, lambda: not app.starting, timeout=20)
        assert labels_and_status(settings) == []
        for name, value in {**valid_sdxl_setup(tmp_path), "output_name": "queued_face"}.items():
            assert app.apply_edit(name, value)
        app.action_queue_config()
        await wait_for(pilot, lambda: labels_and_status(settings) == [("queued_face", "pending")], timeout=20)
        assert not app.job_running  # queued, not launched
        # told once the queue's pause was read back (after the item is in the file)
        await wait_for(pilot, lambda: any("“queued_face”: the queue is paused" in str(n.message)
                                          for n in app._notifications), timeout=10)
        config = Queue(settings=settings).items()[0].config
        assert config["output_name"] == "queued_face" and config["train_data_dir"].endswith("img")
        # F5 on the same config while that item waits (paused): asked, since this run would write its LoRA first
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.screen.id == "waiting-output-dialog", timeout=20)
        assert "Queue item “queued_face” (pending) writes the same LoRA" in str(app.screen.question)
        await pilot.press("enter")  # Cancel is the default
        await wait_for(pilot, lambda: not app.starting, timeout=10)
        assert not app.job_running and labels_and_status(settings) == [("queued_face", "pending")]
