"""HTTP/2 decoding through the ConnectionTracker: real h2 byte streams cut every way.

Every sample is a conversation between two real ``h2`` endpoints (see helpers_h2). Each is
checked whole (exact outputs), then fed cut into two records at every byte of every step,
and one byte per record: the normalized outputs must not change. Then what a passive
capture meets: corrupted frames, a capture that joins midway, lost bytes.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard
from h2.settings import SettingCodes
from tests.unit.helpers_decode import (
    CLOSE,
    Conn,
    R,
    Step,
    W,
    feed_all,
    normalize,
    of_type,
    records_for,
    run,
    split_variants,
)
from tests.unit.helpers_h2 import (
    H2Script,
    continuation_split,
    gzip_stream,
    request_headers,
    response_headers,
)

from oisp_sensor.capture.records import Direction
from oisp_sensor.decode import connection as connection_module
from oisp_sensor.decode.connection import ConnectionTracker, DecodeCounters
from oisp_sensor.decode.http2 import PREFACE, plausible_frames
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
SSE_PARTS = [
    b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\ndata: {"choices":[{"delta":',
    b'{"content":"!"}}]}\n\n',
    b"event: done\r\ndata: [DONE]\r\n\r\n",
]
SSE_DATA = ['{"choices":[{"delta":{"content":"Hel"}}]}', '{"choices":[{"delta":{"content":"lo"}}]}']
SSE_DATA += ['{"choices":[{"delta":{"content":"!"}}]}', "[DONE]"]
SSE_HEAD = response_headers(200, [(b"content-type", b"text/event-stream; charset=utf-8")])
BIG = b"The quick brown fox jumps over the lazy dog. " * 40


def _done(out: list[DecodeOutput]) -> list[ExchangeDone]:
    return of_type(out, ExchangeDone)


def _by_stream(out: list[DecodeOutput]) -> dict[int, ExchangeDone]:
    return {done.request.stream_id: done for done in _done(out)}


# ---- samples --------------------------------------------------------------------------------


def _post_json() -> list[Step]:
    s = H2Script()
    sid = s.request(body=JSON_REQ)
    s.respond(sid, body=JSON_RESP)
    return s.steps


def _check_post_json(out: list[DecodeOutput]) -> None:
    assert [type(item) for item in out] == [RequestSeen, ResponseStarted, ExchangeDone]
    (done,) = _done(out)
    request, response = done.request, done.response
    assert (request.method, request.target, request.version, request.stream_id) == (
        "POST",
        "/v1/chat/completions",
        "2",
        1,
    )
    assert request.headers == [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "api.openai.com"),
        (":path", "/v1/chat/completions"),
        ("host", "api.openai.com"),
        ("authorization", "Bearer sk-test"),
        ("user-agent", "h2-test/1.0"),
        ("content-type", "application/json"),
    ]
    assert request.header("host") == "api.openai.com"
    assert (request.body, request.body_size, request.truncated, request.problems) == (
        JSON_REQ,
        len(JSON_REQ),
        False,
        [],
    )
    assert response is not None
    assert (response.status, response.reason, response.version, response.stream_id) == (200, "", "2", 1)
    assert response.headers == [(":status", "200"), ("content-type", "application/json")]
    assert (response.body, response.complete, response.problems) == (JSON_RESP, True, [])
    assert done.conn.role == Role.CLIENT
    assert out[0].exchange_id == out[1].exchange_id == done.exchange_id


def _concurrent() -> list[Step]:
    """Three streams whose requests and responses interleave frame by frame."""
    s = H2Script()
    c, srv = s.client, s.server
    for sid in (1, 3, 5):
        c.send_headers(sid, request_headers(path=b"/v1/s%d" % sid))
    c.send_data(1, b"one-a")
    c.send_data(5, b"five-a")
    c.send_data(3, b"three", end_stream=True)
    c.send_data(1, b"one-b", end_stream=True)
    s.client_out()
    c.send_data(5, b"five-b", end_stream=True)
    s.client_out()
    srv.send_headers(5, response_headers(201))
    srv.send_headers(1, response_headers(200))
    srv.send_data(5, b"r5-a")
    srv.send_data(1, b"r1", end_stream=True)
    s.server_out()
    srv.send_headers(3, response_headers(202), end_stream=True)
    srv.send_data(5, b"r5-b", end_stream=True)
    s.server_out()
    return s.steps


def _check_concurrent(out: list[DecodeOutput]) -> None:
    by_sid = _by_stream(out)
    assert sorted(by_sid) == [1, 3, 5]
    expected = {
        1: (b"one-aone-b", 200, b"r1"),
        3: (b"three", 202, b""),
        5: (b"five-afive-b", 201, b"r5-ar5-b"),
    }
    for sid, (req_body, status, resp_body) in expected.items():
        done = by_sid[sid]
        assert done.request.target == f"/v1/s{sid}"
        assert done.request.body == req_body
        assert done.response is not None
        assert (done.response.status, done.response.body, done.response.stream_id) == (status, resp_body, sid)
    # requests complete in the order their END_STREAM came; exchanges as their responses end
    assert [item.request.stream_id for item in of_type(out, RequestSeen)] == [3, 1, 5]
    assert [done.request.stream_id for done in _done(out)] == [1, 3, 5]
    assert len({done.exchange_id for done in _done(out)}) == 3


def _flushed_stream(coding: str, parts: list[bytes]) -> list[bytes]:
    """Compress a stream with a flush after each part, as a streaming server or proxy does."""
    if coding == "gzip":
        return gzip_stream(parts)
    if coding == "deflate":
        compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
        pieces = [compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH) for p in parts]
        pieces[-1] += compressor.flush()
        return pieces
    if coding == "br":
        br = brotli.Compressor()
        pieces = [br.process(p) + br.flush() for p in parts]
        pieces[-1] += br.finish()
        return pieces
    assert coding == "zstd"
    zstd = zstandard.ZstdCompressor().compressobj()
    pieces = [zstd.compress(p) + zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for p in parts]
    pieces[-1] += zstd.flush()
    return pieces


def _sse(coding: str = "") -> Callable[[], list[Step]]:
    def build() -> list[Step]:
        s = H2Script()
        sid = s.request(body=JSON_REQ)
        head = [*SSE_HEAD, (b"content-encoding", coding.encode())] if coding else SSE_HEAD
        s.respond(sid, head, pieces=_flushed_stream(coding, SSE_PARTS) if coding else SSE_PARTS)
        return s.steps

    return build


def _check_sse(out: list[DecodeOutput]) -> None:
    events = of_type(out, StreamEvent)
    assert [e.event.data for e in events] == SSE_DATA
    assert [e.event.event for e in events] == ["", "", "", "done"]
    assert [e.index for e in events] == [0, 1, 2, 3]
    (done,) = _done(out)
    assert done.response is not None
    assert done.response.body == b"".join(SSE_PARTS)
    assert [e.data for e in done.response.sse_events] == SSE_DATA
    assert [type(item) for item in out] == [RequestSeen, ResponseStarted, *[StreamEvent] * 4, ExchangeDone]


def _continuation() -> list[Step]:
    """Header blocks bigger than a frame: HEADERS + CONTINUATION, both ways."""
    s = H2Script()
    big = b"x" * 40_000
    sid = s.request(
        request_headers(extra=[(b"x-big", big), (b"content-type", b"application/json")]), JSON_REQ
    )
    s.respond(
        sid,
        response_headers(200, [(b"x-trace", big[:30_000]), (b"content-type", b"application/json")]),
        JSON_RESP,
    )
    assert sum(continuation_split(step.data) for step in s.steps[1:]) >= 2
    return s.steps


def _check_continuation(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.request.header("x-big") == "x" * 40_000
    assert done.request.body == JSON_REQ
    assert done.response is not None and done.response.header("x-trace") == "x" * 30_000
    assert done.response.body == JSON_RESP


def _padding() -> list[Step]:
    s = H2Script()
    sid = s.padded_request(request_headers(), JSON_REQ, pad=17)
    s.server.send_headers(sid, response_headers())
    s.server.send_data(sid, JSON_RESP[:10], pad_length=0)
    s.server.send_data(sid, JSON_RESP[10:], end_stream=True, pad_length=200)
    s.server_out()
    return s.steps


def _check_padding(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.request.body == JSON_REQ and done.request.header(":path") == "/v1/chat/completions"
    assert done.response is not None and done.response.body == JSON_RESP
    assert done.response.body_size == len(JSON_RESP)


def _rst_stream() -> list[Step]:
    """The server gives up midway (RST_STREAM INTERNAL_ERROR); the next stream is fine."""
    s = H2Script()
    sid = s.request(body=JSON_REQ)
    s.server.send_headers(sid, SSE_HEAD)
    s.server.send_data(sid, SSE_PARTS[0])
    s.server_out()
    s.server.reset_stream(sid, error_code=2)
    s.server_out()
    sid = s.request(request_headers(method=b"GET", path=b"/v1/models", extra=()))
    s.respond(sid, body=b"{}")
    return s.steps


def _check_rst_stream(out: list[DecodeOutput]) -> None:
    first, second = _done(out)
    assert first.response is not None
    assert (first.response.complete, first.response.problems) == (False, ["reset"])
    assert [e.data for e in first.response.sse_events] == SSE_DATA[:1]
    assert first.request.problems == []
    assert second.response is not None and second.response.complete and second.response.body == b"{}"
    assert second.request.stream_id == 3


def _client_cancel() -> list[Step]:
    """The user stops a stream: the client resets it after two events."""
    s = H2Script()
    sid = s.request(body=JSON_REQ)
    s.respond(sid, SSE_HEAD, pieces=SSE_PARTS[:2], end=False)
    s.client.reset_stream(sid, error_code=8)  # CANCEL
    s.client_out()
    return s.steps


def _check_client_cancel(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.response is not None and not done.response.complete
    assert done.response.problems == ["reset"]
    assert [e.data for e in done.response.sse_events] == SSE_DATA[:2]
    assert len(of_type(out, StreamEvent)) == 2


def _goaway() -> list[Step]:
    s = H2Script()
    first = s.request(body=JSON_REQ)
    second = s.request(body=JSON_REQ)
    s.respond(first, body=JSON_RESP)
    s.server.close_connection(error_code=0, last_stream_id=first)
    s.server_out()
    assert second == 3
    return s.steps


def _check_goaway(out: list[DecodeOutput]) -> None:
    first, second = _done(out)
    assert first.response is not None and first.response.body == JSON_RESP
    assert second.request.stream_id == 3
    assert second.response is None
    assert second.request.problems == ["goaway"]
    assert [type(item) for item in out][-1] is ExchangeDone


def _error_429() -> list[Step]:
    s = H2Script()
    sid = s.request(body=JSON_REQ)
    body = b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}'
    s.respond(
        sid, response_headers(429, [(b"content-type", b"application/json"), (b"retry-after", b"1")]), body
    )
    return s.steps


def _check_error_429(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.response is not None
    assert (done.response.status, done.response.header("retry-after")) == (429, "1")
    assert json.loads(done.response.body)["error"]["code"] == "rate_limit_exceeded"


FLOW_REQ = bytes(range(256)) * 300  # 76,800 bytes: more than the initial 65,535 window
FLOW_RESP = b"abcdefghij" * 7_000


def _flow_control() -> list[Step]:
    s = H2Script()
    sid = s.request(request_headers(extra=[(b"content-type", b"application/octet-stream")]), FLOW_REQ)
    s.respond(sid, body=FLOW_RESP)
    return s.steps


def _check_flow_control(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.request.body == FLOW_REQ and done.request.body_size == len(FLOW_REQ)
    assert done.response is not None and done.response.body == FLOW_RESP


ENCODED = {
    b"gzip": gzip.compress(BIG),
    b"deflate": zlib.compress(BIG),
    b"br": brotli.compress(BIG),
    b"zstd": zstandard.ZstdCompressor().compress(BIG),
    b"gzip, br": brotli.compress(gzip.compress(BIG)),
}


def _encodings() -> list[Step]:
    """One stream per content coding, and a gzip-compressed request body."""
    s = H2Script()
    for coding, body in ENCODED.items():
        sid = s.request(request_headers(method=b"GET", path=b"/" + coding.replace(b", ", b"-"), extra=()))
        s.respond(
            sid,
            response_headers(200, [(b"content-type", b"application/json"), (b"content-encoding", coding)]),
            body,
        )
    headers = request_headers(extra=[(b"content-type", b"application/json"), (b"content-encoding", b"gzip")])
    sid = s.request(headers, gzip.compress(JSON_REQ))
    s.respond(sid, body=JSON_RESP)
    return s.steps


def _check_encodings(out: list[DecodeOutput]) -> None:
    dones = _done(out)
    assert len(dones) == len(ENCODED) + 1
    for done, coding in zip(dones, ENCODED, strict=False):
        assert done.response is not None
        assert done.response.body == BIG, coding
        assert done.response.body_size == len(ENCODED[coding])
        assert done.response.problems == []
    assert dones[-1].request.body == JSON_REQ
    assert dones[-1].request.body_size == len(gzip.compress(JSON_REQ))


def _push() -> list[Step]:
    """Server push: the promised request and the pushed response are not the client's calls."""
    s = H2Script()
    sid = s.request(request_headers(method=b"GET", path=b"/index", extra=()))
    s.server.push_stream(sid, 2, request_headers(method=b"GET", path=b"/pushed.js", extra=()))
    s.server.send_headers(2, response_headers(200, [(b"content-type", b"text/javascript")]))
    s.server.send_data(2, b"pushed();", end_stream=True)
    s.server.send_headers(sid, response_headers(200, [(b"content-type", b"text/html")]))
    s.server.send_data(sid, b"<html/>", end_stream=True)
    s.server_out()
    return s.steps


