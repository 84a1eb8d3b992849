"""Per-connection HTTP decoding: raw capture records in, request/response exchanges out.

The capture sees every TLS connection of every process, as interleaved records. This
module keeps one small state per (pid, conn_id): which side of HTTP the process is,
the next expected stream offset of each direction (to see lost and repeated bytes),
one request parser and one response parser, and the queue of requests waiting for
their responses. Records are never correlated by pid or thread alone: one thread of a
Node process serves many connections, and their records interleave arbitrarily.

Pairing is FIFO per connection (HTTP/1.1 answers in order, pipelined or not). When
bytes were lost and a parser had to resynchronise, FIFO can no longer be trusted, so a
response is then paired only with a request that started before it did, the latest
such one (a client that does not pipeline only has one request outstanding); older
candidates are reported unanswered, and a response no request can explain is counted
as an orphan and dropped. A wrong pairing would attach a prompt to another prompt's
completion, which is worse than a missing response.

HTTP/2 connections (recognised by the client preface, or, when the capture joined them
midway, by records that start with plausible frames) are handed to one
:class:`~oisp_sensor.decode.http2.Http2Decoder` each, which correlates by stream id and
reports through the same outputs; the process that writes the preface is the client.

Everything here is synchronous and sans-IO; ``feed`` never raises.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, fields, replace

from oisp_sensor.capture.records import (
    ConnCloseRecord,
    DataRecord,
    Direction,
    ProcessExitRecord,
    RawRecord,
    Source,
)
from oisp_sensor.decode.http1 import (
    METHODS,
    REQUEST_LINE_RE,
    RequestParser,
    ResponseParser,
)
from oisp_sensor.decode.http2 import Http2Decoder, plausible_frames
from oisp_sensor.decode.messages import (
    ConnInfo,
    ConnKey,
    DecodeOutput,
    ExchangeDone,
    HttpRequest,
    HttpResponse,
    RequestSeen,
    ResponseStarted,
    Role,
    SseEvent,
    StreamEvent,
)

__all__ = ["ConnectionTracker", "DecodeCounters"]

MAX_AWAITING = 64  # unanswered requests kept per connection
MAX_CONNECTIONS = 65536
_DETECT_BYTES = 16  # enough to tell a method, "HTTP/1." or the HTTP/2 preface apart

_H2_PREFACE = b"PRI * HTTP/2.0"
_RESPONSE_PREFIX = b"HTTP/1."
_PATTERNS = (*(method + b" " for method in METHODS), _H2_PREFACE, _RESPONSE_PREFIX)
_MAX_DETECT_HELD = 64 * 1024  # bytes held while one direction is still ambiguous
_POOL_SIZE = 64  # idle parser pairs kept for new connections
_BODYLESS_METHODS = frozenset({"HEAD", "CONNECT"})
_METHOD_SET = frozenset(METHODS)

# what the first bytes of one direction look like
_EMPTY = 0
_MAYBE = 1  # too short to tell
_NO = 2
_REQ = 3
_RESP = 4
_H2 = 5

# connection states
_DETECTING = 0
_CLIENT = 1
_SERVER = 2  # reported (report_server_side=True)
_SILENT = 3  # a server, not reported: bytes ignored
_HTTP2 = 4  # decoded by self.h2 (as a client, or as a reported server)
_NON_HTTP = 5
_UPGRADED = 6  # was HTTP/1.1, switched protocols or became a tunnel
_HTTP2_SERVER = 7  # only a detection verdict: it read the preface (becomes _HTTP2 or _SILENT)

_WRITE = int(Direction.WRITE)
_READ = int(Direction.READ)


@dataclass(slots=True)
class DecodeCounters:
    """What the decoder saw and what it had to give up on; exported as sensor metrics."""

    records: int = 0
    bytes: int = 0
    connections: int = 0
    http_connections: int = 0
    http2_connections: int = 0
    late_http2_connections: int = 0  # HTTP/2 joined midway (no preface seen), confirmed by HPACK
    http2_streams: int = 0  # requests seen on HTTP/2 streams
    http2_frame_errors: int = 0  # corrupted frames (bad length, type, stream id, preface)
    hpack_errors: int = 0  # header blocks that could not be decoded (lost or unknown table state)
    non_http_connections: int = 0
    server_connections: int = 0
    late_http_connections: int = 0  # first looked non-HTTP (seen mid-stream), then a request line came
    upgraded_connections: int = 0
    evicted_connections: int = 0
    requests: int = 0
    responses: int = 0
    exchanges: int = 0
    incomplete_exchanges: int = 0
    sse_events: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    overlaps: int = 0
    parse_errors: int = 0
    decode_errors: int = 0
    orphan_responses: int = 0
    unanswered_requests: int = 0  # ExchangeDone with response=None
    dropped_requests: int = 0  # unanswered queue overflow
    truncated_bodies: int = 0
    internal_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _classify(prefix: bytes) -> int:
    """What the first bytes of a direction look like."""
    if not prefix:
        return _EMPTY
    space = prefix.find(b" ", 0, 8)
    if space > 0 and prefix[:space] in _METHOD_SET:
        return _REQ
    if prefix.startswith(_RESPONSE_PREFIX):
        return _RESP
    if prefix.startswith(_H2_PREFACE):
        return _H2
    for pattern in _PATTERNS:
        if len(prefix) < len(pattern) and pattern.startswith(prefix):
            return _MAYBE
    return _NO


def _decide(write: int, read: int) -> int | None:
    """Connection state from what each direction starts with; None: wait for more bytes."""
    if write == _REQ:
        return _CLIENT
    if write == _H2:
        return _HTTP2
    if read == _H2:
        return _HTTP2_SERVER
    if read == _REQ:
        return _SERVER
    if write == _MAYBE or read == _MAYBE:
        return None
    if write == _EMPTY:
        return _CLIENT if read == _RESP else (None if read == _EMPTY else _NON_HTTP)
    if write == _RESP and read == _EMPTY:
        return _SERVER  # it wrote a response: a server whose request we did not see
    return _NON_HTTP


class _Detection:
    """Bytes held while a connection's first bytes do not yet tell what it is (rare)."""

    __slots__ = ("chunks", "gap", "held", "prefix")

    def __init__(self) -> None:
        self.chunks: list[tuple[int, int, bytes]] = []  # (direction, ts, data), arrival order
        self.prefix = [b"", b""]  # first bytes of each direction, up to _DETECT_BYTES
        self.gap = [False, False]  # bytes of that direction were lost before what is held
        self.held = 0

    def add(self, direction: int, ts_ns: int, data: bytes) -> None:
        self.chunks.append((direction, ts_ns, data))
        self.held += len(data)
        prefix = self.prefix[direction]
        if len(prefix) < _DETECT_BYTES:
            self.prefix[direction] = (prefix + data[:_DETECT_BYTES])[:_DETECT_BYTES]

    def lost(self, direction: int) -> None:
        """Bytes of ``direction`` were lost: what is held of it is not contiguous with what comes."""
        self.chunks = [item for item in self.chunks if item[0] != direction]
        self.held = sum(len(item[2]) for item in self.chunks)
        self.prefix[direction] = b""
        self.gap[direction] = True

    def verdict(self) -> int | None:
        if self.held > _MAX_DETECT_HELD:
            return _NON_HTTP
        return _decide(_classify(self.prefix[_WRITE]), _classify(self.prefix[_READ]))


