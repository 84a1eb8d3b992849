"""OpenAI Responses API (/v1/responses): typed stream events, function calls by call_id."""

from __future__ import annotations

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

from oisp_sensor.decode.providers.openai_responses import OpenAIResponsesParser
from oisp_sensor.schema.events import Confidence

AUTH = (b"Authorization", b"Bearer sk-proj-" + b"R" * 60)
TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
REQUEST = {"model": "gpt-4.1", "instructions": "Be brief.", "input": "Weather in Paris?", "tools": TOOLS,
           "max_output_tokens": 200, "reasoning": {"effort": "low"}}  # fmt: skip
CALL = {"type": "function_call", "id": "fc_67ca", "call_id": "call_12345xyz", "name": "get_weather",
        "arguments": "{\"location\":\"Paris, France\"}", "status": "completed"}  # fmt: skip
RESPONSE = {
    "id": "resp_67ccd2bed1ec8190", "object": "response", "created_at": 1741476542, "status": "completed",
    "error": None, "incomplete_details": None, "model": "gpt-4.1-2025-04-14", "output": [CALL],
    "usage": {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 87,
              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 123},
}  # fmt: skip


def call(body: object) -> bytes:
    return post("api.openai.com", "/v1/responses", body, AUTH)


def test_function_call_and_its_output() -> None:
    follow = {"model": "gpt-4.1", "previous_response_id": "resp_67ccd2bed1ec8190", "tools": TOOLS,
              "input": [{"type": "function_call_output", "call_id": "call_12345xyz", "output": "{\"temp\": 14}"}]}  # fmt: skip
    final = {**RESPONSE, "id": "resp_2", "output": [{"type": "message", "id": "msg_1", "status": "completed",
             "role": "assistant", "content": [{"type": "output_text", "text": "14C.", "annotations": []}]}]}  # fmt: skip
    events = conversation(exchange(call(REQUEST), json_response(RESPONSE)),
                          exchange(call(follow), json_response(final)))  # fmt: skip
    assert [e.event_type for e in events] == ["ai.request", "ai.response", "agent.tool_call",
                                              "ai.request", "agent.tool_result", "ai.response"]  # fmt: skip
    rq, rs, tc, rq2, tr, rs2 = events
    assert rq.data["request_type"] == "responses"
    assert rq.data["messages"] == [{"role": "system", "content": "Be brief.", "content_length": 9},
                                   {"role": "user", "content": "Weather in Paris?", "content_length": 17}]  # fmt: skip
    assert rq.data["parameters"] == {"max_output_tokens": 200, "reasoning_effort": "low"}
    assert rs.data["choices"][0]["finish_reason"] == "tool_calls"
    assert rs.data["usage"] == {"prompt_tokens": 36, "completion_tokens": 87, "total_tokens": 123,
                                "cached_tokens": 0, "reasoning_tokens": 0}  # fmt: skip
    assert tc.data["call_id"] == "call_12345xyz" and tc.data["arguments"] == {"location": "Paris, France"}
    assert rq2.data["messages"] == [{"role": "tool", "content": '{"temp": 14}', "content_length": 12,
                                     "tool_call_id": "call_12345xyz"}]  # fmt: skip
    assert tr.data["related_event_id"] == tc.event_id and tr.data["result_length"] == 12
    # previous_response_id continues the conversation although the opening is gone
    assert rq2.data["conversation_id"] == rq.data["conversation_id"] == rs2.data["conversation_id"]
    assert rs2.data["choices"][0]["message"]["content"] == "14C."


STREAM = [
    sse({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_S", "object": "response",
         "status": "in_progress", "model": "gpt-4.1-2025-04-14", "output": []}}, "response.created"),
    sse({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {
         "type": "message", "id": "msg_S", "status": "in_progress", "role": "assistant", "content": []}},
        "response.output_item.added"),
    sse({"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_S", "output_index": 0,
         "content_index": 0, "delta": "Hi"}, "response.output_text.delta"),
    sse({"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_S", "output_index": 0,
         "content_index": 0, "delta": " there"}, "response.output_text.delta"),
    sse({"type": "response.output_text.done", "sequence_number": 4, "item_id": "msg_S", "output_index": 0,
         "content_index": 0, "text": "Hi there"}, "response.output_text.done"),
    sse({"type": "response.completed", "sequence_number": 5, "response": {
         "id": "resp_S", "object": "response", "status": "completed", "model": "gpt-4.1-2025-04-14",
         "output": [{"type": "message", "id": "msg_S", "status": "completed", "role": "assistant",
                     "content": [{"type": "output_text", "text": "Hi there", "annotations": []}]}],
         "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}}}, "response.completed"),
]  # fmt: skip


def test_stream_split_at_every_boundary() -> None:
    events = assert_split_invariant(exchange(call({**REQUEST, "stream": True}), streamed_response(STREAM)))
    assert [e.event_type for e in events] == ["ai.request", *["ai.streaming_chunk"] * 3, "ai.response"]
    assert [(c.data["delta"], c.data["finish_reason"]) for c in by_type(events, "ai.streaming_chunk")] == [
        ("Hi", None),
        (" there", None),
        ("", "stop"),
    ]
    rs = events[-1]
    assert rs.data["request_id"] == "resp_S"
    assert rs.data["choices"][0]["message"]["content"] == "Hi there"
    assert rs.data["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert rs.data["chunk_count"] == 6
    assert rs.confidence == Confidence()


def test_failed_and_error_events() -> None:
    failed = sse({"type": "response.failed", "sequence_number": 3, "response": {"id": "resp_F", "status": "failed",
                  "error": {"code": "server_error", "message": "The model failed."}, "output": []}}, "response.failed")  # fmt: skip
    rs = one(events_of(exchange(call({**REQUEST, "stream": True}), streamed_response([*STREAM[:3], failed]))),
             "ai.response")  # fmt: skip
    assert rs.data["success"] is False
    assert rs.data["error"] == {"message": "The model failed.", "code": "server_error"}
    err = sse(
        {"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": None}, "error"
    )
    rs = one(
        events_of(exchange(call({**REQUEST, "stream": True}), streamed_response([STREAM[0], err]))),
        "ai.response",
    )
    assert rs.data["error"] == {"type": "rate_limit_exceeded", "message": "Slow down", "code": "rate_limit_exceeded",
                                "rate_limited": True}  # fmt: skip
    assert rs.confidence == Confidence("high", "partial", ["stream_incomplete"])


def test_bad_input_never_raises() -> None:
    p = OpenAIResponsesParser()
    for body in (
        b"",
        b"{",
        b'{"input": [1, {"type": "function_call"}, {"role": 5, "content": 7}], "tools": 3}',
    ):
        p.parse_request(body)
        p.parse_response(body)
    out = p.parse_response(b'{"output": [{"type": "function_call", "name": 3}], "status": "incomplete", '
                           b'"incomplete_details": {"reason": "max_output_tokens"}}')  # fmt: skip
    assert out.fields["choices"][0]["finish_reason"] == "length"
