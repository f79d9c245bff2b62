"""The app process never imports the training stack, and plotting is imported only when a loss value arrives."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "diffusers", "transformers", "accelerate", "safetensors")


def test_app_import_and_first_frame_pull_in_no_training_stack(tmp_path):
    code = f"""
import asyncio, sys
from lora_tui.config.app_settings import AppSettings
from lora_tui.ui.app import LoraApp

async def main():
    app = LoraApp(settings=AppSettings(state_dir={str(tmp_path)!r}))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("f3", "f4", "f2")
        await pilot.pause(0.5)

asyncio.run(main())
print("loaded:" + ",".join(m for m in {HEAVY + ("textual_plotext",)!r} if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "loaded:"
