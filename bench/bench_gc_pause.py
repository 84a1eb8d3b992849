"""Longest stall a capture-like thread sees while the dashboard store fills and churns.

A heartbeat thread sleeps 1 ms in a loop and records the longest gap between wake-ups
(what the ring-buffer poller would suffer) while 200,000 events go into a store that keeps
100,000, in exporter-sized batches of 256. Compared with and without the GC checkpoint
(oisp_sensor/gcpolicy.py). `.venv/bin/python bench/bench_gc_pause.py`
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ui_store import make_events
from oisp_sensor.gcpolicy import checkpoint
from oisp_sensor.ui.store import EventStore


def run(n: int, use_checkpoint: bool) -> dict[str, float]:
    checkpoint.every = 5000 if use_checkpoint else 1 << 62
    gc.unfreeze()
    gc.collect()
    events = make_events(n)
    gc.freeze()  # the generated input is not the sensor's: out of every collection
    store = EventStore(mode="replay")
    stop = threading.Event()
    gaps: list[float] = []

    def heartbeat() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = threading.Thread(target=heartbeat)
    beat.start()
    started = time.perf_counter()
    for i in range(0, n, 256):
        store.add_many(events[i : i + 256])
    elapsed = time.perf_counter() - started
    stop.set()
    beat.join()
    gaps.sort()
    return {
        "events_per_s": n / elapsed,
        "max_stall_ms": gaps[-1] * 1000,
        "p999_stall_ms": gaps[int(len(gaps) * 0.999)] * 1000,
        "stalls_over_50ms": sum(g > 0.05 for g in gaps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    for use in (False, True):
        result = run(args.events, use)
        print(
            ("checkpoint " if use else "plain      ") + "  ".join(f"{k}={v:,.1f}" for k, v in result.items())
        )


if __name__ == "__main__":
    main()
