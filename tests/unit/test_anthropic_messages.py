"""Anthropic Messages, as documented (api.anthropic.com/v1/messages), through tracker and builder."""

from __future__ import annotations

import hashlib

import orjson
from tests.unit.helpers_ai import (
    assert_split_invariant,
    by_type,
    conversation,
    events_of,
    exchange,
    json_response,
    one,
    post,
    sse,
    streamed_response,
)

from oisp_sensor.decode.messages import SseEvent
from oisp_sensor.decode.providers.anthropic_messages import AnthropicMessagesParser
from oisp_sensor.schema.events import Confidence

KEY = "sk-ant-api03-" + "Q" * 90
HEADERS = ((b"x-api-key", KEY.encode()), (b"anthropic-version", b"2023-06-01"))
TOOLS = [
    {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "input_schema": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    }
]
REQUEST = {
    "model": "claude-sonnet-4-5-20250929",
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "You are a weather bot."}],
    "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    "tools": TOOLS,
    "temperature": 0.5,
}
TOOL_USE_RESPONSE = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "text", "text": "I'll check the weather."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"location": "Paris, France"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 472, "output_tokens": 91, "cache_creation_input_tokens": 100,
              "cache_read_input_tokens": 2000},
}  # fmt: skip


def call(body: object) -> bytes:
    return post("api.anthropic.com", "/v1/messages", body, *HEADERS)


def test_tool_use_non_streaming_exact() -> None:
    events = events_of(exchange(call(REQUEST), json_response(TOOL_USE_RESPONSE, 200, b"OK",
                                                              (b"request-id", b"req_011CS")) ))  # fmt: skip
    assert [e.event_type for e in events] == ["ai.request", "ai.response", "agent.tool_call"]
    rq, rs, tc = events
    assert KEY not in orjson.dumps([e.data for e in events]).decode()
    assert rq.data["provider"] == {"id": "anthropic", "name": "Anthropic",
                                   "endpoint": "https://api.anthropic.com/v1/messages"}  # fmt: skip
    assert rq.data["model"] == {"id": "claude-sonnet-4-5-20250929", "family": "claude-4.5"}
    assert rq.data["auth"] == {"type": "api_key", "key_prefix": "sk-ant-api03-"}
    assert rq.data["messages"] == [
        {"role": "system", "content": "You are a weather bot.", "content_length": 22},
        {"role": "user", "content": "What is the weather in Paris?", "content_length": 29},
    ]
    assert rq.data["message_count"] == 2
    assert rq.data["system_prompt_hash"] == "sha256:" + hashlib.sha256(b"You are a weather bot.").hexdigest()
    assert rq.data["tools"] == [{"name": "get_weather", "type": "function"}]
    assert rq.data["parameters"] == {"max_tokens": 1024, "temperature": 0.5}
    assert rq.data["request_type"] == "chat" and rq.data["streaming"] is False

    assert rs.data["request_id"] == "msg_01Aq9w938a90dw8q"
    assert rs.data["choices"] == [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "native_finish_reason": "tool_use",
            "message": {
                "role": "assistant",
                "content": "I'll check the weather.",
                "content_length": 23,
                "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"location":"Paris, France"}'}}],
            },
        }
    ]  # fmt: skip
    # input_tokens excludes cache reads and writes: prompt_tokens adds them back
    assert rs.data["usage"] == {"prompt_tokens": 2572, "completion_tokens": 91, "total_tokens": 2663,
                                "cached_tokens": 2000, "cache_write_tokens": 100}  # fmt: skip
    # claude-sonnet-4-5: $3 input, $15 output, $0.30 cache read, $3.75 cache write per MTok
    assert rs.data["cost"] == {"usd": round(472 * 3e-6 + 91 * 15e-6 + 2000 * 0.3e-6 + 100 * 3.75e-6, 12)}
    assert tc.data == {
        "tool": {"name": "get_weather", "type": "function"},
        "arguments": {"location": "Paris, France"},
        "call_id": "toolu_01A09q90qw90lq917835lq9",
        "related_event_id": rs.event_id,
        "request_event_id": rq.event_id,
        "provider": {"id": "anthropic", "name": "Anthropic"},
        "conversation_id": rq.data["conversation_id"],
    }


