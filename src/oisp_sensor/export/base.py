"""The exporter interface and the threaded base every exporter builds on.

A slow or dead destination must never block capture or the other exporters: `submit`
only puts the event on this exporter's bounded queue and, when the queue is full,
drops the event and counts it. A worker thread delivers batches.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ExporterStats:
    name: str
    status: str = "ok"  # ok | degraded | failed | closed
    events_submitted: int = 0
    events_exported: int = 0
    events_dropped: int = 0  # queue full, or undeliverable at shutdown
    errors: int = 0
    last_error: str | None = None
    queue_depth: int = 0

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


class QueuedExporter(Exporter):
    """Bounded queue + worker thread; subclasses implement `deliver(batch)`.

    The pipeline hands over events in batches (`submit_many`), so the worker wakes once
    per batch, not per event. When the queue is full the OLDEST events are dropped and
    counted (the Export documentation's backpressure rule): fresh events matter more.
    """

    def __init__(self, name: str, queue_size: int = 100_000, max_batch: int = 512) -> None:
        self.name = name
        self._capacity = queue_size
        self._items: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._inflight = 0  # taken by the worker, not yet delivered
        self._worker_waiting = False
        self._closing = False
        self._max_batch = max_batch
        self._stats = ExporterStats(name=name)
        self._thread: threading.Thread | None = None

    # -- subclass API --
    def open(self) -> None:
        """Connect / open the destination; raise ExporterError to refuse to start."""

    @abstractmethod
    def deliver(self, batch: list[dict[str, Any]]) -> None:
        """Send a batch; raise to report an error (the batch is counted as dropped)."""

    def shutdown(self) -> None:
        """Release the destination (called in the worker thread after the last batch)."""

    # -- Exporter --
    def start(self) -> None:
        self.open()
        self._thread = threading.Thread(target=self._run, name=f"oisp-export-{self.name}", daemon=True)
        self._thread.start()

    def submit(self, event: dict[str, Any]) -> None:
        self.submit_many([event])

    def submit_many(self, events: list[dict[str, Any]]) -> None:
        with self._cond:
            self._stats.events_submitted += len(events)
            self._items.extend(events)
            overflow = len(self._items) - self._capacity
            if overflow > 0:
                for _ in range(overflow):
                    self._items.popleft()
                self._stats.events_dropped += overflow
                if self._stats.status == "ok":
                    self._stats.status = "degraded"
            if self._worker_waiting:
                self._cond.notify()

    def flush(self, timeout: float) -> bool:
        with self._cond:
            if self._thread is None:
                return not self._items
            return self._cond.wait_for(lambda: not self._items and not self._inflight, timeout)

    def close(self, timeout: float) -> None:
        if self._thread is None:
            return
        self.flush(timeout)
        with self._cond:
            self._closing = True
            # Whatever is still queued could not be delivered in time: counted, not lost silently.
            self._stats.events_dropped += len(self._items)
            self._items.clear()
            self._cond.notify_all()
        self._thread.join(timeout=max(0.1, timeout))
        self._stats.status = "closed"
        self._thread = None

    def _next_batch(self) -> list[dict[str, Any]] | None:
        with self._cond:
            while not self._items and not self._closing:
                self._worker_waiting = True
                self._cond.wait()
                self._worker_waiting = False
            if not self._items:
                return None
            take = min(len(self._items), self._max_batch)
            batch = [self._items.popleft() for _ in range(take)]
            self._inflight = take
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            try:
                self.deliver(batch)
                self._stats.events_exported += len(batch)
                if self._stats.status == "degraded" and len(self._items) < self._capacity // 2:
                    self._stats.status = "ok"
            except Exception as exc:  # a destination error must not kill the worker
                self._stats.errors += 1
                self._stats.events_dropped += len(batch)
                self._stats.last_error = f"{type(exc).__name__}: {exc}"
                self._stats.status = "degraded"
                log.warning("%s exporter: %s", self.name, self._stats.last_error)
            with self._cond:
                self._inflight = 0
                self._cond.notify_all()
        try:
            self.shutdown()
        except Exception as exc:
            self._stats.errors += 1
            self._stats.last_error = f"{type(exc).__name__}: {exc}"

    def stats(self) -> ExporterStats:
        self._stats.queue_depth = len(self._items)
        return self._stats
