"""MCP over HTTP (Streamable HTTP, stateless 2026 protocol, HTTP+SSE) and the stdio framer.

Wire bytes are those the `mcp` package's client and server exchange (recorded from
mcp 2.3 through a relay), cut at every boundary where it matters.
"""

from __future__ import annotations

from typing import Any

import orjson
from tests.unit.helpers_ai import (
    assert_split_invariant,
    by_type,
    conversation,
    exchange,
    json_response,
    new_builder,
    one,
    post,
    sse,
    streamed_response,
)
from tests.unit.helpers_decode import CLOSE, Conn, R, Step, W, feed_all, http_request, http_response

from oisp_sensor.decode.ai_events import AiEventBuilder
from oisp_sensor.decode.connection import ConnectionTracker
from oisp_sensor.decode.mcp import CLIENT, SERVER, Endpoint, McpTracker, StdioFramer, parse_jsonrpc
from oisp_sensor.decode.messages import ConnInfo
from oisp_sensor.schema.events import SensorEvent

HOST = "mcp.example.com"
SID = b"f7781634ddd84387a0a395bdbba27eef"
CALL = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "get_weather", "arguments": {"city": "Paris"}}}  # fmt: skip
RESULT = {"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": "sunny in Paris"}],
                                                "isError": False}}  # fmt: skip
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "mcp"}}}  # fmt: skip
INIT_RESULT = {"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-11-25", "capabilities": {},
                                                     "serverInfo": {"name": "weather", "version": "1.2"}}}  # fmt: skip


def mcp_post(body: object, *headers: tuple[bytes, bytes]) -> bytes:
    return post(HOST, "/mcp", body, (b"Accept", b"application/json, text/event-stream"), *headers)


def sse_answer(*events: bytes, session: bytes = SID) -> bytes:
    return streamed_response(events, b"text/event-stream", (b"mcp-session-id", session))


def legacy_session() -> list[list[Step]]:
    """initialize (SSE answer), initialized notification (202), tools/call (SSE answer)."""
    session = (b"mcp-session-id", SID)
    version = (b"mcp-protocol-version", b"2025-11-25")
    return [
        exchange(mcp_post(INIT), sse_answer(sse(INIT_RESULT, "message"))),
        exchange(
            mcp_post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session, version),
            http_response(202, [session], b"", reason=b"Accepted"),
        ),
        exchange(mcp_post(CALL, session, version), sse_answer(sse(RESULT, "message"))),
    ]


def test_streamable_http_session_tool_call_and_result() -> None:
    steps = [step for ex in legacy_session() for step in ex]
    events = assert_split_invariant(steps)
    assert [e.event_type for e in events] == ["agent.tool_call", "agent.tool_result"]
    call, result = events
    assert call.data == {
        "tool": {"name": "get_weather", "type": "mcp"},
        "arguments": {"city": "Paris"},
        "call_id": "3",
        "mcp": {
            "server": {"name": "weather", "version": "1.2", "url": f"https://{HOST}/mcp"},
            "transport": "streamable_http",
            "session_id": SID.decode(),
            "protocol_version": "2025-11-25",
        },
    }
    assert result.data["related_event_id"] == call.event_id
    assert result.data["success"] is True
    assert result.data["result"] == "sunny in Paris"
    assert result.data["result_length"] == len("sunny in Paris")
    assert result.data["content_types"] == ["text"]
    assert result.data["call_id"] == "3"
    assert result.data["duration_ms"] >= 0
    assert result.confidence.completeness == "full"


def test_stateless_protocol_json_answers_name_the_server_in_meta() -> None:
    meta = {"io.modelcontextprotocol/serverInfo": {"name": "weather", "version": ""}}
    discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover",
                "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}  # fmt: skip
    headers = ((b"mcp-protocol-version", b"2026-07-28"), (b"mcp-method", b"tools/call"))
    events = conversation(
        exchange(
            mcp_post(discover, *headers),
            json_response({"jsonrpc": "2.0", "id": 1, "result": {"_meta": meta}}),
        ),
        exchange(
            mcp_post(CALL, *headers), json_response({**RESULT, "result": {**RESULT["result"], "_meta": meta}})
        ),
    )
    call = one(events, "agent.tool_call")
    assert call.data["mcp"]["server"] == {"name": "weather", "url": f"https://{HOST}/mcp"}
    assert call.data["mcp"]["protocol_version"] == "2026-07-28"
    assert one(events, "agent.tool_result").data["success"] is True


