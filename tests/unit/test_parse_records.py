"""Raw record parsing and raw capture files: malformed input is an error value, never a crash."""

from __future__ import annotations

import io

import pytest

from oisp_sensor.capture.layout import DataHdr
from oisp_sensor.capture.parse import (
    CTL_EVENT,
    DATA_HDR,
    EXEC_HDR,
    FIRST_SEND_HDR,
    NET_EVENT,
    MalformedRecord,
    data_key,
    parse_record,
)
from oisp_sensor.capture.rawfile import RawFileError, RawWriter, read_raw
from oisp_sensor.capture.records import (
    ConnCloseRecord,
    DataRecord,
    Direction,
    ExecRecord,
    FirstSendRecord,
    ForkRecord,
    NetConnectRecord,
    ProcessExitRecord,
)


def data_record(payload: bytes, offset: int = 0, direction: int = 0) -> bytes:
    hdr = DATA_HDR.pack(
        1,
        0,
        42,
        43,
        1000,
        123456789,
        0xDEADBEEF,
        offset,
        len(payload),
        len(payload),
        direction,
        0,
        b"python3",
    )
    return hdr + payload


def test_data_record_roundtrip() -> None:
    rec = parse_record(data_record(b"GET / HTTP/1.1\r\n\r\n", offset=7, direction=1))
    assert isinstance(rec, DataRecord)
    assert (rec.pid, rec.tid, rec.uid, rec.ts_ns, rec.conn_id) == (42, 43, 1000, 123456789, 0xDEADBEEF)
    assert rec.direction is Direction.READ and rec.stream_offset == 7
    assert rec.data == b"GET / HTTP/1.1\r\n\r\n" and rec.comm == "python3"


def test_control_records() -> None:
    close = parse_record(CTL_EVENT.pack(2, 0, 5, 6, 0, 99, 0xABC, 0, 0, 0, b"node"))
    assert close == ConnCloseRecord(pid=5, tid=6, ts_ns=99, conn_id=0xABC)
    exit_ = parse_record(CTL_EVENT.pack(3, 0, 5, 5, 0, 100, 0, 256, 0, 40, b"node"))
    assert exit_ == ProcessExitRecord(pid=5, ts_ns=100, exit_code=256, start_ns=40, comm="node")
    fork = parse_record(CTL_EVENT.pack(5, 0, 8, 8, 7, 102, 0, 0, 0, 0, b"bash"))
    assert fork == ForkRecord(pid=8, ppid=7, ts_ns=102, comm="bash")
    args, name = b"curl\0-s\0https://x\0", b"/usr/bin/curl"
    cwd, env = b"/home/u", b"HOME=/home/u\0LANG=C.UTF-8\0PARTI"
    flags = 0x1 | 0x10  # args truncated, cwd resolved
    hdr = EXEC_HDR.pack(4, flags, 7, 7, 1, 1000, 1000, 101, len(args), len(name), len(cwd), len(env), b"curl")
    exec_ = parse_record(hdr + args + name + cwd + env)
    assert exec_ == ExecRecord(
        pid=7,
        ppid=1,
        ts_ns=101,
        comm="curl",
        tid=7,
        uid=1000,
        gid=1000,
        filename="/usr/bin/curl",
        args=["curl", "-s", "https://x"],
        args_truncated=True,
        cwd="/home/u",
        env=["HOME=/home/u", "LANG=C.UTF-8"],  # the variable cut at the end is dropped
        env_truncated=True,
    )
    with pytest.raises(MalformedRecord):
        parse_record(hdr + args)  # the filename is missing
    bare = EXEC_HDR.pack(4, 0, 7, 7, 1, 0, 0, 101, len(args), len(name), 0, 0, b"curl")
    assert parse_record(bare + args + name).cwd == ""
    assert parse_record(bare + args + name).env is None
    net = NET_EVENT.pack(
        6,
        0,
        9,
        9,
        0,
        10,
        20,
        2,
        40000,
        443,
        1,
        0,
        bytes([127, 0, 0, 1]) + bytes(12),
        bytes([10, 1, 2, 3]) + bytes(12),
        b"python3",
        0xFFFF8880DEADBEEF,
    )
    conn = parse_record(net)
    assert isinstance(conn, NetConnectRecord)
    assert (conn.local_ip, conn.local_port, conn.remote_ip, conn.remote_port) == (
        "127.0.0.1",
        40000,
        "10.1.2.3",
        443,
    )
    assert conn.success and conn.done_ns == 20 and conn.sock == 0xFFFF8880DEADBEEF
    hello = b"\x16\x03\x01\x00\x05hello"
    first = FIRST_SEND_HDR.pack(11, len(hello), 9, 30, 0xFFFF8880DEADBEEF) + hello + bytes(1024 - len(hello))
    sent = parse_record(first)
    assert isinstance(sent, FirstSendRecord)
    assert (sent.pid, sent.ts_ns, sent.sock, sent.data) == (9, 30, 0xFFFF8880DEADBEEF, hello)
    with pytest.raises(MalformedRecord):
        parse_record(FIRST_SEND_HDR.pack(11, 2000, 9, 30, 1) + bytes(1024))  # length out of range


