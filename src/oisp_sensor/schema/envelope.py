"""The OISP v0.1 envelope: the one function that gives every event its final shape."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from .events import OISP_VERSION, SensorEvent

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two Crockford base32 digits: a 128-bit ULID (with its two
# leading zero bits, 130 bits) is 13 lookups. python-ulid's encoder takes ~5 us an id,
# which a sensor emitting an event per streamed chunk feels; tests check both agree.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
# Each random byte as one Crockford digit (its low 5 bits): 16 random bytes are the 80
# random bits of a ULID's text in two C calls.
_RANDOM_DIGITS = bytes(ord(_CROCKFORD[b & 31]) for b in range(256))
_RANDOM_BATCH = 256  # random parts made at once


def ulid_text(value: int) -> str:
    """The 26-character canonical text of a 128-bit ULID value."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in range(120, -10, -10)])


class Clock:
    """Converts the kernel's CLOCK_MONOTONIC timestamps into wall-clock time.

    The offset is measured once at start (and stored in raw capture files, so a replay
    gives the timestamps of the original run).
    """

    def __init__(self, offset_ns: int | None = None) -> None:
        self.offset_ns = offset_ns if offset_ns is not None else time.time_ns() - time.monotonic_ns()
        self._random = random.Random(os.urandom(16))
        self._second = -1
        self._second_text = ""
        self._millis: tuple[int, str] = (-1, "")  # one attribute: swapped atomically
        self._random_parts: list[str] = []  # random parts made ahead, taken with pop()

    def wall_ns(self, mono_ns: int) -> int:
        return mono_ns + self.offset_ns

    def timestamp(self, mono_ns: int) -> str:
        """RFC 3339 with microseconds in UTC: 2025-01-15T10:30:00.123456Z."""
        seconds, nanos = divmod(self.wall_ns(mono_ns), 1_000_000_000)
        if seconds != self._second:  # events come in bursts: format each second once
            self._second = seconds
            self._second_text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        return f"{self._second_text}{nanos // 1000:06d}Z"

    def new_event_id(self, mono_ns: int) -> str:
        """A ULID whose time part is the event's capture time (so ids sort by time).

        The 80 random bits come from a PRNG seeded once from the OS: ids need to be
        unique, not secret, and a getrandom() call per event costs more than the rest.
        The time part (10 digits) is formatted once per millisecond, the random parts
        (16 digits) a batch at a time.
        """
        millis = ((mono_ns + self.offset_ns) // 1_000_000) & 0xFFFFFFFFFFFF
        cached = self._millis
        if millis != cached[0]:
            pairs = _PAIRS
            text = (
                pairs[millis >> 40]
                + pairs[(millis >> 30) & 1023]
                + pairs[(millis >> 20) & 1023]
                + pairs[(millis >> 10) & 1023]
                + pairs[millis & 1023]
            )
            cached = self._millis = (millis, text)
        parts = self._random_parts
        try:
            return cached[1] + parts.pop()  # list.pop is atomic: no two ids share a part
        except IndexError:
            pass
        digits = self._random.randbytes(16 * _RANDOM_BATCH).translate(_RANDOM_DIGITS).decode()
        parts = [digits[i : i + 16] for i in range(16, len(digits), 16)]
        self._random_parts = parts
        return cached[1] + digits[:16]


def envelope(
    event: SensorEvent,
    clock: Clock,
    host: dict[str, Any],
    actor: dict[str, Any],
    process: dict[str, Any],
    app: dict[str, Any] | None = None,
    web: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The event as exported: field order follows the Event Schema seed (`web`, for calls
    made from a browser page, sits next to `app` as in the seed's Web Context)."""
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
    if web:
        out["web"] = web
    source = _SOURCES.get((event.capture_method, event.capture_point))
    if source is None:
        source = _source(event.capture_method, event.capture_point)
    out["source"] = source
    conf = event.confidence
    out["confidence"] = {"level": conf.level, "completeness": conf.completeness, "reasons": conf.reasons}
    out["data"] = event.data
    return out


# The `source` object of each (capture method, capture point): a handful, shared by the
# events that have it (an event is never modified once it has its envelope).
_SOURCES: dict[tuple[str, str], dict[str, str]] = {}


def _source(method: str, point: str) -> dict[str, str]:
    source = {
        "collector": "oisp-sensor",
        "collector_version": __version__,
        "capture_method": method,
        "capture_point": point,
    }
    if len(_SOURCES) < 64:
        _SOURCES[(method, point)] = source
    return source