def test_errors_and_tool_failures_are_unsuccessful_results() -> None:
    error = {"jsonrpc": "2.0", "id": 3, "error": {"code": -32602, "message": "Unknown tool: nope"}}
    failed = {
        "jsonrpc": "2.0",
        "id": 4,
        "result": {"content": [{"type": "text", "text": "boom"}], "isError": True},
    }
    events = conversation(
        exchange(mcp_post(CALL), json_response(error)),
        exchange(mcp_post({**CALL, "id": 4}), json_response(failed)),
    )
    first, second = by_type(events, "agent.tool_result")
    assert first.data["success"] is False
    assert first.data["error"] == {"type": "jsonrpc_error", "code": -32602, "message": "Unknown tool: nope"}
    assert second.data["success"] is False and second.data["result"] == "boom"
    assert second.data["error"] == {"type": "tool_error"}


def test_cut_stream_and_http_error_give_incomplete_failed_results() -> None:
    builder = new_builder()
    cut = sse_answer(sse(RESULT, "message"))
    events = conversation(
        exchange(mcp_post(CALL), cut[: cut.index(b"event:") + 10]),
        [Step(CLOSE)],
        builder=builder,
    )
    result = one(events, "agent.tool_result")
    assert result.data["success"] is False
    assert result.confidence.completeness == "partial"
    assert result.confidence.reasons == ["response_incomplete"]
    events = conversation(
        exchange(mcp_post(CALL, (b"mcp-session-id", b"gone")), json_response({"error": "no session"}, 404)),
    )
    assert one(events, "agent.tool_result").confidence.reasons == ["http_404"]


def test_malformed_bodies_and_events_are_counted_not_raised() -> None:
    builder = new_builder()
    events = conversation(
        exchange(
            mcp_post(b'{"jsonrpc": "2.0", "method": "tools/ca', (b"mcp-session-id", SID)),
            json_response({"jsonrpc": "2.0", "id": None, "error": {"code": -32700}}),
        ),
        exchange(mcp_post(CALL), sse_answer(sse("not json", "message"), b"data: [1,2]\n\n")),
        builder=builder,
    )
    assert [e.event_type for e in events] == ["agent.tool_call", "agent.tool_result"]
    assert events[1].confidence.reasons == ["no_result"]
    counters = builder.mcp_counters
    assert counters.malformed == 3  # the cut POST body and two events that are not JSON-RPC
    assert counters.unmatched_responses == 1  # the parse error answer (id null)


def test_other_json_rpc_protocols_are_not_mcp() -> None:
    builder = new_builder()
    eth = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    events = conversation(
        exchange(
            post("rpc.example.net", "/", eth), json_response({"jsonrpc": "2.0", "id": 1, "result": "0x1"})
        ),
        builder=builder,
    )
    assert events == []
    assert builder.counters.non_ai_exchanges == 1
    assert builder.mcp_counters.messages == 0


def test_mcp_call_is_linked_to_the_model_tool_call_it_executes() -> None:
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}  # fmt: skip
    answer = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}  # fmt: skip
    builder = new_builder()
    events = conversation(
        exchange(
            post("api.openai.com", "/v1/chat/completions", chat, (b"Authorization", b"Bearer sk-x")),
            json_response(answer),
        ),
        exchange(mcp_post(CALL), json_response(RESULT)),
        exchange(mcp_post({**CALL, "id": 4}), json_response({**RESULT, "id": 4})),
        builder=builder,
    )
    model_call, mcp_call, second_call = by_type(events, "agent.tool_call")
    assert model_call.data["call_id"] == "call_1"
    assert mcp_call.data["related_event_id"] == model_call.event_id
    assert "related_event_id" not in second_call.data  # one model call is executed once


