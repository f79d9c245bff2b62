"""Long messages wrap instead of being cut in a terminal of 80-120 columns (e.g. over SSH): a field's message in
the Minimal and Advanced forms, the failure box and the run's log pane. Each test reads the text painted inside
the widget's region of the screen, so a line cut by the widget's height or width fails it."""
from __future__ import annotations


import pytest

from lora_tui.config.model import TrainingConfig
from lora_tui.ui.app import LoraApp
from lora_tui.ui.forms import AdvancedForm, section_of

from ui_helpers import run_script_to_end, screen_text, type_into, wait_for


def painted(app, widget) -> str:
    """The words painted inside `widget`'s content region, lines joined by single spaces."""
    r = widget.scrollable_content_region  # without a scrollbar's gutter
    lines = screen_text(app).split("\n")[r.y:r.bottom]
    return " ".join(" ".join(line[r.x:r.right] for line in lines).split())


async def test_the_family_row_is_painted_whole_at_80_columns(settings):
    # Waits for what it reads (not for time): under load the first frames come late.
    app = LoraApp(settings=settings)
    async with app.run_test(size=(80, 30)) as pilot:
        await wait_for(pilot, lambda: painted(app, app.query_one("#minimal-family")) == "SDXL · sdxl_train_network.py"
                       and "SDXL" in painted(app, app.query_one("#minimal-family-choice")))
        app.load_config(TrainingConfig(sd3_checkbox=True), ())  # another family: its label and script, whole
        await wait_for(pilot, lambda: painted(app, app.query_one("#minimal-family")) == "SD3 · sd3_train_network.py"
                       and "SD3 / SD3.5" in painted(app, app.query_one("#minimal-family-choice")))


@pytest.mark.parametrize("view, size", [("minimal", (80, 30)), ("advanced", (80, 30)), ("advanced", (100, 30))])
async def test_a_long_field_message_is_painted_whole(settings, tmp_path, view, size):
    # A trial saw "pick the checkpoint file or" and no more: the message's height was one line short.
    name = "pretrained_model_name_or_path"
    missing = tmp_path / "models" / "checkpoints" / "sdxl" / "some_long_model_name_v1.safetensors"
    app = LoraApp(settings=settings)
    async with app.run_test(size=size) as pilot:
        if view == "advanced":
            await pilot.press("f3")
            await wait_for(pilot, lambda: app.view == "advanced")
            await app.query_one(AdvancedForm).show_section(section_of(name))
        await type_into(pilot, app, name, str(missing))
        await wait_for(pilot, lambda: app.query_one_optional(f"#msg-{name}") is not None
                       and "does not exist" in " ".join(str(app.query_one(f"#msg-{name}").render()).split()))
        label = app.query_one(f"#msg-{name}")
        editor = app.query_one(f"#f-{name}")
        assert editor.region.width >= 20  # the label column never squeezes the editor out (it stacks instead)
        label.scroll_visible(animate=False)
        await pilot.pause(0.1)
        shown = painted(app, label)
        assert shown.startswith("base model '")
        assert shown.endswith("pick the checkpoint file or Diffusers folder")
        assert "".join(shown.split()) == "".join(str(label.render()).split())  # nothing in between is lost


LONG_TRAINER = '''
import sys
print("loading model from /home/user/models/checkpoints/stable-diffusion-xl/some_long_model_name_v1.safetensors"
      " with the VAE from /home/user/models/vae/sdxl_vae_fp16_fix.safetensors END-OF-PATH-LINE", flush=True)
raise FileNotFoundError("no such file: /home/user/datasets/subject/10_subject/captions/missing_caption_file.txt"
                        " (check train_data_dir) END-OF-ERROR")
'''


