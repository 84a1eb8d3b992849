"""Plain data types for what the kernel reports, as seen by everything after capture.

These are the only types the decode stage knows about capture: a saved raw capture
replays into the same objects, so decoders never depend on the kernel being there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Direction(enum.IntEnum):
    """Which way plaintext moved, from the point of view of the process that made the call."""

    WRITE = 0  # the process wrote it (SSL_write / send): it leaves the process
    READ = 1  # the process read it (SSL_read / recv): it arrives at the process


class Source(enum.IntEnum):
    """Which hook produced a data record."""

    OPENSSL = 0
    SOCKET = 1
    GNUTLS = 2
    GO = 3
    STDIO = 4  # stdin/stdout pipes of a JSON-RPC stdio server (MCP)


@dataclass(slots=True)
class DataRecord:
    """One chunk of plaintext from one TLS (or socket) call.

    A call larger than the kernel's chunk size arrives as several records with
    consecutive ``stream_offset`` values. ``stream_offset`` counts the bytes of this
    connection and direction since the connection was first seen, so a jump means
    bytes were lost (ring buffer full, or a call larger than the kernel copies).
    """

    pid: int
    tid: int
    uid: int
    ts_ns: int  # CLOCK_MONOTONIC nanoseconds (convert with the capture's clock offset)
    conn_id: int  # the SSL* address (or socket cookie); unique only together with pid
    direction: Direction
    stream_offset: int
    data: bytes
    comm: str = ""
    source: Source = Source.OPENSSL


@dataclass(slots=True)
class ConnCloseRecord:
    """The connection behind (pid, conn_id) is gone (SSL_free, close): never merge what follows."""

    pid: int
    tid: int
    ts_ns: int
    conn_id: int


@dataclass(slots=True)
class ProcessExitRecord:
    """A whole process (thread group) exited: all its connections are closed."""

    pid: int
    ts_ns: int
    exit_code: int = 0  # raw wait status: exit code << 8, or the terminating signal
    start_ns: int = 0  # when the process started (CLOCK_MONOTONIC), 0 if unknown
    comm: str = ""


@dataclass(slots=True)
class ExecRecord:
    """A process called execve: its image changed (capture rescans it for TLS libraries)."""

    pid: int
    ppid: int
    ts_ns: int
    comm: str = ""
    tid: int = 0
    uid: int = -1
    gid: int = -1
    filename: str = ""  # the path given to execve
    args: list[str] = field(default_factory=list)
    args_truncated: bool = False
    cwd: str = ""  # working directory at exec, from the kernel ("" if it could not be built)
    env: list[str] | None = None  # "NAME=value" items, only when asked for (opt-in)
    env_truncated: bool = False


@dataclass(slots=True)
class ForkRecord:
    """A new process (not a thread) was created by `ppid`."""

    pid: int
    ppid: int
    ts_ns: int
    comm: str = ""


@dataclass(slots=True)
class NetConnectRecord:
    """An outgoing TCP connection left SYN_SENT: established (`success`) or failed."""

    pid: int
    tid: int
    uid: int
    ts_ns: int  # connect() started
    done_ns: int  # established or failed
    family: int  # socket.AF_INET / AF_INET6
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    success: bool
    comm: str = ""
    sock: int = 0  # identity of the connection in the kernel: pairs its FirstSendRecord


@dataclass(slots=True)
class FirstSendRecord:
    """The first bytes an established outgoing connection sent (a TLS ClientHello, an
    HTTP request, ...): they name the remote host for network.connect."""

    pid: int
    ts_ns: int
    sock: int
    data: bytes


@dataclass(slots=True)
class DnsRecord:
    """A getaddrinfo() call returned: the name asked for and the addresses it got."""

    pid: int
    tid: int
    ts_ns: int
    done_ns: int
    query: str
    ret: int  # 0, or an EAI_* error code
    answers: list[str] = field(default_factory=list)
    comm: str = ""


@dataclass(slots=True)
class FileOpenRecord:
    """A watched process opened a file (open, openat, creat, openat2 succeeded)."""

    pid: int
    tid: int
    uid: int
    ts_ns: int
    fd: int
    dirfd: int  # AT_FDCWD (-100) or the directory fd a relative path is relative to
    open_flags: int
    mode: int
    path: str  # absolute when `resolved`, else as the process passed it (maybe relative)
    path_truncated: bool = False
    comm: str = ""
    resolved: bool = False  # the kernel built the path from the opened file itself
    dup: bool = False  # a copy of descriptor `dirfd` (dup/dup2/dup3/fcntl), not an open
    inherited: bool = False  # got already open (e.g. `cmd > file` from a shell), seen at first use


@dataclass(slots=True)
class FileCloseRecord:
    """A file of a watched process was closed (or its process exited): bytes moved through it."""

    pid: int
    tid: int
    ts_ns: int
    fd: int
    open_ts_ns: int
    bytes_read: int
    bytes_written: int
    reads: int
    writes: int
    comm: str = ""
    reason: str = "close"  # close | process_exit | fd_reused


RawRecord = (
    DnsRecord
    | DataRecord
    | ConnCloseRecord
    | ProcessExitRecord
    | ExecRecord
    | ForkRecord
    | NetConnectRecord
    | FirstSendRecord
    | FileOpenRecord
    | FileCloseRecord
)
