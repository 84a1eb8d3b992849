"""RequestParser / ResponseParser on their own, with a sink that records every call."""

from __future__ import annotations

import gzip

import pytest
from tests.unit.helpers_decode import chunked, http_request, http_response

from oisp_sensor.decode.http1 import BodyCollector, RequestParser, ResponseParser
from oisp_sensor.decode.messages import HttpRequest, HttpResponse, SseEvent


class Sink:
    """Implements RequestSink and ResponseSink; ``methods`` are the requests awaiting answers."""

    def __init__(self, methods: list[str] | None = None) -> None:
        self.methods = list(methods or [])
        self.calls: list[tuple[str, object]] = []
        self.parse_errors = 0

    # RequestSink
    def request_head(self, request: HttpRequest) -> None:
        self.calls.append(("head", request.target))

    def request_done(self, request: HttpRequest) -> None:
        self.calls.append(("done", request))

    def request_resync(self) -> None:
        self.calls.append(("resync", None))

    def parse_error(self) -> None:
        self.parse_errors += 1

    # ResponseSink
    def bodyless_pending(self) -> bool:
        return any(m in ("HEAD", "CONNECT") for m in self.methods)

    def next_request_method(self, ts_ns: int) -> str | None:
        return self.methods[0] if self.methods else None

    def response_head(self, response: HttpResponse) -> None:
        if self.methods:
            self.methods.pop(0)
        self.calls.append(("head", response.status))

    def response_event(self, response: HttpResponse, event: SseEvent) -> None:
        self.calls.append(("event", event.data))

    def response_done(self, response: HttpResponse) -> None:
        self.calls.append(("done", response))

    def response_lost(self) -> None:
        if self.methods:
            self.methods.pop(0)
        self.calls.append(("lost", None))

    def response_resync(self) -> None:
        self.calls.append(("resync", None))

    def upgraded(self) -> None:
        self.calls.append(("upgraded", None))

    # helpers
    def done(self) -> list[HttpRequest | HttpResponse]:
        return [item for kind, item in self.calls if kind == "done"]  # type: ignore[misc]

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


def _requests(sink: Sink) -> list[HttpRequest]:
    return [item for item in sink.done() if isinstance(item, HttpRequest)]


def _responses(sink: Sink) -> list[HttpResponse]:
    return [item for item in sink.done() if isinstance(item, HttpResponse)]


def _feed_bytewise(parser: RequestParser | ResponseParser, data: bytes, ts: int = 1) -> None:
    for i in range(len(data)):
        parser.feed(data[i : i + 1], ts + i)


# ---- requests -----------------------------------------------------------------------------


def test_request_fields() -> None:
    sink = Sink()
    parser = RequestParser(sink, 1 << 20)
    raw = (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: api.openai.com\r\nX-Name: caf\xe9\r\n"
        b"X-Dup: 1\r\nx-dup: 2\r\nContent-Length: 4\r\n\r\nbody"
    )
    parser.feed(raw[:40], 10)
    parser.feed(raw[40:], 20)
    assert sink.kinds() == ["head", "done"]
    (request,) = _requests(sink)
    assert (request.method, request.target, request.version) == ("POST", "/v1/chat/completions?x=1", "1.1")
    assert request.headers == [
        ("host", "api.openai.com"),
        ("x-name", "café"),
        ("x-dup", "1"),
        ("x-dup", "2"),
        ("content-length", "4"),
    ]
    assert (request.body, request.body_size) == (b"body", 4)
    assert (request.start_ts_ns, request.end_ts_ns) == (10, 20)
    assert not request.truncated and request.problems == []


def test_request_bytewise_equals_whole() -> None:
    raw = http_request(
        b"PUT", b"/x", [(b"Transfer-Encoding", b"chunked")], chunked(b"ab", b"cde", ext=b";k=v")
    )
    whole, bytewise = Sink(), Sink()
    RequestParser(whole, 1 << 20).feed(raw, 1)
    _feed_bytewise(RequestParser(bytewise, 1 << 20), raw)
    (a,), (b,) = _requests(whole), _requests(bytewise)
    assert a.body == b.body == b"abcde"
    assert a.headers == b.headers
    assert b.start_ts_ns == 1 and b.end_ts_ns == len(raw)


def test_chunked_request_trailers_follow_headers() -> None:
    sink = Sink()
    raw = http_request(
        b"POST", b"/t", [(b"Transfer-Encoding", b"chunked")], chunked(b"x", trailers=b"X-Sum: 9\r\n")
    )
    RequestParser(sink, 1 << 20).feed(raw, 1)
    (request,) = _requests(sink)
    assert request.headers[-1] == ("x-sum", "9")
    assert request.body == b"x"


