"""The exporter interface and the threaded base every exporter builds on.

A slow or dead destination must never block capture or the other exporters: `submit`
only puts events on this exporter's bounded queue and, when the queue is full, drops
the oldest and counts them. A worker thread of its own delivers batches of up to
`batch_size` events, as soon as that many are queued or the oldest has waited
`linger_s` (the Export seed's `batch_size` / `flush_interval_ms`: "events are sent when
either threshold is reached").

Every event submitted ends up counted exactly once: exported, or dropped (queue full,
rejected by the destination, or still undelivered when the shutdown deadline passed).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# The same problem is logged again at most this often: a dead destination must not
# flood the logs, but the logs must keep showing that it is still dead.
_LOG_REPEAT_S = 30.0


@dataclass(slots=True)
class ExporterStats:
    name: str
    status: str = "ok"  # ok | degraded | failed | closed
    events_submitted: int = 0
    events_exported: int = 0
    events_dropped: int = 0  # queue full, rejected, or undeliverable at shutdown
    events_retried: int = 0  # events sent again after a failed attempt
    errors: int = 0
    last_error: str | None = None
    queue_depth: int = 0
    details: dict[str, Any] = field(default_factory=dict)  # exporter-specific (e.g. clients)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ExporterError(RuntimeError):
    """The exporter cannot start; the message is one line meant for the user."""


class Exporter(ABC):
    """start() once, submit() from the pipeline thread, flush()/close() at shutdown."""

    name: str = "exporter"

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def submit(self, event: dict[str, Any]) -> None: ...

    def submit_many(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.submit(event)

    @abstractmethod
    def flush(self, timeout: float) -> bool: ...

    @abstractmethod
    def close(self, timeout: float) -> None: ...

    @abstractmethod
    def stats(self) -> ExporterStats: ...


def one_line(exc: BaseException) -> str:
    """An exception as one short line for stats and logs (never a traceback)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


