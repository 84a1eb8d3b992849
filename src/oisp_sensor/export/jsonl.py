"""JSONL file exporter: one compact JSON object per line, optional size-based rotation.

Compact output matters: the CI/CD seed's checks `grep '"event_type":"ai.request"'`.
Lines are written whole and rotation happens only between lines, so no line is split.
With `flush_each = false` the file is still flushed once a second, so `tail -f` and a
crash lose at most a second of events.
"""

from __future__ import annotations

import contextlib
import os
from typing import IO, Any

import orjson

from ..config import JsonlExport
from .base import ExporterError, QueuedExporter


class JsonlExporter(QueuedExporter):
    tick_interval_s = 1.0

    def __init__(self, config: JsonlExport, name: str = "jsonl") -> None:
        # Events reach the file within 20 ms: invisible to a reader, and one write per
        # burst instead of a thread wake-up per batch (a build's thousands of process
        # events a second).
        super().__init__(name, queue_size=config.queue_size, linger_s=0.02)
        self.config = config
        self.path = config.path
        self._file: IO[bytes] | None = None
        self._size = 0
        self._rotate_at = int(config.rotate_size_mb * 1024 * 1024)
        self._options = orjson.OPT_INDENT_2 if config.pretty else 0
        self.rotations = 0

    def open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise ExporterError(
                f"cannot create directory {directory} for {self.path}: {exc.strerror}"
            ) from None
        self._open_file(append=self.config.append)

    def _open_file(self, append: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise ExporterError(f"cannot write events to {self.path}: {exc.strerror}") from None
        self._file = os.fdopen(fd, "ab" if append else "wb", buffering=1024 * 1024)
        self._size = os.fstat(fd).st_size

    def deliver(self, batch: list[dict[str, Any]]) -> None:
        if self._file is None:  # a rotation failed earlier: try to reopen
            self._open_file(append=True)
        assert self._file is not None
        options = self._options
        try:
            for event in batch:
                line = orjson.dumps(event, option=options) + b"\n"
                if self._rotate_at and self._size and self._size + len(line) > self._rotate_at:
                    self._rotate()
                self._file.write(line)
                self._size += len(line)
            if self.config.flush_each:
                self._file.flush()
        except OSError as exc:
            # Disk full, file system gone read-only, ...: one line naming the file.
            raise ExporterError(f"cannot write events to {self.path}: {exc.strerror or exc}") from None

    def tick(self) -> None:
        if self._file is not None and not self.config.flush_each:
            try:
                self._file.flush()
            except OSError as exc:
                raise ExporterError(f"cannot write events to {self.path}: {exc.strerror or exc}") from None

    def _rotate(self) -> None:
        """events.jsonl -> events.jsonl.1 -> ... -> events.jsonl.N (the oldest removed)."""
        assert self._file is not None
        self._file.close()
        self._file = None
        count = self.config.rotate_count
        if count <= 0:
            os.unlink(self.path)
        else:
            for index in range(count - 1, 0, -1):
                older = f"{self.path}.{index}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{index + 1}")
            os.replace(self.path, f"{self.path}.1")
        self.rotations += 1
        self._open_file(append=False)

    def shutdown(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise ExporterError(f"cannot write events to {self.path}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):  # the unwritable buffer was reported just above
                self._file.close()
            self._file = None
