"""glibc heap settings for a sensor that runs for weeks: few malloc arenas, freed pages
given back.

Why: glibc gives each thread that allocates its own arena (up to 8 per core), and never
returns the free pages inside them to the kernel. The sensor's threads (decode,
exporters, web server) each allocate event dicts and strings that another thread frees,
so free memory piles up in arenas that each keep their high-water mark: RSS creeps up
while Python's live memory stays flat (measured in the issue 9 soak, BENCHMARKS.md).
Two arenas are plenty: the GIL already serialises the threads' allocations.
`malloc_trim(0)` every `trim_interval_s` hands free pages back (a few ms of a
background thread).

Off with `OISP_MALLOC_TUNING=0`; an explicit `MALLOC_ARENA_MAX` in the environment wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # malloc.h
ENV = "OISP_MALLOC_TUNING"


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 - glibc only (musl has no mallopt/malloc_trim)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


class HeapTuning:
    """Arena cap (once, before threads start) and a background trim thread."""

    def __init__(self, arenas: int = 2, trim_interval_s: float = 30.0) -> None:
        self.arenas = arenas
        self.trim_interval_s = trim_interval_s
        self.arena_cap_set = False
        self.trims = 0
        self.trim_seconds = 0.0
        self._libc = _libc()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self._libc is not None

    def limit_arenas(self, environ: Mapping[str, str] = os.environ) -> bool:
        if self._libc is None or "MALLOC_ARENA_MAX" in environ:
            return False
        self.arena_cap_set = bool(self._libc.mallopt(M_ARENA_MAX, self.arenas))
        return self.arena_cap_set

    def trim(self) -> None:
        if self._libc is None:
            return
        started = time.monotonic()
        self._libc.malloc_trim(0)
        self.trim_seconds += time.monotonic() - started
        self.trims += 1

    def start(self) -> None:
        if self._libc is None or self.trim_interval_s <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="oisp-heap-trim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.trim_interval_s):
            self.trim()

    def stats(self) -> dict[str, object]:
        return {
            "arena_cap": self.arenas if self.arena_cap_set else None,
            "trims": self.trims,
            "trim_ms_total": round(self.trim_seconds * 1000, 1),
        }


def tune_from_env(environ: Mapping[str, str] = os.environ) -> HeapTuning | None:
    """Call from the main thread before the sensor starts its threads."""
    if environ.get(ENV, "") == "0":
        return None
    tuning = HeapTuning()
    if not tuning.available:
        return None
    tuning.limit_arenas(environ)
    tuning.start()
    return tuning
