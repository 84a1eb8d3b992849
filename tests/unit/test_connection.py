"""ConnectionTracker: wire samples cut every way, malformed input, gaps, roles, lifecycle."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard
from tests.unit.helpers_decode import (
    CLOSE,
    Conn,
    R,
    Step,
    W,
    chunked,
    feed_all,
    http_request,
    http_response,
    normalize,
    of_type,
    run,
    split_variants,
)

from oisp_sensor.capture.records import ExecRecord, ProcessExitRecord
from oisp_sensor.decode import connection as connection_module
from oisp_sensor.decode.connection import ConnectionTracker, DecodeCounters
from oisp_sensor.decode.messages import (
    DecodeOutput,
    ExchangeDone,
    RequestSeen,
    ResponseStarted,
    Role,
    StreamEvent,
)

JSON_REQ = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
JSON_RESP = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"Hello!"}}]}'
POST_CHAT = http_request(
    b"POST",
    b"/v1/chat/completions",
    [(b"Host", b"api.openai.com"), (b"Content-Type", b"application/json")],
    JSON_REQ,
)
OK_JSON = http_response(200, [(b"Content-Type", b"application/json")], JSON_RESP)
SSE_TEXT = (
    b": keep-alive comment\r\n"
    b"event: message_start\r\n"
    b"id: 1\r\n"
    b'data: {"a":1}\r\n'
    b"\r\n"
    b"data: line one\n"
    b"data:line two\n"
    b"\n"
    b"event: done\r"
    b"data: [DONE]\r"
    b"\r"
)
SSE_EVENTS = [
    ('{"a":1}', "message_start", "1"),
    ("line one\nline two", "", "1"),
    ("[DONE]", "done", "1"),
]


def _gzip_stream(parts: list[bytes]) -> list[bytes]:
    """gzip-compress a stream, flushing after each part (as a streaming server does)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    pieces = [compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH) for part in parts]
    pieces[-1] += compressor.flush()
    return pieces


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _encoded(coding: bytes, body: bytes) -> bytes:
    return http_response(200, [(b"Content-Type", b"application/json"), (b"Content-Encoding", coding)], body)


SSE_HEAD = [(b"Content-Type", b"text/event-stream; charset=utf-8"), (b"Transfer-Encoding", b"chunked")]
SSE_PARTS = [SSE_TEXT[:40], SSE_TEXT[40:97], SSE_TEXT[97:]]
GZIP_SSE_PARTS = _gzip_stream(SSE_PARTS)
BIG = b"The quick brown fox jumps over the lazy dog. " * 8

HEAD_REQ = http_request(b"HEAD", b"/v1/models")
HEAD_RESP = http_response(200, [(b"Content-Length", b"5000"), (b"Content-Type", b"application/json")])
GET_REQ = http_request(b"GET", b"/v1/models/gpt-4o")
GET_RESP = http_response(200, [], b"ok")

SAMPLES: dict[str, list[Step]] = {
    "request-content-length": [Step(W, POST_CHAT), Step(R, OK_JSON)],
    "request-chunked": [
        Step(
            W,
            http_request(
                b"POST",
                b"/v1/embeddings",
                [(b"Transfer-Encoding", b"chunked")],
                chunked(b'{"input":', b'"hello"}', ext=b";name=value"),
            ),
        ),
        Step(R, http_response(201, [], b"", reason=b"Created")),
    ],
    "response-chunked-trailers": [
        Step(W, http_request()),
        Step(
            R,
            http_response(200, [(b"Transfer-Encoding", b"chunked"), (b"Trailer", b"X-Checksum")])
            + chunked(b"hello ", b"world", ext=b';ext="q"', trailers=b"X-Checksum: abc123\r\n"),
        ),
    ],
    "gzip": [Step(W, http_request()), Step(R, _encoded(b"gzip", gzip.compress(BIG)))],
    "deflate-zlib": [Step(W, http_request()), Step(R, _encoded(b"deflate", zlib.compress(BIG)))],
    "deflate-raw": [Step(W, http_request()), Step(R, _encoded(b"deflate", _raw_deflate(BIG)))],
    "br": [Step(W, http_request()), Step(R, _encoded(b"br", brotli.compress(BIG)))],
    "zstd": [Step(W, http_request()), Step(R, _encoded(b"zstd", zstandard.ZstdCompressor().compress(BIG)))],
    "gzip-then-br": [
        Step(W, http_request()),
        Step(R, _encoded(b"gzip, br", brotli.compress(gzip.compress(BIG)))),
    ],
    "sse": [
        Step(W, POST_CHAT),
        Step(R, http_response(200, SSE_HEAD) + chunked(*SSE_PARTS)),
    ],
    "sse-gzip": [
        Step(W, POST_CHAT),
        Step(R, http_response(200, [*SSE_HEAD, (b"Content-Encoding", b"gzip")]) + chunked(*GZIP_SSE_PARTS)),
    ],
    "keep-alive-3": [
        Step(W, http_request(b"GET", b"/one")),
        Step(R, http_response(200, [], b"first")),
        Step(W, POST_CHAT),
        Step(R, OK_JSON),
        Step(W, http_request(b"DELETE", b"/three")),
        Step(R, http_response(204, [], reason=b"No Content", length=False)),
    ],
    "pipelined": [
        Step(
            W,
            http_request(b"GET", b"/a")
            + http_request(b"POST", b"/b", body=b"bee")
            + http_request(b"GET", b"/c"),
        ),
        Step(
            R, http_response(200, [], b"A") + http_response(200, [], b"BB") + http_response(404, [], b"CCC")
        ),
    ],
    "100-continue": [
        Step(
            W, http_request(b"POST", b"/upload", [(b"Expect", b"100-continue"), (b"Content-Length", b"10")])
        ),
        Step(R, b"HTTP/1.1 100 Continue\r\n\r\n"),
        Step(W, b"0123456789"),
        Step(R, http_response(200, [], b"stored")),
    ],
    "head": [
        Step(W, HEAD_REQ),
        Step(R, HEAD_RESP),
        Step(W, GET_REQ),
        Step(R, GET_RESP),
    ],
    "head-pipelined": [Step(W, HEAD_REQ + GET_REQ + HEAD_REQ), Step(R, HEAD_RESP + GET_RESP + HEAD_RESP)],
    "close-delimited": [
        Step(W, http_request()),
        Step(
            R,
            http_response(
                200, [(b"Content-Type", b"text/plain")], b"until the end", length=False, version=b"1.0"
            ),
        ),
        Step(CLOSE),
    ],
}