def test_gzip_request_body_is_decoded() -> None:
    sink = Sink()
    raw = http_request(b"POST", b"/z", [(b"Content-Encoding", b"gzip")], gzip.compress(b"hello"))
    RequestParser(sink, 1 << 20).feed(raw, 1)
    (request,) = _requests(sink)
    assert request.body == b"hello"
    assert request.body_size == len(gzip.compress(b"hello"))


def test_parse_error_resyncs_after_the_bad_request_only() -> None:
    sink = Sink()
    parser = RequestParser(sink, 1 << 20)
    good1, good2 = http_request(b"GET", b"/1"), http_request(b"GET", b"/2")
    bad = b"GET /bad HTTP/1.1\r\nno colon\r\n\r\n"
    parser.feed(good1 + bad + good2, 1)
    assert [r.target for r in _requests(sink)] == ["/1", "/2"]
    assert sink.parse_errors == 1
    assert sink.kinds() == ["head", "done", "resync", "head", "done"]


@pytest.mark.parametrize(
    ("junk", "targets"),
    [
        (b"\x00\x01junk\r\n\r\n", ["/1", "/2"]),
        (b"GET /bad HTTP/1.1\r\nno colon\r\n\r\n", ["/1", "/2"]),
        (b"xGET /found HTTP/1.1\r\n\r\n", ["/1", "/found", "/2"]),  # a request line after junk
    ],
)
def test_garbage_between_requests_does_not_hide_the_next_one(junk: bytes, targets: list[str]) -> None:
    sink = Sink()
    parser = RequestParser(sink, 1 << 20)
    parser.feed(http_request(b"GET", b"/1") + junk + http_request(b"GET", b"/2"), 1)
    assert [r.target for r in _requests(sink)] == targets
    assert sink.parse_errors == 1


def test_garbage_between_responses_does_not_hide_the_next_one() -> None:
    sink = Sink(["GET", "GET"])
    parser = ResponseParser(sink, 1 << 20)
    parser.feed(http_response(200, [], b"one") + b"garbage\r\n" + http_response(201, [], b"two"), 1)
    assert [(r.status, r.body) for r in _responses(sink)] == [(200, b"one"), (201, b"two")]
    assert sink.parse_errors == 1


def test_bad_response_after_good_one_in_same_chunk() -> None:
    sink = Sink(["GET", "GET", "GET"])
    parser = ResponseParser(sink, 1 << 20)
    bad = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nbroken\r\n\r\nok"
    parser.feed(http_response(200, [], b"one") + bad + http_response(202, [], b"three"), 1)
    assert [(r.status, r.body) for r in _responses(sink)] == [(200, b"one"), (202, b"three")]
    assert sink.kinds() == ["head", "done", "lost", "resync", "head", "done"]


def test_many_bad_requests_in_one_chunk_do_not_recurse() -> None:
    sink = Sink()
    parser = RequestParser(sink, 1 << 20)
    parser.feed(b"GET / HTTP/1.1\r\nbad\r\n\r\n" * 5000 + http_request(b"GET", b"/ok"), 1)
    assert sink.parse_errors == 5000
    assert [r.target for r in _requests(sink)] == ["/ok"]


def test_request_body_cut_at_close_is_truncated() -> None:
    sink = Sink()
    parser = RequestParser(sink, 1 << 20)
    parser.feed(http_request(b"POST", b"/p", body=b"0123456789")[:-3], 5)
    parser.close()
    (request,) = _requests(sink)
    assert request.truncated and request.problems == ["incomplete"]
    assert request.body == b"0123456" and request.end_ts_ns == 5
    assert not parser.reusable


def test_clean_parser_is_reused_for_a_new_stream() -> None:
    first = Sink()
    parser = RequestParser(first, 1 << 20)
    parser.feed(http_request(b"GET", b"/a"), 1)
    parser.close()
    assert parser.reusable
    second = Sink()
    parser.rebind(second)
    parser.feed(http_request(b"GET", b"/b"), 2)
    assert [r.target for r in _requests(first)] == ["/a"]
    assert [r.target for r in _requests(second)] == ["/b"]


def test_resync_finds_a_request_line_split_over_chunks() -> None:
    sink = Sink()
    parser = RequestParser(sink, 1 << 20)
    parser.start_resync()
    _feed_bytewise(parser, b"tail of something lost\r\n" + http_request(b"GET", b"/after"), ts=100)
    (request,) = _requests(sink)
    assert request.target == "/after"
    assert request.start_ts_ns == 100 + len(b"tail of something lost\r\n")


# ---- responses ----------------------------------------------------------------------------


