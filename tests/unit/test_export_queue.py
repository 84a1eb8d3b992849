"""QueuedExporter: batching by size and interval, oldest-first drops, bounded shutdown,
and every submitted event counted exactly once."""

from __future__ import annotations

import threading
import time
from typing import Any

from oisp_sensor.export.base import QueuedExporter


class Recorder(QueuedExporter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("rec", **kwargs)
        self.batches: list[list[int]] = []
        self.block = threading.Event()
        self.fail = False
        self.ticks = 0

    def deliver(self, batch: list[dict[str, Any]]) -> None:
        if self.block.is_set():
            time.sleep(30)  # a destination that hangs
        if self.fail:
            raise ConnectionError("destination\nrefused")
        self.batches.append([e["n"] for e in batch])

    def tick(self) -> None:
        self.ticks += 1


def ev(n: int) -> dict[str, Any]:
    return {"n": n}


def test_batches_by_size_then_by_interval() -> None:
    rec = Recorder(batch_size=10, linger_s=0.3)
    rec.start()
    rec.submit_many([ev(i) for i in range(25)])
    time.sleep(0.1)
    assert rec.batches == [list(range(10)), list(range(10, 20))]  # full batches at once
    time.sleep(0.35)
    assert rec.batches[-1] == list(range(20, 25))  # the rest after the interval
    rec.close(2)
    s = rec.stats()
    assert (s.events_submitted, s.events_exported, s.events_dropped) == (25, 25, 0)


def test_flush_does_not_wait_for_the_interval() -> None:
    rec = Recorder(batch_size=100, linger_s=60)
    rec.start()
    rec.submit_many([ev(i) for i in range(3)])
    started = time.monotonic()
    assert rec.flush(2)
    assert time.monotonic() - started < 0.5
    assert rec.batches == [[0, 1, 2]]
    rec.close(1)


def test_full_queue_drops_oldest_and_counts() -> None:
    rec = Recorder(queue_size=10)
    rec.submit_many([ev(i) for i in range(15)])  # not started: nothing drains
    s = rec.stats()
    assert s.events_dropped == 5 and s.queue_depth == 10 and s.status == "degraded"
    rec.start()
    rec.close(2)
    assert rec.batches == [list(range(5, 15))]  # the newest were kept


def test_errors_are_counted_one_line() -> None:
    rec = Recorder()
    rec.fail = True
    rec.start()
    rec.submit_many([ev(i) for i in range(4)])
    rec.close(2)
    s = rec.stats()
    assert s.events_dropped == 4 and s.errors == 1
    assert s.last_error == "destination refused"


def test_hanging_destination_close_is_bounded_and_counts_everything() -> None:
    rec = Recorder(batch_size=5)
    rec.block.set()
    rec.start()
    rec.submit_many([ev(i) for i in range(12)])
    time.sleep(0.1)
    started = time.monotonic()
    rec.close(0.5)
    assert time.monotonic() - started < 1.0
    s = rec.stats()
    assert s.events_exported == 0
    assert s.events_dropped == 12  # 5 in flight + 7 queued
    assert s.status == "closed"


def test_ticks_happen_under_a_steady_stream() -> None:
    class Ticking(Recorder):
        tick_interval_s = 0.05

    rec = Ticking()
    rec.start()
    end = time.monotonic() + 0.4
    while time.monotonic() < end:
        rec.submit(ev(1))
        time.sleep(0.002)
    rec.close(1)
    assert rec.ticks >= 4


def test_disk_full_jsonl_is_counted_and_one_line(tmp_path: Any) -> None:
    from oisp_sensor.config import JsonlExport
    from oisp_sensor.export.jsonl import JsonlExporter

    # /dev/full: opens fine, every write fails with ENOSPC, as a full disk does
    exp = JsonlExporter(JsonlExport(path="/dev/full"))
    exp.start()
    exp.submit_many([{"n": i, "pad": "x" * 2000} for i in range(10)])
    exp.close(2)
    s = exp.stats()
    assert s.events_exported == 0 and s.events_dropped == 10
    assert s.last_error == "cannot write events to /dev/full: No space left on device"
