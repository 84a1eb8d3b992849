"""Cohere chat v2 and embed, as documented (api.cohere.com/v2/chat, /v2/embed)."""

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

from oisp_sensor.decode.providers.cohere import CohereChatParser
from oisp_sensor.schema.events import Confidence

AUTH = (b"Authorization", b"Bearer " + b"k" * 40)
TOOLS = [
    {"type": "function", "function": {"name": "query_daily_sales_report", "parameters": {"type": "object"}}}
]
REQUEST = {"model": "command-a-03-2025", "stream": False, "tools": TOOLS, "temperature": 0.3, "p": 0.75,
           "messages": [{"role": "system", "content": "You are a sales bot."},
                        {"role": "user", "content": "Sales on 2023-09-29?"}]}  # fmt: skip
TOOL_RESPONSE = {
    "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4", "finish_reason": "TOOL_CALL",
    "message": {"role": "assistant", "tool_plan": "I will query the sales report.", "tool_calls": [
        {"id": "query_daily_sales_report_vn4w", "type": "function",
         "function": {"name": "query_daily_sales_report", "arguments": "{\"day\":\"2023-09-29\"}"}}]},
    "usage": {"billed_units": {"input_tokens": 30, "output_tokens": 20}, "tokens": {"input_tokens": 900,
                                                                                   "output_tokens": 40}},
}  # fmt: skip


def call(target: str, body: object) -> bytes:
    return post("api.cohere.com", target, body, AUTH)


def test_chat_tool_call_and_result() -> None:
    follow = {**REQUEST, "messages": [*REQUEST["messages"], {**TOOL_RESPONSE["message"]},
              {"role": "tool", "tool_call_id": "query_daily_sales_report_vn4w",
               "content": [{"type": "document", "document": {"data": "{\"total\": 10000}"}}]}]}  # fmt: skip
    final = {"id": "x2", "finish_reason": "COMPLETE", "message": {"role": "assistant", "content": [
        {"type": "text", "text": "Sales were 10000."}]}, "usage": {"tokens": {"input_tokens": 950, "output_tokens": 9}}}  # fmt: skip
    events = conversation(exchange(call("/v2/chat", REQUEST), json_response(TOOL_RESPONSE)),
                          exchange(call("/v2/chat", follow), json_response(final)))  # fmt: skip
    rq, rs, tc = events[:3]
    assert rq.data["provider"]["id"] == "cohere"
    assert rq.data["messages"][0] == {
        "role": "system",
        "content": "You are a sales bot.",
        "content_length": 20,
    }
    assert rq.data["parameters"] == {"temperature": 0.3, "top_p": 0.75}
    assert rq.data["tools"] == [{"name": "query_daily_sales_report", "type": "function"}]
    assert rs.data["choices"][0]["finish_reason"] == "tool_calls"
    assert rs.data["choices"][0]["message"]["tool_plan"] == "I will query the sales report."
    assert rs.data["usage"] == {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940}
    assert tc.data["call_id"] == "query_daily_sales_report_vn4w" and tc.data["arguments"] == {
        "day": "2023-09-29"
    }
    result = one(events, "agent.tool_result")
    assert result.data["related_event_id"] == tc.event_id
    assert one(events[3:], "ai.response").data["choices"][0]["message"]["content"] == "Sales were 10000."


STREAM = [
    sse({"id": "29f14a5a", "type": "message-start", "delta": {"message": {"role": "assistant", "content": []}}},
        "message-start"),
    sse({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        "content-start"),
    sse({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hello"}}}}, "content-delta"),
    sse({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": " world"}}}},
        "content-delta"),
    sse({"type": "content-end", "index": 0}, "content-end"),
    sse({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
        "billed_units": {"input_tokens": 3, "output_tokens": 2}, "tokens": {"input_tokens": 70, "output_tokens": 2}}}},
        "message-end"),
]  # fmt: skip


def test_chat_stream_split_at_every_boundary() -> None:
    body = {
        "model": "command-r-plus-08-2024",
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    events = assert_split_invariant(exchange(call("/v2/chat", body), streamed_response(STREAM)))
    assert [(c.data["delta"], c.data["finish_reason"]) for c in by_type(events, "ai.streaming_chunk")] == [
        ("Hello", None),
        (" world", None),
        ("", "stop"),
    ]
    rs = one(events, "ai.response")
    assert rs.data["request_id"] == "29f14a5a"
    assert rs.data["choices"][0]["message"]["content"] == "Hello world"
    assert rs.data["usage"] == {"prompt_tokens": 70, "completion_tokens": 2, "total_tokens": 72}
    assert rs.confidence == Confidence()


def test_embed_and_errors() -> None:
    body = {"model": "embed-v4.0", "texts": ["hello", "goodbye"], "input_type": "classification",
            "embedding_types": ["float"]}  # fmt: skip
    resp = {"id": "da6e531f", "embeddings": {"float": [[0.016, -0.008] * 768] * 2}, "texts": ["hello", "goodbye"],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 2}},
            "response_type": "embeddings_by_type"}  # fmt: skip
    events = events_of(exchange(call("/v2/embed", body), json_response(resp)))
    emb = one(events, "ai.embedding")
    assert (
        emb.data["input_count"],
        emb.data["embedding_count"],
        emb.data["dimensions"],
        emb.data["tokens"],
    ) == (2, 2, 1536, 2)
    assert events[0].data["parameters"] == {"input_type": "classification", "embedding_types": ["float"]}
    err = {"id": "e1", "message": "You are using a Trial key, which is limited to 10 API calls / minute."}
    rs = one(events_of(exchange(call("/v2/chat", REQUEST), json_response(err, 429, b"Too Many Requests"))),
             "ai.response")  # fmt: skip
    assert rs.data["error"] == {"message": err["message"], "type": "rate_limit_error", "rate_limited": True}


def test_v1_chat_and_bad_input() -> None:
    body = {"message": "How are you?", "preamble": "Be nice.", "chat_history": [
        {"role": "USER", "message": "Hi"}, {"role": "CHATBOT", "message": "Hello!"}]}  # fmt: skip
    resp = {"text": "Fine.", "generation_id": "g-1", "finish_reason": "COMPLETE",
            "meta": {"billed_units": {"input_tokens": 12, "output_tokens": 2}}}  # fmt: skip
    rq, rs = events_of(exchange(call("/v1/chat", body), json_response(resp)))
    assert [m["role"] for m in rq.data["messages"]] == ["system", "user", "assistant", "user"]
    assert rs.data["choices"][0]["message"]["content"] == "Fine."
    assert rs.data["usage"] == {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}
    p = CohereChatParser()
    for raw in (
        b"",
        b"{",
        b'{"messages": [1, {"role": 2, "tool_calls": "x"}], "message": {}}',
        b'{"a":1}\n{',
    ):
        p.parse_request(raw)
        p.parse_response(raw)