def test_interim_responses_are_skipped() -> None:
    sink = Sink(["POST"])
    parser = ResponseParser(sink, 1 << 20)
    parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 1)
    parser.feed(http_response(200, [], b"done"), 2)
    (response,) = _responses(sink)
    assert (response.status, response.body, response.start_ts_ns) == (200, b"done", 2)
    assert sink.kinds() == ["head", "done"]


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    sink = Sink(["GET", "GET"])
    parser = ResponseParser(sink, 1 << 20)
    parser.feed(http_response(status, [(b"Content-Length", b"10")]) + http_response(200, [], b"next"), 1)
    first, second = _responses(sink)
    assert first.status == status and first.body == b""
    assert second.body == b"next"


def test_head_response_has_no_body_whatever_its_headers_say() -> None:
    sink = Sink(["HEAD", "GET", "HEAD"])
    parser = ResponseParser(sink, 1 << 20)
    head = http_response(200, [(b"Content-Length", b"99"), (b"Content-Type", b"text/html")])
    chunked_head = http_response(200, [(b"Transfer-Encoding", b"chunked")])
    data = head + http_response(200, [], b"HTTP/1.1 inside a body") + chunked_head
    _feed_bytewise(parser, data)
    statuses = [(r.status, r.body, r.complete) for r in _responses(sink)]
    assert statuses == [(200, b"", True), (200, b"HTTP/1.1 inside a body", True), (200, b"", True)]
    assert sink.parse_errors == 0