def _done(outputs: list[DecodeOutput]) -> list[ExchangeDone]:
    return of_type(outputs, ExchangeDone)


def _check_request_cl(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.request.method == "POST"
    assert done.request.target == "/v1/chat/completions"
    assert done.request.body == JSON_REQ
    assert done.request.header("content-type") == "application/json"
    assert done.response is not None
    assert done.response.status == 200
    assert done.response.body == JSON_RESP
    assert done.response.body_size == len(JSON_RESP)


def _check_request_chunked(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.request.body == b'{"input":"hello"}'
    assert done.request.body_size == 17
    assert done.response is not None and done.response.status == 201
    assert done.response.reason == "Created"


def _check_trailers(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.response is not None
    assert done.response.body == b"hello world"
    assert done.response.headers[-1] == ("x-checksum", "abc123")
    assert done.response.complete


def _check_encoded(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.response is not None
    assert done.response.body == BIG
    assert done.response.problems == []
    assert done.response.body_size == int(done.response.header("content-length") or 0)
    assert done.response.body_size != len(BIG)


def _check_sse(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.response is not None
    events = of_type(out, StreamEvent)
    assert [(e.event.data, e.event.event, e.event.id) for e in events] == SSE_EVENTS
    assert [e.index for e in events] == [0, 1, 2]
    assert [(e.data, e.event, e.id) for e in done.response.sse_events] == SSE_EVENTS
    assert done.response.body == SSE_TEXT
    assert done.response.problems == []


def _check_keep_alive(out: list[DecodeOutput]) -> None:
    done = _done(out)
    assert [(d.request.method, d.request.target) for d in done] == [
        ("GET", "/one"),
        ("POST", "/v1/chat/completions"),
        ("DELETE", "/three"),
    ]
    assert [d.response.status if d.response else None for d in done] == [200, 200, 204]
    assert [d.response.body if d.response else None for d in done] == [b"first", JSON_RESP, b""]
    assert len({d.exchange_id for d in done}) == 3


def _check_pipelined(out: list[DecodeOutput]) -> None:
    done = _done(out)
    assert [(d.request.target, d.request.body) for d in done] == [("/a", b""), ("/b", b"bee"), ("/c", b"")]
    assert [(d.response.status, d.response.body) if d.response else None for d in done] == [
        (200, b"A"),
        (200, b"BB"),
        (404, b"CCC"),
    ]


def _check_continue(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.request.body == b"0123456789"
    assert done.response is not None
    assert (done.response.status, done.response.body) == (200, b"stored")


def _check_head(out: list[DecodeOutput]) -> None:
    done = _done(out)
    assert [d.request.method for d in done] == ["HEAD", "GET"]
    head, get = done
    assert head.response is not None and head.response.body == b"" and head.response.complete
    assert head.response.header("content-length") == "5000"
    assert get.response is not None and get.response.body == b"ok"


def _check_head_pipelined(out: list[DecodeOutput]) -> None:
    done = _done(out)
    assert [d.request.method for d in done] == ["HEAD", "GET", "HEAD"]
    assert [d.response.body if d.response else None for d in done] == [b"", b"ok", b""]
    assert all(d.response is not None and d.response.complete for d in done)


def _check_close_delimited(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.response is not None
    assert done.response.version == "1.0"
    assert done.response.body == b"until the end"
    assert done.response.complete


CHECKS: dict[str, Callable[[list[DecodeOutput]], None]] = {
    "request-content-length": _check_request_cl,
    "request-chunked": _check_request_chunked,
    "response-chunked-trailers": _check_trailers,
    "gzip": _check_encoded,
    "deflate-zlib": _check_encoded,
    "deflate-raw": _check_encoded,
    "br": _check_encoded,
    "zstd": _check_encoded,
    "gzip-then-br": _check_encoded,
    "sse": _check_sse,
    "sse-gzip": _check_sse,
    "keep-alive-3": _check_keep_alive,
    "pipelined": _check_pipelined,
    "100-continue": _check_continue,
    "head": _check_head,
    "head-pipelined": _check_head_pipelined,
    "close-delimited": _check_close_delimited,
}


def _assert_clean(counters: DecodeCounters) -> None:
    assert counters.parse_errors == 0
    assert counters.internal_errors == 0
    assert counters.orphan_responses == 0
    assert counters.incomplete_exchanges == 0
    assert counters.gaps == 0


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_whole(name: str) -> None:
    out, tracker = run(SAMPLES[name])
    CHECKS[name](out)
    _assert_clean(tracker.counters)
    # every ExchangeDone was announced by a RequestSeen with the same id, before it
    seen: set[int] = set()
    for item in out:
        if isinstance(item, RequestSeen):
            seen.add(item.exchange_id)
        elif isinstance(item, ResponseStarted | StreamEvent | ExchangeDone):
            assert item.exchange_id in seen
    assert tracker.counters.exchanges == len(_done(out))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_split_everywhere(name: str) -> None:
    steps = SAMPLES[name]
    whole, _ = run(steps)
    expected = normalize(whole)
    for label, pieces in split_variants(steps):
        out, tracker = run(steps, pieces)
        assert normalize(out) == expected, label
        _assert_clean(tracker.counters)


def test_timestamps_follow_records() -> None:
    conn = Conn()
    tracker = ConnectionTracker()
    sse = http_response(200, SSE_HEAD) + chunked(*SSE_PARTS)
    head_end = sse.index(b"\r\n\r\n") + 4
    cut = sse.index(b"line two") + 3  # second event completes in the third record
    out = feed_all(
        tracker,
        [
            conn.data(W, POST_CHAT[:10], ts=100),
            conn.data(W, POST_CHAT[10:50], ts=200),
            conn.data(W, POST_CHAT[50:], ts=300),
            conn.data(R, sse[:head_end], ts=400),
            conn.data(R, sse[head_end:cut], ts=500),
            conn.data(R, sse[cut:], ts=600),
        ],
    )
    (seen,) = of_type(out, RequestSeen)
    assert (seen.request.start_ts_ns, seen.request.end_ts_ns) == (100, 300)
    (started,) = of_type(out, ResponseStarted)
    assert started.response.start_ts_ns == 400
    assert [e.event.ts_ns for e in of_type(out, StreamEvent)] == [500, 600, 600]
    (done,) = _done(out)
    assert done.response is not None
    assert (done.response.start_ts_ns, done.response.end_ts_ns) == (400, 600)
    assert out.index(seen) < out.index(started) < out.index(done)


def test_outputs_come_as_soon_as_possible() -> None:
    conn = Conn()
    tracker = ConnectionTracker()
    assert [type(o) for o in tracker.feed(conn.data(W, POST_CHAT))] == [RequestSeen]
    sse = http_response(200, SSE_HEAD) + chunked(*SSE_PARTS)
    body_start = sse.index(b"\r\n\r\n") + 4
    assert [type(o) for o in tracker.feed(conn.data(R, sse[:body_start]))] == [ResponseStarted]
    first_event_end = sse.index(b"\r\n\r\n", body_start) + 4
    assert [type(o) for o in tracker.feed(conn.data(R, sse[body_start:first_event_end]))] == [StreamEvent]
    rest = tracker.feed(conn.data(R, sse[first_event_end:]))
    assert [type(o) for o in rest] == [StreamEvent, StreamEvent, ExchangeDone]


def test_conn_info_and_exchange_ids() -> None:
    tracker = ConnectionTracker()
    a = Conn(pid=7, conn_id=1, tid=70)
    b = Conn(pid=8, conn_id=1, tid=80)
    out = feed_all(
        tracker, [a.data(W, GET_REQ), b.data(W, GET_REQ), a.data(R, GET_RESP), b.data(R, GET_RESP)]
    )
    done = _done(out)
    assert [d.conn.key for d in done] == [(7, 1), (8, 1)]
    assert done[0].conn.pid == 7 and done[0].conn.tid == 70 and done[0].conn.uid == 1000
    assert done[0].conn.comm == "python3" and done[0].conn.role == Role.CLIENT
    assert done[0].exchange_id != done[1].exchange_id


def test_two_connections_one_thread_interleaved_byte_by_byte() -> None:
    tracker = ConnectionTracker()
    a = Conn(pid=5, conn_id=0x1000, tid=5)
    b = Conn(pid=5, conn_id=0x2000, tid=5)
    req_a = http_request(b"POST", b"/a", body=b"alpha-body")
    req_b = http_request(b"POST", b"/b", body=b"beta")
    resp_a = http_response(200, [], b"answer-a")
    resp_b = http_response(200, [], b"answer-b-longer")
    records = []
    for i in range(max(len(req_a), len(req_b))):
        if i < len(req_a):
            records.append(a.data(W, req_a[i : i + 1]))
        if i < len(req_b):
            records.append(b.data(W, req_b[i : i + 1]))
    for i in range(max(len(resp_a), len(resp_b))):
        if i < len(resp_b):
            records.append(b.data(R, resp_b[i : i + 1]))
        if i < len(resp_a):
            records.append(a.data(R, resp_a[i : i + 1]))
    out = feed_all(tracker, records)
    pairs = {(d.request.target, d.request.body, d.response.body if d.response else None) for d in _done(out)}
    assert pairs == {("/a", b"alpha-body", b"answer-a"), ("/b", b"beta", b"answer-b-longer")}
    _assert_clean(tracker.counters)


# ---- lifecycle ---------------------------------------------------------------------------


def test_conn_id_reuse_after_close_never_merges() -> None:
    tracker = ConnectionTracker()
    first = Conn(pid=9, conn_id=0x55)
    out = feed_all(tracker, [first.data(W, GET_REQ), first.close()])
    (done,) = _done(out)
    assert done.response is None and done.request.target == "/v1/models/gpt-4o"
    assert tracker.active_connections() == 0
    second = Conn(pid=9, conn_id=0x55)  # same SSL* address, offsets start again at 0
    out = feed_all(tracker, [second.data(R, GET_RESP), second.data(W, POST_CHAT), second.data(R, OK_JSON)])
    (done,) = _done(out)
    assert done.request.target == "/v1/chat/completions"
    assert done.response is not None and done.response.body == JSON_RESP
    assert tracker.counters.orphan_responses == 1  # the response with no request on the new connection
    assert tracker.counters.connections == 2
    assert tracker.counters.gaps == 0


def test_close_reports_unanswered_and_cut_response() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(
        tracker,
        [
            conn.data(W, http_request(b"GET", b"/1") + http_request(b"GET", b"/2")),
            conn.data(R, http_response(200, [], b"0123456789")[:-4]),
            conn.close(),
        ],
    )
    first, second = _done(out)
    assert first.response is not None and not first.response.complete
    assert first.response.body == b"012345"
    assert first.response.problems == ["incomplete"]
    assert second.response is None
    assert tracker.counters.incomplete_exchanges == 2
    assert tracker.counters.unanswered_requests == 1


def test_request_cut_at_close_is_announced_then_done() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(tracker, [conn.data(W, POST_CHAT[:-5]), conn.close()])
    assert [type(o) for o in out] == [RequestSeen, ExchangeDone]
    done = out[1]
    assert isinstance(done, ExchangeDone)
    assert done.request.truncated and done.request.problems == ["incomplete"]
    assert done.request.body == JSON_REQ[:-5]
    assert done.response is None


def test_process_exit_finishes_all_its_connections() -> None:
    tracker = ConnectionTracker()
    a, b, other = Conn(pid=3, conn_id=1), Conn(pid=3, conn_id=2), Conn(pid=4, conn_id=1)
    feed_all(tracker, [a.data(W, GET_REQ), b.data(W, POST_CHAT), other.data(W, GET_REQ)])
    assert tracker.feed(ExecRecord(pid=3, ppid=1, ts_ns=5_000)) == []
    out = tracker.feed(ProcessExitRecord(pid=3, ts_ns=6_000))
    assert sorted(d.conn.key for d in _done(out)) == [(3, 1), (3, 2)]
    assert all(d.response is None for d in _done(out))
    assert tracker.active_connections() == 1


def test_expire_idle_and_flush() -> None:
    tracker = ConnectionTracker()
    old, fresh = Conn(conn_id=1), Conn(conn_id=2)
    feed_all(tracker, [old.data(W, GET_REQ, ts=1_000), fresh.data(W, POST_CHAT, ts=9_000)])
    out = tracker.expire_idle(now_ts_ns=10_000, idle_ns=5_000)
    assert [d.conn.key[1] for d in _done(out)] == [1]
    assert tracker.active_connections() == 1
    out = tracker.flush(20_000)
    assert [d.conn.key[1] for d in _done(out)] == [2]
    assert tracker.active_connections() == 0


def test_least_recently_used_connection_is_evicted() -> None:
    tracker = ConnectionTracker(max_connections=2)
    a, b, c = Conn(conn_id=1), Conn(conn_id=2), Conn(conn_id=3)
    feed_all(tracker, [a.data(W, GET_REQ), b.data(W, GET_REQ), a.data(R, GET_RESP[:5])])
    out = tracker.feed(c.data(W, GET_REQ))
    assert [d.conn.key[1] for d in _done(out)] == [2]  # b was the least recently used
    assert tracker.counters.evicted_connections == 1
    assert tracker.active_connections() == 2


def test_unanswered_queue_is_bounded() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(tracker, [conn.data(W, http_request(b"GET", b"/%d" % i)) for i in range(70)])
    dropped = _done(out)
    assert [d.request.target for d in dropped] == [f"/{i}" for i in range(6)]
    assert all(d.response is None and d.request.problems == ["dropped"] for d in dropped)
    assert tracker.counters.dropped_requests == 6


def test_early_final_response_waits_for_request_end() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    body = b"x" * 100
    head = http_request(b"POST", b"/upload", body=body)[: -len(body)]
    out = feed_all(
        tracker, [conn.data(W, head + body[:10]), conn.data(R, http_response(413, [], b"too big"))]
    )
    assert out == []
    out = tracker.feed(conn.data(W, body[10:]))
    assert [type(o) for o in out] == [RequestSeen, ResponseStarted, ExchangeDone]
    done = out[2]
    assert isinstance(done, ExchangeDone) and done.response is not None
    assert done.response.status == 413 and done.request.body == body


def test_switching_protocols_stops_decoding() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    upgrade = http_request(b"GET", b"/ws", [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")])
    switching = http_response(101, [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")], length=False)
    out = feed_all(
        tracker,
        [
            conn.data(W, upgrade),
            conn.data(R, switching + b"\x81\x05hello"),
            conn.data(W, b"\x81\x85\x00\x00\x00\x00hello"),
            conn.data(R, b"\x81\x02hi"),
        ],
    )
    (done,) = _done(out)
    assert done.response is not None and done.response.status == 101
    assert tracker.counters.upgraded_connections == 1
    assert tracker.counters.parse_errors == 0


# ---- roles -------------------------------------------------------------------------------


def test_server_side_is_silent_by_default() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(tracker, [conn.data(R, POST_CHAT), conn.data(W, OK_JSON)])
    out += tracker.flush(10**9)
    assert out == []
    assert tracker.counters.server_connections == 1
    assert tracker.counters.requests == 0


def test_a_silent_server_connection_is_passed_over_and_still_counted() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    first = conn.data(R, POST_CHAT)
    assert not tracker.pass_silent(first.pid, first.conn_id, first.ts_ns, len(first.data))  # not known yet
    feed_all(tracker, [first])
    answer = conn.data(W, OK_JSON)
    assert tracker.pass_silent(answer.pid, answer.conn_id, answer.ts_ns, len(answer.data))
    assert tracker.counters.records == 2 and tracker.counters.bytes == len(POST_CHAT) + len(OK_JSON)
    client = Conn(conn_id=0xDEF)
    request = client.data(W, POST_CHAT)
    feed_all(tracker, [request])
    assert not tracker.pass_silent(request.pid, request.conn_id, request.ts_ns, len(request.data))


def test_server_side_reported_when_asked() -> None:
    tracker = ConnectionTracker(report_server_side=True)
    conn = Conn()
    out = feed_all(tracker, [conn.data(R, POST_CHAT), conn.data(W, OK_JSON)])
    (done,) = _done(out)
    assert done.conn.role == Role.SERVER
    assert done.request.body == JSON_REQ
    assert done.response is not None and done.response.body == JSON_RESP


def test_http2_preface_is_counted_and_ignored() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    records = [conn.data(W, preface[i : i + 1]) for i in range(len(preface))]
    records += [
        conn.data(W, b"\x00\x00\x12\x04\x00\x00\x00\x00\x00" + b"\x00" * 18),
        conn.data(R, b"\x00" * 9),
    ]
    out = feed_all(tracker, records)
    assert out == []
    assert tracker.counters.http2_connections == 1
    assert tracker.counters.http_connections == 0
    assert tracker.counters.non_http_connections == 0


def test_non_http_is_counted_and_costs_nothing() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(tracker, [conn.data(W, b"\x16\x03\x01\x02\x00\x01"), conn.data(R, b"binary" * 1000)])
    out += tracker.flush(10**9)
    assert out == []
    assert tracker.counters.non_http_connections == 1
    state = tracker._conns.get((conn.pid, conn.conn_id))
    assert state is None or state.detect is None  # nothing held


def test_first_bytes_one_at_a_time_decide_correctly() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    # "PO" could be POST; "POST" could still be... only POST: decide only with the space
    records = [conn.data(W, POST_CHAT[i : i + 1]) for i in range(6)] + [conn.data(W, POST_CHAT[6:])]
    records.append(conn.data(R, OK_JSON))
    out = feed_all(tracker, records)
    assert len(_done(out)) == 1
    assert tracker.counters.non_http_connections == 0


def test_response_first_is_a_client_clue() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(tracker, [conn.data(R, GET_RESP), conn.data(W, GET_REQ), conn.data(R, GET_RESP)])
    (done,) = _done(out)
    assert done.conn.role == Role.CLIENT
    assert tracker.counters.orphan_responses == 1


def test_connection_seen_mid_stream_starts_at_next_request() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(
        tracker,
        [
            conn.data(R, b'{"partial": "body of a response we joined late"}'),
            conn.data(W, POST_CHAT),
            conn.data(R, OK_JSON),
        ],
    )
    (done,) = _done(out)
    assert done.response is not None and done.response.body == JSON_RESP
    assert tracker.counters.non_http_connections == 1
    assert tracker.counters.late_http_connections == 1


# ---- malformed input -----------------------------------------------------------------------


def test_garbage_in_request_stream_then_recovery() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(
        tracker,
        [
            conn.data(W, GET_REQ),
            conn.data(R, GET_RESP),
            conn.data(W, b"\x00\x01\x02 not http at all\r\n\r\n"),
            conn.data(W, POST_CHAT),
            conn.data(R, OK_JSON),
        ],
    )
    assert [d.request.target for d in _done(out)] == ["/v1/models/gpt-4o", "/v1/chat/completions"]
    assert all(d.response is not None and d.response.complete for d in _done(out))
    assert tracker.counters.parse_errors == 1
    assert tracker.counters.internal_errors == 0


def test_invalid_chunk_size_then_recovery() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    bad = http_response(200, [(b"Transfer-Encoding", b"chunked")]) + b"5\r\nhello\r\nzz\r\n"
    out = feed_all(
        tracker,
        [conn.data(W, GET_REQ), conn.data(R, bad), conn.data(W, POST_CHAT), conn.data(R, OK_JSON)],
    )
    first, second = _done(out)
    assert first.response is not None and not first.response.complete
    assert first.response.body == b"hello" and first.response.problems == ["parse-error"]
    assert second.response is not None and second.response.body == JSON_RESP
    assert tracker.counters.parse_errors == 1
    assert tracker.counters.incomplete_exchanges == 1


def test_request_header_without_colon() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(
        tracker,
        [
            conn.data(W, b"GET /bad HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
            conn.data(R, http_response(400, [], b"bad request", reason=b"Bad Request")),
            conn.data(W, POST_CHAT),
            conn.data(R, OK_JSON),
        ],
    )
    (done,) = _done(out)
    assert done.request.target == "/v1/chat/completions"
    assert done.response is not None and done.response.body == JSON_RESP
    assert tracker.counters.parse_errors == 1
    assert tracker.counters.orphan_responses == 1  # the 400 answers a request we could not read


def test_response_header_without_colon() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(
        tracker,
        [
            conn.data(W, GET_REQ),
            conn.data(R, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nbroken header\r\n\r\nok"),
            conn.data(W, POST_CHAT),
            conn.data(R, OK_JSON),
        ],
    )
    first, second = _done(out)
    assert first.response is None and first.request.problems == ["response-lost"]
    assert second.response is not None and second.response.body == JSON_RESP
    assert tracker.counters.parse_errors == 1


def test_response_without_request_is_orphan() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(tracker, [conn.data(W, GET_REQ), conn.data(R, GET_RESP + GET_RESP)])
    assert len(_done(out)) == 1
    assert tracker.counters.orphan_responses == 1


@pytest.mark.parametrize("cut_step", [0, 1])
def test_stream_cut_at_every_boundary_then_closed(cut_step: int) -> None:
    request, response = POST_CHAT, OK_JSON
    steps = [request, response]
    data = steps[cut_step]
    head_end = data.index(b"\r\n\r\n") + 4
    for cut in range(len(data) + 1):
        tracker = ConnectionTracker()
        conn = Conn()
        records = [conn.data(W, request)] if cut_step == 1 else []
        if cut:
            records.append(conn.data(W if cut_step == 0 else R, data[:cut]))
        records.append(conn.close())
        out = feed_all(tracker, records)
        counters = tracker.counters
        assert counters.internal_errors == 0, cut
        done = _done(out)
        if cut_step == 0 and cut < head_end:
            assert done == [], cut
            continue
        (item,) = done
        assert of_type(out, RequestSeen)[0].exchange_id == item.exchange_id
        if cut_step == 0:
            assert item.response is None
            assert item.request.truncated == (cut < len(data)), cut
        elif cut < head_end:
            assert item.response is None, cut
        else:
            assert item.response is not None
            assert item.response.complete == (cut == len(data)), cut
            assert item.response.body == JSON_RESP[: cut - head_end]
        assert counters.incomplete_exchanges == (0 if cut_step == 1 and cut == len(data) else 1), cut


def test_huge_content_length_never_arrives() -> None:
    tracker = ConnectionTracker(max_body_bytes=1024)
    conn = Conn()
    head = http_response(200, [(b"Content-Length", b"99999999999")])
    out = feed_all(
        tracker,
        [conn.data(W, GET_REQ), conn.data(R, head + b"a" * 600), conn.data(R, b"b" * 600), conn.close()],
    )
    (done,) = _done(out)
    assert done.response is not None and not done.response.complete
    assert done.response.body == b"a" * 600 + b"b" * 424
    assert done.response.body_size == 1200
    assert done.response.truncated
    assert done.response.problems == ["body-limit", "incomplete"]


def test_body_beyond_max_body_bytes_keeps_framing() -> None:
    tracker = ConnectionTracker(max_body_bytes=10)
    conn = Conn()
    out = feed_all(
        tracker,
        [
            conn.data(W, http_request(b"POST", b"/big", body=b"R" * 50)),
            conn.data(R, http_response(200, [], b"S" * 100) + GET_RESP[:0]),
            conn.data(W, GET_REQ),
            conn.data(R, GET_RESP),
        ],
    )
    first, second = _done(out)
    assert first.request.body == b"R" * 10 and first.request.body_size == 50 and first.request.truncated
    assert first.response is not None
    assert first.response.body == b"S" * 10 and first.response.body_size == 100
    assert first.response.truncated and first.response.problems == ["body-limit"]
    assert first.response.complete
    assert second.response is not None and second.response.body == b"ok"
    assert tracker.counters.truncated_bodies == 2


def test_compressed_body_beyond_limit() -> None:
    tracker = ConnectionTracker(max_body_bytes=100)
    conn = Conn()
    out = feed_all(tracker, [conn.data(W, GET_REQ), conn.data(R, _encoded(b"gzip", gzip.compress(BIG)))])
    (done,) = _done(out)
    assert done.response is not None
    assert done.response.body == BIG[:100]
    assert done.response.truncated and done.response.problems == ["body-limit"]


def test_sse_beyond_limit_still_streams() -> None:
    tracker = ConnectionTracker(max_body_bytes=30)
    conn = Conn()
    out = feed_all(
        tracker, [conn.data(W, POST_CHAT), conn.data(R, http_response(200, SSE_HEAD) + chunked(*SSE_PARTS))]
    )
    assert [e.event.data for e in of_type(out, StreamEvent)] == [e[0] for e in SSE_EVENTS]
    (done,) = _done(out)
    assert done.response is not None
    assert done.response.body == SSE_TEXT[:30]
    assert done.response.truncated


def test_bad_gzip_keeps_raw_body() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(tracker, [conn.data(W, GET_REQ), conn.data(R, _encoded(b"gzip", b"this is not gzip"))])
    (done,) = _done(out)
    assert done.response is not None
    assert done.response.body == b"this is not gzip"
    assert done.response.problems == ["decode-error:gzip"]
    assert tracker.counters.decode_errors == 1


def test_internal_error_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    original = connection_module._Conn.request_head
    calls = {"n": 0}

    def flaky(self: connection_module._Conn, request: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        original(self, request)  # type: ignore[arg-type]

    monkeypatch.setattr(connection_module._Conn, "request_head", flaky)
    assert tracker.feed(conn.data(W, GET_REQ)) == []
    assert tracker.counters.internal_errors == 1
    out = feed_all(tracker, [conn.data(R, GET_RESP), conn.data(W, POST_CHAT), conn.data(R, OK_JSON)])
    (done,) = _done(out)
    assert done.response is not None and done.response.body == JSON_RESP


# ---- gaps and overlaps -------------------------------------------------------------------


def test_gap_inside_request_content_length_body() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    body_at = POST_CHAT.index(b"\r\n\r\n") + 4
    first, rest_at = body_at + 10, body_at + 30
    out = feed_all(
        tracker,
        [
            conn.data(W, POST_CHAT[:first]),
            conn.data(W, POST_CHAT[rest_at:], offset=rest_at),
            conn.data(R, OK_JSON),
        ],
    )
    (done,) = _done(out)
    assert done.request.truncated and done.request.problems == ["gap"]
    assert done.request.body == JSON_REQ[:10] + JSON_REQ[30:]
    assert done.request.body_size == len(JSON_REQ)
    assert done.response is not None and done.response.body == JSON_RESP
    assert (tracker.counters.gaps, tracker.counters.gap_bytes) == (1, 20)


def test_gap_ending_exactly_at_body_end() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    req = POST_CHAT + GET_REQ
    out = feed_all(
        tracker,
        [
            conn.data(W, req[: len(POST_CHAT) - 5]),
            conn.data(W, GET_REQ, offset=len(POST_CHAT)),
            conn.data(R, OK_JSON + GET_RESP),
        ],
    )
    first, second = _done(out)
    assert first.request.problems == ["gap"] and first.request.body == JSON_REQ[:-5]
    assert second.request.target == "/v1/models/gpt-4o" and second.request.problems == []
    assert second.response is not None and second.response.body == b"ok"


def test_gap_inside_response_content_length_body() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    body_at = OK_JSON.index(b"\r\n\r\n") + 4
    out = feed_all(
        tracker,
        [
            conn.data(W, GET_REQ),
            conn.data(R, OK_JSON[: body_at + 5]),
            conn.data(R, OK_JSON[body_at + 15 :], offset=body_at + 15),
            conn.data(W, POST_CHAT),
            conn.data(R, OK_JSON),
        ],
    )
    first, second = _done(out)
    assert first.response is not None and first.response.complete and first.response.truncated
    assert first.response.problems == ["gap"]
    assert first.response.body == JSON_RESP[:5] + JSON_RESP[15:]
    assert (
        second.response is not None and second.response.body == JSON_RESP and second.response.problems == []
    )


def test_gap_inside_request_headers_resyncs() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    lost_end = len(POST_CHAT)
    out = feed_all(
        tracker,
        [
            conn.data(W, POST_CHAT[:30]),  # head of request A, the rest is lost
            conn.data(R, OK_JSON),  # A's answer: no request to pair with
            conn.data(W, GET_REQ, offset=lost_end),
            conn.data(R, GET_RESP),
        ],
    )
    (done,) = _done(out)
    assert done.request.target == "/v1/models/gpt-4o"
    assert done.response is not None and done.response.body == b"ok"
    assert tracker.counters.gaps == 1 and tracker.counters.gap_bytes == lost_end - 30
    assert tracker.counters.orphan_responses == 1


def test_gap_inside_response_headers_resyncs() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(
        tracker,
        [
            conn.data(W, POST_CHAT),
            conn.data(R, OK_JSON[:20]),
            conn.data(W, GET_REQ),  # the client got its answer; we lost most of it
            conn.data(R, GET_RESP, offset=len(OK_JSON)),
        ],
    )
    first, second = _done(out)
    assert first.response is None and first.request.problems == ["response-lost"]
    assert second.response is not None and second.response.body == b"ok"


def test_gap_inside_chunked_response_finishes_it_incomplete() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    sse = http_response(200, SSE_HEAD) + chunked(*SSE_PARTS)
    cut = sse.index(b"line one")
    out = feed_all(
        tracker,
        [
            conn.data(W, POST_CHAT),
            conn.data(R, sse[:cut]),
            conn.data(R, sse[cut + 30 :], offset=cut + 30),
            conn.data(W, GET_REQ),
            conn.data(R, GET_RESP),
        ],
    )
    first, second = _done(out)
    assert first.response is not None and not first.response.complete
    assert first.response.truncated and first.response.problems == ["gap"]
    assert [e.data for e in first.response.sse_events] == ['{"a":1}']
    assert second.response is not None and second.response.body == b"ok"


def test_request_lost_entirely_does_not_shift_pairing() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    lost = http_request(b"GET", b"/lost")
    out = feed_all(
        tracker,
        [
            conn.data(W, GET_REQ),
            conn.data(R, GET_RESP),
            conn.data(R, http_response(200, [], b"for the lost one")),
            conn.data(W, POST_CHAT, offset=len(GET_REQ) + len(lost)),
            conn.data(R, OK_JSON),
        ],
    )
    done = _done(out)
    assert [(d.request.target, d.response.body if d.response else None) for d in done] == [
        ("/v1/models/gpt-4o", b"ok"),
        ("/v1/chat/completions", JSON_RESP),
    ]
    assert tracker.counters.orphan_responses == 1


def test_response_lost_entirely_does_not_shift_pairing() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    lost = http_response(200, [], b"lost answer")
    out = feed_all(
        tracker,
        [
            conn.data(W, http_request(b"GET", b"/1")),
            conn.data(W, http_request(b"GET", b"/2")),
            conn.data(R, GET_RESP, offset=len(lost)),
        ],
    )
    done = _done(out)
    assert [(d.request.target, d.response.body if d.response else None) for d in done] == [
        ("/1", None),
        ("/2", b"ok"),
    ]


def test_overlapping_records_are_trimmed() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(
        tracker,
        [
            conn.data(W, POST_CHAT[:50]),
            conn.data(W, POST_CHAT[:50], offset=0),  # an exact repeat
            conn.data(W, POST_CHAT[40:], offset=40),  # overlaps by 10 bytes
            conn.data(R, OK_JSON[:30]),
            conn.data(R, OK_JSON[10:], offset=10),
        ],
    )
    (done,) = _done(out)
    assert done.request.body == JSON_REQ and done.request.problems == []
    assert done.response is not None and done.response.body == JSON_RESP
    assert tracker.counters.overlaps == 3
    assert tracker.counters.gaps == 0


def test_first_record_after_lost_start_resyncs() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    out = feed_all(tracker, [conn.data(W, POST_CHAT, offset=500), conn.data(R, OK_JSON)])
    (done,) = _done(out)
    assert done.request.body == JSON_REQ
    assert done.response is not None and done.response.body == JSON_RESP
    assert tracker.counters.gaps == 1


def test_counters_as_dict() -> None:
    counters = DecodeCounters()
    counters.records = 3
    as_dict = counters.as_dict()
    assert as_dict["records"] == 3
    assert set(as_dict) >= {
        "records",
        "bytes",
        "connections",
        "http_connections",
        "http2_connections",
        "non_http_connections",
        "server_connections",
        "requests",
        "responses",
        "exchanges",
        "incomplete_exchanges",
        "gaps",
        "gap_bytes",
        "overlaps",
        "parse_errors",
        "decode_errors",
        "orphan_responses",
        "truncated_bodies",
        "internal_errors",
    }


def test_counters_are_shared_when_given() -> None:
    counters = DecodeCounters()
    tracker = ConnectionTracker(counters=counters)
    conn = Conn()
    feed_all(tracker, [conn.data(W, GET_REQ), conn.data(R, GET_RESP)])
    assert tracker.counters is counters
    assert (counters.records, counters.requests, counters.responses, counters.exchanges) == (2, 1, 1, 1)
    assert counters.bytes == len(GET_REQ) + len(GET_RESP)


@pytest.mark.timeout(20)
def test_ambiguous_start_does_not_hold_bytes_forever() -> None:
    tracker = ConnectionTracker()
    conn = Conn()
    records = [conn.data(W, b"G")]  # could still become "GET "
    records += [conn.data(R, b"z") for _ in range(70_000)]
    out = feed_all(tracker, records)
    assert out == []
    assert tracker.counters.non_http_connections == 1
    state = tracker._conns[(conn.pid, conn.conn_id)]
    assert state.detect is None
