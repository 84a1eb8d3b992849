"""The exporter interface and the threaded base every exporter builds on.

A slow or dead destination must never block capture or the other exporters: `submit`
only puts the event on this exporter's bounded queue and, when the queue is full,
drops the event and counts it. A worker thread delivers batches.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
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

    @abstractmethod
    def flush(self, timeout: float) -> bool: ...

    @abstractmethod
    def close(self, timeout: float) -> None: ...

    @abstractmethod
    def stats(self) -> ExporterStats: ...


_STOP = object()


class QueuedExporter(Exporter):
    """Bounded queue + worker thread; subclasses implement `deliver(batch)`."""

    def __init__(self, name: str, queue_size: int = 100_000, max_batch: int = 512) -> None:
        self.name = name
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._max_batch = max_batch
        self._stats = ExporterStats(name=name)
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

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
        self._stats.events_submitted += 1
        try:
            self._queue.put_nowait(event)
            self._idle.clear()
        except queue.Full:
            self._stats.events_dropped += 1
            if self._stats.status == "ok":
                self._stats.status = "degraded"

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.005)
        return self._queue.unfinished_tasks == 0

    def close(self, timeout: float) -> None:
        if self._thread is None:
            return
        self.flush(timeout)
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=max(0.1, timeout))
        self._thread.join(timeout=max(0.1, timeout))
        # Whatever is still queued could not be delivered in time: counted, not lost silently.
        leftover = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                leftover += 1
        self._stats.events_dropped += leftover
        self._stats.status = "closed"
        self._thread = None

    def stats(self) -> ExporterStats:
        self._stats.queue_depth = self._queue.qsize()
        return self._stats

    def _run(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            if item is _STOP:
                q.task_done()
                break
            batch = [item]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self.deliver(batch)
                self._stats.events_exported += len(batch)
                if self._stats.status == "degraded" and q.qsize() < q.maxsize // 2:
                    self._stats.status = "ok"
            except Exception as exc:  # a destination error must not kill the worker
                self._stats.errors += 1
                self._stats.events_dropped += len(batch)
                self._stats.last_error = f"{type(exc).__name__}: {exc}"
                self._stats.status = "degraded"
                log.warning("%s exporter: %s", self.name, self._stats.last_error)
            for _ in batch:
                q.task_done()
            if stop:
                q.task_done()
                break
        try:
            self.shutdown()
        except Exception as exc:
            self._stats.errors += 1
            self._stats.last_error = f"{type(exc).__name__}: {exc}"
