"""Ollama native API (/api/chat, /api/generate, /api/embed): NDJSON streams by default."""

from __future__ import annotations

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
    streamed_response,
)

from oisp_sensor.decode.providers.ollama import OllamaParser
from oisp_sensor.schema.events import Confidence

HOST = "localhost:11434"
NDJSON = b"application/x-ndjson"


def line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


STREAM = [
    line({"model": "llama3.2", "created_at": "2023-08-04T08:52:19.385406455-07:00",
          "message": {"role": "assistant", "content": "The"}, "done": False}),
    line({"model": "llama3.2", "created_at": "2023-08-04T08:52:19.4Z",
          "message": {"role": "assistant", "content": " sky"}, "done": False}),
    line({"model": "llama3.2", "created_at": "2023-08-04T19:22:45.499127Z", "message": {"role": "assistant", "content": ""},
          "done": True, "done_reason": "stop", "total_duration": 4883583458, "load_duration": 1334875,
          "prompt_eval_count": 26, "prompt_eval_duration": 342546000, "eval_count": 282, "eval_duration": 4535599000}),
]  # fmt: skip


def test_chat_streams_by_default_split_at_every_boundary() -> None:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "why is the sky blue?"}]}
    steps = exchange(post(HOST, "/api/chat", body), streamed_response(STREAM, NDJSON))
    events = assert_split_invariant(steps)
    assert [e.event_type for e in events] == ["ai.request", *["ai.streaming_chunk"] * 3, "ai.response"]
    rq = events[0]
    assert rq.data["provider"] == {
        "id": "ollama",
        "name": "Ollama",
        "endpoint": "http://localhost:11434/api/chat",
    }
    assert rq.data["streaming"] is True  # no "stream": false
    chunks = by_type(events, "ai.streaming_chunk")
    assert [
        (c.data["delta"], c.data["finish_reason"], c.data["timing"], c.data["body_offset"]) for c in chunks
    ] == [
        ("The", None, "response_end", 0),
        (" sky", None, "response_end", len(STREAM[0])),
        ("", "stop", "response_end", len(STREAM[0]) + len(STREAM[1])),
    ]
    rs = events[-1]
    assert rs.data["streaming"] is True
    assert rs.data["model"] == {"id": "llama3.2"}
    assert rs.data["choices"] == [{"index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": "The sky", "content_length": 7}}]  # fmt: skip
    assert rs.data["usage"] == {"prompt_tokens": 26, "completion_tokens": 282, "total_tokens": 308}
    assert "cost" not in rs.data  # a local model server is never priced
    assert rs.data["chunk_count"] == 3
    assert rs.data["time_to_first_token_source"] == "first_byte"
    assert rs.confidence == Confidence()


def test_tool_calls_without_ids_and_their_results() -> None:
    tools = [
        {"type": "function", "function": {"name": "get_current_weather", "parameters": {"type": "object"}}}
    ]
    body = {"model": "llama3.2", "stream": False, "tools": tools,
            "messages": [{"role": "user", "content": "What is the weather today in Paris?"}]}  # fmt: skip
    resp = {"model": "llama3.2", "created_at": "2024-07-22T20:33:28.123648Z",
            "message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_current_weather", "arguments": {"location": "Paris, FR", "format": "celsius"}}}]},
            "done_reason": "stop", "done": True, "prompt_eval_count": 217, "eval_count": 48}  # fmt: skip
    follow = {**body, "messages": [*body["messages"], resp["message"],
                                   {"role": "tool", "content": "22 degrees", "tool_name": "get_current_weather"}]}  # fmt: skip
    final = {"model": "llama3.2", "message": {"role": "assistant", "content": "22C"}, "done": True,
             "done_reason": "stop"}  # fmt: skip
    events = conversation(exchange(post(HOST, "/api/chat", body), json_response(resp)),
                          exchange(post(HOST, "/api/chat", follow), json_response(final)))  # fmt: skip
    rq = by_type(events, "ai.request")[0]
    assert rq.data["streaming"] is False and rq.data["tools"] == [
        {"name": "get_current_weather", "type": "function"}
    ]
    rs = by_type(events, "ai.response")[0]
    assert rs.data["choices"][0]["finish_reason"] == "tool_calls"
    call = one(events, "agent.tool_call")
    assert call.data["arguments"] == {"location": "Paris, FR", "format": "celsius"}
    result = one(events, "agent.tool_result")
    assert result.data["tool"] == {"name": "get_current_weather"}
    assert result.data["related_event_id"] == call.event_id
    assert result.data["result_length"] == 10


def test_generate_and_embed() -> None:
    body = {"model": "qwen2.5-coder", "prompt": "def fib(n):", "system": "Complete code.", "stream": False,
            "options": {"temperature": 0, "num_predict": 50}}  # fmt: skip
    resp = {"model": "qwen2.5-coder", "response": " return n", "done": True, "done_reason": "length",
            "context": [1, 2, 3], "prompt_eval_count": 12, "eval_count": 50}  # fmt: skip
    rq, rs = events_of(exchange(post("127.0.0.1:11434", "/api/generate", body), json_response(resp)))
    assert rq.data["request_type"] == "completion"
    assert rq.data["messages"] == [{"role": "system", "content": "Complete code.", "content_length": 14},
                                   {"role": "user", "content": "def fib(n):", "content_length": 11}]  # fmt: skip
    assert rq.data["parameters"] == {"temperature": 0, "max_tokens": 50}
    assert rs.data["choices"][0]["message"]["content"] == " return n"
    assert rs.data["choices"][0]["finish_reason"] == "length"
    emb_body = {"model": "all-minilm", "input": ["Why is the sky blue?", "Why is the grass green?"]}
    emb_resp = {"model": "all-minilm", "embeddings": [[0.01] * 384, [0.02] * 384], "total_duration": 14143917,
                "load_duration": 1019500, "prompt_eval_count": 8}  # fmt: skip
    events = events_of(exchange(post(HOST, "/api/embed", emb_body), json_response(emb_resp)))
    emb = one(events, "ai.embedding")
    assert (
        emb.data["input_count"],
        emb.data["embedding_count"],
        emb.data["dimensions"],
        emb.data["tokens"],
    ) == (2, 2, 384, 8)


def test_errors() -> None:
    body = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
    resp = json_response({"error": 'model "nope" not found, try pulling it first'}, 404, b"Not Found")
    rs = one(events_of(exchange(post(HOST, "/api/chat", body), resp)), "ai.response")
    assert rs.data["error"] == {
        "message": 'model "nope" not found, try pulling it first',
        "type": "not_found_error",
    }
    mid = [STREAM[0], line({"error": "an error was encountered while running the model"})]
    rs = one(
        events_of(exchange(post(HOST, "/api/chat", body), streamed_response(mid, NDJSON))), "ai.response"
    )
    assert rs.data["success"] is False and rs.data["status_code"] == 200
    assert rs.data["error"] == {"message": "an error was encountered while running the model"}


def test_bad_input_never_raises() -> None:
    p = OllamaParser(chat=True)
    for body in (
        b"",
        b"{",
        b"{}\n{",
        b'{"message": 5, "done": "yes"}\n{"message": {"content": 3}}\n',
        b"\xff",
    ):
        p.parse_response(body)
        p.parse_request(body)
    cut = p.parse_response(STREAM[0] + STREAM[1])
    assert cut.streamed and not cut.stream_complete and cut.problems == ['stream: no "done": true line']
