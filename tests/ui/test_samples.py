"""The Run view shows the newest sample image the trainer wrote into `<output_dir>/sample/` (textual-image; in a
test, not a terminal, its text fallback), and stays without a sample pane while there is none."""
from __future__ import annotations

import os
import time

from PIL import Image

from lora_tui.run.jobs import start_job
from lora_tui.ui.app import LoraApp
from lora_tui.ui.samples import newest_sample
from ui_helpers import SIZE, fake, static_text, wait_for


def write_png(path, color) -> None:
    Image.new("RGB", (64, 48), color).save(path)


async def test_newest_sample_is_shown_and_replaced(settings, tmp_path):
    out = tmp_path / "out"
    (out / "sample").mkdir(parents=True)
    job = start_job(fake("saving_trainer.py", out, 100000, 0.02), settings=settings,
                    meta={"output_dir": str(out), "output_name": "face"})
    app = LoraApp(settings=settings, attach_job=job)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("#samples")
        await wait_for(pilot, lambda: app.job_running and (app.query_one("#run").progress.step or 0) > 2)
        # The status line names the run's output while it runs.
        assert static_text(app.query_one("#run-status")).startswith(f"Job {job.id} running · output face · pid ")
        await pilot.pause(2.5)  # more than one poll of the (empty) sample folder
        assert not pane.display and app.query_one_optional("#sample-image") is None
        first = out / "sample" / "face_000001_00_20261129101500.png"
        write_png(first, (200, 30, 30))
        await wait_for(pilot, lambda: pane.display, timeout=10)
        assert first.name in static_text(app.query_one("#sample-caption"))
        image = app.query_one("#sample-image")
        assert image.image.size == (64, 48) and image.image.getpixel((0, 0)) == (200, 30, 30)
        await pilot.pause()
        assert image.region.width > 0 and image.region.height > 0  # laid out on screen, not squeezed away
        second = out / "sample" / "face_000002_00_20261129101600.png"
        write_png(second, (30, 200, 30))
        later = time.time() + 5
        os.utime(second, (later, later))  # newer for certain, even on a coarse-mtime file system
        await wait_for(pilot, lambda: second.name in static_text(app.query_one("#sample-caption")), timeout=10)
        assert app.query_one("#sample-image").image.getpixel((0, 0)) == (30, 200, 30)
        await pilot.press("f9", "f9")  # stop the fake trainer
        await wait_for(pilot, lambda: not app.job_running, timeout=20)


def test_newest_sample_ignores_other_files_and_missing_folders(tmp_path):
    assert newest_sample(None) is None and newest_sample(tmp_path / "nope") is None
    (tmp_path / "sample").mkdir()
    (tmp_path / "sample" / "prompt.txt").write_text("a photo")
    assert newest_sample(tmp_path) is None
    write_png(tmp_path / "sample" / "a.png", (0, 0, 0))
    assert newest_sample(tmp_path) == tmp_path / "sample" / "a.png"


def test_renderer_follows_the_terminal_and_the_override():
    from lora_tui.ui.samples import renderer_name

    assert renderer_name({"TERM": "xterm-kitty"}, is_tty=True) == "tgp"
    assert renderer_name({"TERM": "xterm-kitty", "TMUX": "/tmp/tmux-0/default,1,0"}, is_tty=True) == "halfcell"
    assert renderer_name({"TERM_PROGRAM": "WezTerm", "TERM": "xterm-256color"}, is_tty=True) == "sixel"
    assert renderer_name({"TERM": "xterm-256color"}, is_tty=True) == "halfcell"
    assert renderer_name({"TERM": "xterm-kitty"}, is_tty=False) == "unicode"
    assert renderer_name({"LORA_TUI_IMAGES": "off", "TERM": "xterm-kitty"}, is_tty=True) is None
    assert renderer_name({"LORA_TUI_IMAGES": "sixel"}, is_tty=False) == "sixel"


def test_textual_image_is_imported_without_querying_the_terminal():
    # In a pseudo-terminal (as the app runs), importing the renderer must write nothing to the terminal: a query
    # there would be answered into Textual's input reader.
    import os
    import shutil
    import subprocess
    import sys

    import pytest

    if shutil.which("script") is None:
        pytest.skip("util-linux `script` (a pseudo-terminal) is not installed")
    env = {k: v for k, v in os.environ.items()
           if k not in ("TMUX", "STY", "KITTY_WINDOW_ID", "TERM_PROGRAM", "KONSOLE_VERSION", "LORA_TUI_IMAGES")}
    env["TERM"] = "xterm-256color"
    code = "from lora_tui.ui.samples import image_class; print('class:' + image_class().__name__)"
    out = subprocess.run(["script", "-qec", f"stty cols 80 rows 24; {sys.executable} -c \"{code}\"", "/dev/null"],
                         capture_output=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith(b"class:HalfcellImage"), out.stdout
    assert b"\x1b" not in out.stdout