class QueuedExporter(Exporter):
    """Bounded queue + worker thread; subclasses implement `deliver(batch)`.

    The pipeline hands over events in batches (`submit_many`), so the worker wakes once
    per batch, not per event. When the queue is full the OLDEST events are dropped and
    counted (the Export documentation's backpressure rule): fresh events matter more.
    """

    # Seconds between calls of `tick()` while the worker is idle (0: never).
    tick_interval_s: float = 0.0

    def __init__(
        self, name: str, queue_size: int = 100_000, batch_size: int = 512, linger_s: float = 0.0
    ) -> None:
        self.name = name
        self._capacity = queue_size
        self._items: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._inflight = 0  # taken by the worker, not yet delivered
        self._worker_waiting = False
        self._closing = False
        self._abandoned = False  # the shutdown deadline passed while a batch was in flight
        self._flush_requests = 0
        self._batch_size = max(1, batch_size)
        self._linger_s = max(0.0, linger_s)
        self._oldest_at = 0.0  # monotonic time the oldest queued event arrived
        self._next_tick = time.monotonic() + self.tick_interval_s
        self._stats = ExporterStats(name=name)
        self._thread: threading.Thread | None = None
        # Set when shutting down: retries and backoff waits give up at once.
        self.abort = threading.Event()
        self.deadline = 0.0  # monotonic shutdown deadline (0: not shutting down)
        self._last_logged: tuple[str, float] = ("", 0.0)
        self._drops_logged_at = 0.0

    # -- subclass API --
    def open(self) -> None:
        """Connect / open the destination; raise ExporterError to refuse to start."""

    @abstractmethod
    def deliver(self, batch: list[dict[str, Any]]) -> int | None:
        """Send a batch. Return None when all of it was delivered, or the number counted
        as exported now (an asynchronous client counts the rest itself through
        `count_exported` / `count_failed`). Raise to report the whole batch as failed."""

    def drain(self, timeout: float) -> bool:
        """Wait for deliveries the client library still holds (after the queue is empty)."""
        return True

    def tick(self) -> None:
        """Periodic work in the worker thread (expiring state), every `tick_interval_s`."""

    def shutdown(self) -> None:
        """Release the destination (called in the worker thread after the last batch)."""

    def undelivered_on_abandon(self, inflight: int) -> int:
        """Events still undelivered when the shutdown deadline passed with the worker busy
        (counted as dropped): by default the batch in flight."""
        return inflight

    def remaining(self, default: float = 10.0) -> float:
        """Seconds left before the shutdown deadline (`default` when not shutting down)."""
        if not self.deadline:
            return default
        return max(0.0, self.deadline - time.monotonic())

    # -- accounting, usable from any thread (client callbacks) --
    def count_exported(self, n: int) -> None:
        with self._cond:
            if self._abandoned:
                return
            self._stats.events_exported += n
            if self._stats.status == "degraded" and len(self._items) < self._capacity // 2:
                self._stats.status = "ok"
                log.info("%s exporter: delivering again", self.name)

    def count_failed(self, n: int, error: str) -> None:
        """`n` events could not be delivered (0: an error that lost nothing, e.g. a retry)."""
        with self._cond:
            if self._abandoned:
                return
            self._stats.events_dropped += n
            self.note_error(error)

    def count_retried(self, n: int) -> None:
        with self._cond:
            self._stats.events_retried += n

    def note_error(self, error: str) -> None:
        """Record an error (status degraded); logged once per distinct message per 30 s."""
        self._stats.errors += 1
        self._stats.last_error = error
        if self._stats.status in ("ok", "degraded"):
            self._stats.status = "degraded"
        now = time.monotonic()
        last, at = self._last_logged
        if error != last or now - at > _LOG_REPEAT_S:
            self._last_logged = (error, now)
            log.warning("%s exporter: %s", self.name, error)

    # -- Exporter --
    def start(self) -> None:
        self.open()
        self._thread = threading.Thread(target=self._run, name=f"oisp-export-{self.name}", daemon=True)
        self._thread.start()

    def submit(self, event: dict[str, Any]) -> None:
        self.submit_many([event])

    def submit_many(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        with self._cond:
            self._stats.events_submitted += len(events)
            was_empty = not self._items
            if was_empty:
                self._oldest_at = time.monotonic()
            self._items.extend(events)
            overflow = len(self._items) - self._capacity
            if overflow > 0:
                for _ in range(overflow):
                    self._items.popleft()
                self._stats.events_dropped += overflow
                if self._stats.status == "ok":
                    self._stats.status = "degraded"
                self._log_drops()
            if self._worker_waiting and (
                was_empty or self._linger_s == 0 or len(self._items) >= self._batch_size
            ):
                self._cond.notify()

    def _log_drops(self) -> None:
        now = time.monotonic()
        if now - self._drops_logged_at > _LOG_REPEAT_S:
            self._drops_logged_at = now
            log.warning(
                "%s exporter: queue full (%d events), dropping the oldest (%d dropped so far)",
                self.name,
                self._capacity,
                self._stats.events_dropped,
            )

    def flush(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            if self._thread is None:
                return not self._items
            self._flush_requests += 1
            self._cond.notify_all()
            try:
                done = self._cond.wait_for(lambda: not self._items and not self._inflight, timeout)
            finally:
                self._flush_requests -= 1
        if not done:
            return False
        return self.drain(max(0.0, end - time.monotonic()))

    def close(self, timeout: float) -> None:
        """Deliver what is queued within `timeout` seconds, then stop; what could not be
        delivered by then is counted as dropped."""
        if self._thread is None:
            return
        self.deadline = time.monotonic() + timeout
        # Leave a tenth of the time to the client's own shutdown (closing connections).
        self.flush(timeout * 0.9)
        with self._cond:
            self._closing = True
            self.abort.set()
            # Whatever is still queued could not be delivered in time: counted, not lost silently.
            self._stats.events_dropped += len(self._items)
            self._items.clear()
            self._cond.notify_all()
        self._thread.join(timeout=max(0.1, self.remaining()))
        with self._cond:
            if self._thread.is_alive():
                # Stuck in a call to the destination: the batch in flight is given up.
                self._abandoned = True
                self._stats.events_dropped += self.undelivered_on_abandon(self._inflight)
                self._stats.last_error = self._stats.last_error or "shutdown deadline passed"
            self._inflight = 0
            self._stats.status = "closed"
        self._thread = None

    def _ready(self, now: float) -> bool:
        n = len(self._items)
        if not n:
            return False
        return (
            n >= self._batch_size
            or self._linger_s == 0
            or self._flush_requests > 0
            or self._closing
            or now - self._oldest_at >= self._linger_s
        )

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """The next batch; [] when it is time for `tick()`; None when closing."""
        with self._cond:
            tick = self.tick_interval_s
            while True:
                now = time.monotonic()
                # Ticks first: under a steady stream the worker is never idle.
                if tick and now >= self._next_tick and not self._closing:
                    self._next_tick = now + tick
                    return []
                if self._ready(now):
                    break
                if self._closing:
                    return None
                wait: float | None = None
                if self._items:
                    wait = self._oldest_at + self._linger_s - now
                if tick:
                    wait = min(wait, self._next_tick - now) if wait is not None else self._next_tick - now
                self._worker_waiting = True
                self._cond.wait(wait)
                self._worker_waiting = False
            take = min(len(self._items), self._batch_size)
            batch = [self._items.popleft() for _ in range(take)]
            self._oldest_at = time.monotonic()
            self._inflight = take
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            if not batch:
                self._safe_tick()
                continue
            try:
                counted = self.deliver(batch)
                if counted is None:
                    counted = len(batch)
                if counted:
                    self.count_exported(counted)
            except Exception as exc:  # a destination error must not kill the worker
                self.count_failed(len(batch), one_line(exc))
            with self._cond:
                self._inflight = 0
                self._cond.notify_all()
        try:
            self.shutdown()
        except Exception as exc:
            with self._cond:
                self.note_error(one_line(exc))

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except Exception as exc:
            with self._cond:
                self.note_error(one_line(exc))

    def stats(self) -> ExporterStats:
        with self._cond:
            self._stats.queue_depth = len(self._items)
            self._stats.details = self.details()
            return ExporterStats(**self._stats.as_dict())

    def details(self) -> dict[str, Any]:
        """Exporter-specific figures for the status file (clients connected, ...)."""
        return {}
