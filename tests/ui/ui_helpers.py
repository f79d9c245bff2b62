"""Helpers for the app's Pilot tests (a module of its own: `conftest` is a shared name across test folders)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

FAKE = Path(__file__).resolve().parents[1] / "fake_trainers"
#: The real kohya_ss presets of ../shared, beside the checkout (found from the repository root, never by a machine
#: path: CI and users run elsewhere).
KOHYA_PRESETS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "kohya_presets"
SIZE = (120, 40)


def fake(name: str, *args: object) -> list[str]:
    """argv running the fake trainer ``name`` (a file in tests/fake_trainers) with this interpreter."""
    return [sys.executable, str(FAKE / name), *map(str, args)]


def record_launches(app, settings, out_dir: Path, steps=lambda item: 2, delay: float = 0.01,
                    held: dict[str, Path] | None = None) -> list[str]:
    """Make ``app``'s queue start the fake saving trainer for each item (``steps(item)`` steps of ``delay`` s,
    saving into ``out_dir``); returns the list each started item's label is appended to. An item whose label is
    in ``held`` runs the fake trainer that waits for that file instead (`hold_trainer.py`; exit 0 once it
    exists): for a test that acts while the item still runs."""
    from lora_tui.run.jobs import start_job

    launched: list[str] = []

    def launch(item):
        launched.append(item.label)
        if held and item.label in held:
            return start_job(fake("hold_trainer.py", held[item.label]), settings=settings)
        return start_job(fake("saving_trainer.py", out_dir, steps(item), delay), settings=settings)

    app.queue_launch = launch
    return launched


async def run_script_to_end(pilot, app, settings, script: Path, text: str, timeout: float = 15) -> None:
    """Write ``text`` as a Python ``script``, run it as a job the app follows, and wait until it has ended."""
    from lora_tui.run.jobs import start_job

    script.write_text(text, encoding="utf-8")
    app.attach(start_job([sys.executable, str(script)], settings=settings))
    await wait_for(pilot, lambda: app.job is not None and not app.job_running, timeout=timeout)


async def wait_for(pilot, condition, timeout: float = 10.0, step: float = 0.05) -> float:
    """Pump the app until ``condition()`` is true; return the seconds it took. Fails the test on timeout."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(step)
    return time.monotonic() - start


def screen_text(app) -> str:
    """The current screen as plain text (what a user sees, without colours)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def painted(app, widget) -> list[str]:
    """The screen rows inside ``widget``'s border and padding (a widget or a selector), as painted, right-stripped."""
    if isinstance(widget, str):
        widget = app.query_one(widget)
    region = widget.content_region
    rows = screen_text(app).split("\n")[region.y:region.bottom]
    return [row[region.x:region.right].rstrip() for row in rows]


def static_text(widget) -> str:
    """The plain text a Static/Label currently shows (markup removed)."""
    return str(widget.render())


async def type_into(pilot, app, name: str, text: str) -> None:
    """Focus the editor of field ``name`` (`#f-<name>`, an Input) and replace its text by typing ``text``."""
    widget = app.query_one(f"#f-{name}")
    widget.focus()
    await pilot.pause()
    await pilot.press("end", *["backspace"] * len(widget.value))
    if text:
        await pilot.press(*text)
    await pilot.pause()


async def choose(pilot, app, name: str, value: str) -> None:
    """Pick ``value`` in the Select of field ``name`` with the keyboard (open, type to search, Enter)."""
    widget = app.query_one(f"#f-{name}")
    widget.focus()
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()
    await pilot.press(*value, "enter")
    await pilot.pause()


async def toggle(pilot, app, name: str) -> None:
    """Toggle the Checkbox of field ``name`` with the space key."""
    app.query_one(f"#f-{name}").focus()
    await pilot.pause()
    await pilot.press("space")
    await pilot.pause()


def toml_of(app) -> dict:
    """The TOML Start would write for the app's current config, parsed back."""
    import tomllib

    from lora_tui.plan.launch import toml_text

    return tomllib.loads(toml_text(app.config))


def valid_sdxl_setup(root: Path) -> dict:
    """Field values for a config the plan accepts: a header-only SDXL checkpoint (the plan reads headers only),
    an image folder `10_subject` with two captioned images, and an empty output folder."""
    import json
    import struct

    from PIL import Image

    keys = ["conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight",
            "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
            "model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.decoder.conv_in.weight"]
    header = {k: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i, k in enumerate(keys)}
    raw = json.dumps(header).encode()
    ckpt = root / "sdxl.safetensors"
    ckpt.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4 * len(keys)))
    sub = root / "img" / "10_subject"
    sub.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (64, 64), (40 * i, 80, 120)).save(sub / f"{i}.png")
        (sub / f"{i}.txt").write_text("a photo of subject")
    out = root / "out"
    out.mkdir()
    return {"pretrained_model_name_or_path": str(ckpt), "train_data_dir": str(root / "img"),
            "output_dir": str(out), "max_resolution": "64,64"}


ACCELERATE = f"""#!{sys.executable}
# Stand-in for `accelerate launch [options] SCRIPT ARGS...`: runs SCRIPT ARGS with this Python, options skipped.
import os, sys
args = sys.argv[2:]
while args and not args[0].endswith(".py"):
    args = args[2:] if args[0].startswith("--") and len(args) > 1 and not args[1].startswith("--") \\
        and not args[1].endswith(".py") else args[1:]
os.execv(sys.executable, [sys.executable, *args])
"""

TRAINER = """
# Stand-in for sdxl_train_network.py: reads --config_file as sd-scripts does and reports what it got.
import sys, time, tomllib
toml = tomllib.load(open(sys.argv[sys.argv.index("--config_file") + 1], "rb"))
print("config: network_dim=%s output_name=%s" % (toml["network_dim"], toml["output_name"]), flush=True)
for step in range(1, 6):
    sys.stderr.write("\\rsteps: %3d%%| | %d/5 [00:01<00:01, 9.00it/s, avr_loss=%.3f]" % (step * 20, step, 1 / step))
    sys.stderr.flush()
    time.sleep(0.05)
sys.stderr.write("\\n")
print("model saved.", flush=True)
"""


def stand_ins(root: Path, settings) -> None:
    """Point ``settings`` at stand-ins for `accelerate` and `sdxl_train_network.py` (real processes, no torch)."""
    bindir = root / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    acc = bindir / "accelerate"
    acc.write_text(ACCELERATE)
    acc.chmod(0o755)
    sd = root / "sd-scripts"
    sd.mkdir()
    (sd / "sdxl_train_network.py").write_text(TRAINER)
    settings.python = str(bindir / "python")
    settings.sd_scripts_dir = sd
