"""Self-protection: the sensor's own memory, CPU and event-rate ceilings ([limits]).

A sensor runs as root on every node; it must never become the problem. The guard
measures the sensor process itself (RSS and CPU from /proc/self, once per
`check_interval_s`) and the rate of events it emits, and sets a degradation level.
Each level sheds more work, in a fixed order, and every piece shed is counted
(`status`, /metrics, the shutdown summary):

  0 normal
  1 shed_detail    ai.streaming_chunk events sampled (one in `chunk_sample`), file.read
                   and file.write events skipped (the ai.response still has the whole
                   answer; file.open/close still say which files were touched)
  2 metadata_only  also: bodies of new HTTP messages are not kept or parsed; their
                   ai.request/ai.response events carry provider, endpoint, status, sizes
                   and timing only, marked confidence.completeness "metadata_only" with
                   the reason "sensor_overload"; no streaming chunks at all
  3 drop           also: process.*, network.* and file.* events are dropped (the process
                   cache is still kept up to date), and when the CPU stays over its
                   ceiling the decode thread is paused part of the time, so raw records
                   pile up in the bounded queue and past it are dropped (counted)

Independently of the level, the raw-record queue between the ring-buffer poll thread
and the decode thread is bounded (`queue_mb`): past it, data records are dropped (and
control records past twice that), counted. The kernel never waits for the sensor: a
full ring buffer is a counted loss in the kernel. An `max_events_per_second` token
bucket caps the events emitted; low-priority events are refused first (they may only
use the upper half of the bucket), AI call events last.

Levels go up as soon as a signal crosses its threshold and come down one step at a
time after `calm_checks` quiet checks (hysteresis: no flapping at the boundary).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

NORMAL, SHED_DETAIL, METADATA_ONLY, DROP = 0, 1, 2, 3
LEVEL_NAMES = ("normal", "shed_detail", "metadata_only", "drop")

# Share of the memory ceiling at which each level starts (RSS / max_memory_mb).
_MEMORY_STEPS = ((0.95, DROP), (0.85, METADATA_ONLY), (0.70, SHED_DETAIL))
# CPU and event rate come down when under this share of their ceiling.
_CALM_SHARE = 0.7

DETAIL_TYPES = frozenset({"file.read", "file.write"})
CHUNK_TYPE = "ai.streaming_chunk"
# Kept at every level (only the event-rate ceiling can refuse them, and last).
_HIGH_PREFIXES = ("ai.", "agent.")

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


def read_rss_bytes(pid: str = "self") -> int:
    """Resident set size of a process (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def read_cpu_seconds(pid: str = "self") -> float:
    """User + system CPU time of a process, all threads (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _malloc_trim() -> None:
    """Give freed heap pages back to the kernel (glibc keeps them otherwise, and RSS,
    which the ceiling is about, would not come down after a burst)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class GuardCounters:
    """Everything the guard shed; all monotonic counts."""

    streaming_chunks_skipped: int = 0
    file_detail_skipped: int = 0
    metadata_only_events: int = 0  # ai.* events whose bodies were not kept (sensor_overload)
    events_dropped: dict[str, int] = field(default_factory=dict)  # level 3, by event type
    rate_limited: dict[str, int] = field(default_factory=dict)  # max_events_per_second, by type
    records_dropped: int = 0  # raw records dropped at the full queue
    record_bytes_dropped: int = 0
    throttled_s: float = 0.0  # time the decode thread was paused for the CPU ceiling
    level_changes: int = 0


class Guard:
    """Decides the degradation level and admits or refuses each event.

    `admit` and `note_*` run in the decode thread; `check` runs in the guard's own
    thread (`start`) or is called directly by tests. Level changes are single int
    assignments, read without a lock.
    """

    def __init__(
        self,
        max_memory_mb: float = 0,
        max_cpu_percent: float = 0,
        max_events_per_second: float = 0,
        queue_bytes: int = 64 * 1024 * 1024,
        check_interval_s: float = 1.0,
        chunk_sample: int = 10,
        calm_checks: int = 3,
        pid: str = "self",
    ) -> None:
        self.max_memory = int(max_memory_mb * 1024 * 1024)
        self.max_cpu = float(max_cpu_percent)
        self.max_eps = float(max_events_per_second)
        self.queue_capacity = max(1, int(queue_bytes))
        self.interval = check_interval_s
        self.chunk_sample = max(1, chunk_sample)
        self.calm_checks = max(1, calm_checks)
        self.pid = pid
        self.level = NORMAL
        self.reason = ""
        self.throttle = 0.0  # share of the decode thread's time spent paused (level 3 + CPU)
        self.counters = GuardCounters()
        self.rss = read_rss_bytes(pid)
        self.peak_rss = self.rss
        self.cpu_percent = 0.0
        self.events_per_second = 0.0
        self.queued_bytes = 0
        self.peak_queued_bytes = 0
        self._queue_lock = threading.Lock()
        self._events = 0  # events offered to admit() (before any refusal)
        self._chunk_seq = 0
        self._calm = 0
        self._seconds_at = [0.0, 0.0, 0.0, 0.0]
        self._level_since = time.monotonic()
        self._last_check = time.monotonic()
        self._last_cpu = read_cpu_seconds(pid)
        self._last_events = 0
        self._tokens = self.max_eps
        self._tokens_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, limits: Any) -> Guard:
        return cls(
            max_memory_mb=limits.max_memory_mb,
            max_cpu_percent=limits.max_cpu_percent,
            max_events_per_second=limits.max_events_per_second,
            queue_bytes=limits.queue_mb * 1024 * 1024,
            check_interval_s=limits.check_interval_s,
            chunk_sample=limits.chunk_sample,
        )

    # ---- the level ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="oisp-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the guard failing must not take the sensor down
                log.exception("self-protection check failed")

    def check(self) -> int:
        """Measure, then set the level. Returns it."""
        now = time.monotonic()
        elapsed = max(1e-3, now - self._last_check)
        cpu = read_cpu_seconds(self.pid)
        self.cpu_percent = 100.0 * (cpu - self._last_cpu) / elapsed
        self._last_cpu, self._last_check = cpu, now
        events = self._events
        self.events_per_second = (events - self._last_events) / elapsed
        self._last_events = events
        self.rss = read_rss_bytes(self.pid)
        self.peak_rss = max(self.peak_rss, self.rss)

        target, reason = NORMAL, ""
        if self.max_memory and self.rss:
            share = self.rss / self.max_memory
            for threshold, level in _MEMORY_STEPS:
                if share >= threshold:
                    target, reason = level, "memory"
                    break
        cpu_over = bool(self.max_cpu) and self.cpu_percent > self.max_cpu
        if cpu_over and self.level + 1 > target:
            # CPU is the sensor's own work: one more step each check while over.
            target, reason = min(DROP, self.level + 1), "cpu"
        rate_over = bool(self.max_eps) and self.events_per_second > self.max_eps
        if rate_over and target < SHED_DETAIL:
            target, reason = SHED_DETAIL, "event_rate"
        # Throttling the decode thread is the last resort for the CPU ceiling.
        if cpu_over and self.level == DROP:
            self.throttle = min(0.9, self.throttle + 0.15)
        elif not cpu_over or self.cpu_percent < self.max_cpu * _CALM_SHARE:
            self.throttle = max(0.0, self.throttle - 0.15)

        calm = (
            target < self.level
            and not cpu_over
            and (not self.max_cpu or self.cpu_percent < self.max_cpu * _CALM_SHARE)
            and (not self.max_eps or self.events_per_second < self.max_eps * _CALM_SHARE)
        )
        if target > self.level:
            self._set_level(target, reason)
            self._calm = 0
        elif calm:
            self._calm += 1
            if self._calm >= self.calm_checks:
                self._calm = 0
                self._set_level(self.level - 1, self.reason if self.level - 1 > NORMAL else "")
        else:
            self._calm = 0
        return self.level

    def _set_level(self, level: int, reason: str) -> None:
        now = time.monotonic()
        self._seconds_at[self.level] += now - self._level_since
        self._level_since = now
        old, self.level, self.reason = self.level, level, reason
        self.counters.level_changes += 1
        log_fn = log.warning if level > old else log.info
        log_fn(
            "self-protection: %s -> %s (%s; rss %.0f MB, cpu %.0f%%, %.0f events/s)",
            LEVEL_NAMES[old], LEVEL_NAMES[level], reason or "calm",
            self.rss / 1048576, self.cpu_percent, self.events_per_second,
        )  # fmt: skip
        if level >= METADATA_ONLY and reason == "memory":
            gc.collect()
            _malloc_trim()

    # ---- events ---------------------------------------------------------------------

    def admit(self, event_type: str) -> bool:
        """Whether an event of this type is emitted now (refusals are counted)."""
        self._events += 1
        level = self.level
        counters = self.counters
        if level:
            if event_type == CHUNK_TYPE:
                self._chunk_seq += 1
                if level >= METADATA_ONLY or self._chunk_seq % self.chunk_sample:
                    counters.streaming_chunks_skipped += 1
                    return False
            elif event_type in DETAIL_TYPES:
                counters.file_detail_skipped += 1
                return False
            elif level >= DROP and not event_type.startswith(_HIGH_PREFIXES):
                counters.events_dropped[event_type] = counters.events_dropped.get(event_type, 0) + 1
                return False
        if self.max_eps:
            now = time.monotonic()
            tokens = min(self.max_eps, self._tokens + (now - self._tokens_at) * self.max_eps)
            self._tokens_at = now
            # Low-priority events may only use the upper half of the bucket: AI call
            # events still get through when a flood of other events empties it.
            floor = 1.0 if event_type.startswith(_HIGH_PREFIXES) else max(1.0, self.max_eps / 2)
            if tokens < floor:
                self._tokens = tokens
                counters.rate_limited[event_type] = counters.rate_limited.get(event_type, 0) + 1
                return False
            self._tokens = tokens - 1.0
        return True

    @property
    def shed_bodies(self) -> bool:
        return self.level >= METADATA_ONLY

    def pause_for(self, busy_s: float) -> float:
        """Seconds the decode thread should pause after `busy_s` of work (CPU ceiling)."""
        throttle = self.throttle
        if throttle <= 0.0:
            return 0.0
        pause = busy_s * throttle / (1.0 - throttle)
        self.counters.throttled_s += pause
        return pause

    # ---- the raw-record queue -------------------------------------------------------

    def enqueue(self, batch: list[bytes], is_data: Any) -> list[bytes]:
        """A batch from the poll thread, trimmed to what the queue has room for."""
        size = sum(len(b) for b in batch)
        with self._queue_lock:
            room = self.queue_capacity - self.queued_bytes
            # An empty queue takes any batch: a batch is at most what the kernel's ring
            # holds, already in memory; dropping it would lose records for nothing.
            if size > room and self.queued_bytes:
                batch, size = self._trim(batch, is_data, room)
            self.queued_bytes += size
            if self.queued_bytes > self.peak_queued_bytes:
                self.peak_queued_bytes = self.queued_bytes
        return batch

    def _trim(self, batch: list[bytes], is_data: Any, room: int) -> tuple[list[bytes], int]:
        """Drop data records first; control records (exec, exit, close: small, and what
        keeps the decoder's tables right) only past twice the capacity."""
        control_room = room + self.queue_capacity
        kept: list[bytes] = []
        size = dropped = dropped_bytes = 0
        for buf in batch:
            n = len(buf)
            limit = room if is_data(buf) else control_room
            if size + n <= limit:
                kept.append(buf)
                size += n
            else:
                dropped += 1
                dropped_bytes += n
        self.counters.records_dropped += dropped
        self.counters.record_bytes_dropped += dropped_bytes
        return kept, size

    def dequeued(self, batch: list[bytes]) -> None:
        size = sum(len(b) for b in batch)
        with self._queue_lock:
            self.queued_bytes = max(0, self.queued_bytes - size)

    # ---- reporting ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        counters = self.counters
        seconds = list(self._seconds_at)
        seconds[self.level] += time.monotonic() - self._level_since
        return {
            "level": self.level,
            "level_name": LEVEL_NAMES[self.level],
            "reason": self.reason,
            "rss_bytes": self.rss,
            "peak_rss_bytes": self.peak_rss,
            "cpu_percent": round(self.cpu_percent, 1),
            "events_per_second": round(self.events_per_second, 1),
            "throttle": round(self.throttle, 2),
            "limits": {
                "max_memory_mb": self.max_memory // (1024 * 1024),
                "max_cpu_percent": self.max_cpu,
                "max_events_per_second": self.max_eps,
                "queue_mb": round(self.queue_capacity / 1048576, 1),
            },
            "queue_bytes": self.queued_bytes,
            "peak_queue_bytes": self.peak_queued_bytes,
            "seconds_at_level": {name: round(s, 1) for name, s in zip(LEVEL_NAMES, seconds, strict=True)},
            "streaming_chunks_skipped": counters.streaming_chunks_skipped,
            "file_detail_skipped": counters.file_detail_skipped,
            "metadata_only_events": counters.metadata_only_events,
            "events_dropped": dict(counters.events_dropped),
            "rate_limited": dict(counters.rate_limited),
            "records_dropped": counters.records_dropped,
            "record_bytes_dropped": counters.record_bytes_dropped,
            "throttled_s": round(counters.throttled_s, 2),
            "level_changes": counters.level_changes,
        }