class _Exchange:
    """One request and (eventually) its response on a connection."""

    __slots__ = ("events_sent", "id", "request", "request_done", "response", "response_done", "started_sent")

    def __init__(self, exchange_id: int, request: HttpRequest) -> None:
        self.id = exchange_id
        self.request = request
        self.request_done = False  # RequestSeen emitted
        self.response: HttpResponse | None = None
        self.response_done = False  # response finished (or known never to come)
        self.started_sent = False  # ResponseStarted emitted
        self.events_sent = 0  # StreamEvents emitted


class _Conn:
    """State of one (pid, conn_id): role, offsets, parsers, and request/response pairing.

    It is the sink of its two parsers: they call back here, synchronously, and the
    outputs go to ``self.out`` (set by the tracker for each call).
    """

    __slots__ = (
        "awaiting",
        "counted_non_http",
        "counters",
        "detect",
        "expected",
        "h2",
        "ids",
        "info",
        "last_ts",
        "max_body",
        "out",
        "pool",
        "report_server",
        "req_dir",
        "req_ex",
        "req_parser",
        "resp_ex",
        "resp_parser",
        "state",
        "uncertain",
    )

    def __init__(
        self,
        info: ConnInfo,
        counters: DecodeCounters,
        ids: itertools.count[int],
        max_body: int,
        report_server: bool,
        pool: list[tuple[RequestParser, ResponseParser]],
    ) -> None:
        self.info = info
        self.pool = pool
        self.counters = counters
        self.ids = ids
        self.max_body = max_body
        self.report_server = report_server
        self.state = _DETECTING
        self.expected = [0, 0]  # next stream offset per direction
        self.detect: _Detection | None = None  # only when the first record did not decide
        self.last_ts = info.first_ts_ns
        self.out: list[DecodeOutput] = []
        self.req_dir = _WRITE
        self.req_parser: RequestParser | None = None
        self.resp_parser: ResponseParser | None = None
        # requests waiting for a response, oldest first (a short list: cheaper than a deque);
        # None marks a place where requests may have been lost
        self.awaiting: list[_Exchange | None] = []
        self.req_ex: _Exchange | None = None  # request being parsed (head seen)
        self.resp_ex: _Exchange | None = None  # exchange whose response is being parsed
        self.uncertain = False  # the response stream resynchronised: FIFO pairing not trusted
        self.h2: Http2Decoder | None = None  # state _HTTP2 only
        self.counted_non_http = False  # non_http_connections already counts this one

    # ---- bytes in ------------------------------------------------------------------

    def on_data(self, direction: int, offset: int, data: bytes, ts_ns: int) -> None:
        """One data record of this connection: check offsets, then route the new bytes."""
        expected = self.expected[direction]
        if offset != expected:
            if offset < expected:
                self.counters.overlaps += 1
                skip = expected - offset
                if skip >= len(data):
                    return
                data = data[skip:]
            else:
                self._gap(direction, offset - expected, ts_ns)
        self.expected[direction] = offset + len(data) if offset >= expected else expected + len(data)
        if not data:
            return
        state = self.state
        if state in (_CLIENT, _SERVER):
            parser = self.req_parser if direction == self.req_dir else self.resp_parser
            if parser is not None:
                parser.feed(data, ts_ns)
        elif state == _HTTP2:
            h2 = self.h2
            if h2 is not None:
                h2.feed(direction, data, ts_ns)
        elif state == _DETECTING:
            self._detect(direction, data, ts_ns)
        elif state == _NON_HTTP:
            if REQUEST_LINE_RE.match(data):
                self._late_start(direction, data, ts_ns)
            elif plausible_frames(data):
                self._start_h2_midway([(direction, ts_ns, data)])

    def _gap(self, direction: int, nbytes: int, ts_ns: int) -> None:
        self.counters.gaps += 1
        self.counters.gap_bytes += nbytes
        state = self.state
        if state in (_CLIENT, _SERVER):
            parser = self.req_parser if direction == self.req_dir else self.resp_parser
            if parser is not None:
                parser.gap(nbytes, ts_ns)
        elif state == _HTTP2:
            if self.h2 is not None:
                self.h2.gap(direction, nbytes, ts_ns)
        elif state == _DETECTING:
            if self.detect is None:
                self.detect = _Detection()
            self.detect.lost(direction)

    # ---- role detection ----------------------------------------------------------------

    def _detect(self, direction: int, data: bytes, ts_ns: int) -> None:
        detection = self.detect
        if detection is None:  # the usual case: the first record alone decides
            kind = _classify(data[:_DETECT_BYTES])
            state = _decide(kind, _EMPTY) if direction == _WRITE else _decide(_EMPTY, kind)
            if state is not None:
                self._decided(state, [(direction, ts_ns, data)], (False, False))
                return
            detection = self.detect = _Detection()
        detection.add(direction, ts_ns, data)
        state = detection.verdict()
        if state is not None:
            self.detect = None
            self._decided(state, detection.chunks, tuple(detection.gap))

    def _decided(self, state: int, held: list[tuple[int, int, bytes]], gap: tuple[bool, ...]) -> None:
        if state in (_CLIENT, _SERVER):
            self._start_http(state == _CLIENT, held, gap)
        elif state in (_HTTP2, _HTTP2_SERVER):
            self._start_h2(state == _HTTP2, held, gap)
        elif held and plausible_frames(held[0][2]):
            self._start_h2_midway(held)  # frames, no preface: an HTTP/2 connection joined midway
        else:
            self.state = _NON_HTTP
            self.counted_non_http = True
            self.counters.non_http_connections += 1

    def _late_start(self, direction: int, data: bytes, ts_ns: int) -> None:
        """A connection first seen mid-stream now starts a request at a record boundary."""
        self.counters.late_http_connections += 1
        gap = (direction != _WRITE, direction != _READ)  # the other direction: position unknown
        self._start_http(direction == _WRITE, [(direction, ts_ns, data)], gap)

    def _start_http(self, client: bool, held: list[tuple[int, int, bytes]], gap: tuple[bool, ...]) -> None:
        """Role decided: build the parsers and replay the bytes held during detection."""
        counters = self.counters
        counters.http_connections += 1
        if not client:
            counters.server_connections += 1
            if not self.report_server:
                self.state = _SILENT
                return
        self.state = _CLIENT if client else _SERVER
        self.info.role = Role.CLIENT if client else Role.SERVER  # no output holds it yet
        self.req_dir = _WRITE if client else _READ
        resp_dir = _READ if client else _WRITE
        self._make_parsers()
        assert self.req_parser is not None and self.resp_parser is not None
        if gap[self.req_dir]:
            self.req_parser.start_resync()
        resp_head = b"".join(data for d, _, data in held if d == resp_dir)[: len(_RESPONSE_PREFIX)]
        if gap[resp_dir] or not _RESPONSE_PREFIX.startswith(resp_head):
            self.resp_parser.start_resync()
        for direction, ts_ns, data in held:
            if self.state != _CLIENT and self.state != _SERVER:
                break
            parser = self.req_parser if direction == self.req_dir else self.resp_parser
            parser.feed(data, ts_ns)

    def _start_h2(self, client: bool, held: list[tuple[int, int, bytes]], gap: tuple[bool, ...]) -> None:
        """Preface seen: decode HTTP/2 from the start (a server stays silent unless reported)."""
        counters = self.counters
        counters.http2_connections += 1
        if not client:
            counters.server_connections += 1
            if not self.report_server:
                self.state = _SILENT
                return
        self.state = _HTTP2
        self.info.role = Role.CLIENT if client else Role.SERVER  # no output holds it yet
        h2 = self.h2 = Http2Decoder(self, self.max_body, _WRITE if client else _READ, preface=True)
        for direction in (_WRITE, _READ):
            if gap[direction]:
                h2.gap(direction, 1, 0)  # what is held of it is not where it started
        self._replay_h2(held)

    def _start_h2_midway(self, held: list[tuple[int, int, bytes]]) -> None:
        """Frames without a preface: decode as HTTP/2 until proven wrong (see h2_abandon)."""
        self.state = _HTTP2
        self.h2 = Http2Decoder(self, self.max_body, None, preface=False)
        self._replay_h2(held)

    def _replay_h2(self, held: list[tuple[int, int, bytes]]) -> None:
        for direction, ts_ns, data in held:
            h2 = self.h2
            if h2 is None or self.state != _HTTP2:
                break
            h2.feed(direction, data, ts_ns)

    # ---- Http2Sink -----------------------------------------------------------------------------

    def h2_role(self, client: bool) -> bool:
        """A connection joined midway showed its role: decode on, or stay silent as a server."""
        self.info.role = Role.CLIENT if client else Role.SERVER  # no output holds it yet
        if client:
            return True
        self.counters.server_connections += 1
        if self.report_server:
            return True
        self.state = _SILENT
        self.h2 = None
        return False

    def h2_confirmed(self, late: bool) -> None:
        """A connection first taken for frames without a preface is HTTP/2: count it."""
        self.counters.http2_connections += 1
        if late:
            self.counters.late_http2_connections += 1

    def h2_abandon(self) -> None:
        """It looked like HTTP/2 frames but was not: back to ignoring it."""
        self.state = _NON_HTTP
        self.h2 = None
        if not self.counted_non_http:
            self.counted_non_http = True
            self.counters.non_http_connections += 1

    # ---- end of connection -------------------------------------------------------------

    def close(self) -> None:
        """The connection ended: finish messages in progress, report unanswered requests."""
        if self.h2 is not None:
            self.h2.close()
        if self.resp_parser is not None:
            self.resp_parser.close()
        if self.req_parser is not None:
            self.req_parser.close()
        awaiting = self.awaiting
        while awaiting:
            ex = awaiting.pop(0)
            if ex is not None:
                self._unanswered(ex, None)
        self._release_parsers()

    def set_body_limit(self, nbytes: int) -> None:
        """Body cap of the messages that start from now on (those in progress keep theirs)."""
        self.max_body = nbytes
        for parser in (self.req_parser, self.resp_parser):
            if parser is not None:
                parser._max_body = nbytes
        if self.h2 is not None:
            self.h2._max_body = nbytes

    def reset_after_error(self) -> None:
        """Last resort after an internal error: forget exchanges, resync both streams."""
        self.awaiting.clear()
        self.req_ex = None
        self.resp_ex = None
        self.uncertain = True
        if self.state == _CLIENT or self.state == _SERVER:
            self.req_parser = RequestParser(self, self.max_body)
            self.resp_parser = ResponseParser(self, self.max_body)
            self.req_parser.start_resync()
            self.resp_parser.start_resync()
        elif self.state == _HTTP2 and self.h2 is not None:
            # known role, unknown framing and HPACK state: resync both directions
            self.h2 = Http2Decoder(self, self.max_body, self.h2.req_dir, preface=False, confirmed=True)
        elif self.state == _DETECTING:
            self.state = _NON_HTTP
            self.detect = None

    def _make_parsers(self) -> None:
        """Parsers for this connection: idle ones from a closed connection, or new ones."""
        if self.pool:
            req, resp = self.pool.pop()
            req.rebind(self)
            resp.rebind(self)
            self.req_parser, self.resp_parser = req, resp
        else:
            self.req_parser = RequestParser(self, self.max_body)
            self.resp_parser = ResponseParser(self, self.max_body)

    def _release_parsers(self) -> None:
        """Drop the parsers (they point back here); idle, clean ones go back to the pool."""
        req, resp = self.req_parser, self.resp_parser
        self.req_parser = self.resp_parser = None
        if req is None or resp is None:
            return
        if req.reusable and resp.reusable and len(self.pool) < _POOL_SIZE:
            self.pool.append((req, resp))
        else:
            req.stop()  # breaks the parser <-> llhttp reference cycle
            resp.stop()

    # ---- RequestSink -----------------------------------------------------------------------

    def request_head(self, request: HttpRequest) -> None:
        ex = _Exchange(next(self.ids), request)
        self.req_ex = ex
        awaiting = self.awaiting
        awaiting.append(ex)
        if len(awaiting) > MAX_AWAITING:
            self._drop_oldest()

    def request_done(self, request: HttpRequest) -> None:
        ex = self.req_ex
        if ex is None or ex.request is not request:
            return
        self.req_ex = None
        ex.request_done = True
        if request.problems:
            self._count_problems(request.problems)
        self.counters.requests += 1
        self.out.append(RequestSeen(self.info, request, ex.id))
        if ex.response is not None and not ex.started_sent:
            self._send_started(ex)
        if ex.response_done:
            self._send_done(ex)

    def request_resync(self) -> None:
        awaiting = self.awaiting
        if not awaiting or awaiting[-1] is not None:
            awaiting.append(None)

    def parse_error(self) -> None:
        self.counters.parse_errors += 1

    # ---- ResponseSink ----------------------------------------------------------------------

    def bodyless_pending(self) -> bool:
        return any(ex is not None and ex.request.method in _BODYLESS_METHODS for ex in self.awaiting)

    def next_request_method(self, ts_ns: int) -> str | None:
        index = self._candidate(ts_ns)
        if index < 0:
            return None
        ex = self.awaiting[index]
        return ex.request.method if ex is not None else None

    def response_head(self, response: HttpResponse) -> None:
        awaiting = self.awaiting
        if awaiting and not self.uncertain and awaiting[0] is not None:
            ex: _Exchange | None = awaiting.pop(0)  # the usual FIFO case
        else:
            ex = self._pair(response.start_ts_ns)
        self.resp_ex = ex
        if ex is None:
            self.counters.orphan_responses += 1
            return
        ex.response = response
        if ex.request_done:
            self._send_started(ex)

    def response_event(self, response: HttpResponse, event: SseEvent) -> None:
        ex = self.resp_ex
        if ex is not None and ex.response is response and ex.request_done:
            self.counters.sse_events += 1
            self.out.append(StreamEvent(self.info, ex.id, event, ex.events_sent))
            ex.events_sent += 1

    def response_done(self, response: HttpResponse) -> None:
        ex = self.resp_ex
        self.resp_ex = None
        if ex is None or ex.response is not response:
            return
        self.counters.responses += 1
        if response.problems:
            self._count_problems(response.problems)
        ex.response_done = True
        if ex.request_done:
            self._send_done(ex)

    def response_lost(self) -> None:
        """A response began but its head was lost: in FIFO order it answered the oldest request."""
        awaiting = self.awaiting
        if not self.uncertain and awaiting and awaiting[0] is not None:
            self._unanswered(awaiting.pop(0), "response-lost")

    def response_resync(self) -> None:
        self.uncertain = True

    def upgraded(self) -> None:
        self.counters.upgraded_connections += 1
        self.state = _UPGRADED
        if self.req_parser is not None:
            self.req_parser.stop()
        if self.resp_parser is not None:
            self.resp_parser.stop()

    # ---- pairing -------------------------------------------------------------------------

    def _candidate(self, ts_ns: int) -> int:
        """Index in ``awaiting`` of the request a response starting at ts_ns answers, or -1."""
        awaiting = self.awaiting
        if not awaiting:
            return -1
        if not self.uncertain and awaiting[0] is not None:
            return 0
        best = -1
        for index, ex in enumerate(awaiting):
            if ex is None:
                continue
            if ex.request.start_ts_ns > ts_ns:
                break
            best = index
        return best

    def _pair(self, ts_ns: int) -> _Exchange | None:
        index = self._candidate(ts_ns)
        if index < 0:
            return None
        awaiting = self.awaiting
        for _ in range(index):
            skipped = awaiting.pop(0)
            if skipped is not None:
                self._unanswered(skipped, "response-lost")
        self.uncertain = False
        return awaiting.pop(0)

    def _drop_oldest(self) -> None:
        """Too many unanswered requests: give the oldest up; pairing is uncertain from now."""
        awaiting = self.awaiting
        while len(awaiting) > MAX_AWAITING:
            ex = awaiting.pop(0)
            if ex is None:
                continue
            self.counters.dropped_requests += 1
            self._unanswered(ex, "dropped")
        if awaiting and awaiting[0] is not None:
            awaiting.insert(0, None)

    def _unanswered(self, ex: _Exchange, problem: str | None) -> None:
        """No response will be reported for this request."""
        if problem is not None:
            ex.request.problems.append(problem)
        ex.response = None
        ex.response_done = True
        if ex.request_done:
            self._send_done(ex)

    # ---- outputs -----------------------------------------------------------------------------

    def _send_started(self, ex: _Exchange) -> None:
        ex.started_sent = True
        response = ex.response
        assert response is not None
        out = self.out
        out.append(ResponseStarted(self.info, ex.id, response))
        if not response.sse_events:
            return
        for event in response.sse_events[ex.events_sent :]:  # events held while the request was open
            self.counters.sse_events += 1
            out.append(StreamEvent(self.info, ex.id, event, ex.events_sent))
            ex.events_sent += 1

    def _send_done(self, ex: _Exchange) -> None:
        counters = self.counters
        counters.exchanges += 1
        response = ex.response
        if response is None:
            counters.incomplete_exchanges += 1
            counters.unanswered_requests += 1
        elif not response.complete:
            counters.incomplete_exchanges += 1
        self.out.append(ExchangeDone(self.info, ex.id, ex.request, response))

    def _count_problems(self, problems: list[str]) -> None:
        for problem in problems:
            if problem == "body-limit":
                self.counters.truncated_bodies += 1
            elif problem.startswith("decode-error"):
                self.counters.decode_errors += 1