def test_connect_tunnel_stops_parsing() -> None:
    sink = Sink(["CONNECT"])
    parser = ResponseParser(sink, 1 << 20)
    parser.feed(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01 tls bytes", 1)
    parser.feed(b"more tunnel bytes", 2)
    assert sink.kinds() == ["head", "done", "upgraded"]
    assert sink.parse_errors == 0


def test_switching_protocols_stops_parsing() -> None:
    sink = Sink(["GET"])
    parser = ResponseParser(sink, 1 << 20)
    parser.feed(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00", 1
    )
    parser.feed(b"\x81\x05hello", 2)
    assert sink.kinds() == ["head", "done", "upgraded"]


def test_close_delimited_response_completes_at_close() -> None:
    sink = Sink(["GET"])
    parser = ResponseParser(sink, 1 << 20)
    parser.feed(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ", 1)
    parser.feed(b"it", 2)
    assert _responses(sink) == []
    parser.close()
    (response,) = _responses(sink)
    assert (response.body, response.complete, response.end_ts_ns) == (b"all of it", True, 2)


def test_content_length_response_cut_at_close_is_incomplete() -> None:
    sink = Sink(["GET"])
    parser = ResponseParser(sink, 1 << 20)
    parser.feed(http_response(200, [], b"0123456789")[:-4], 1)
    parser.close()
    (response,) = _responses(sink)
    assert (response.body, response.complete, response.problems) == (b"012345", False, ["incomplete"])


def test_sse_events_are_delivered_as_they_complete() -> None:
    sink = Sink(["POST"])
    parser = ResponseParser(sink, 1 << 20)
    head = http_response(200, [(b"Content-Type", b"text/event-stream"), (b"Transfer-Encoding", b"chunked")])
    parser.feed(head, 1)
    parser.feed(b"10\r\ndata: a\n\ndata: b\r\n", 2)  # event b still lacks its blank line
    assert sink.kinds() == ["head", "event"]
    parser.feed(b"3\r\n\n\nc\r\n0\r\n\r\n", 3)  # completes b; "c" is never terminated
    (response,) = _responses(sink)
    assert [e.data for e in response.sse_events] == ["a", "b"]
    assert [e.ts_ns for e in response.sse_events] == [2, 3]
    assert sink.kinds() == ["head", "event", "event", "done"]


def test_sse_past_the_body_cap_streams_but_is_not_stored() -> None:
    sink = Sink(["POST"])
    parser = ResponseParser(sink, 8)
    head = http_response(200, [(b"Content-Type", b"text/event-stream")], length=False)
    parser.feed(head + b"data: first\n\ndata: second\n\n", 1)
    parser.close()
    (response,) = _responses(sink)
    assert [data for kind, data in sink.calls if kind == "event"] == ["first", "second"]
    assert [e.data for e in response.sse_events] == ["first"]  # 5 + 6 bytes of data > 8
    assert response.body == b"data: fi" and response.truncated
    assert response.problems == ["body-limit"]


def test_body_cap_with_compression_and_decode_error() -> None:
    sink = Sink(["GET", "GET", "GET"])
    parser = ResponseParser(sink, 5)
    parser.feed(http_response(200, [(b"Content-Encoding", b"gzip")], gzip.compress(b"abcdefghij")), 1)
    parser.feed(http_response(200, [(b"Content-Encoding", b"gzip")], b"not gzip at all"), 2)
    parser.feed(http_response(200, [(b"Content-Encoding", b"compress")], b"abc"), 3)
    capped, broken, unknown = _responses(sink)
    assert (capped.body, capped.truncated, capped.problems) == (b"abcde", True, ["body-limit"])
    assert (broken.body, broken.problems) == (b"not g", ["body-limit", "decode-error:gzip"])
    assert (unknown.body, unknown.problems) == (b"abc", ["decode-error:compress"])


def test_gap_in_content_length_body_is_counted_as_body() -> None:
    sink = Sink(["GET", "GET"])
    parser = ResponseParser(sink, 1 << 20)
    raw = http_response(200, [], b"0123456789")
    body_at = raw.index(b"\r\n\r\n") + 4
    parser.feed(raw[: body_at + 2], 1)
    parser.gap(5, 2)
    parser.feed(raw[body_at + 7 :] + http_response(200, [], b"next"), 2)
    first, second = _responses(sink)
    assert (first.body, first.body_size, first.complete) == (b"01789", 10, True)
    assert first.truncated and first.problems == ["gap"]
    assert second.body == b"next" and second.problems == []


def test_gap_in_chunked_body_finishes_and_resyncs() -> None:
    sink = Sink(["GET", "GET"])
    parser = ResponseParser(sink, 1 << 20)
    raw = http_response(200, [(b"Transfer-Encoding", b"chunked")]) + chunked(b"abc", b"def")
    parser.feed(raw[:-12], 1)
    parser.gap(4, 2)
    parser.feed(raw[-8:] + http_response(200, [], b"next"), 3)
    first, second = _responses(sink)
    assert (first.body, first.complete, first.truncated, first.problems) == (b"abc", False, True, ["gap"])
    assert second.body == b"next"
    assert sink.kinds() == ["head", "done", "resync", "head", "done"]


def test_gap_between_responses_reports_a_lost_start() -> None:
    sink = Sink(["GET", "GET"])
    parser = ResponseParser(sink, 1 << 20)
    parser.gap(30, 1)
    parser.feed(b"ody of the lost one" + http_response(200, [], b"second"), 2)
    assert sink.kinds() == ["lost", "resync", "head", "done"]


def test_body_collector_counts_skipped_bytes() -> None:
    collector = BodyCollector(100, None, None)
    collector.add(b"abc", 1)
    collector.skip(10)
    collector.add(b"def", 2)
    assert collector.finish(True, 3) == (b"abcdef", [])
    assert collector.wire_size == 16


# ---- hostile input stays linear ------------------------------------------------------------


@pytest.mark.timeout(20)
def test_resync_through_long_junk_byte_by_byte() -> None:
    sink = Sink()
    parser = RequestParser(sink, 1 << 20)
    parser.start_resync()
    junk = b"x" * 30_000  # no line feed: the partial-line tail is capped, not rescanned forever
    _feed_bytewise(parser, junk + b"\r\n" + http_request(b"GET", b"/found"))
    assert [r.target for r in _requests(sink)] == ["/found"]


@pytest.mark.timeout(20)
def test_bodyless_head_byte_by_byte_is_linear() -> None:
    sink = Sink(["HEAD", "GET"])
    parser = ResponseParser(sink, 1 << 20)
    big = http_response(200, [(b"X-Pad", b"p" * 40_000), (b"Content-Length", b"7")])
    _feed_bytewise(parser, big + http_response(200, [], b"after"))
    first, second = _responses(sink)
    assert first.body == b"" and first.header("x-pad") == "p" * 40_000
    assert second.body == b"after"


def test_bodyless_head_too_big_resyncs() -> None:
    sink = Sink(["HEAD", "GET"])
    parser = ResponseParser(sink, 1 << 20)
    parser.feed(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * 70_000, 1)
    assert sink.parse_errors == 1
    parser.feed(b"\r\n\r\n" + http_response(200, [], b"next"), 2)
    assert sink.kinds()[:2] == ["lost", "resync"]
    assert [r.body for r in _responses(sink)] == [b"next"]


@pytest.mark.timeout(20)
def test_huge_sse_line_in_small_pieces_is_linear() -> None:
    sink = Sink(["GET"])
    parser = ResponseParser(sink, 1 << 20)
    parser.feed(http_response(200, [(b"Content-Type", b"text/event-stream")], length=False), 1)
    piece = b"y" * 1000
    parser.feed(b"data: ", 2)
    for i in range(3000):  # a 3 MB line: over the 1 MiB cap, dropped
        parser.feed(piece, 3 + i)
    parser.feed(b"\n\ndata: small\n\n", 9999)
    parser.close()
    (response,) = _responses(sink)
    assert [e.data for e in response.sse_events] == ["small"]
    assert response.truncated
