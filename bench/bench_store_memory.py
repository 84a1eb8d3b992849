"""Memory of the dashboard's event store per kept event (issue 9, soak: what a full
`[ui] max_events` store costs).

Reads recorded events (a JSONL file of `record`, e.g. the soak's events.jsonl), adds the
first N to an EventStore keeping N, and reports the memory traced (tracemalloc) once the
input list is dropped: the envelopes themselves, their search texts and the store's
indexes and aggregates. As live, the events of one process share one process-context
dict. Usage: `.venv/bin/python bench/bench_store_memory.py EVENTS.jsonl [N ...]`.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from oisp_sensor.ui.store import EventStore  # noqa: E402


def measure(lines: list[bytes], n: int) -> tuple[int, int]:
    """(events kept, bytes traced) for a store keeping `n` of `lines`."""
    gc.collect()
    tracemalloc.start()
    events: list[dict[str, Any]] = [orjson.loads(line) for line in lines[:n]]
    shared: dict[bytes, Any] = {}
    for event in events:
        event["process"] = shared.setdefault(orjson.dumps(event.get("process")), event.get("process"))
    del shared
    store = EventStore(max_events=n)
    for i in range(0, len(events), 256):
        store.add_many(events[i : i + 256])
    del events
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return store.kept, traced


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    lines = [line for line in Path(sys.argv[1]).read_bytes().splitlines() if line.strip()]
    for n in [int(a) for a in sys.argv[2:]] or [10_000, 100_000]:
        kept, traced = measure(lines, n)
        print(
            f"kept {kept:,} events: {traced / 1048576:.1f} MB traced, {traced / max(1, kept):,.0f} bytes per event"
        )


if __name__ == "__main__":
    main()