def _http_sse_transport_events(pieces: int) -> tuple[list[SensorEvent], AiEventBuilder]:
    """HTTP+SSE: GET /sse on one connection, POSTs answered 202 on another, answers on the stream."""
    tracker = ConnectionTracker()
    builder = new_builder()
    stream, posts = Conn(conn_id=1), Conn(conn_id=2)
    get = http_request(b"GET", b"/sse", [(b"Host", HOST.encode()), (b"Accept", b"text/event-stream")])
    head = http_response(200, [(b"Content-Type", b"text/event-stream"), (b"Transfer-Encoding", b"chunked")])

    def chunk(event: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(event), event)

    target = b"/messages/?session_id=abc123"
    call = http_request(b"POST", target, [(b"Host", HOST.encode()), (b"Content-Type", b"application/json")],
                        orjson.dumps(CALL))  # fmt: skip
    accepted = http_response(202, [], b"", reason=b"Accepted")
    records = [
        stream.data(W, get),
        stream.data(R, head + chunk(sse("/messages/?session_id=abc123", "endpoint"))),
        posts.data(W, call),
        posts.data(R, accepted),
    ]
    answer = chunk(sse(RESULT, "message"))
    step = max(1, len(answer) // pieces)
    records += [stream.data(R, answer[i : i + step]) for i in range(0, len(answer), step)]
    records.append(stream.close())
    events: list[SensorEvent] = []
    for output in feed_all(tracker, records) + tracker.flush(10**12):
        events.extend(builder.process(output))
    return events, builder


def test_http_sse_transport_answers_come_on_the_get_stream() -> None:
    for pieces in (1, 3, 40):
        events, builder = _http_sse_transport_events(pieces)
        call, result = events
        assert call.data["mcp"]["transport"] == "sse"
        assert call.data["mcp"]["session_id"] == "abc123"
        assert result.data["related_event_id"] == call.event_id
        assert call.data["mcp"]["server"]["url"] == f"https://{HOST}/sse"  # what names the server
        assert result.data["mcp"] == call.data["mcp"]
        assert result.data["result"] == "sunny in Paris"
        assert builder.mcp_counters.unanswered == 0


def test_parse_jsonrpc_accepts_batches_and_rejects_the_rest() -> None:
    assert parse_jsonrpc(b'[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","id":1,"result":{}}]') is not None
    for bad in (b"", b"{", b"[]", b'{"jsonrpc":"1.0"}', b'[{"jsonrpc":"2.0"}, 3]', b'"x"'):
        assert parse_jsonrpc(bad) is None, bad


def test_stdio_framer_splits_lines_at_any_boundary() -> None:
    lines = orjson.dumps(CALL) + b"\n" + b"garbage\n\n" + orjson.dumps(RESULT) + b"\r\n"
    expected: list[Any] = [[CALL], [RESULT]]
    for cut in range(len(lines) + 1):
        framer = StdioFramer()
        first, bad1 = framer.feed(lines[:cut])
        second, bad2 = framer.feed(lines[cut:])
        assert first + second == expected
        assert bad1 + bad2 == 1


def test_stdio_framer_drops_an_overlong_line_whole() -> None:
    framer = StdioFramer()
    out, bad = framer.feed(b"x" * (9 * 1024 * 1024))
    assert out == [] and bad == 1
    out, bad = framer.feed(b"tail of the long line\n" + orjson.dumps(CALL) + b"\n")
    assert out == [[CALL]] and bad == 0


def test_stdio_messages_through_the_tracker() -> None:
    """The stdio transport's messages (what pipe capture will hand over) give the same events."""
    tracker = McpTracker(lambda ts: f"M{ts}")
    conn = ConnInfo(key=(7, 0), pid=7, tid=7, uid=0, comm="agent")
    key = (7, "stdio", "npx weather-server")
    endpoint = Endpoint("stdio", command="npx weather-server")
    to_server, to_client = StdioFramer(), StdioFramer()
    events = []
    for direction, framer, data, ts in (
        (CLIENT, to_server, orjson.dumps(INIT) + b"\n", 1_000_000),
        (SERVER, to_client, orjson.dumps(INIT_RESULT)[:20], 2_000_000),
        (SERVER, to_client, orjson.dumps(INIT_RESULT)[20:] + b"\n", 3_000_000),
        (CLIENT, to_server, orjson.dumps(CALL) + b"\n", 4_000_000),
        (SERVER, to_client, orjson.dumps(RESULT) + b"\n", 9_000_000),
    ):
        lines, bad = framer.feed(data)
        assert bad == 0
        for messages in lines:
            events.extend(tracker.messages(direction, conn, key, endpoint, messages, ts))
    call, result = events
    assert call.data["mcp"] == {"server": {"name": "weather", "version": "1.2", "command": "npx weather-server"},
                                "transport": "stdio", "protocol_version": "2025-11-25"}  # fmt: skip
    assert result.data["duration_ms"] == 5 and result.data["related_event_id"] == call.event_id