class ConnectionTracker:
    """Decodes HTTP/1.1 and HTTP/2 on every observed connection, record by record.

    Feed it every raw record in capture order; each call returns the outputs that
    record completed. Memory is bounded: bodies are capped per message, non-HTTP
    connections keep no bytes, the unanswered-request queue and the number of tracked
    connections are bounded (least recently used connections are finished and dropped).
    """

    def __init__(
        self,
        *,
        max_body_bytes: int = 8 * 1024 * 1024,
        report_server_side: bool = False,
        counters: DecodeCounters | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.counters = counters if counters is not None else DecodeCounters()
        self._max_body = max_body_bytes
        self._report_server = report_server_side
        self._max_connections = max_connections
        self._conns: OrderedDict[ConnKey, _Conn] = OrderedDict()  # least recently used first
        self._by_pid: dict[int, set[int]] = {}
        self._ids = itertools.count(1)
        self._pool: list[tuple[RequestParser, ResponseParser]] = []

    # ---- records -------------------------------------------------------------------------

    def feed(self, record: RawRecord) -> list[DecodeOutput]:
        """Process one raw record; return what it completed. Never raises."""
        if type(record) is DataRecord:
            return self._feed_data(record)
        if isinstance(record, ConnCloseRecord):
            return self.close_connection(record.pid, record.conn_id, record.ts_ns)
        if isinstance(record, ProcessExitRecord):
            return self._process_exit(record.pid, record.ts_ns)
        if isinstance(record, DataRecord):
            return self._feed_data(record)
        return []  # ExecRecord (and anything unknown): nothing to decode

    def pass_silent(self, pid: int, conn_id: int, ts_ns: int, nbytes: int) -> bool:
        """Account a data record of a connection whose bytes are ignored (a server not
        reported), without its record being built; False for any other connection."""
        key = (pid, conn_id)
        conn = self._conns.get(key)
        if conn is None or conn.state != _SILENT:
            return False
        counters = self.counters
        counters.records += 1
        counters.bytes += nbytes
        self._conns.move_to_end(key)
        conn.last_ts = ts_ns
        return True

    def close_connection(self, pid: int, conn_id: int, ts_ns: int) -> list[DecodeOutput]:
        """The connection ended: finish it and forget it (a reused conn_id starts clean)."""
        out: list[DecodeOutput] = []
        conn = self._conns.pop((pid, conn_id), None)
        if conn is not None:
            self._forget_pid(pid, conn_id)
            self._finish(conn, out)
        return out

    def expire_idle(self, now_ts_ns: int, idle_ns: int) -> list[DecodeOutput]:
        """Finish connections that had no record for ``idle_ns`` (as if they were closed)."""
        out: list[DecodeOutput] = []
        limit = now_ts_ns - idle_ns
        conns = self._conns
        while conns:
            key, conn = next(iter(conns.items()))
            if conn.last_ts > limit:
                break
            del conns[key]
            self._forget_pid(*key)
            self._finish(conn, out)
        return out

    def flush(self, ts_ns: int) -> list[DecodeOutput]:
        """Shutdown: finish every connection as if it closed."""
        out: list[DecodeOutput] = []
        conns = self._conns
        while conns:
            _, conn = conns.popitem(last=False)
            self._finish(conn, out)
        self._by_pid.clear()
        return out

    def set_body_limit(self, nbytes: int) -> None:
        """Body cap of every HTTP message that starts from now on, on every connection
        (messages in progress keep theirs). The self-protection guard lowers it under
        pressure (bodies not kept: metadata-only events) and restores it afterwards."""
        if nbytes == self._max_body:
            return
        self._max_body = nbytes
        for conn in self._conns.values():
            conn.set_body_limit(nbytes)
        for req, resp in self._pool:
            req._max_body = resp._max_body = nbytes

    @property
    def body_limit(self) -> int:
        return self._max_body

    def active_connections(self) -> int:
        return len(self._conns)

    # ---- internals ---------------------------------------------------------------------------

    def _feed_data(self, record: DataRecord) -> list[DecodeOutput]:
        counters = self.counters
        counters.records += 1
        counters.bytes += len(record.data)
        key = (record.pid, record.conn_id)
        conn = self._conns.get(key)
        out: list[DecodeOutput] = []
        if conn is None:
            conn = self._new_conn(record, key, out)
        else:
            self._conns.move_to_end(key)
            info = conn.info
            if info.tid != record.tid or (record.comm and info.comm != record.comm):
                conn.info = replace(info, tid=record.tid, comm=record.comm or info.comm)
        conn.last_ts = record.ts_ns
        state = conn.state
        if state in (_SILENT, _UPGRADED):
            return out  # silent server, upgraded: nothing to do, nothing kept
        conn.out = out
        try:
            conn.on_data(int(record.direction), record.stream_offset, record.data, record.ts_ns)
        except Exception:
            self._recover(conn, key)
        return out

    def _new_conn(self, record: DataRecord, key: ConnKey, out: list[DecodeOutput]) -> _Conn:
        if len(self._conns) >= self._max_connections:
            old_key, old = self._conns.popitem(last=False)
            self._forget_pid(*old_key)
            self.counters.evicted_connections += 1
            self._finish(old, out)
        info = ConnInfo(
            key=key,
            pid=record.pid,
            tid=record.tid,
            uid=record.uid,
            comm=record.comm,
            first_ts_ns=record.ts_ns,
            capture_point="socket" if record.source == Source.SOCKET else "ssl",
        )
        conn = _Conn(info, self.counters, self._ids, self._max_body, self._report_server, self._pool)
        self._conns[key] = conn
        self._by_pid.setdefault(record.pid, set()).add(record.conn_id)
        self.counters.connections += 1
        return conn

    def _process_exit(self, pid: int, ts_ns: int) -> list[DecodeOutput]:
        out: list[DecodeOutput] = []
        for conn_id in sorted(self._by_pid.pop(pid, ())):
            conn = self._conns.pop((pid, conn_id), None)
            if conn is not None:
                self._finish(conn, out)
        return out

    def _forget_pid(self, pid: int, conn_id: int) -> None:
        ids = self._by_pid.get(pid)
        if ids is not None:
            ids.discard(conn_id)
            if not ids:
                del self._by_pid[pid]

    def _finish(self, conn: _Conn, out: list[DecodeOutput]) -> None:
        """Close one connection's decoding, appending its last outputs; never raises."""
        conn.out = out
        try:
            conn.close()
        except Exception:
            self.counters.internal_errors += 1

    def _recover(self, conn: _Conn, key: ConnKey) -> None:
        """An exception escaped a connection's processing: count it, emit what is known, resync."""
        self.counters.internal_errors += 1
        try:
            conn.close()
        except Exception:
            self.counters.internal_errors += 1
        try:
            conn.reset_after_error()
        except Exception:
            self._conns.pop(key, None)
            self._forget_pid(*key)
