"""The OISP v0.1 envelope: the one function that gives every event its final shape."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime
from typing import Any

from ulid import ULID

from .. import __version__
from .events import OISP_VERSION, SensorEvent


class Clock:
    """Converts the kernel's CLOCK_MONOTONIC timestamps into wall-clock time.

    The offset is measured once at start (and stored in raw capture files, so a replay
    gives the timestamps of the original run).
    """

    def __init__(self, offset_ns: int | None = None) -> None:
        self.offset_ns = offset_ns if offset_ns is not None else time.time_ns() - time.monotonic_ns()
        self._random = random.Random(os.urandom(16))

    def wall_ns(self, mono_ns: int) -> int:
        return mono_ns + self.offset_ns

    def timestamp(self, mono_ns: int) -> str:
        """RFC 3339 with microseconds in UTC: 2025-01-15T10:30:00.123456Z."""
        wall = self.wall_ns(mono_ns)
        seconds, nanos = divmod(wall, 1_000_000_000)
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"

    def new_event_id(self, mono_ns: int) -> str:
        """A ULID whose time part is the event's capture time (so ids sort by time).

        The 80 random bits come from a PRNG seeded once from the OS: ids need to be
        unique, not secret, and a getrandom() call per event costs more than the rest.
        """
        millis = self.wall_ns(mono_ns) // 1_000_000
        raw = millis.to_bytes(6, "big") + self._random.getrandbits(80).to_bytes(10, "big")
        return str(ULID.from_bytes(raw))


def envelope(
    event: SensorEvent,
    clock: Clock,
    host: dict[str, Any],
    actor: dict[str, Any],
    process: dict[str, Any],
    app: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The event as exported: field order follows the Event Schema seed."""
    out: dict[str, Any] = {
        "oisp_version": OISP_VERSION,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "timestamp": clock.timestamp(event.ts_ns),
        "host": host,
        "actor": actor,
        "process": process,
    }
    if app:
        out["app"] = app
    out["source"] = {
        "collector": "oisp-sensor",
        "collector_version": __version__,
        "capture_method": event.capture_method,
        "capture_point": event.capture_point,
    }
    conf = event.confidence
    out["confidence"] = {"level": conf.level, "completeness": conf.completeness, "reasons": conf.reasons}
    out["data"] = event.data
    return out
