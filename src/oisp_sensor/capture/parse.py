"""Turn raw ring-buffer bytes into the plain record types of `capture.records`.

Kept apart from the poll loop so that a saved raw capture replays through exactly the
same code as live capture.
"""

from __future__ import annotations

import struct

from .layout import CTL_EVENT_SIZE, DATA_HDR_SIZE, RecordKind
from .records import (
    ConnCloseRecord,
    DataRecord,
    Direction,
    ExecRecord,
    ProcessExitRecord,
    RawRecord,
    Source,
)

# Must match struct oisp_data_hdr / oisp_ctl_event (checked by tests/unit/test_layout.py).
DATA_HDR = struct.Struct("<HHIIIQQQIIBB6x16s")
CTL_EVENT = struct.Struct("<HHIIIQQiI16s")
assert DATA_HDR.size == DATA_HDR_SIZE and CTL_EVENT.size == CTL_EVENT_SIZE

_DIRECTIONS = (Direction.WRITE, Direction.READ)
_SOURCES = (Source.OPENSSL, Source.SOCKET)


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
        if length > len(buf) - DATA_HDR_SIZE or direction > 1 or source > 1:
            raise MalformedRecord("data record fields out of range")
        return DataRecord(
            pid=pid,
            tid=tid,
            uid=uid,
            ts_ns=ts_ns,
            conn_id=conn_id,
            direction=_DIRECTIONS[direction],
            stream_offset=offset,
            data=buf[DATA_HDR_SIZE : DATA_HDR_SIZE + length],
            comm=_comm(comm),
            source=_SOURCES[source],
        )
    if len(buf) < CTL_EVENT_SIZE:
        raise MalformedRecord(f"short control record of kind {kind}")
    (_, _flags, pid, tid, ppid, ts_ns, conn_id, exit_code, _pad, comm) = CTL_EVENT.unpack_from(buf)
    if kind == RecordKind.CONN_CLOSE:
        return ConnCloseRecord(pid=pid, tid=tid, ts_ns=ts_ns, conn_id=conn_id)
    if kind == RecordKind.PROC_EXIT:
        return ProcessExitRecord(pid=pid, ts_ns=ts_ns, exit_code=exit_code)
    if kind == RecordKind.PROC_EXEC:
        return ExecRecord(pid=pid, ppid=ppid, ts_ns=ts_ns, comm=_comm(comm))
    raise MalformedRecord(f"unknown record kind {kind}")


def record_kind(buf: bytes) -> int:
    """The kind of a raw record without decoding it (0 if too short)."""
    return buf[0] | (buf[1] << 8) if len(buf) >= 2 else 0


def record_pid(buf: bytes) -> int:
    """The pid field shared by every record kind (offset 4)."""
    return int.from_bytes(buf[4:8], "little") if len(buf) >= 8 else 0
