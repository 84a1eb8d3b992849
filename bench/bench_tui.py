"""Terminal UI: how long the views take on a full store, and what a live poll costs.

    .venv/bin/python bench/bench_tui.py [--events 100000]

The store is filled with the dashboard store benchmark's events (envelopes as the
sensor exports them, 3 providers, 6 models, 40 processes). The app runs headless
(Textual's test pilot, 160x50) and each step is timed until the screen has been
redrawn: start with the timeline (its last 500 calls), the stats view, the process
tree, an exchange (Enter) and back, a filter, then live polls while 100 new calls
arrive between two polls.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ui_store import make_events
from oisp_sensor.ui.store import EventStore
from oisp_sensor.ui.tui.app import SensorTui


async def run(n: int, freeze: bool) -> dict[str, Any]:
    events = make_events(n)
    later = make_events(2000, seed=7)
    store = EventStore(mode="replay")
    store.add_many(events)
    if freeze:
        gc.freeze()  # the store's objects out of the collector's full passes
    out: dict[str, Any] = {"events": n, "calls": store.calls(limit=1)["total"]}
    app = SensorTui(store, poll_s=3600)  # polls are driven by hand below
    t0 = time.perf_counter()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.pause()
        out["start_with_timeline_ms"] = (time.perf_counter() - t0) * 1000
        out["timeline_rows"] = app.timeline.row_count

        async def timed(*keys: str) -> float:
            t = time.perf_counter()
            await pilot.press(*keys)
            await pilot.pause()
            await pilot.pause()  # the work a table defers to idle time (column widths)
            return (time.perf_counter() - t) * 1000

        out["stats_view_ms"] = await timed("s")
        out["process_view_ms"] = await timed("p")
        await timed("t")
        out["open_exchange_ms"] = await timed("enter")
        out["back_ms"] = await timed("escape")
        app.query_one("#filter").value = "provider:anthropic"  # type: ignore[attr-defined]
        await pilot.press("slash")
        out["filter_ms"] = await timed("enter")
        await timed("escape")
        polls = []
        calls = [e for e in later if e["event_type"] in ("ai.request", "ai.response")]
        for i in range(0, 2000, 200):  # ~100 new calls (request + response) per poll
            store.add_many(calls[i : i + 200])
            t = time.perf_counter()
            app.poll()
            await pilot.pause()
            polls.append((time.perf_counter() - t) * 1000)
        out["live_poll_100_calls_ms_median"] = statistics.median(polls)
        t = time.perf_counter()
        for _ in range(100):
            app.poll()  # nothing new: the common case, four times a second
        out["idle_poll_us"] = (time.perf_counter() - t) * 1e6 / 100
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once the store is filled")
    args = parser.parse_args()
    for key, value in asyncio.run(run(args.events, args.gc_freeze)).items():
        print(f"{key:34} {value:.1f}" if isinstance(value, float) else f"{key:34} {value}")


if __name__ == "__main__":
    main()