@pytest.mark.parametrize(
    "buf",
    [
        b"",
        b"\x01",
        b"\x01\x00\x00\x00",
        data_record(b"abc")[:-1][:40],
        b"\x09\x00" + b"\x00" * 60,
        DATA_HDR.pack(1, 0, 1, 1, 0, 0, 0, 0, 10, 10, 0, 0, b"") + b"short",
        DATA_HDR.pack(1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 7, 0, b"") + b"x",
    ],
)
def test_malformed_records_raise_malformed(buf: bytes) -> None:
    with pytest.raises(MalformedRecord):
        parse_record(buf)


def test_raw_file_roundtrip_and_truncation() -> None:
    f = io.BytesIO()
    writer = RawWriter(f, {"clock_offset_ns": 5})
    records = [data_record(b"a" * n) for n in (1, 100, 5000)]
    writer.write(records)
    blob = f.getvalue()
    meta, it = read_raw(io.BytesIO(blob))
    assert meta == {"clock_offset_ns": 5}
    assert list(it) == records
    # A file cut midway yields the whole records before the cut.
    meta, it = read_raw(io.BytesIO(blob[:-10]))
    assert list(it) == records[:2]
    with pytest.raises(RawFileError):
        read_raw(io.BytesIO(b"garbage"))


def test_ulid_text_matches_python_ulid() -> None:
    import random

    from ulid import ULID

    from oisp_sensor.schema.envelope import Clock, ulid_text

    rng = random.Random(7)
    for value in [0, 2**128 - 1, *(rng.getrandbits(128) for _ in range(2000))]:
        assert ulid_text(value) == str(ULID.from_int(value))
    clock = Clock(offset_ns=1_700_000_000_000_000_000)
    ids = [clock.new_event_id(n * 1_000_000) for n in range(100)]
    assert all(ULID.from_str(i).milliseconds == 1_700_000_000_000 + n for n, i in enumerate(ids))
    assert len(set(ids)) == 100


def test_data_key_reads_what_parse_record_would() -> None:
    buf = data_record(b"HTTP/1.1 200 OK\r\n", direction=1)
    rec = parse_record(buf)
    assert data_key(buf) == (rec.pid, rec.ts_ns, rec.conn_id, len(rec.data))
    stdio = bytearray(buf)
    stdio[DataHdr.source.offset] = 4  # source: a stdio pipe is not a connection
    assert parse_record(bytes(stdio)).source == 4
    assert data_key(bytes(stdio)) is None
    assert data_key(buf[:20]) is None
    assert data_key(CTL_EVENT.pack(2, 0, 5, 6, 0, 99, 0xABC, 0, 0, 0, b"node")) is None
