"""What the wire-protocol decoders produce, and what the provider parsers consume.

Timestamps are the capture's monotonic nanoseconds (from the records), never a clock
read by the decoder.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

ConnKey = tuple[int, int]  # (pid, conn_id)


class Role(enum.Enum):
    """Which end of the conversation the observed process is."""

    UNKNOWN = "unknown"
    CLIENT = "client"  # it writes requests and reads responses: it owns the AI call
    SERVER = "server"  # it reads requests and writes responses (a local gateway or fake)


@dataclass(slots=True)
class SseEvent:
    """One Server-Sent Event, as dispatched by the SSE parsing rules (one per blank line)."""

    data: str
    event: str = ""  # the `event:` field ("" means the default "message")
    id: str = ""
    ts_ns: int = 0  # capture time of the record that completed this event


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str  # request target as sent: "/v1/chat/completions?x=1"
    version: str  # "1.1", "1.0" or "2"
    headers: list[tuple[str, str]]  # names lower-cased, in wire order
    body: bytes  # after Content-Encoding is undone
    start_ts_ns: int  # first byte of the request seen
    end_ts_ns: int  # last byte of the request seen
    body_size: int = 0  # bytes of body on the wire (before decoding)
    truncated: bool = False  # bytes were lost (gap) or the body was cut at the size limit
    problems: list[str] = field(default_factory=list)  # e.g. "gap", "decode-error:gzip"
    stream_id: int = 0  # HTTP/2 stream id (0 for HTTP/1.x)

    def header(self, name: str) -> str | None:
        """First value of a header (name is lower-case)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class HttpResponse:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes  # after Content-Encoding is undone (for SSE: the full decoded stream text)
    start_ts_ns: int  # first byte of the response seen
    end_ts_ns: int  # last byte seen (stream end for SSE)
    body_size: int = 0
    sse_events: list[SseEvent] = field(default_factory=list)  # filled for text/event-stream
    complete: bool = True  # False when the connection ended before the message did
    truncated: bool = False
    problems: list[str] = field(default_factory=list)
    stream_id: int = 0  # HTTP/2 stream id (0 for HTTP/1.x)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def is_event_stream(self) -> bool:
        ctype = self.header("content-type") or ""
        return ctype.split(";", 1)[0].strip().lower() == "text/event-stream"


@dataclass(slots=True)
class ConnInfo:
    """What is known of one observed connection."""

    key: ConnKey
    pid: int
    tid: int  # thread that last touched it
    uid: int
    comm: str
    role: Role = Role.UNKNOWN
    first_ts_ns: int = 0
    # "ssl" (plaintext from a TLS library), "socket" (plain HTTP from socket syscalls) or
    # "stdio" (JSON-RPC on a stdio server's pipes)
    capture_point: str = "ssl"

    @property
    def capture_method(self) -> str:
        return "ebpf_tracepoint" if self.capture_point in ("socket", "stdio") else "ebpf_uprobe"


# ---- what ConnectionTracker.feed() returns ------------------------------------------------


@dataclass(slots=True)
class RequestSeen:
    """A complete request was written by a client (emit ai.request now, before the response)."""

    conn: ConnInfo
    request: HttpRequest
    exchange_id: int  # unique per tracker; the matching ExchangeDone carries the same id


@dataclass(slots=True)
class ResponseStarted:
    """Status line and headers of the response to `exchange_id` arrived."""

    conn: ConnInfo
    exchange_id: int
    response: HttpResponse  # body still empty / growing


@dataclass(slots=True)
class StreamEvent:
    """One SSE event of a streaming response, as soon as it is complete."""

    conn: ConnInfo
    exchange_id: int
    event: SseEvent
    index: int  # 0-based position in the stream


@dataclass(slots=True)
class ExchangeDone:
    """A request and its response, correlated in order on their connection.

    `response` is None when the connection closed (or the process exited, or the
    tracker was flushed) before any response arrived; `response.complete` is False when
    it ended midway.
    """

    conn: ConnInfo
    exchange_id: int
    request: HttpRequest
    response: HttpResponse | None


DecodeOutput = RequestSeen | ResponseStarted | StreamEvent | ExchangeDone