def test_tool_result_in_the_next_request() -> None:
    follow_up = {
        **REQUEST,
        "messages": [
            REQUEST["messages"][0],
            {"role": "assistant", "content": TOOL_USE_RESPONSE["content"]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                {"type": "text", "text": "Thanks!"},
            ]},
        ],
    }  # fmt: skip
    final = {**TOOL_USE_RESPONSE, "id": "msg_02", "stop_reason": "end_turn",
             "content": [{"type": "text", "text": "It is 15 degrees in Paris."}]}  # fmt: skip
    events = conversation(
        exchange(call(REQUEST), json_response(TOOL_USE_RESPONSE)),
        exchange(call(follow_up), json_response(final)),
    )
    assert [e.event_type for e in events] == [
        "ai.request", "ai.response", "agent.tool_call", "ai.request", "agent.tool_result", "ai.response",
    ]  # fmt: skip
    first, _, tool_call, second, result, _ = events
    assert second.data["messages"][1:] == [
        {"role": "user", "content": "What is the weather in Paris?", "content_length": 29},
        {"role": "assistant", "content": "I'll check the weather.", "content_length": 23,
         "content_parts": ["text", "tool_use"],
         "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"location":"Paris, France"}'}}]},
        {"role": "tool", "content": "15 degrees", "content_length": 10, "tool_call_id": "toolu_01A09q90qw90lq917835lq9"},
        {"role": "user", "content": "Thanks!", "content_length": 7, "content_parts": ["text"]},
    ]  # fmt: skip
    assert result.data == {
        "tool": {"name": "get_weather"},
        "call_id": "toolu_01A09q90qw90lq917835lq9",
        "success": True,
        "result_length": 10,
        "duration_ms": 0,
        "related_event_id": tool_call.event_id,
        "request_event_id": second.event_id,
        "conversation_id": first.data["conversation_id"],
    }
    # same conversation: the opening (system + first user message) is unchanged
    assert second.data["conversation_id"] == first.data["conversation_id"]
    # a third request resending the same history reports no result again
    third = conversation(
        exchange(call(REQUEST), json_response(TOOL_USE_RESPONSE)),
        exchange(call(follow_up), json_response(final)),
        exchange(call(follow_up), json_response(final)),
    )
    assert len(by_type(third, "agent.tool_result")) == 1


STREAM = [
    sse({"type": "message_start", "message": {"id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message",
         "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": None,
         "stop_sequence": None, "usage": {"input_tokens": 472, "output_tokens": 2}}}, "message_start"),
    sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start"),
    sse({"type": "ping"}, "ping"),
    sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay"}},
        "content_block_delta"),
    sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ", checking."}},
        "content_block_delta"),
    sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
    sse({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use",
         "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}, "content_block_start"),
    sse({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        "content_block_delta"),
    sse({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta",
         "partial_json": "{\"location\": \"Paris\"}"}}, "content_block_delta"),
    sse({"type": "content_block_stop", "index": 1}, "content_block_stop"),
    sse({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 89}}, "message_delta"),
    sse({"type": "message_stop"}, "message_stop"),
]  # fmt: skip