async def test_a_failed_run_shows_long_lines_whole_in_log_and_failure_box(settings, tmp_path):
    app = LoraApp(settings=settings)
    async with app.run_test(size=(80, 30)) as pilot:
        await run_script_to_end(pilot, app, settings, tmp_path / "long_lines.py", LONG_TRAINER)
        await pilot.pause(0.3)
        status = painted(app, app.query_one("#run-status"))
        # whole, to its end: the headline then says where it failed (the trainer's innermost frame)
        assert "exit code 1" in status and "END-OF-ERROR (at " in status \
            and status.endswith("/long_lines.py:5 in <module>)"), status
        hint = painted(app, app.query_one("#failure-hint"))
        assert hint.startswith("Job ") and "END-OF-ERROR" in hint, hint
        tail = painted(app, app.query_one("#failure-tail"))
        assert ("FileNotFoundError:nosuchfile:/home/user/datasets/subject/10_subject/captions/missing_caption_file"
                ".txt(checktrain_data_dir)END-OF-ERROR") in "".join(tail.split()), tail
        log = app.query_one("#log")
        log.scroll_home(animate=False, immediate=True)
        await pilot.pause(0.1)
        shown = "".join(painted(app, log).split())
        assert "loadingmodelfrom/home/user/models/checkpoints/" in shown and "END-OF-PATH-LINE" in shown, shown
        log.scroll_end(animate=False, immediate=True)
        await pilot.pause(0.1)
        shown = "".join(painted(app, log).split())
        assert "FileNotFoundError:nosuchfile:/home/user/datasets/subject/10_subject/captions/" in shown, shown
        assert shown.endswith("(checktrain_data_dir)END-OF-ERROR"), shown