def _check_push(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.request.target == "/index"
    assert done.response is not None and done.response.body == b"<html/>"
    assert done.response.header("content-type") == "text/html"


def _trailers_and_interim() -> list[Step]:
    """A 103 Early Hints before the answer, and trailers after its body (as gRPC sends)."""
    s = H2Script()
    sid = s.request(body=JSON_REQ)
    s.server.send_headers(sid, [(b":status", b"103"), (b"link", b"</a.css>; rel=preload")])
    s.server.send_headers(sid, response_headers(200))
    s.server.send_data(sid, JSON_RESP)
    s.server.send_headers(sid, [(b"x-checksum", b"abc123")], end_stream=True)
    s.server_out()
    return s.steps


def _check_trailers_and_interim(out: list[DecodeOutput]) -> None:
    (done,) = _done(out)
    assert done.response is not None
    assert done.response.status == 200
    assert done.response.headers == [
        (":status", "200"),
        ("content-type", "application/json"),
        ("x-checksum", "abc123"),
    ]
    assert done.response.body == JSON_RESP


def _control_frames() -> list[Step]:
    """PING, PRIORITY, WINDOW_UPDATE and SETTINGS changes between and inside streams."""
    s = H2Script(
        server_settings={SettingCodes.HEADER_TABLE_SIZE: 65_536, SettingCodes.MAX_FRAME_SIZE: 65_536}
    )
    s.client.update_settings({SettingCodes.HEADER_TABLE_SIZE: 256})
    s.flush()
    sid = s.client.get_next_available_stream_id()
    s.client.send_headers(sid, request_headers())
    s.client.ping(b"12345678")
    s.client.prioritize(sid, weight=200)
    s.client.send_data(sid, JSON_REQ, end_stream=True)
    s.client_out()
    s.server.ping(b"abcdefgh")
    s.server.send_headers(sid, response_headers())
    s.server.increment_flow_control_window(1000)
    s.server.send_data(sid, JSON_RESP, end_stream=True)
    s.server_out()
    s.flush()
    for _ in range(3):  # the dynamic tables at their new sizes, reused
        sid = s.request(body=JSON_REQ)
        s.respond(sid, body=JSON_RESP)
    return s.steps


def _check_control_frames(out: list[DecodeOutput]) -> None:
    dones = _done(out)
    assert len(dones) == 4
    for done in dones:
        assert done.request.body == JSON_REQ and done.request.header(":path") == "/v1/chat/completions"
        assert done.response is not None and done.response.body == JSON_RESP
        assert done.response.header("content-type") == "application/json"


def _keep_alive() -> list[Step]:
    """Many exchanges on one connection: HPACK's dynamic tables are reused every time."""
    s = H2Script()
    for index in range(6):
        sid = s.request(
            request_headers(extra=[(b"content-type", b"application/json"), (b"x-n", b"%d" % index)]), JSON_REQ
        )
        s.respond(
            sid,
            response_headers(
                200, [(b"content-type", b"application/json"), (b"x-request-id", b"req_%d" % index)]
            ),
            JSON_RESP,
        )
    return s.steps


def _check_keep_alive(out: list[DecodeOutput]) -> None:
    dones = _done(out)
    assert [d.request.header("x-n") for d in dones] == [str(i) for i in range(6)]
    assert [d.response.header("x-request-id") for d in dones if d.response] == [f"req_{i}" for i in range(6)]
    assert [d.request.stream_id for d in dones] == [1, 3, 5, 7, 9, 11]


SAMPLES: dict[str, tuple[Callable[[], list[Step]], Callable[[list[DecodeOutput]], None]]] = {
    "post-json": (_post_json, _check_post_json),
    "concurrent": (_concurrent, _check_concurrent),
    "sse": (_sse(), _check_sse),
    "sse-gzip": (_sse("gzip"), _check_sse),
    "sse-deflate": (_sse("deflate"), _check_sse),
    "sse-br": (_sse("br"), _check_sse),
    "sse-zstd": (_sse("zstd"), _check_sse),
    "continuation": (_continuation, _check_continuation),
    "padding": (_padding, _check_padding),
    "rst-stream": (_rst_stream, _check_rst_stream),
    "client-cancel": (_client_cancel, _check_client_cancel),
    "goaway": (_goaway, _check_goaway),
    "error-429": (_error_429, _check_error_429),
    "flow-control": (_flow_control, _check_flow_control),
    "encodings": (_encodings, _check_encodings),
    "push": (_push, _check_push),
    "trailers-interim": (_trailers_and_interim, _check_trailers_and_interim),
    "control-frames": (_control_frames, _check_control_frames),
    "keep-alive": (_keep_alive, _check_keep_alive),
}
_STEPS_CACHE: dict[str, list[Step]] = {}
_BIG_SAMPLES = {"flow-control", "continuation"}  # cut at a stride, not at every byte


def _steps(name: str) -> list[Step]:
    if name not in _STEPS_CACHE:
        _STEPS_CACHE[name] = SAMPLES[name][0]()
    return _STEPS_CACHE[name]


def _assert_clean(counters: DecodeCounters, *, incomplete: int = 0) -> None:
    assert counters.http2_frame_errors == 0
    assert counters.hpack_errors == 0
    assert counters.internal_errors == 0
    assert counters.orphan_responses == 0
    assert counters.gaps == 0
    assert counters.incomplete_exchanges == incomplete


_INCOMPLETE = {"rst-stream": 1, "client-cancel": 1, "goaway": 1}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_whole(name: str) -> None:
    out, tracker = run(_steps(name))
    SAMPLES[name][1](out)
    _assert_clean(tracker.counters, incomplete=_INCOMPLETE.get(name, 0))
    seen: set[int] = set()
    for item in out:  # every later output was announced by a RequestSeen with the same id
        if isinstance(item, RequestSeen):
            seen.add(item.exchange_id)
        else:
            assert item.exchange_id in seen
    counters = tracker.counters
    assert counters.exchanges == len(_done(out)) == counters.http2_streams
    assert (counters.http2_connections, counters.http_connections, counters.non_http_connections) == (1, 0, 0)


def _cuts(name: str, steps: list[Step]) -> list[tuple[str, dict[int, list[bytes]]]]:
    if name not in _BIG_SAMPLES:
        return list(split_variants(steps))
    variants: list[tuple[str, dict[int, list[bytes]]]] = []
    for index, step in enumerate(steps):
        size = len(step.data)
        positions = {*range(1, min(size, 40)), *range(1, size, 611), *range(max(1, size - 40), size)}
        variants += [
            (f"step{index}@{cut}", {index: [step.data[:cut], step.data[cut:]]}) for cut in sorted(positions)
        ]
    return variants


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_split_everywhere(name: str) -> None:
    steps = _steps(name)
    whole, _ = run(steps)
    expected = normalize(whole)
    for label, pieces in _cuts(name, steps):
        out, tracker = run(steps, pieces)
        assert normalize(out) == expected, label
        _assert_clean(tracker.counters, incomplete=_INCOMPLETE.get(name, 0))


@pytest.mark.parametrize(
    "name", ["post-json", "sse-gzip", "concurrent", "continuation", "padding", "flow-control"]
)
def test_sample_one_byte_per_record(name: str) -> None:
    steps = _steps(name)
    expected = normalize(run(steps)[0])
    pieces = {
        index: [step.data[i : i + 1] for i in range(len(step.data))] for index, step in enumerate(steps)
    }
    out, tracker = run(steps, pieces)
    assert normalize(out) == expected
    _assert_clean(tracker.counters)


# ---- timing, roles, lifecycle -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["sse", "sse-gzip", "sse-deflate", "sse-br", "sse-zstd"])
def test_outputs_come_with_the_record_that_completes_them(name: str) -> None:
    """Compressed or not, each SSE event streams out with the record that completed it."""
    steps = _steps(name)
    req = next(i for i, step in enumerate(steps) if JSON_REQ in step.data)
    assert len(steps) == req + 5  # then the head with the first piece, and 3 more pieces
    tracker = ConnectionTracker()
    per_record: list[tuple[int, list[DecodeOutput]]] = []
    for record in records_for(steps):
        per_record.append((record.ts_ns, tracker.feed(record)))
    kinds = [[type(item).__name__ for item in out] for _, out in per_record]
    assert kinds == [[]] * req + [
        ["RequestSeen"],
        ["ResponseStarted", "StreamEvent"],
        ["StreamEvent"],
        ["StreamEvent"],
        ["StreamEvent", "ExchangeDone"],
    ]
    ts_of = {id(item): ts for ts, out in per_record for item in out}
    events = [item for _, out in per_record for item in out if isinstance(item, StreamEvent)]
    assert [e.event.ts_ns for e in events] == [ts_of[id(e)] for e in events]
    (done,) = [item for _, out in per_record for item in out if isinstance(item, ExchangeDone)]
    assert done.request.start_ts_ns == done.request.end_ts_ns == per_record[req][0]
    assert done.response is not None and done.response.start_ts_ns == per_record[req + 1][0]
    assert done.response.end_ts_ns == per_record[-1][0]


def test_response_before_request_end_is_held() -> None:
    """A server may answer before the upload ends: ResponseStarted waits for RequestSeen."""
    s = H2Script()
    sid = s.client.get_next_available_stream_id()
    s.client.send_headers(sid, request_headers())
    s.client.send_data(sid, b'{"a":')
    s.client_out()
    s.respond(sid, SSE_HEAD, pieces=SSE_PARTS[:1], end=False)
    s.client.send_data(sid, b"1}", end_stream=True)
    s.client_out()
    s.server.send_data(sid, b"".join(SSE_PARTS[1:]), end_stream=True)
    s.server_out()
    out, _ = run(s.steps)
    kinds = [type(item).__name__ for item in out]
    assert kinds == [
        "RequestSeen",
        "ResponseStarted",
        "StreamEvent",
        "StreamEvent",
        "StreamEvent",
        "StreamEvent",
        "ExchangeDone",
    ]
    assert _done(out)[0].request.body == b'{"a":1}'


def _swap(steps: list[Step]) -> list[Step]:
    return [Step(R if step.direction is W else W, step.data) for step in steps]


def test_server_side_is_silent_by_default() -> None:
    out, tracker = run(_swap(_steps("post-json")))
    assert out == []
    assert tracker.counters.server_connections == 1
    assert tracker.counters.http2_connections == 1


def test_server_side_reported_when_asked() -> None:
    steps = _steps("concurrent")
    out, tracker = run(_swap(steps), report_server_side=True)
    client_out, _ = run(steps)
    assert normalize(out) == [
        (item[0], item[1], Role.SERVER, *item[3:]) if item[0] == "seen" else item
        for item in normalize(client_out)
    ]
    assert tracker.counters.server_connections == 1


def _server_writes_first(steps: list[Step]) -> list[Step]:
    """The server's view, as it often happens: it writes its SETTINGS before reading the preface."""
    swapped = _swap(steps)
    first_write = next(i for i, step in enumerate(swapped) if step.direction is W)
    return [swapped[first_write], *swapped[:first_write], *swapped[first_write + 1 :]]


def test_server_that_writes_settings_first() -> None:
    steps = _server_writes_first(_steps("concurrent"))
    assert steps[0].direction is W and not steps[0].data.startswith(PREFACE)
    out, tracker = run(steps)
    assert out == []
    counters = tracker.counters
    assert (counters.server_connections, counters.http2_connections, counters.late_http2_connections) == (
        1,
        1,
        0,
    )
    assert counters.non_http_connections == 0
    out, tracker = run(steps, report_server_side=True)
    client_out, _ = run(_steps("concurrent"))
    assert normalize(out) == [
        (item[0], item[1], Role.SERVER, *item[3:]) if item[0] == "seen" else item
        for item in normalize(client_out)
    ]
    assert tracker.counters.hpack_errors == 0 and tracker.counters.http2_frame_errors == 0


def test_close_mid_response_finishes_incomplete() -> None:
    steps = _steps("sse")
    out, tracker = run([*steps[:-1], Step(CLOSE)])
    (done,) = _done(out)
    assert done.response is not None and not done.response.complete
    assert done.response.problems == ["incomplete"]
    assert tracker.counters.incomplete_exchanges == 1
    req = next(i for i, step in enumerate(steps) if JSON_REQ in step.data)
    out, _ = run([*steps[: req + 1], Step(CLOSE)])  # request sent, no answer
    (done,) = _done(out)
    assert done.response is None and done.request.problems == []


def test_body_limit() -> None:
    out, tracker = run(_steps("flow-control"), max_body_bytes=1000)
    (done,) = _done(out)
    assert done.request.body == FLOW_REQ[:1000] and done.request.body_size == len(FLOW_REQ)
    assert done.request.truncated and done.request.problems == ["body-limit"]
    assert done.response is not None and done.response.problems == ["body-limit"]
    assert tracker.counters.truncated_bodies == 2


def test_bad_gzip_keeps_raw_body() -> None:
    s = H2Script()
    sid = s.request(request_headers(method=b"GET", extra=()))
    s.respond(sid, response_headers(200, [(b"content-encoding", b"gzip")]), b"not gzip at all")
    out, tracker = run(s.steps)
    (done,) = _done(out)
    assert done.response is not None and done.response.body == b"not gzip at all"
    assert done.response.problems == ["decode-error:gzip"]
    assert tracker.counters.decode_errors == 1


def test_internal_error_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = _steps("keep-alive")
    calls = {"n": 0}
    original = connection_module.Http2Decoder.feed

    def flaky(self: connection_module.Http2Decoder, direction: int, data: bytes, ts_ns: int) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("bug")
        original(self, direction, data, ts_ns)

    monkeypatch.setattr(connection_module.Http2Decoder, "feed", flaky)
    out, tracker = run(steps)
    assert tracker.counters.internal_errors == 1
    assert len(_done(out)) >= 1  # what was in flight is finished, later exchanges still come


# ---- corrupted frames ----------------------------------------------------------------------------


def _in_flight_then(garbage: bytes, direction: Direction = R) -> tuple[list[DecodeOutput], ConnectionTracker]:
    """A stream in flight, then a corrupt record, then a new exchange on a fresh record."""
    s = H2Script()
    sid = s.request(body=JSON_REQ)
    s.respond(sid, SSE_HEAD, pieces=SSE_PARTS[:1], end=False)
    s.raw(direction, garbage)
    sid = s.request(request_headers(method=b"GET", path=b"/v1/models", extra=()))
    s.respond(sid, response_headers(200, [(b"x-fresh", b"yes")]), b"{}")
    return run(s.steps)


CORRUPT = {
    "unknown-type": b"\x00\x00\x04\x42\x00\x00\x00\x00\x01abcd",
    "settings-bad-length": b"\x00\x00\x05\x04\x00\x00\x00\x00\x00abcde",
    "ping-bad-length": b"\x00\x00\x07\x06\x00\x00\x00\x00\x00abcdefg",
    "too-large": b"\x00\xff\xff\x00\x00\x00\x00\x00\x01" + b"z" * 64,
    "data-on-stream-0": b"\x00\x00\x02\x00\x00\x00\x00\x00\x00ab",
    "settings-on-stream-1": b"\x00\x00\x00\x04\x00\x00\x00\x00\x01",
    "continuation-alone": b"\x00\x00\x01\x09\x04\x00\x00\x00\x01\x82",
    "padding-too-long": b"\x00\x00\x03\x00\x09\x00\x00\x00\x01\x05ab",
    "text": b"this is not a frame at all, just text",
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupted_frames_finish_in_flight_as_incomplete(name: str) -> None:
    out, tracker = _in_flight_then(CORRUPT[name])
    counters = tracker.counters
    assert counters.http2_frame_errors == 1
    assert counters.internal_errors == 0
    first = _done(out)[0]
    assert first.response is not None and not first.response.complete
    assert first.response.problems == ["h2-frame-error"]
    assert [e.data for e in first.response.sse_events] == SSE_DATA[:1]
    # the next exchange: requests are intact; the response side resyncs at the next record,
    # and decodes what no longer depends on the lost state of its HPACK table
    second = _done(out)[1]
    assert second.request.target == "/v1/models" and second.request.problems == []
    assert second.response is not None and second.response.status == 200
    assert second.response.body == b"{}"
    assert second.response.header("x-fresh") == "yes"


def test_corruption_in_request_direction() -> None:
    out, tracker = _in_flight_then(CORRUPT["unknown-type"], W)
    assert tracker.counters.http2_frame_errors == 1
    first, *rest = _done(out)
    assert first.response is not None and first.response.problems == ["h2-frame-error"]
    # the request direction's table is now unknown: the next request's head refers to
    # entries of the first one, so it is reported as undecodable, never as a wrong request
    assert rest and rest[0].request.problems == ["hpack-error"] and rest[0].request.method == ""
    assert tracker.counters.hpack_errors >= 1


def test_corrupted_bytes_every_which_way_never_raise() -> None:
    steps = _steps("concurrent")
    for index, step in enumerate(steps):
        for pos in range(0, len(step.data), 7):
            for mask in (0xFF, 0x80, 0x01):
                data = bytearray(step.data)
                data[pos] ^= mask
                corrupted = [*steps[:index], Step(step.direction, bytes(data)), *steps[index + 1 :]]
                out, tracker = run(corrupted)
                assert tracker.counters.internal_errors == 0, (index, pos, mask)
                seen = {item.exchange_id for item in out if isinstance(item, RequestSeen)}
                assert {done.exchange_id for done in _done(out)} == seen, (index, pos, mask)


def test_bad_preface() -> None:
    steps = _steps("post-json")
    bad = Step(W, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + steps[0].data[24:])
    out, tracker = run([bad, *steps[1:]])
    assert tracker.counters.http2_frame_errors == 1
    assert tracker.counters.internal_errors == 0
    assert all(isinstance(item, RequestSeen | ExchangeDone | ResponseStarted) for item in out)


def test_plausible_frames() -> None:
    steps = _steps("post-json")
    assert not plausible_frames(steps[0].data)  # the preface is not a frame
    assert plausible_frames(steps[0].data[24:])
    assert all(plausible_frames(step.data) for step in steps[1:])
    assert not plausible_frames(b"")
    assert not plausible_frames(b"\x00\x00")
    assert not plausible_frames(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not plausible_frames(b"\x00" * 9)  # DATA on stream 0
    assert not plausible_frames(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # zero increment
    assert plausible_frames(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x10\x00")
    assert not plausible_frames(b"\x00\x00\x04\x42\x00\x00\x00\x00\x01abcd")  # unknown type
    data_frame = b"\x00\x20\x00\x00\x00\x00\x00\x00\x01" + b"x" * 5000  # a big write cut by the capture
    assert plausible_frames(data_frame)
    assert not plausible_frames(data_frame[:100])


# ---- a capture that joins midway ----------------------------------------------------------------


def _midway_script() -> tuple[list[Step], int]:
    """Three exchanges; returns the steps and where the first request's HEADERS ends."""
    s = H2Script()
    s.client.send_headers(1, request_headers())
    s.client_out()
    cut = len(s.steps)  # steps[:cut]: preface, SETTINGS, acks, first HEADERS
    s.client.send_data(1, JSON_REQ, end_stream=True)
    s.client_out()
    s.respond(1, body=JSON_RESP)
    for path in (b"/v1/embeddings", b"/v1/models"):
        sid = s.request(request_headers(path=path), JSON_REQ)
        s.respond(
            sid, response_headers(200, [(b"content-type", b"application/json"), (b"x-path", path)]), JSON_RESP
        )
    return s.steps, cut


def test_joined_midway_reports_what_it_can_never_wrongly() -> None:
    steps, cut = _midway_script()
    # the client's preface, SETTINGS and first HEADERS were before the capture started
    late = [step for index, step in enumerate(steps) if index >= cut or step.direction is R]
    out, tracker = run(late)
    counters = tracker.counters
    assert counters.internal_errors == 0
    assert counters.http2_frame_errors == 0
    assert counters.orphan_responses == 1  # stream 1: its request was never seen
    assert (counters.http2_connections, counters.late_http2_connections) == (1, 1)
    dones = _done(out)
    assert [d.request.stream_id for d in dones] == [3, 5]
    for done in dones:
        # the client's encoder refers to entries of the lost first block: undecodable
        assert done.request.problems == ["hpack-error"] and done.request.truncated
        assert done.request.method == "" and done.request.headers == []
        assert done.request.body == JSON_REQ  # DATA is still correlated by stream id
        assert done.conn.role == Role.CLIENT
        # the server's side was seen from its start: decoded exactly
        assert done.response is not None and done.response.complete
        assert done.response.body == JSON_RESP and done.response.header("content-type") == "application/json"
    assert [d.response.header("x-path") for d in dones if d.response] == ["/v1/embeddings", "/v1/models"]


def test_joined_midway_both_directions_mid_stream() -> None:
    """Nothing of the start seen either way: streams whose blocks refer to lost entries fail."""
    steps, cut = _midway_script()
    late = steps[cut + 2 :]  # from the second exchange on, both directions
    out, tracker = run(late)
    assert tracker.counters.internal_errors == 0
    for done in _done(out):
        assert done.request.problems == ["hpack-error"]
        assert done.response is not None and done.response.problems == ["hpack-error"]
        assert done.response.status == 0 and not done.response.complete
        assert done.response.body == JSON_RESP


def test_joined_midway_fresh_header_blocks_decode() -> None:
    """A midway connection whose encoder only uses literals is read exactly."""
    s = H2Script()
    s.client.encoder.header_table_size = 0  # never index: every block stands alone
    s.server.encoder.header_table_size = 0
    for _ in range(2):
        sid = s.request(body=JSON_REQ)
        s.respond(sid, body=JSON_RESP)
    late = s.steps[3:]  # after the preface and SETTINGS exchange
    out, tracker = run(late)
    dones = _done(out)
    assert dones and all(
        d.request.problems == [] and d.request.target == "/v1/chat/completions" for d in dones
    )
    assert all(d.response is not None and d.response.body == JSON_RESP for d in dones)
    assert tracker.counters.late_http2_connections == 1


def test_non_http_binary_is_not_taken_for_http2() -> None:
    conn = Conn()
    tracker = ConnectionTracker()
    records = [
        conn.data(W, bytes([0x17, 0x03, 0x03, 0x00, 0x20]) + b"\x01" * 32),
        conn.data(R, b"\xff" * 100),
    ]
    assert feed_all(tracker, records) == []
    assert tracker.counters.non_http_connections == 1
    assert tracker.counters.http2_connections == 0


def test_midway_false_start_returns_to_non_http() -> None:
    """Bytes that look like one frame, then are not frames: back to non-HTTP, nothing reported."""
    conn = Conn()
    tracker = ConnectionTracker()
    records = [
        conn.data(W, b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x10\x00"),  # a WINDOW_UPDATE?
        conn.data(W, b"\x00\x00\x02\x00\x00\x00\x00\x00\x00ab"),  # DATA on stream 0: no
        conn.data(R, b"binary" * 10),
    ]
    assert feed_all(tracker, records) + tracker.flush(10**9) == []
    counters = tracker.counters
    assert (counters.non_http_connections, counters.http2_connections, counters.http2_frame_errors) == (
        1,
        0,
        1,
    )


# ---- lost bytes ------------------------------------------------------------------------------------


def _records_with_gap(steps: list[Step], step_index: int, start: int, size: int) -> list:
    """Records for ``steps`` with ``size`` bytes of one step lost (never captured)."""
    conn = Conn()
    records = []
    for index, step in enumerate(steps):
        if step.direction is None:
            records.append(conn.close())
        elif index == step_index:
            records.append(conn.data(step.direction, step.data[:start]))
            offset = conn.offsets[step.direction] + size
            records.append(conn.data(step.direction, step.data[start + size :], offset=offset))
        else:
            records.append(conn.data(step.direction, step.data))
    return records


def test_gap_inside_data_frame_is_accounted() -> None:
    s = H2Script()
    sid = s.request(body=JSON_REQ)
    s.respond(sid, body=BIG)  # one DATA frame
    sid = s.request(request_headers(method=b"GET", path=b"/v1/models", extra=()))
    s.respond(sid, body=b"{}")
    steps = s.steps
    index = next(i for i, step in enumerate(steps) if BIG[:50] in step.data)
    start = steps[index].data.index(BIG[:50]) + 100
    tracker = ConnectionTracker()
    out = feed_all(tracker, _records_with_gap(steps, index, start, 300))
    first, second = _done(out)
    assert first.response is not None and first.response.complete
    assert first.response.truncated and first.response.problems == ["gap"]
    assert first.response.body == BIG[:100] + BIG[400:]
    assert first.response.body_size == len(BIG)
    assert second.response is not None and second.response.body == b"{}" and second.response.problems == []
    assert (tracker.counters.gaps, tracker.counters.gap_bytes, tracker.counters.http2_frame_errors) == (
        1,
        300,
        0,
    )


def test_gap_inside_compressed_sse_stops_decoding_not_framing() -> None:
    s = H2Script()
    sid = s.request(body=JSON_REQ)
    pieces = gzip_stream(SSE_PARTS)
    s.respond(sid, [*SSE_HEAD, (b"content-encoding", b"gzip")], pieces=pieces)
    steps = s.steps
    index = len(steps) - 2  # the third piece's DATA frame
    out = feed_all(ConnectionTracker(), _records_with_gap(steps, index, 12, 3))
    (done,) = _done(out)
    assert done.response is not None and done.response.complete and done.response.truncated
    assert [e.event.data for e in of_type(out, StreamEvent)] == SSE_DATA[:2]


def test_gap_across_frames_resyncs_at_next_record() -> None:
    s = H2Script()
    sid = s.request(body=JSON_REQ)
    s.respond(sid, SSE_HEAD, pieces=SSE_PARTS)
    sid = s.request(request_headers(method=b"GET", path=b"/v1/models", extra=()))
    s.respond(sid, response_headers(200, [(b"x-fresh", b"yes")]), b"{}")
    steps = s.steps
    index = next(i for i, step in enumerate(steps) if b'"lo"' in step.data)
    tracker = ConnectionTracker()
    out = feed_all(tracker, _records_with_gap(steps, index, 4, len(steps[index].data) - 8))
    first, second = _done(out)
    assert first.response is not None and first.response.truncated and "gap" in first.response.problems
    assert [e.event.data for e in of_type(out, StreamEvent) if e.exchange_id == first.exchange_id] == [
        SSE_DATA[0],
        SSE_DATA[3],
    ]
    assert second.response is not None and second.response.header("x-fresh") == "yes"
    assert tracker.counters.http2_frame_errors == 0


def test_gap_inside_headers_frame_loses_that_block_only() -> None:
    steps = _steps("keep-alive")
    # the third request's HEADERS frame: lose 3 bytes of its block
    index = [i for i, step in enumerate(steps) if step.direction is W][3]
    tracker = ConnectionTracker()
    out = feed_all(tracker, _records_with_gap(steps, index, 12, 3))
    dones = _done(out)
    assert len(dones) == 6
    lost = [d for d in dones if d.request.problems]
    assert lost and lost[0].request.problems == ["gap"] and lost[0].request.headers == []
    assert lost[0].response is not None and lost[0].response.header("x-request-id") is not None
    assert dones[0].request.header("x-n") == "0" and dones[0].request.problems == []
    assert tracker.counters.internal_errors == 0 and tracker.counters.http2_frame_errors == 0


def test_preface_split_and_detection_bytewise() -> None:
    steps = _steps("post-json")
    first = steps[0].data
    pieces = {0: [first[i : i + 1] for i in range(len(PREFACE))] + [first[len(PREFACE) :]]}
    out, tracker = run(steps, pieces)
    assert normalize(out) == normalize(run(steps)[0])
    assert tracker.counters.http2_connections == 1
