"""`oisp-sensor replay`: a recorded JSONL file served by the dashboard as if live.

The events go through the same exporters as a live capture's (the dashboard's store and
the WebSocket stream, on the same web server), at the pace they were recorded (`speed`
times faster; gaps longer than `MAX_GAP_S` are shortened to it) or all at once
(`instant`). The store runs in "replay" mode: /api/health says so, and stats windows
end at the latest event replayed instead of now. It serves until stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import SensorConfig
from ..export.factory import Exports, build_exporters
from .show import parse_event, read_lines
from .store import parse_timestamp

MAX_GAP_S = 5.0
_BATCH = 1024


@dataclass
class ReplayState:
    path: str
    events: int = 0
    malformed: int = 0
    done: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path, "events": self.events, "malformed": self.malformed, "done": self.done}


def build(config: SensorConfig) -> Exports:
    """The dashboard and the stream over the config's [export.websocket] host, port and token
    (no other exporter: a replay writes nothing)."""
    exports = build_exporters(config, dashboard=True)
    assert exports.store is not None
    exports.store.mode = "replay"
    return exports


def attach_state(exports: Exports, state: ReplayState) -> None:
    parts = exports.health_parts

    def health() -> dict[str, Any]:
        out = parts()
        out["sensor"] = {"replay": state.as_dict()}
        return out

    assert exports.store is not None
    exports.store.set_health_source(health)


def feed(
    exports: Exports,
    state: ReplayState,
    speed: float,
    instant: bool,
    stop: threading.Event,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Read the file and hand its events to every exporter, paced by their timestamps."""
    batch: list[dict[str, Any]] = []
    last_ts: float | None = None
    started = time.monotonic()
    virtual = 0.0  # seconds of recording replayed so far, after speed and gap limits

    def flush() -> None:
        if batch:
            for exporter in exports.exporters:
                exporter.submit_many(list(batch))
            state.events += len(batch)
            if on_batch is not None:
                on_batch(state.events)
            batch.clear()

    for line in read_lines(state.path, follow=False):
        if stop.is_set():
            break
        if not line.strip():
            continue
        event = parse_event(line)
        if event is None:
            state.malformed += 1
            continue
        if not instant:
            ts = parse_timestamp(event.get("timestamp"))
            if ts is not None:
                if last_ts is not None and ts > last_ts:
                    virtual += min(ts - last_ts, MAX_GAP_S) / speed
                last_ts = ts if last_ts is None or ts > last_ts else last_ts
                wait = started + virtual - time.monotonic()
                if wait > 0.001:
                    flush()
                    if stop.wait(wait):
                        break
        batch.append(event)
        if len(batch) >= _BATCH:
            flush()
    flush()
    state.done = True
