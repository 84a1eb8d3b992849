"""The process tree of the dashboard: every process seen, with its AI, file and network activity.

Built from process.exec/fork/exit events and from the process context every event carries
(a process that was running before the sensor started is known from its first event).
Bounded: only the `max_exited` most recent exits are kept (a host running thousands of
short commands would otherwise fill the table with the dead, each with its file and
network history); beyond `max_processes`, exited processes are forgotten first, oldest first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

_RECENT = 200  # file and network entries kept per process


class ProcInfo:
    __slots__ = (
        "ai_calls",
        "app",
        "cmdline",
        "cost_usd",
        "ctx",
        "cwd",
        "exe",
        "exit_code",
        "exited",
        "files",
        "input_tokens",
        "last_seq",
        "name",
        "network",
        "output_tokens",
        "pid",
        "ppid",
        "start_time",
    )

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ppid = 0
        self.name = ""
        self.exe = ""
        self.cmdline: list[str] = []
        self.cwd = ""
        self.app: dict[str, Any] | None = None
        self.start_time: str | None = None
        self.exited = False
        self.exit_code: int | None = None
        self.ai_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.files: deque[dict[str, Any]] = deque(maxlen=_RECENT)
        self.network: deque[dict[str, Any]] = deque(maxlen=_RECENT)
        self.last_seq = 0
        self.ctx: dict[str, Any] | None = None

    def fill(self, ctx: dict[str, Any], replace: bool) -> None:
        """Take what the event's process context knows (`replace`: a new image, exec)."""
        name = ctx.get("name")
        if isinstance(name, str) and name and (replace or not self.name):
            self.name = name
        exe = ctx.get("exe")
        if isinstance(exe, str) and exe and (replace or not self.exe):
            self.exe = exe
        cmdline = ctx.get("cmdline")
        if isinstance(cmdline, list) and cmdline and (replace or not self.cmdline):
            self.cmdline = [str(a) for a in cmdline]
        cwd = ctx.get("cwd")
        if isinstance(cwd, str) and cwd and (replace or not self.cwd):
            self.cwd = cwd
        ppid = ctx.get("ppid")
        if isinstance(ppid, int) and ppid > 0 and (replace or not self.ppid):
            self.ppid = ppid
        start = ctx.get("start_time")
        if isinstance(start, str) and start and (replace or not self.start_time):
            self.start_time = start

    def as_dict(self, children: list[int]) -> dict[str, Any]:
        app = self.app
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "name": self.name,
            "exe": self.exe,
            "cmdline": list(self.cmdline),
            "cwd": self.cwd,
            "app": {"id": app.get("id"), "name": app.get("name")} if app else None,
            "start_time": self.start_time,
            "exited": self.exited,
            "exit_code": self.exit_code,
            "ai_calls": self.ai_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "files": list(self.files),
            "network": list(self.network),
            "children": children,
        }


class ProcessTable:
    """Not thread-safe: the EventStore holds its lock."""

    def __init__(self, max_processes: int = 10_000, max_exited: int = 2_000) -> None:
        self.max_processes = max_processes
        self.max_exited = max_exited
        self.procs: dict[int, ProcInfo] = {}
        self._exited: OrderedDict[int, ProcInfo] = OrderedDict()  # oldest exit first
        self.forgotten = 0  # exited processes let go of

    def get(self, pid: int) -> ProcInfo | None:
        return self.procs.get(pid)

    def parent_of(self, pid: int) -> int:
        info = self.procs.get(pid)
        return info.ppid if info is not None else 0

    def observe(
        self, seq: int, etype: str, pid: int, env: dict[str, Any], data: dict[str, Any]
    ) -> ProcInfo | None:
        if pid <= 0:
            return None
        ctx = env.get("process")
        ctx = ctx if isinstance(ctx, dict) else {}
        procs = self.procs
        info = procs.get(pid)
        start = ctx.get("start_time")
        # An exited pid seen again: reused by a new process (or a late event of the old one).
        if (
            info is not None
            and info.exited
            and etype != "process.exit"
            and (etype in ("process.fork", "process.exec") or (start and start != info.start_time))
        ):
            info = None
        if info is None:
            info = procs[pid] = ProcInfo(pid)
            if len(procs) > self.max_processes:
                self._evict()
        info.last_seq = seq
        # Live, one process's events share one context object: read it once.
        if ctx is not info.ctx or etype == "process.exec":
            info.ctx = ctx
            info.fill(ctx, replace=etype == "process.exec")
        app = env.get("app")
        if isinstance(app, dict) and (
            info.app is None or etype == "process.exec" or app.get("id") != "unknown"
        ):
            info.app = app
        if etype == "process.fork":
            ppid = data.get("ppid")
            if isinstance(ppid, int) and ppid > 0:
                info.ppid = ppid
        elif etype == "process.exit":
            info.exited = True
            code = data.get("exit_code")
            info.exit_code = code if isinstance(code, int) else None
            self._note_exit(info)
        elif etype.startswith("file."):
            size = data.get("size")
            if size is None and etype == "file.close":
                size = (data.get("bytes_read") or 0) + (data.get("bytes_written") or 0)
            info.files.append(
                {"path": data.get("path"), "op": etype[5:], "bytes": size, "timestamp": env.get("timestamp")}
            )
        elif etype == "network.connect":
            remote = data.get("remote")
            remote = remote if isinstance(remote, dict) else {}
            info.network.append(
                {
                    "remote": remote.get("ip"),
                    "port": remote.get("port"),
                    "hostname": remote.get("hostname"),
                    "protocol": data.get("protocol"),
                    "timestamp": env.get("timestamp"),
                }
            )
        elif etype == "network.dns":
            answers = data.get("answers")
            info.network.append(
                {
                    "remote": answers[0] if isinstance(answers, list) and answers else None,
                    "port": None,
                    "hostname": data.get("query"),
                    "protocol": "dns",
                    "timestamp": env.get("timestamp"),
                }
            )
        return info

    def _note_exit(self, info: ProcInfo) -> None:
        exited = self._exited
        exited[info.pid] = info
        exited.move_to_end(info.pid)
        while len(exited) > self.max_exited:
            pid, old = exited.popitem(last=False)
            if self.procs.get(pid) is old:  # not a new process with a reused pid
                del self.procs[pid]
                self.forgotten += 1

    def _evict(self) -> None:
        # Exited processes first, least recently active first; a tenth at a time.
        n = max(1, self.max_processes // 10)
        ordered = sorted(self.procs.values(), key=lambda p: (not p.exited, p.last_seq))
        for info in ordered[:n]:
            del self.procs[info.pid]
            if self._exited.get(info.pid) is info:
                del self._exited[info.pid]

    def as_dict(self) -> dict[str, Any]:
        procs = self.procs
        children: dict[int, list[int]] = {}
        roots: list[int] = []
        for pid in sorted(procs):
            ppid = procs[pid].ppid
            if ppid in procs and ppid != pid:
                children.setdefault(ppid, []).append(pid)
            else:
                roots.append(pid)
        return {
            "processes": [procs[pid].as_dict(children.get(pid, [])) for pid in sorted(procs)],
            "roots": roots,
        }
