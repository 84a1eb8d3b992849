"""A compact byte encoding of capture record sequences, for mutation-based fuzzing.

A fuzzer mutates flat bytes; the decoders eat record sequences (data of either
direction at some stream offset, closes, process exits, over several connections).
This codec maps any byte string to a valid record sequence, so every mutation is a
meaningful input, and real sequences (the unit tests' fixtures) encode back to bytes
to seed the corpus. Lengths are big-endian u16 and are clamped to what is left, so a
mutated length never makes an input invalid, only different.

One op per leading byte ``b``:

* ``b & 7`` is the op: 0/6 = the process writes ``len`` bytes, 1/7 = it reads them,
  2 = the connection closes, 3 = ``skip`` bytes of one direction are lost (the next
  record of it starts later), 4 = the next record of one direction repeats ``back``
  bytes already seen (an overlap), 5 = the process exits;
* ``(b >> 3) & 1`` is the direction of a gap or overlap;
* ``(b >> 4) & 3`` picks one of four connections, ``(b >> 6) & 1`` one of two processes.
"""

from __future__ import annotations

from collections.abc import Iterable

from oisp_sensor.capture.records import (
    ConnCloseRecord,
    DataRecord,
    Direction,
    ProcessExitRecord,
    RawRecord,
)

_OP_WRITE, _OP_READ, _OP_CLOSE, _OP_GAP, _OP_OVERLAP, _OP_EXIT = 0, 1, 2, 3, 4, 5
PIDS = (100, 200)
CONN_IDS = (0xABC, 0xABD, 0xABE, 0xABF)
_TS_STEP = 10_000  # 10 us between records


def decode_script(data: bytes) -> list[RawRecord]:
    """The record sequence a byte string stands for (any byte string is valid)."""
    records: list[RawRecord] = []
    offsets: dict[tuple[int, int, int], int] = {}
    ts = 1_000_000
    pos = 0
    size = len(data)
    while pos < size:
        b = data[pos]
        pos += 1
        op = b & 7
        direction = (b >> 3) & 1
        conn_id = CONN_IDS[(b >> 4) & 3]
        pid = PIDS[(b >> 6) & 1]
        ts += _TS_STEP
        if op in (_OP_WRITE, _OP_READ, 6, 7):
            d = Direction.WRITE if op in (_OP_WRITE, 6) else Direction.READ
            length = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
            payload = data[pos : pos + length]
            pos += len(payload)
            key = (pid, conn_id, int(d))
            offset = offsets.get(key, 0)
            offsets[key] = offset + len(payload)
            records.append(
                DataRecord(
                    pid=pid,
                    tid=pid,
                    uid=1000,
                    ts_ns=ts,
                    conn_id=conn_id,
                    direction=d,
                    stream_offset=offset,
                    data=payload,
                    comm="python3",
                )
            )
        elif op == _OP_CLOSE:
            records.append(ConnCloseRecord(pid=pid, tid=pid, ts_ns=ts, conn_id=conn_id))
            for d in (0, 1):
                offsets.pop((pid, conn_id, d), None)
        elif op in (_OP_GAP, _OP_OVERLAP):
            amount = int.from_bytes(data[pos : pos + 2], "big") if op == _OP_GAP else data[pos : pos + 1]
            pos += 2 if op == _OP_GAP else 1
            if isinstance(amount, bytes):
                amount = -(amount[0] if amount else 0)
            key = (pid, conn_id, direction)
            offsets[key] = max(0, offsets.get(key, 0) + amount)
        else:  # _OP_EXIT
            records.append(ProcessExitRecord(pid=pid, ts_ns=ts, comm="python3"))
            for key in [k for k in offsets if k[0] == pid]:
                del offsets[key]
    return records


def encode_script(records: Iterable[RawRecord]) -> bytes:
    """Bytes that decode to (the same traffic as) ``records``.

    Connections and processes are mapped to the codec's four conn ids and two pids in
    order of appearance (more fold onto the last ones); offsets that do not follow on
    become gap or overlap ops; data longer than 65535 bytes is split.
    """
    out = bytearray()
    pids: dict[int, int] = {}
    conns: dict[tuple[int, int], int] = {}
    offsets: dict[tuple[int, int, int], int] = {}

    def selector(pid: int, conn_id: int) -> int:
        p = pids.setdefault(pid, min(len(pids), 1))
        c = conns.setdefault((pid, conn_id), min(len(conns), 3))
        return (p << 6) | (c << 4)

    for record in records:
        if isinstance(record, DataRecord):
            sel = selector(record.pid, record.conn_id)
            d = int(record.direction)
            key = (sel, d, 0)
            expected = offsets.get(key, 0)
            delta = record.stream_offset - expected
            while delta > 0:
                step = min(delta, 0xFFFF)
                out += bytes([sel | (d << 3) | _OP_GAP]) + step.to_bytes(2, "big")
                delta -= step
            while delta < 0:
                step = min(-delta, 0xFF)
                out += bytes([sel | (d << 3) | _OP_OVERLAP, step])
                delta += step
            payload = record.data
            offsets[key] = record.stream_offset + len(payload)
            for start in range(0, max(len(payload), 1), 0xFFFF):
                piece = payload[start : start + 0xFFFF]
                out += bytes([sel | d]) + len(piece).to_bytes(2, "big") + piece
        elif isinstance(record, ConnCloseRecord):
            sel = selector(record.pid, record.conn_id)
            out += bytes([sel | _OP_CLOSE])
            offsets.pop((sel, 0, 0), None)
            offsets.pop((sel, 1, 0), None)
        elif isinstance(record, ProcessExitRecord):
            p = pids.setdefault(record.pid, min(len(pids), 1))
            out += bytes([(p << 6) | _OP_EXIT])
            for key in [k for k in offsets if (k[0] >> 6) & 1 == p]:
                del offsets[key]
    return bytes(out)