def shed_total(guard: dict[str, Any]) -> int:
    """Every event or record the guard kept out of the output, in one number."""
    return (
        guard.get("streaming_chunks_skipped", 0)
        + guard.get("file_detail_skipped", 0)
        + sum((guard.get("events_dropped") or {}).values())
        + sum((guard.get("rate_limited") or {}).values())
        + guard.get("records_dropped", 0)
    )


def summary_text(guard: dict[str, Any]) -> str:
    """One line for `status` and the shutdown summary ("" when nothing happened)."""
    if not guard:
        return ""
    dropped = sum((guard.get("events_dropped") or {}).values())
    limited = sum((guard.get("rate_limited") or {}).values())
    mb = 1024 * 1024
    return (
        f"self-protection: {guard.get('level_name')}"
        + (f" ({guard['reason']})" if guard.get("reason") else "")
        + f", rss {guard.get('rss_bytes', 0) / mb:.0f} MB (peak {guard.get('peak_rss_bytes', 0) / mb:.0f}"
        + (
            f", max {guard['limits']['max_memory_mb']}"
            if guard.get("limits", {}).get("max_memory_mb")
            else ""
        )
        + f"), cpu {guard.get('cpu_percent', 0):.0f}%; shed: "
        f"{guard.get('streaming_chunks_skipped', 0)} chunks, {guard.get('file_detail_skipped', 0)} file "
        f"read/write, {guard.get('metadata_only_events', 0)} metadata-only, {dropped} dropped, "
        f"{limited} rate-limited, {guard.get('records_dropped', 0)} records"
    )