def test_stream_split_at_every_boundary() -> None:
    steps = exchange(call({**REQUEST, "stream": True}), streamed_response(STREAM))
    events = assert_split_invariant(steps)
    assert [e.event_type for e in events] == [
        "ai.request", *["ai.streaming_chunk"] * 5, "ai.response", "agent.tool_call",
    ]  # fmt: skip
    rq = events[0]
    chunks = by_type(events, "ai.streaming_chunk")
    assert [(c.data["chunk_index"], c.data["delta"], c.data["delta_type"], c.data["finish_reason"])
            for c in chunks] == [
        (0, "Okay", "text", None),
        (1, ", checking.", "text", None),
        (2, "", "tool_call", None),
        (3, '{"location": "Paris"}', "tool_call", None),
        (4, "", "none", "tool_calls"),
    ]  # fmt: skip
    assert all(c.data["related_event_id"] == rq.event_id and c.data["timing"] == "captured" for c in chunks)
    assert chunks[1].data["delta_length"] == 11
    rs = one(events, "ai.response")
    assert rs.data["streaming"] is True
    assert rs.data["request_id"] == "msg_014p7gG3wDgGV9EUtLvnow3U"
    assert rs.data["choices"][0]["message"]["content"] == "Okay, checking."
    assert rs.data["choices"][0]["message"]["tool_calls"] == [
        {"id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}]  # fmt: skip
    assert rs.data["choices"][0]["finish_reason"] == "tool_calls"
    assert rs.data["usage"] == {"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561}
    assert rs.data["chunk_count"] == 11  # every event but the ping
    assert "time_to_first_token_ms" in rs.data
    assert rs.confidence == Confidence()
    assert one(events, "agent.tool_call").data["arguments"] == {"location": "Paris"}


def test_streaming_chunks_can_be_switched_off() -> None:
    from tests.unit.helpers_ai import new_builder

    steps = exchange(call({**REQUEST, "stream": True}), streamed_response(STREAM))
    events = events_of(steps, builder=new_builder(streaming_chunks=False))
    assert [e.event_type for e in events] == ["ai.request", "ai.response", "agent.tool_call"]


def test_overloaded_error_mid_stream() -> None:
    stream = [*STREAM[:4], sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                                "error")]  # fmt: skip
    events = events_of(exchange(call({**REQUEST, "stream": True}), streamed_response(stream)))
    rs = one(events, "ai.response")
    assert rs.data["status_code"] == 200
    assert rs.data["success"] is False
    assert rs.data["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert rs.confidence == Confidence("high", "partial", ["stream_incomplete"])
    assert by_type(events, "agent.tool_call") == []


def test_http_errors_and_rate_limits() -> None:
    rate = {"type": "error", "error": {"type": "rate_limit_error",
            "message": "Number of request tokens has exceeded your per-minute rate limit"}}  # fmt: skip
    events = events_of(exchange(call(REQUEST), json_response(rate, 429, b"Too Many Requests",
                                                             (b"retry-after", b"17"))))  # fmt: skip
    rs = one(events, "ai.response")
    assert (rs.data["status_code"], rs.data["success"]) == (429, False)
    assert rs.data["error"] == {"type": "rate_limit_error",
                                "message": "Number of request tokens has exceeded your per-minute rate limit",
                                "rate_limited": True, "retry_after_s": 17}  # fmt: skip
    auth = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {KEY}"}}
    rs = one(events_of(exchange(call(REQUEST), json_response(auth, 401, b"Unauthorized"))), "ai.response")
    assert rs.data["error"] == {"type": "authentication_error", "message": "invalid x-api-key [REDACTED]"}


def test_thinking_and_images_are_not_copied() -> None:
    body = {
        "model": "claude-opus-4-1", "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "text", "text": "Describe it."}]}],
    }  # fmt: skip
    resp = {"id": "msg_9", "type": "message", "role": "assistant", "model": "claude-opus-4-1-20250805",
            "content": [{"type": "thinking", "thinking": "secret reasoning", "signature": "sig"},
                        {"type": "text", "text": "A cat."}],
            "stop_reason": "max_tokens", "usage": {"input_tokens": 10, "output_tokens": 2048}}  # fmt: skip
    rq, rs = events_of(exchange(call(body), json_response(resp)))
    assert rq.data["messages"] == [{"role": "user", "content": "Describe it.", "content_length": 12,
                                    "content_parts": ["image", "text"]}]  # fmt: skip
    assert rq.data["parameters"] == {"max_tokens": 2048, "thinking_budget_tokens": 1024}
    assert "iVBORw0KGgo" not in orjson.dumps(rq.data).decode()
    assert rs.data["choices"][0]["message"]["content"] == "A cat."
    assert rs.data["choices"][0]["finish_reason"] == "length"
    assert "secret reasoning" not in orjson.dumps(rs.data).decode()


def test_bad_input_never_raises() -> None:
    p = AnthropicMessagesParser()
    for body in (b"", b"{", b"[]", b'{"messages": "x", "system": 5, "tools": {}}', b"\xff\xfe"):
        p.parse_request(body)
        p.parse_response(body)
    cut = orjson.dumps(REQUEST)[:60]
    out = p.parse_request(cut)
    assert out.unparsed and out.model == "claude-sonnet-4-5-20250929"
    weird = [SseEvent(data="{nope"), SseEvent(data='{"type": "content_block_delta", "index": "x", "delta": 5}'),
             SseEvent(data='"str"'), SseEvent(data='{"type": "message_delta", "usage": {"output_tokens": "9"}}')]  # fmt: skip
    parsed = p.parse_stream(weird)
    assert parsed.unparsed and parsed.stream_complete is False
    assert parsed.problems == ["stream: 2 event(s) not valid JSON", "stream: no message_stop"]
