"""Turn raw ring-buffer bytes into the plain record types of `capture.records`.

Kept apart from the poll loop so that a saved raw capture replays through exactly the
same code as live capture.
"""

from __future__ import annotations

import socket
import struct

from .layout import (
    CTL_EVENT_SIZE,
    DATA_HDR_SIZE,
    DNS_ADDRS_MAX,
    DNS_EVENT_SIZE,
    ENV_MAX,
    EXEC_HDR_SIZE,
    FILE_CLOSE_SIZE,
    FILE_OPEN_SIZE,
    FIRST_SEND_HDR_SIZE,
    FIRST_SEND_MAX,
    FLAG_DUP,
    FLAG_FD_REUSED,
    FLAG_INHERITED,
    FLAG_PATH_RESOLVED,
    NET_EVENT_SIZE,
    PATH_MAX,
    DataHdr,
    RecordKind,
)
from .records import (
    ConnCloseRecord,
    DataRecord,
    Direction,
    DnsRecord,
    ExecRecord,
    FileCloseRecord,
    FileOpenRecord,
    FirstSendRecord,
    ForkRecord,
    NetConnectRecord,
    ProcessExitRecord,
    RawRecord,
    Source,
)

# Must match the structs of bpf/oisp_records.h (checked by tests/unit/test_layout.py).
DATA_HDR = struct.Struct("<HHIIIQQQIIBB6x16s")
CTL_EVENT = struct.Struct("<HHIIIQQiIQ16s")
EXEC_HDR = struct.Struct("<HHIIIIIQIIII16s")
NET_EVENT = struct.Struct("<HHIIIQQHHHBB16s16s16sQ")
FIRST_SEND_HDR = struct.Struct("<HHIQQ")
assert FIRST_SEND_HDR.size == FIRST_SEND_HDR_SIZE
DNS_EVENT = struct.Struct(f"<HHIIiQQI{DNS_ADDRS_MAX}H{DNS_ADDRS_MAX * 16}s128s16s4x")  # 4x: tail padding
FILE_OPEN = struct.Struct(f"<HHIIIQiiIIII16s{PATH_MAX}s")
FILE_CLOSE = struct.Struct("<HHIIiQQQQII16s")
# Set only on close records user space makes at process exit (the kernel never does).
FLAG_AT_EXIT = 0x4
assert FILE_OPEN.size == FILE_OPEN_SIZE and FILE_CLOSE.size == FILE_CLOSE_SIZE
assert DATA_HDR.size == DATA_HDR_SIZE and CTL_EVENT.size == CTL_EVENT_SIZE
assert (
    EXEC_HDR.size == EXEC_HDR_SIZE and NET_EVENT.size == NET_EVENT_SIZE and DNS_EVENT.size == DNS_EVENT_SIZE
)
_TRUNCATED = 0x1

_DIRECTIONS = (Direction.WRITE, Direction.READ)
_SOURCES = (Source.OPENSSL, Source.SOCKET, Source.GNUTLS, Source.GO, Source.STDIO)


class MalformedRecord(ValueError):
    """The bytes are not a record this version understands (counted by the caller)."""