async def test_wraplog_refolds_on_resize_and_keeps_rows_in_step_when_pruning():
    from textual.app import App

    from lora_tui.ui.runview import WrapLog

    class One(App):
        def compose(self):
            yield WrapLog(id="w", max_lines=50)

    app = One()
    async with app.run_test(size=(40, 10)) as pilot:
        log = app.query_one(WrapLog)
        lines = [f"{i:03d} " + "x" * (i % 90) + f" END{i:03d}" for i in range(120)]
        log.write_lines(lines[:70])
        log.write_lines(lines[70:])  # 120 lines into max_lines=50: the first 70 are dropped
        await pilot.pause()
        assert list(log.lines) == lines[70:]
        for width in (40, 80, 23):
            await pilot.resize_terminal(width, 10)
            await pilot.pause()
            fold = log.scrollable_content_region.width
            assert log.virtual_size.height == sum(-(-len(line) // fold) for line in lines[70:])
            assert log.max_scroll_x == 0  # folded, never scrolled sideways
            log.scroll_end(animate=False, immediate=True)
            await pilot.pause()
            painted_rows = [line[:fold] for line in screen_text(app).split("\n")[:10]]
            assert "".join(painted_rows).rstrip().endswith(lines[-1]), painted_rows
        # Trailing blanks (tqdm's padding) past the fold take no row: a trial saw them as blank log lines.
        log.write_lines(["y" * fold + "  ", "z" * (fold - 1) + "   "])
        await pilot.pause()
        assert log.virtual_size.height == sum(-(-len(line.rstrip()) // fold) for line in log.lines)
        assert log.lines[-1].endswith("z   ")


async def test_wraplog_keeps_following_when_its_pane_shrinks_and_stops_when_scrolled_up():
    # The trial's demo run: the log pane stopped before "model saved." when the end-of-run status line took a
    # second row and shrank the pane; the end moved below the view without a scroll and following stopped.
    from textual.app import App

    from lora_tui.ui.runview import WrapLog

    class One(App):
        def compose(self):
            yield WrapLog(id="w")

    app = One()
    async with app.run_test(size=(40, 20)) as pilot:
        log = app.query_one(WrapLog)
        log.write_lines([f"line {i}" for i in range(50)])
        await pilot.pause()
        assert log.is_vertical_scroll_end
        log.styles.height = 6  # the pane shrinks under the same terminal
        await pilot.pause()
        log.write_lines(["saving checkpoint", "model saved."])
        await pilot.pause()
        assert log.is_vertical_scroll_end
        assert "model saved." in screen_text(app)
        log.scroll_to(y=0, animate=False, immediate=True)  # the user scrolls up to read: no more following
        await pilot.pause()
        log.write_lines(["later line"])
        await pilot.pause()
        assert log.scroll_offset.y == 0 and "later line" not in screen_text(app)
        log.scroll_end(animate=False, immediate=True)  # back at the end: following again
        await pilot.pause()
        log.write_lines(["last line"])
        await pilot.pause()
        assert "last line" in screen_text(app)


PLOTTED_TRAINER = '''
import sys, time
for step in range(1, 6):
    print("steps: %3d%%| | %d/50 [00:01<00:10, 4.00it/s, avr_loss=%.3f]" % (step * 2, step, 1 / step), flush=True)
    time.sleep(0.05)
raise RuntimeError("CUDA out of memory while caching latents for /home/user/datasets/subject/10_subject:"
                   " lower train_batch_size END-OF-ERROR")
'''


async def test_failure_box_beside_the_loss_plot_shows_the_error_whole(settings, tmp_path):
    app = LoraApp(settings=settings)
    async with app.run_test(size=(80, 30)) as pilot:
        await run_script_to_end(pilot, app, settings, tmp_path / "plotted.py", PLOTTED_TRAINER)
        await pilot.pause(0.3)
        assert app.query_one("#plot-box").display and app.query_one("#failure").display
        summary = app.query_one("#run").progress.summary()
        assert summary.startswith("step 5/50 · loss 0.2 · ")
        assert painted(app, app.query_one("#run-stats")) == summary
        tail = "".join(painted(app, app.query_one("#failure-tail")).split())
        assert ("RuntimeError:CUDAoutofmemorywhilecachinglatentsfor/home/user/datasets/subject/10_subject:"
                "lowertrain_batch_sizeEND-OF-ERROR") in tail, screen_text(app)


DEMO_LIKE_TRAINER = '''
import json, sys, time
print("running training / 学習開始", flush=True)
print("  num train images * repeats / 学習画像の数×繰り返し回数: 50", flush=True)
for i in range(12):
    print(f"INFO loading /home/user/models/checkpoints/sdxl/some_long_model_name_v1.safetensors part {i}", flush=True)
w = sys.stderr.write
for step in range(1, 51):
    bar = f"steps: {2 * step:3d}%|{'█' * (step // 5):10s}| {step}/50 [00:06<00:00,  7.35it/s, avr_loss=1.12]"
    w("\\r" + bar)
    w(("\\n" if step % 2 else "") + "LORA_TUI_PROGRESS " + json.dumps({"step": step, "total": 50, "loss": 1 / step})
      + "\\n")
    sys.stderr.flush()
    time.sleep(0.01 if step < 45 else 0.08)
w("\\r" + bar + "\\n\\nsaving checkpoint: /home/user/outputs/demo_lora.safetensors\\n")
w('LORA_TUI_SAVED {"path": "/home/user/outputs/demo_lora.safetensors", "step": 50}\\nmodel saved.\\n')
sys.stderr.flush()
time.sleep(0.5)
'''


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_the_log_pane_shows_the_last_lines_when_a_run_ends(settings, tmp_path, size):
    # A trial saw the pane stay on the "46/50" bar line at the end of the demo run until the terminal was resized.
    app = LoraApp(settings=settings)
    async with app.run_test(size=size) as pilot:
        await run_script_to_end(pilot, app, settings, tmp_path / "demo_like.py", DEMO_LIKE_TRAINER, timeout=20)
        await pilot.pause(0.3)
        log = app.query_one("#log")
        assert log.lines[-1] == "model saved." and log.is_vertical_scroll_end
        shown = painted(app, log)
        assert shown.endswith("model saved."), shown