def metric_families(guard: dict[str, Any]) -> Iterator[Any]:
    """Prometheus families for /metrics (see export.metrics.SensorHealth)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    if not guard:
        return
    yield GaugeMetricFamily(
        "oisp_sensor_rss_bytes", "Resident memory of the sensor", guard.get("rss_bytes", 0)
    )
    yield GaugeMetricFamily(
        "oisp_sensor_cpu_percent", "CPU of the sensor, percent of one core", guard.get("cpu_percent", 0)
    )
    yield GaugeMetricFamily(
        "oisp_sensor_degradation_level",
        "Self-protection level: 0 normal, 1 shed detail, 2 metadata only, 3 drop",
        guard.get("level", 0),
    )
    yield GaugeMetricFamily(
        "oisp_sensor_queue_bytes", "Raw records waiting to be decoded", guard.get("queue_bytes", 0)
    )
    shed = CounterMetricFamily("oisp_sensor_shed", "Work shed by self-protection, by kind", labels=["kind"])
    for kind in (
        "streaming_chunks_skipped",
        "file_detail_skipped",
        "metadata_only_events",
        "records_dropped",
    ):
        shed.add_metric([kind], guard.get(kind, 0))
    yield shed
    dropped = CounterMetricFamily(
        "oisp_sensor_events_dropped", "Events dropped by self-protection", labels=["event_type", "reason"]
    )
    for reason, key in (("overload", "events_dropped"), ("rate_limit", "rate_limited")):
        for event_type, count in sorted((guard.get(key) or {}).items()):
            dropped.add_metric([event_type, reason], count)
    yield dropped
