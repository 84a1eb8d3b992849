"""Process and actor context from /proc, cached per pid and kept after the process exits.

Short-lived processes (curl) are gone before their records are decoded, so the capture
thread snapshots a process as soon as the kernel reports its exec (`snapshot`), and the
cache keeps the entry after exit so late events are still attributed.
"""

from __future__ import annotations

import functools
import os
import pwd
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .container import container_from_cgroup
from .kubernetes import pod_context


@dataclass(slots=True)
class ProcessInfo:
    pid: int
    ppid: int = 0
    name: str = ""
    exe: str = ""
    cmdline: list[str] = field(default_factory=list)
    cwd: str = ""
    uid: int = -1
    gid: int = -1
    start_ticks: int = 0  # field 22 of /proc/PID/stat: tells a reused pid apart
    login_uid: int = -1
    session_id: int = -1  # audit session id
    container_id: str = ""
    container_runtime: str = ""
    complete: bool = False  # False when /proc was already gone
    # The context dict, built once: every event of the process shares it (never modify
    # it; redaction caches its result per object).
    _context: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    # The actor dict, likewise shared: (uid of the event it was made for, actor).
    _actor: tuple[int, dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def process_context(self) -> dict[str, Any]:
        if self._context is not None:
            return self._context
        context: dict[str, Any] = {
            "pid": self.pid,
            "ppid": self.ppid,
            "name": self.name,
            "exe": self.exe,
            "cmdline": self.cmdline,
            "cwd": self.cwd,
        }
        if self.start_ticks:
            context["start_time"] = _start_time(self.start_ticks)
        if self.container_id:
            context["container_id"] = self.container_id
            context["container_runtime"] = self.container_runtime
            pod = pod_context(self.container_id, self.pid)  # Kubernetes pod and namespace
            if pod:
                context["kubernetes"] = pod
        self._context = context
        return context


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _boot_time() -> float:
    """Seconds since the epoch at boot (`btime` of /proc/stat): start ticks count from it."""
    try:
        for line in open("/proc/stat", "rb"):  # noqa: SIM115 - read once at import
            if line.startswith(b"btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


_BOOT_TIME = _boot_time()


# A cache only (a few µs to recompute): small, so it is full within minutes at any load.
@functools.lru_cache(maxsize=1024)
def _start_time(ticks: int) -> str:
    """RFC 3339 (UTC, seconds precision of the kernel's ticks) of a process start."""
    started = datetime.fromtimestamp(_BOOT_TIME + ticks / _CLK_TCK, UTC)
    return started.strftime("%Y-%m-%dT%H:%M:%S.") + f"{started.microsecond:06d}Z"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def read_process(pid: int) -> ProcessInfo:
    """Everything /proc tells about `pid` right now (fields left empty if it is gone)."""
    info = ProcessInfo(pid=pid)
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return info
    # comm may contain spaces and parentheses: split at the last ')'.
    close = stat.rfind(b")")
    info.name = stat[stat.find(b"(") + 1 : close].decode("utf-8", "replace")
    rest = stat[close + 2 :].split()
    if len(rest) > 19:
        info.ppid = int(rest[1])
        info.start_ticks = int(rest[19])
    info.exe = _readlink(f"/proc/{pid}/exe")
    info.cwd = _readlink(f"/proc/{pid}/cwd")
    cmdline = _read(f"/proc/{pid}/cmdline") or b""
    info.cmdline = (
        [a.decode("utf-8", "replace") for a in cmdline.rstrip(b"\0").split(b"\0")] if cmdline else []
    )
    status = _read(f"/proc/{pid}/status") or b""
    for line in status.split(b"\n"):
        if line.startswith(b"Uid:"):
            info.uid = int(line.split()[1])
        elif line.startswith(b"Gid:"):
            info.gid = int(line.split()[1])
            break
    for attr, name in (("login_uid", "loginuid"), ("session_id", "sessionid")):
        raw = _read(f"/proc/{pid}/{name}")
        if raw:
            value = int(raw.strip())
            setattr(info, attr, -1 if value == 4294967295 else value)
    cgroup = _read(f"/proc/{pid}/cgroup")
    if cgroup:
        found = container_from_cgroup(cgroup.decode("utf-8", "replace"))
        if found:
            info.container_id, info.container_runtime = found
    info.complete = bool(info.exe or info.cmdline)
    return info


class ProcessCache:
    """Thread-safe LRU of ProcessInfo by pid (the capture thread writes at exec)."""

    def __init__(self, capacity: int = 16384, exited_capacity: int = 2048) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[int, ProcessInfo] = OrderedDict()
        # Exited processes are kept a while (late events, children naming their parent),
        # but only the most recent ones: a host starting thousands of short commands
        # would otherwise fill the whole cache with the dead.
        self.exited_capacity = exited_capacity
        self._exited: OrderedDict[int, ProcessInfo] = OrderedDict()
        self.evicted_exited = 0
        # Told of every pid whose entry is evicted, so caches keyed by it can let go too.
        self.on_evict: Callable[[int], None] | None = None
        self._lock = threading.Lock()
        self._users: dict[int, str] = {}
        self._exec_cwd: dict[int, str] = {}  # pid -> cwd read right after its exec

    def snapshot(self, pid: int) -> ProcessInfo:
        """Read /proc now and store the result (replacing an older image of the pid)."""
        info = read_process(pid)
        if info.complete or pid not in self._entries:
            self._store(info)
        return info

    def get(self, pid: int, comm: str = "") -> ProcessInfo:
        with self._lock:
            info = self._entries.get(pid)
            if info is not None:
                self._entries.move_to_end(pid)
                return info
        info = read_process(pid)
        if not info.name:
            info.name = comm
        self._store(info)
        return info

    def note_exec(self, pid: int) -> None:
        """Called by the capture thread as soon as it sees an exec: keep the cwd, which the
        exec record does not carry, before a short-lived process takes it away (one
        readlink; the rest comes from the record)."""
        cwd = _readlink(f"/proc/{pid}/cwd")
        if cwd:
            with self._lock:
                if len(self._exec_cwd) > 4096:
                    self._exec_cwd.clear()
                self._exec_cwd[pid] = cwd

    def exec_cwd(self, pid: int) -> str:
        # Not popped: one pid may exec several times in a batch (`ip netns exec` then the
        # command), and each exec record asks; the table is bounded by note_exec.
        with self._lock:
            return self._exec_cwd.get(pid, "")

    def inherit(self, child: int, parent: int) -> None:
        """A fork: until it execs, the child runs its parent's image (no /proc read)."""
        with self._lock:
            info = self._entries.get(parent)
        if info is not None:
            copy = ProcessInfo(**{f: getattr(info, f) for f in ProcessInfo.__slots__})  # type: ignore[attr-defined]
            copy.pid, copy.ppid, copy.cmdline = child, parent, list(info.cmdline)
            copy._context = None
            self._store(copy)

    def refresh_container(self, pid: int) -> None:
        """Re-read the cgroup of a live process: one that was moved into a container's
        cgroup after its exec (or whose context came from its parent) is attributed right."""
        raw = _read(f"/proc/{pid}/cgroup")
        if raw is None:
            return
        found = container_from_cgroup(raw.decode("utf-8", "replace")) or ("", "")
        with self._lock:
            info = self._entries.get(pid)
            if info is not None and (info.container_id, info.container_runtime) != found:
                info.container_id, info.container_runtime = found
                info._context = None

    def known(self, pid: int, comm: str) -> None:
        """Make sure an exited process has an entry, without reading /proc (it is gone)."""
        with self._lock:
            if pid in self._entries:
                return
        self._store(ProcessInfo(pid=pid, name=comm))

    def exited(self, pid: int, comm: str) -> None:
        """The process exited: keep its entry among the `exited_capacity` latest exits."""
        self.known(pid, comm)
        with self._lock:
            info = self._entries.get(pid)
            if info is None:
                return
            self._exited[pid] = info
            self._exited.move_to_end(pid)
            while len(self._exited) > self.exited_capacity:
                old_pid, old = self._exited.popitem(last=False)
                if self._entries.get(old_pid) is old:  # not a new process with a reused pid
                    del self._entries[old_pid]
                    self.evicted_exited += 1
                    if self.on_evict is not None:
                        self.on_evict(old_pid)

    def put(self, info: ProcessInfo) -> None:
        """Store what is known of a process's current image (from an exec record)."""
        self._store(info)

    def forget(self, pid: int) -> None:
        with self._lock:
            self._entries.pop(pid, None)

    def _store(self, info: ProcessInfo) -> None:
        with self._lock:
            self._entries[info.pid] = info
            self._entries.move_to_end(info.pid)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def username(self, uid: int) -> str:
        if uid < 0:
            return ""
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name

    def actor_context(self, info: ProcessInfo, uid: int) -> dict[str, Any]:
        """The `actor` of an event of this process (shared between its events: never modify).

        The event's own uid only counts when /proc did not give the process's."""
        cached = info._actor
        if cached is not None and (info.uid >= 0 or cached[0] == uid):
            return cached[1]
        event_uid = uid
        uid = info.uid if info.uid >= 0 else uid
        actor: dict[str, Any] = {"uid": uid, "username": self.username(uid), "gid": info.gid}
        if info.session_id >= 0:
            actor["session_id"] = str(info.session_id)
        if info.login_uid >= 0:
            actor["login_uid"] = info.login_uid
            actor["login_username"] = self.username(info.login_uid)
        info._actor = (event_uid, actor)
        return actor
