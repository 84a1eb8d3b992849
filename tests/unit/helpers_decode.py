"""Test helpers for the decode stage: build capture records, feed them, compare outputs.

Outputs are compared through :func:`normalize`, which keeps every field except capture
timestamps, so the same traffic cut into records differently must normalize equally.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from oisp_sensor.capture.records import ConnCloseRecord, DataRecord, Direction, RawRecord
from oisp_sensor.decode.connection import ConnectionTracker
from oisp_sensor.decode.messages import (
    DecodeOutput,
    ExchangeDone,
    HttpRequest,
    HttpResponse,
    RequestSeen,
    ResponseStarted,
    StreamEvent,
)

T = TypeVar("T")
W = Direction.WRITE
R = Direction.READ
CLOSE = None  # a Step direction meaning "the connection closes here"


@dataclass(frozen=True)
class Step:
    """Bytes moving one way on a connection (or, with direction None, its close)."""

    direction: Direction | None
    data: bytes = b""


class Conn:
    """Makes the records of one connection: running stream offsets and timestamps."""

    def __init__(self, pid: int = 100, conn_id: int = 0xABC, tid: int | None = None, ts: int = 1_000) -> None:
        self.pid = pid
        self.conn_id = conn_id
        self.tid = tid if tid is not None else pid
        self.ts = ts
        self.offsets = {W: 0, R: 0}

    def data(
        self, direction: Direction, data: bytes, *, ts: int | None = None, offset: int | None = None
    ) -> DataRecord:
        """The next record of ``direction``; ``offset`` overrides the running offset (gaps, overlaps)."""
        self.ts = ts if ts is not None else self.ts + 10
        start = self.offsets[direction] if offset is None else offset
        self.offsets[direction] = max(self.offsets[direction], start + len(data))
        return DataRecord(
            pid=self.pid,
            tid=self.tid,
            uid=1000,
            ts_ns=self.ts,
            conn_id=self.conn_id,
            direction=direction,
            stream_offset=start,
            data=data,
            comm="python3",
        )

    def close(self, *, ts: int | None = None) -> ConnCloseRecord:
        self.ts = ts if ts is not None else self.ts + 10
        return ConnCloseRecord(pid=self.pid, tid=self.tid, ts_ns=self.ts, conn_id=self.conn_id)


def feed_all(tracker: ConnectionTracker, records: Sequence[RawRecord]) -> list[DecodeOutput]:
    out: list[DecodeOutput] = []
    for record in records:
        out.extend(tracker.feed(record))
    return out


def records_for(steps: Sequence[Step], pieces: dict[int, list[bytes]] | None = None) -> list[RawRecord]:
    """Records for a script; ``pieces[i]`` replaces step i by several records."""
    conn = Conn()
    records: list[RawRecord] = []
    for index, step in enumerate(steps):
        if step.direction is None:
            records.append(conn.close())
            continue
        parts = pieces.get(index, [step.data]) if pieces else [step.data]
        records.extend(conn.data(step.direction, part) for part in parts if part)
    return records


def run(
    steps: Sequence[Step], pieces: dict[int, list[bytes]] | None = None, **kwargs: object
) -> tuple[list[DecodeOutput], ConnectionTracker]:
    """Feed a script to a fresh tracker, then flush it."""
    tracker = ConnectionTracker(**kwargs)  # type: ignore[arg-type]
    out = feed_all(tracker, records_for(steps, pieces))
    out.extend(tracker.flush(10**12))
    return out, tracker


def split_variants(steps: Sequence[Step]) -> Iterator[tuple[str, dict[int, list[bytes]]]]:
    """Every way to cut one step into two records, then every step one byte per record."""
    for index, step in enumerate(steps):
        for cut in range(1, len(step.data)):
            yield f"step{index}@{cut}", {index: [step.data[:cut], step.data[cut:]]}
    bytewise = {
        index: [step.data[i : i + 1] for i in range(len(step.data))]
        for index, step in enumerate(steps)
        if step.direction is not None
    }
    yield "bytewise", bytewise


def request_key(request: HttpRequest) -> tuple[object, ...]:
    return (
        request.method,
        request.target,
        request.version,
        tuple(request.headers),
        request.body,
        request.body_size,
        request.truncated,
        tuple(request.problems),
    )


def response_key(response: HttpResponse | None) -> tuple[object, ...] | None:
    if response is None:
        return None
    return (
        response.status,
        response.reason,
        response.version,
        tuple(response.headers),
        response.body,
        response.body_size,
        tuple((e.data, e.event, e.id) for e in response.sse_events),
        response.complete,
        response.truncated,
        tuple(response.problems),
    )


def normalize(outputs: Sequence[DecodeOutput]) -> list[tuple[object, ...]]:
    """Outputs as plain tuples without capture timestamps (they depend on record cuts)."""
    result: list[tuple[object, ...]] = []
    for item in outputs:
        if isinstance(item, RequestSeen):
            result.append(("seen", item.exchange_id, item.conn.role, request_key(item.request)))
        elif isinstance(item, ResponseStarted):
            result.append(("started", item.exchange_id, item.response.status))
        elif isinstance(item, StreamEvent):
            event = item.event
            result.append(("event", item.exchange_id, item.index, event.data, event.event, event.id))
        elif isinstance(item, ExchangeDone):
            result.append(("done", item.exchange_id, request_key(item.request), response_key(item.response)))
        else:  # pragma: no cover - a new output type must be added here
            raise AssertionError(f"unknown output {item!r}")
    return result


def of_type(outputs: Sequence[DecodeOutput], kind: type[T]) -> list[T]:
    return [item for item in outputs if isinstance(item, kind)]


def chunked(*parts: bytes, ext: bytes = b"", trailers: bytes = b"") -> bytes:
    """A chunked body: one chunk per part (with an optional chunk extension), then trailers."""
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(part), ext, part) for part in parts)
    return body + b"0\r\n" + trailers + b"\r\n"


def http_request(
    method: bytes = b"GET",
    target: bytes = b"/",
    headers: Sequence[tuple[bytes, bytes]] = ((b"Host", b"api.example.com"),),
    body: bytes = b"",
) -> bytes:
    """A request; Content-Length is added for a non-empty body unless it is chunked."""
    lines = [b"%s %s HTTP/1.1" % (method, target)]
    lines += [b"%s: %s" % pair for pair in headers]
    names = {name.lower() for name, _ in headers}
    if body and b"transfer-encoding" not in names and b"content-length" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def http_response(
    status: int = 200,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    *,
    reason: bytes = b"OK",
    length: bool = True,
    version: bytes = b"1.1",
) -> bytes:
    """A response; Content-Length is added (when ``length``) unless chunked or given."""
    lines = [b"HTTP/%s %d %s" % (version, status, reason)]
    lines += [b"%s: %s" % pair for pair in headers]
    names = {name.lower() for name, _ in headers}
    if length and b"transfer-encoding" not in names and b"content-length" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