def _comm(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_record(buf: bytes) -> RawRecord:
    """Decode one ring-buffer record; raises MalformedRecord on anything unexpected."""
    if len(buf) < 4:
        raise MalformedRecord(f"record of {len(buf)} bytes")
    kind = buf[0] | (buf[1] << 8)
    if kind == RecordKind.DATA:
        if len(buf) < DATA_HDR_SIZE:
            raise MalformedRecord("short data header")
        (_, _flags, pid, tid, uid, ts_ns, conn_id, offset, _call_len, length, direction, source, comm) = (
            DATA_HDR.unpack_from(buf)
        )
        if length > len(buf) - DATA_HDR_SIZE or direction > 1 or source >= len(_SOURCES):
            raise MalformedRecord("data record fields out of range")
        # Positional: half the cost of keywords, on the most frequent record (field order
        # of DataRecord: pid, tid, uid, ts_ns, conn_id, direction, stream_offset, data, comm, source).
        return DataRecord(
            pid, tid, uid, ts_ns, conn_id, _DIRECTIONS[direction], offset,
            buf[DATA_HDR_SIZE : DATA_HDR_SIZE + length], _comm(comm), _SOURCES[source],
        )  # fmt: skip
    if kind == RecordKind.PROC_EXEC:
        return _parse_exec(buf)
    if kind == RecordKind.NET_CONNECT:
        return _parse_connect(buf)
    if kind == RecordKind.DNS:
        return _parse_dns(buf)
    if kind == RecordKind.NET_FIRST_SEND:
        return _parse_first_send(buf)
    if kind == RecordKind.FILE_OPEN:
        return _parse_file_open(buf)
    if kind == RecordKind.FILE_CLOSE:
        return _parse_file_close(buf)
    if len(buf) < CTL_EVENT_SIZE:
        raise MalformedRecord(f"short control record of kind {kind}")
    (_, _flags, pid, tid, ppid, ts_ns, conn_id, exit_code, _pad, start_ns, comm) = CTL_EVENT.unpack_from(buf)
    if kind == RecordKind.CONN_CLOSE:
        return ConnCloseRecord(pid=pid, tid=tid, ts_ns=ts_ns, conn_id=conn_id)
    if kind == RecordKind.PROC_EXIT:
        return ProcessExitRecord(
            pid=pid, ts_ns=ts_ns, exit_code=exit_code, start_ns=start_ns, comm=_comm(comm)
        )
    if kind == RecordKind.PROC_FORK:
        return ForkRecord(pid=pid, ppid=ppid, ts_ns=ts_ns, comm=_comm(comm))
    raise MalformedRecord(f"unknown record kind {kind}")


def _parse_exec(buf: bytes) -> ExecRecord:
    if len(buf) < EXEC_HDR_SIZE:
        raise MalformedRecord("short exec record")
    (_, flags, pid, tid, ppid, uid, gid, ts_ns, args_len, name_len, cwd_len, env_len, comm) = (
        EXEC_HDR.unpack_from(buf)
    )
    end = EXEC_HDR_SIZE + args_len + name_len + cwd_len + env_len
    if end > len(buf) or cwd_len > PATH_MAX or env_len > ENV_MAX:
        raise MalformedRecord("exec record lengths out of range")
    at = EXEC_HDR_SIZE
    raw_args = buf[at : at + args_len]
    filename = buf[at + args_len : at + args_len + name_len]
    at += args_len + name_len
    cwd = buf[at : at + cwd_len].decode("utf-8", "replace") if flags & FLAG_PATH_RESOLVED else ""
    args = [a.decode("utf-8", "replace") for a in raw_args.rstrip(b"\0").split(b"\0")] if raw_args else []
    env = None
    env_truncated = False
    if env_len:
        raw_env = buf[at + cwd_len : at + cwd_len + env_len]
        items = raw_env.split(b"\0")
        if not raw_env.endswith(b"\0"):  # cut in the middle of a variable: drop that one
            items = items[:-1]
            env_truncated = True
        env = [item.decode("utf-8", "replace") for item in items if item]
    return ExecRecord(
        pid=pid,
        ppid=ppid,
        ts_ns=ts_ns,
        comm=_comm(comm),
        tid=tid,
        uid=uid,
        gid=gid,
        filename=filename.decode("utf-8", "replace"),
        args=args,
        args_truncated=bool(flags & _TRUNCATED),
        cwd=cwd,
        env=env,
        env_truncated=env_truncated,
    )


def _ip(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return ""


def _parse_connect(buf: bytes) -> NetConnectRecord:
    if len(buf) < NET_EVENT_SIZE:
        raise MalformedRecord("short connect record")
    (
        _,
        _flags,
        pid,
        tid,
        uid,
        ts_ns,
        done_ns,
        family,
        sport,
        dport,
        success,
        _pad,
        saddr,
        daddr,
        comm,
        sock,
    ) = NET_EVENT.unpack_from(buf)
    return NetConnectRecord(
        pid=pid,
        tid=tid,
        uid=uid,
        ts_ns=ts_ns,
        done_ns=done_ns,
        family=family,
        local_ip=_ip(family, saddr),
        local_port=sport,
        remote_ip=_ip(family, daddr),
        remote_port=dport,
        success=bool(success),
        comm=_comm(comm),
        sock=sock,
    )


def _parse_first_send(buf: bytes) -> FirstSendRecord:
    if len(buf) < FIRST_SEND_HDR_SIZE:
        raise MalformedRecord("short first-send record")
    _, length, pid, ts_ns, sock = FIRST_SEND_HDR.unpack_from(buf)
    if length > FIRST_SEND_MAX or FIRST_SEND_HDR_SIZE + length > len(buf):
        raise MalformedRecord("first-send record length out of range")
    data = bytes(buf[FIRST_SEND_HDR_SIZE : FIRST_SEND_HDR_SIZE + length])
    return FirstSendRecord(pid=pid, ts_ns=ts_ns, sock=sock, data=data)


def _parse_dns(buf: bytes) -> DnsRecord:
    if len(buf) < DNS_EVENT_SIZE:
        raise MalformedRecord("short dns record")
    fields = DNS_EVENT.unpack_from(buf)
    pid, tid, ret, ts_ns, done_ns, count = fields[2], fields[3], fields[4], fields[5], fields[6], fields[7]
    families = fields[8 : 8 + DNS_ADDRS_MAX]
    addrs, name, comm = fields[8 + DNS_ADDRS_MAX], fields[9 + DNS_ADDRS_MAX], fields[10 + DNS_ADDRS_MAX]
    answers: list[str] = []
    for i in range(min(count, DNS_ADDRS_MAX)):
        ip = _ip(families[i], addrs[i * 16 : i * 16 + 16])
        if ip and ip not in answers:  # getaddrinfo repeats an address per socket type
            answers.append(ip)
    return DnsRecord(pid=pid, tid=tid, ts_ns=ts_ns, done_ns=done_ns, query=_comm(name), ret=ret,
                     answers=answers, comm=_comm(comm))  # fmt: skip


def _parse_file_open(buf: bytes) -> FileOpenRecord:
    if len(buf) < FILE_OPEN_SIZE:
        raise MalformedRecord("short file open record")
    (_, flags, pid, tid, uid, ts_ns, fd, dirfd, open_flags, mode, path_len, _pad, comm, path) = (
        FILE_OPEN.unpack_from(buf)
    )
    if path_len > PATH_MAX:
        raise MalformedRecord("file open record path length out of range")
    return FileOpenRecord(pid=pid, tid=tid, uid=uid, ts_ns=ts_ns, fd=fd, dirfd=dirfd, open_flags=open_flags,
                          mode=mode, path=path[:path_len].decode("utf-8", "replace"),
                          path_truncated=bool(flags & _TRUNCATED), comm=_comm(comm),
                          resolved=bool(flags & FLAG_PATH_RESOLVED), dup=bool(flags & FLAG_DUP),
                          inherited=bool(flags & FLAG_INHERITED))  # fmt: skip


def _parse_file_close(buf: bytes) -> FileCloseRecord:
    if len(buf) < FILE_CLOSE_SIZE:
        raise MalformedRecord("short file close record")
    (_, flags, pid, tid, fd, ts_ns, open_ts, rbytes, wbytes, reads, writes, comm) = FILE_CLOSE.unpack_from(
        buf
    )
    reason = "process_exit" if flags & FLAG_AT_EXIT else "fd_reused" if flags & FLAG_FD_REUSED else "close"
    return FileCloseRecord(pid=pid, tid=tid, ts_ns=ts_ns, fd=fd, open_ts_ns=open_ts, bytes_read=rbytes,
                           bytes_written=wbytes, reads=reads, writes=writes, comm=_comm(comm),
                           reason=reason)  # fmt: skip


def file_close_bytes(
    pid: int, fd: int, ts_ns: int, stats: tuple[int, int, int, int, int], comm: str
) -> bytes:
    """A close record for a file still open when its process exited (made by user space
    from the kernel's open-file table: open_ts, bytes read, bytes written, reads, writes)."""
    open_ts, rbytes, wbytes, reads, writes = stats
    return FILE_CLOSE.pack(RecordKind.FILE_CLOSE, FLAG_AT_EXIT, pid, pid, fd, ts_ns, open_ts, rbytes, wbytes,
                           reads, writes, comm.encode()[:16])  # fmt: skip


def lib_open_path(buf: bytes) -> str:
    """The path of a LIB_OPEN record (the kernel's hint that a TLS library was opened)."""
    if len(buf) < FILE_OPEN_SIZE:
        return ""
    fields = FILE_OPEN.unpack_from(buf)
    return fields[13][: min(fields[10], PATH_MAX)].decode("utf-8", "replace")


def record_kind(buf: bytes) -> int:
    """The kind of a raw record without decoding it (0 if too short)."""
    return buf[0] | (buf[1] << 8) if len(buf) >= 2 else 0


def record_pid(buf: bytes) -> int:
    """The pid field shared by every record kind (offset 4)."""
    return int.from_bytes(buf[4:8], "little") if len(buf) >= 8 else 0


# (pid, ts_ns, conn_id, len) of a data record, read at the DataHdr offsets without decoding it.
_DATA_KEY = struct.Struct("<4xI8xQQ12xI")
assert _DATA_KEY.size == DataHdr.len.offset + 4
_DATA_SOURCE_AT = DataHdr.source.offset
_STDIO = int(Source.STDIO)


def data_key(buf: bytes) -> tuple[int, int, int, int] | None:
    """(pid, ts_ns, conn_id, data length) of a well-formed connection data record, else None: lets the
    pipeline pass over records of connections it ignores without building a record."""
    if len(buf) < DATA_HDR_SIZE or record_kind(buf) != RecordKind.DATA or buf[_DATA_SOURCE_AT] == _STDIO:
        return None
    return _DATA_KEY.unpack_from(buf)
