"""Opt-in memory diagnostics: which lines of the sensor hold memory that keeps growing.

Why: a sensor that runs for weeks must keep its memory flat; when a soak shows RSS
growing, the question is which structure grows. With `OISP_TRACEMALLOC=1` in the
environment, `record` starts Python's tracemalloc and appends a report to the file named
by `OISP_TRACEMALLOC_OUT` (default /tmp/oisp-tracemalloc-PID.txt) on every SIGUSR2 and
at exit. Each report lists the memory still allocated, by source line, that grew the most
since the first report (send the first SIGUSR2 after warm-up: the later ones then show
only steady-state growth) and since the previous report. `OISP_TRACEMALLOC_FRAMES=N`
(default 1) keeps N frames per allocation and adds the top call chains.

tracemalloc slows allocation (about 2x CPU in the decode thread) and its own tables take
memory: a diagnostic to run on purpose, never on by default.
"""

from __future__ import annotations

import atexit
import contextlib
import linecache
import os
import signal
import threading
import time
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from .guard import read_rss_bytes

ENV = "OISP_TRACEMALLOC"
OUT_ENV = "OISP_TRACEMALLOC_OUT"
FRAMES_ENV = "OISP_TRACEMALLOC_FRAMES"
TOP = 30

# Allocations of tracemalloc itself, of these reports and of imports are noise here.
_FILTERS = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
    tracemalloc.Filter(False, linecache.__file__),  # the source lines these reports quote
)


class MemoryTrace:
    """tracemalloc snapshots compared with the first and the previous report."""

    def __init__(self, out: Path, frames: int = 1, top: int = TOP) -> None:
        self.out = out
        self.frames = max(1, frames)
        self.top = top
        self.reports = 0
        self._first: tracemalloc.Snapshot | None = None
        self._previous: tracemalloc.Snapshot | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
        self._previous = self._snapshot()

    def _snapshot(self) -> tracemalloc.Snapshot:
        return tracemalloc.take_snapshot().filter_traces(_FILTERS)

    def report(self, reason: str) -> None:
        """Append one report to the output file (never raises: a diagnostic must not
        take the sensor down)."""
        with self._lock:
            try:
                self._report(reason)
            except Exception as exc:  # e.g. an unwritable path
                with contextlib.suppress(OSError):
                    os.write(2, f"oisp-sensor: tracemalloc report failed: {exc}\n".encode())

    def _report(self, reason: str) -> None:
        if not tracemalloc.is_tracing():
            return
        snap = self._snapshot()
        current, peak = tracemalloc.get_traced_memory()
        self.reports += 1
        mb = 1024 * 1024
        lines = [
            f"=== report {self.reports} ({reason}) at {time.strftime('%Y-%m-%d %H:%M:%S')}, pid {os.getpid()}",
            f"rss {read_rss_bytes() / mb:.1f} MB; traced {current / mb:.1f} MB (peak {peak / mb:.1f} MB, "
            f"tracemalloc's own {tracemalloc.get_tracemalloc_memory() / mb:.1f} MB)",
        ]
        sections = [("since the previous report", self._previous)]
        if self._first is not None:
            sections.insert(0, ("since the first report", self._first))
        for title, base in sections:
            if base is None:
                continue
            stats = snap.compare_to(base, "lineno")
            total = sum(s.size_diff for s in stats)
            lines.append(f"--- growth {title}: {total / mb:+.2f} MB in all; top {self.top} lines")
            lines.extend(_stat_line(s) for s in stats[: self.top])
            if self.frames > 1:
                lines.append(f"--- call chains {title}: top 10")
                for s in snap.compare_to(base, "traceback")[:10]:
                    lines.append(_stat_line(s))
                    lines.extend(f"      {line}" for line in s.traceback.format(limit=self.frames))
        lines.append(f"--- largest now: top {self.top} lines")
        for s in snap.statistics("lineno")[: self.top]:
            frame = s.traceback[0]
            lines.append(f"{s.size / 1024:10.1f} KiB {s.count:9d} blocks  {_where(frame)}")
        if self._first is None:
            self._first = snap
        self._previous = snap
        with self.out.open("a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n\n")


def _where(frame: tracemalloc.Frame) -> str:
    code = linecache.getline(frame.filename, frame.lineno).strip()
    return f"{frame.filename}:{frame.lineno}  {code[:100]}"


def _stat_line(s: tracemalloc.StatisticDiff) -> str:
    return (
        f"{s.size_diff / 1024:+10.1f} KiB {s.count_diff:+9d} blocks "
        f"(now {s.size / 1024:.1f} KiB)  {_where(s.traceback[0])}"
    )


def install_from_env(environ: Mapping[str, str] = os.environ) -> MemoryTrace | None:
    """Start the trace when OISP_TRACEMALLOC is set (not "", "0"); reports on SIGUSR2 and
    at exit. Call from the main thread (signal handlers)."""
    if environ.get(ENV, "") in ("", "0"):
        return None
    out = Path(environ.get(OUT_ENV) or f"/tmp/oisp-tracemalloc-{os.getpid()}.txt")
    try:
        frames = int(environ.get(FRAMES_ENV) or 1)
    except ValueError:
        frames = 1
    trace = MemoryTrace(out, frames)
    trace.start()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        # Not in the handler itself: a snapshot of a large heap takes a while.
        threading.Thread(target=trace.report, args=("SIGUSR2",), name="oisp-tracemalloc", daemon=True).start()

    signal.signal(signal.SIGUSR2, on_signal)
    atexit.register(trace.report, "exit")
    os.write(2, f"oisp-sensor: tracemalloc on ({frames} frames); SIGUSR2 or exit -> {out}\n".encode())
    return trace
