"""Network-namespace filter: only processes of the given network namespaces (`[capture]
netns`, `--netns`).

uprobes and tracepoints see every process on the kernel, whatever its namespaces. A sensor
that should report one "host" among several sharing a kernel (a fleet simulated with
network namespaces, a VM-like container, only the node's own processes and not its pods')
keeps the records of processes whose network namespace is one of those given.

A process's namespace is read from /proc/PID/ns/net as soon as the capture thread sees its
exec (`ip netns exec` and container runtimes enter the namespace before the exec), and a
forked child inherits its parent's. A process already gone before anything could be read
takes its parent's namespace; with neither known, its records are dropped and counted.
"""

from __future__ import annotations

import os
import threading

_MAX_PIDS = 65536


def netns_inode(spec: str) -> int:
    """The inode of a namespace given as "self" (the sensor's), an inode number or a path
    (/run/netns/NAME, /proc/PID/ns/net). Raises ValueError with a one-line reason."""
    if spec.isdigit():
        return int(spec)
    path = "/proc/self/ns/net" if spec == "self" else spec
    if not path.startswith("/"):
        raise ValueError(f"{spec!r}: give 'self', an inode number or an absolute path")
    try:
        return os.stat(path).st_ino
    except OSError as exc:
        raise ValueError(f"{spec}: {exc.strerror}") from None


def _netns_of(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return 0


class NetnsFilter:
    def __init__(self, specs: list[str]) -> None:
        self.allowed = frozenset(netns_inode(s) for s in specs)
        self.active = bool(self.allowed)
        self._ns: dict[int, int] = {}  # pid -> its network namespace's inode
        self._lock = threading.Lock()  # the capture thread notes execs, the pipeline reads
        self.dropped = 0
        self.unknown = 0

    def note_exec(self, pid: int) -> None:
        """Capture thread, at an exec: the process's namespace, while it still runs."""
        ino = _netns_of(pid)
        if ino:
            self._remember(pid, ino)

    def note_execs(self, pids: list[int]) -> None:
        for pid in pids:
            self.note_exec(pid)

    def _remember(self, pid: int, ino: int) -> None:
        with self._lock:
            if len(self._ns) >= _MAX_PIDS:
                self._ns.clear()  # rare: re-read from /proc as records come
            self._ns[pid] = ino

    def allows(
        self, pid: int, ppid: int = 0, fork: bool = False, exec_: bool = False, exited: bool = False
    ) -> bool:
        """Whether a record of `pid` is kept (`ppid` of exec and fork records helps when the
        process is gone; a fork's child inherits the parent's namespace; an exec re-reads
        it: `ip netns exec` forks in one namespace and execs in another)."""
        with self._lock:
            # A fork's child may already be known: its exec was noted by the capture thread
            # before the pipeline got to the fork record.
            ino = self._ns.get(pid)
            parent = self._ns.get(ppid, 0) if ppid else 0
        if exec_:
            ino = _netns_of(pid) or ino
        if not ino:
            ino = (parent or _netns_of(ppid)) if fork else (_netns_of(pid) or parent)
        if ino and not exited:
            self._remember(pid, ino)
        if exited:
            with self._lock:
                self._ns.pop(pid, None)
        if not ino:
            self.unknown += 1
        keep = ino in self.allowed
        if not keep:
            self.dropped += 1
        return keep
