"""The UI half of the log-flood benchmark: the app follows a job that writes 200,000 lines (with tqdm `\\r` bars)
as fast as it can, and we measure key-to-screen latency and memory during the flood; then the app's CPU while it
follows a normally paced training log.

Targets (issue 5): key-to-screen p95 < 100 ms during the flood, RSS < 200 MB; CPU < 5 % of one core while
following a normal log. The run layer's half (follower alone) is `benchmarks/log_flood.py`.

How latency is measured: the app runs headless (Textual's own compositor renders every frame; only the terminal
write is skipped) at 120×40 on the Run view. Every 100 ms a key is posted as a terminal would deliver it; its
binding changes the title line. Latency = from posting the key to the end of the first frame painted after the
binding ran (the app's `_display` hook, timed per frame). A stalled event loop shows up directly in this number.

    python benchmarks/ui_log_flood.py [LINES]      # prints JSON; exit 1 when a target is missed
"""
from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textual.binding import Binding  # noqa: E402

from lora_tui.config.app_settings import AppSettings  # noqa: E402
from lora_tui.run.jobs import start_job  # noqa: E402
from lora_tui.ui.app import LoraApp  # noqa: E402

GENERATOR = REPO / "benchmarks" / "log_flood.py"
KEY_EVERY_S = 0.1


class BenchApp(LoraApp):
    """The app plus one key whose only effect is a visible change, timed from delivery to the painted frame."""

    BINDINGS = [*LoraApp.BINDINGS, Binding("f12", "bench_key", "bench", priority=True, show=False)]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.posted_at = 0.0
        self.handled = False
        self.latencies: list[float] = []
        self.frames = 0
        self._count = 0

    def action_bench_key(self) -> None:
        self._count += 1
        self.query_one("#title-bar").update(f"bench key {self._count}")
        self.handled = True

    def frame_painted(self) -> None:
        self.frames += 1
        if self.handled:
            self.handled = False
            self.latencies.append(time.perf_counter() - self.posted_at)


def _hook_frames(app: BenchApp) -> None:
    original = app._display

    def display(screen, renderable):
        original(screen, renderable)
        if renderable is not None:
            app.frame_painted()

    app._display = display  # type: ignore[method-assign]


async def flood(lines: int) -> dict:
    import psutil

    state = Path(tempfile.mkdtemp(prefix="ui_flood_"))
    settings = AppSettings(state_dir=state / "state", presets_dir=state / "presets", cache_dir=state / "cache")
    proc = psutil.Process()
    job = start_job([sys.executable, str(GENERATOR), "generate", str(lines)], settings=settings)
    app = BenchApp(settings=settings, attach_job=job)
    peak_rss = proc.memory_info().rss
    t0 = time.monotonic()
    async with app.run_test(size=(120, 40)) as pilot:
        _hook_frames(app)
        while app.job_running or app.job is None:
            if not app.handled:
                app.posted_at = time.perf_counter()
                app.simulate_key("f12")
            await asyncio.sleep(KEY_EVERY_S)
            peak_rss = max(peak_rss, proc.memory_info().rss)
            if time.monotonic() - t0 > 600:
                raise RuntimeError("flood did not end within 600 s")
        await pilot.pause()
        runview = app.query_one("#run")
        shown, prog = runview.lines_shown, runview.progress
    total = time.monotonic() - t0
    lat = sorted(app.latencies)
    return {
        "lines": lines, "seconds": round(total, 2), "lines_shown": shown,
        "final_step": prog.step, "total": prog.total,
        "keys": len(lat), "key_to_screen_ms": {
            "median": round(1000 * statistics.median(lat), 1),
            "p95": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1), "max": round(1000 * lat[-1], 1)},
        "frames": app.frames, "peak_rss_mb": round(peak_rss / 2**20, 1),
    }


async def normal(seconds: float = 15.0, rate: float = 40.0) -> dict:
    import psutil

    state = Path(tempfile.mkdtemp(prefix="ui_normal_"))
    settings = AppSettings(state_dir=state / "state", presets_dir=state / "presets", cache_dir=state / "cache")
    job = start_job([sys.executable, str(GENERATOR), "generate", str(int(seconds * rate)), str(rate)],
                    settings=settings)
    app = LoraApp(settings=settings, attach_job=job)
    proc = psutil.Process()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(1.0)  # start-up and the first plan are not part of "following"
        c0, t0 = proc.cpu_times(), time.monotonic()
        while app.job_running:
            await asyncio.sleep(0.2)
        c1, t1 = proc.cpu_times(), time.monotonic()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {"seconds": round(t1 - t0, 2), "lines": int(seconds * rate),
            "app_cpu_percent_of_one_core": round(100 * cpu / (t1 - t0), 2)}


def main() -> int:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    result = {"flood": asyncio.run(flood(lines)), "normal": asyncio.run(normal())}
    fl = result["flood"]
    result["ok"] = (fl["key_to_screen_ms"]["p95"] < 100 and fl["peak_rss_mb"] < 200
                    and result["normal"]["app_cpu_percent_of_one_core"] < 5)
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
