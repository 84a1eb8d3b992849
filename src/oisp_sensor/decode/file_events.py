"""File records from the kernel -> file.open, file.read, file.write and file.close events.

The kernel reports an open (path as passed, flags, fd) and, at close, what went through
the descriptor summed (bytes and calls), so a tool that writes a file in 10,000 small
writes makes four events, not 10,000. Reads and writes are reported at close: one
file.read and one file.write event per open file that was read or written.

Sans-IO: the cwd a relative path is relative to comes from a lookup function given by
the pipeline (the process cache), and path filters are plain globs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..capture.records import FileCloseRecord, FileOpenRecord
from ..schema.events import FILE_CLOSE, FILE_OPEN, FILE_READ, FILE_WRITE, SensorEvent
from .system_events import kernel_event

AT_FDCWD = -100

# Files every program opens that say nothing about what an agent did: the dynamic loader,
# locale data, interpreters' own modules, kernel pseudo-files. Users can replace the list.
DEFAULT_EXCLUDE = (
    "/proc/*",
    "/sys/*",
    "/dev/*",
    "/run/oisp-sensor/*",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/lib/*",
    "/lib64/*",
    "/usr/lib/*",
    "/usr/lib64/*",
    "/usr/local/lib/*",
    "/usr/share/locale/*",
    "/usr/share/zoneinfo/*",
    "/usr/share/X11/locale/*",
    "*/site-packages/*",
    "*/dist-packages/*",
    "*/node_modules/*",
    "*/__pycache__/*",
    "*.pyc",
    "*/.pyenv/versions/*",
)

_ACCESS = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}
_FLAG_NAMES_WANTED = "O_CREAT O_EXCL O_NOCTTY O_TRUNC O_APPEND O_NONBLOCK O_DSYNC O_DIRECTORY O_NOFOLLOW O_CLOEXEC O_SYNC O_PATH"
_FLAG_NAMES = [(getattr(os, name), name) for name in _FLAG_NAMES_WANTED.split() if hasattr(os, name)]
_O_TMPFILE = getattr(os, "O_TMPFILE", 0o20200000)


def flag_names(flags: int) -> list[str]:
    """open(2) flags as names, access mode first: ["O_WRONLY", "O_CREAT", "O_TRUNC"]."""
    names = [_ACCESS.get(flags & 0o3, "O_ACCMODE")]
    if flags & _O_TMPFILE == _O_TMPFILE:
        names.append("O_TMPFILE")
        flags &= ~_O_TMPFILE
    names.extend(name for bit, name in _FLAG_NAMES if flags & bit == bit and bit)
    return names


@dataclass(slots=True)
class FileCounters:
    file_open: int = 0
    file_read: int = 0
    file_write: int = 0
    file_close: int = 0
    filtered: int = 0  # opens (and their closes) dropped by the path globs


@dataclass(slots=True)
class _OpenFile:
    path: str
    flags: list[str]
    reasons: list[str]


class FileEventBuilder:
    def __init__(
        self,
        id_factory: Callable[[int], str],
        cwd_of: Callable[[int], str],
        include: Iterable[str] = (),
        exclude: Iterable[str] = DEFAULT_EXCLUDE,
    ) -> None:
        self.new_id = id_factory
        self.cwd_of = cwd_of
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.counters = FileCounters()
        self._open: dict[tuple[int, int], _OpenFile] = {}

    def wanted(self, path: str) -> bool:
        if self.include and not any(fnmatchcase(path, g) for g in self.include):
            return False
        return not any(fnmatchcase(path, g) for g in self.exclude)

    def _resolve(self, record: FileOpenRecord) -> tuple[str, list[str]]:
        path = record.path
        reasons = ["path_truncated"] if record.path_truncated else []
        if record.resolved:
            return path, reasons
        if record.dup:  # the kernel could not name the copy: name it after the original
            original = self._open.get((record.pid, record.dirfd))
            return (original.path, original.reasons) if original else ("", ["path_unknown"])
        if path.startswith("/"):
            return os.path.normpath(path), reasons
        if record.dirfd == AT_FDCWD:
            cwd = self.cwd_of(record.pid)
            if cwd:
                return os.path.normpath(os.path.join(cwd, path)), reasons
            return path, [*reasons, "path_relative_cwd_unknown"]
        return path, [*reasons, f"path_relative_to_fd_{record.dirfd}"]

    def _event(self, event_type: str, ts_ns: int, data: dict[str, Any], pid: int, tid: int, uid: int,
               comm: str, reasons: list[str]) -> SensorEvent:  # fmt: skip
        return kernel_event(self.new_id(ts_ns), event_type, ts_ns, data, pid, tid, uid, comm, reasons)

    def open(self, record: FileOpenRecord) -> list[SensorEvent]:
        path, reasons = self._resolve(record)
        key = (record.pid, record.fd)
        if not self.wanted(path):
            self._open.pop(key, None)
            self.counters.filtered += 1
            return []
        if record.dup:  # not an open: what goes through the copy is reported at its close
            original = self._open.get((record.pid, record.dirfd))
            flags = original.flags if original else []
        else:
            flags = flag_names(record.open_flags)
        self._open[key] = _OpenFile(path, flags, reasons)
        if len(self._open) > 200_000:  # closes lost with their records: forget the oldest
            self._open.pop(next(iter(self._open)))
        if record.dup:
            return []
        self.counters.file_open += 1
        data: dict[str, Any] = {
            "path": path,
            "flags": flags,
            "fd": record.fd,
            "related_process_pid": record.pid,
        }
        if record.inherited:
            data["inherited"] = True  # opened by a parent (a shell redirection), first used here
        if record.open_flags & os.O_CREAT and not record.inherited:
            data["mode"] = f"0{record.mode & 0o7777:o}"
        return [self._event(FILE_OPEN, record.ts_ns, data, record.pid, record.tid, record.uid, record.comm,
                            reasons)]  # fmt: skip

    def close(self, record: FileCloseRecord) -> list[SensorEvent]:
        opened = self._open.pop((record.pid, record.fd), None)
        if opened is None:
            return []  # filtered at open (or its open record was lost)
        duration_ms = round(max(0, record.ts_ns - record.open_ts_ns) / 1e6, 3)
        base = {
            "path": opened.path,
            "fd": record.fd,
            "flags": opened.flags,
            "related_process_pid": record.pid,
        }
        events = []
        if record.reads:
            self.counters.file_read += 1
            data = {**base, "size": record.bytes_read, "operations": record.reads, "duration_ms": duration_ms}
            events.append(self._event(FILE_READ, record.ts_ns, data, record.pid, record.tid, -1, record.comm,
                                      opened.reasons))  # fmt: skip
        if record.writes:
            self.counters.file_write += 1
            data = {
                **base,
                "size": record.bytes_written,
                "operations": record.writes,
                "duration_ms": duration_ms,
            }
            events.append(self._event(FILE_WRITE, record.ts_ns, data, record.pid, record.tid, -1, record.comm,
                                      opened.reasons))  # fmt: skip
        self.counters.file_close += 1
        data = {
            **base,
            "bytes_read": record.bytes_read,
            "bytes_written": record.bytes_written,
            "reads": record.reads,
            "writes": record.writes,
            "duration_ms": duration_ms,
            "reason": record.reason,
        }
        events.append(self._event(FILE_CLOSE, record.ts_ns, data, record.pid, record.tid, -1, record.comm,
                                  opened.reasons))  # fmt: skip
        return events
