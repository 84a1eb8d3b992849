"""Gemini generateContent / streamGenerateContent / embeddings, AI Studio and Vertex paths."""

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
    sse,
    streamed_response,
)

from oisp_sensor.decode.providers.gemini import GeminiParser
from oisp_sensor.schema.events import Confidence

KEY = "AIzaSyA-" + "g" * 31
HOST = "generativelanguage.googleapis.com"
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
REQUEST = {
    "systemInstruction": {"parts": [{"text": "You are a cat."}]},
    "contents": [{"role": "user", "parts": [{"text": "What is the weather in Boston?"}]}],
    "tools": [{"functionDeclarations": [{"name": "get_current_weather", "description": "weather",
                                         "parameters": {"type": "object"}}]}],
    "generationConfig": {"temperature": 0.9, "maxOutputTokens": 800, "thinkingConfig": {"thinkingBudget": 128}},
}  # fmt: skip
CALL_RESPONSE = {
    "candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_current_weather", "args": {"location": "Boston, MA"}}}]},
        "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 60, "candidatesTokenCount": 8, "totalTokenCount": 98,
                      "thoughtsTokenCount": 30},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mNwhaKPdNYqRz7IP7LDQsAs",
}  # fmt: skip


def gcall(target: str, body: object, **_: object) -> bytes:
    return post(HOST, f"{target}?key={KEY}" if "?" not in target else f"{target}&key={KEY}", body)


def test_function_call_non_streaming_exact() -> None:
    events = events_of(exchange(gcall(GENERATE, REQUEST), json_response(CALL_RESPONSE)))
    assert KEY not in orjson.dumps([e.data for e in events]).decode()
    rq, rs, tc = events
    assert rq.data["provider"]["endpoint"] == f"https://{HOST}{GENERATE}"
    assert rq.data["model"] == {"id": "gemini-2.5-flash", "family": "gemini-2.5"}
    assert rq.data["auth"] == {"type": "api_key", "key_prefix": "AIza"}
    assert rq.data["messages"] == [
        {"role": "system", "content": "You are a cat.", "content_length": 14},
        {
            "role": "user",
            "content": "What is the weather in Boston?",
            "content_length": 30,
            "content_parts": ["text"],
        },
    ]
    assert rq.data["tools"] == [{"name": "get_current_weather", "type": "function"}]
    assert rq.data["parameters"] == {"temperature": 0.9, "max_tokens": 800, "thinking_budget_tokens": 128}
    assert rs.data["request_id"] == "mNwhaKPdNYqRz7IP7LDQsAs"
    assert rs.data["choices"] == [{
        "index": 0, "finish_reason": "tool_calls", "native_finish_reason": "STOP",
        "message": {"role": "assistant", "content": "", "content_length": 0,
                    "tool_calls": [{"id": None, "type": "function", "function": {
                        "name": "get_current_weather", "arguments": '{"location":"Boston, MA"}'}}]}}]  # fmt: skip
    # thoughts are billed as output: completion = candidates + thoughts
    assert rs.data["usage"] == {"prompt_tokens": 60, "completion_tokens": 38, "total_tokens": 98,
                                "reasoning_tokens": 30}  # fmt: skip
    assert rs.data["cost"] == {"usd": round(60 * 0.3e-6 + 38 * 2.5e-6, 12)}  # gemini-2.5-flash $0.30 / $2.50
    assert tc.data["call_id"] is None
    assert tc.data["arguments"] == {"location": "Boston, MA"}


def test_function_response_matched_by_name() -> None:
    follow = {**REQUEST, "contents": [
        *REQUEST["contents"],
        CALL_RESPONSE["candidates"][0]["content"],
        {"role": "user", "parts": [{"functionResponse": {"name": "get_current_weather",
                                                         "response": {"temperature": 21, "unit": "C"}}}]},
    ]}  # fmt: skip
    answer = {"candidates": [{"content": {"role": "model", "parts": [{"text": "21 degrees."}]},
                              "finishReason": "STOP"}], "modelVersion": "gemini-2.5-flash"}  # fmt: skip
    events = conversation(exchange(gcall(GENERATE, REQUEST), json_response(CALL_RESPONSE)),
                          exchange(gcall(GENERATE, follow), json_response(answer)))  # fmt: skip
    result = one(events, "agent.tool_result")
    assert result.data["tool"] == {"name": "get_current_weather"}
    assert result.data["call_id"] is None
    assert result.data["result_length"] == len('{"temperature":21,"unit":"C"}')
    assert result.data["related_event_id"] == one(events, "agent.tool_call").event_id
    second = by_type(events, "ai.request")[1]
    assert second.data["messages"][2:] == [
        {"role": "assistant", "content": "", "content_length": 0, "content_parts": ["function_call"],
         "tool_calls": [{"id": None, "type": "function", "function": {
             "name": "get_current_weather", "arguments": '{"location":"Boston, MA"}'}}]},
        {"role": "tool", "content": '{"temperature":21,"unit":"C"}', "content_length": 29, "tool_call_id": None,
         "name": "get_current_weather"},
    ]  # fmt: skip
    assert second.data["conversation_id"] == by_type(events, "ai.request")[0].data["conversation_id"]


CHUNKS = [
    {"candidates": [{"content": {"parts": [{"text": "The"}], "role": "model"}, "index": 0}],
     "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.5-flash",
     "responseId": "r-1"},
    {"candidates": [{"content": {"parts": [{"text": " sky is blue."}], "role": "model"}, "index": 0}],
     "modelVersion": "gemini-2.5-flash", "responseId": "r-1"},
    {"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0}],
     "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5, "totalTokenCount": 14},
     "modelVersion": "gemini-2.5-flash", "responseId": "r-1"},
]  # fmt: skip


def test_sse_stream_split_at_every_boundary() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "Why is the sky blue?"}]}]}
    steps = exchange(gcall(STREAM + "?alt=sse", body), streamed_response([sse(c) for c in CHUNKS]))
    events = assert_split_invariant(steps)
    assert [e.event_type for e in events] == ["ai.request", *["ai.streaming_chunk"] * 3, "ai.response"]
    assert events[0].data["streaming"] is True
    chunks = by_type(events, "ai.streaming_chunk")
    assert [(c.data["delta"], c.data["finish_reason"]) for c in chunks] == [
        ("The", None),
        (" sky is blue.", None),
        ("", "stop"),
    ]
    rs = events[-1]
    assert rs.data["choices"][0]["message"]["content"] == "The sky is blue."
    assert rs.data["usage"] == {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}
    assert rs.data["chunk_count"] == 3
    assert rs.confidence == Confidence()


def test_json_array_stream_without_alt_sse() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "Why is the sky blue?"}]}]}
    array = b"[" + b",\r\n".join(orjson.dumps(c) for c in CHUNKS) + b"]"
    steps = exchange(gcall(STREAM, body), streamed_response([array[:50], array[50:]], b"application/json"))
    events = assert_split_invariant(steps)
    chunks = by_type(events, "ai.streaming_chunk")
    assert [(c.data["delta"], c.data["timing"]) for c in chunks] == [
        ("The", "response_end"),
        (" sky is blue.", "response_end"),
        ("", "response_end"),
    ]
    assert [c.data["chunk_index"] for c in chunks] == [0, 1, 2]
    rs = one(events, "ai.response")
    assert rs.data["streaming"] is True
    assert rs.data["choices"][0]["message"]["content"] == "The sky is blue."
    # a cut array keeps what came before the cut
    cut = GeminiParser(streaming=True).parse_response(array[: len(array) - 40])
    assert cut.fields["choices"][0]["message"]["content"] == "The sky is blue."
    assert cut.stream_complete is False and cut.problems == ["stream: JSON array cut short"]


def test_errors() -> None:
    err = {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                     "status": "RESOURCE_EXHAUSTED"}}  # fmt: skip
    rs = one(events_of(exchange(gcall(GENERATE, REQUEST), json_response(err, 429, b"Too Many Requests"))),
             "ai.response")  # fmt: skip
    assert rs.data["error"] == {"type": "RESOURCE_EXHAUSTED", "message": "Resource has been exhausted (e.g. check quota).",
                                "code": 429, "rate_limited": True}  # fmt: skip
    bad_key = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                         "status": "INVALID_ARGUMENT"}}  # fmt: skip
    rs = one(
        events_of(exchange(gcall(GENERATE, REQUEST), json_response(bad_key, 400, b"Bad Request"))),
        "ai.response",
    )
    assert (rs.data["success"], rs.data["error"]["type"]) == (False, "INVALID_ARGUMENT")


def test_vertex_path_and_bearer_token() -> None:
    target = "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:generateContent"
    req = post("us-central1-aiplatform.googleapis.com", target,
               {"contents": {"role": "user", "parts": [{"text": "hi"}]}},
               (b"Authorization", b"Bearer ya29." + b"t" * 60))  # fmt: skip
    resp = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}  # fmt: skip
    rq, rs = events_of(exchange(req, json_response(resp)))
    assert rq.data["provider"]["id"] == "vertex-ai"
    assert rq.data["model"] == {"id": "gemini-2.0-flash-001", "family": "gemini-2.0"}
    assert rq.data["auth"] == {"type": "bearer", "key_prefix": "ya29."}
    assert rq.data["messages"] == [
        {"role": "user", "content": "hi", "content_length": 2, "content_parts": ["text"]}
    ]
    assert rs.data["choices"][0]["finish_reason"] == "length"
    assert rs.data["model"] == {"id": "gemini-2.0-flash-001"}


def test_embed_content() -> None:
    req = gcall("/v1beta/models/gemini-embedding-001:embedContent",
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "What is life?"}]},
                 "outputDimensionality": 768})  # fmt: skip
    events = events_of(exchange(req, json_response({"embedding": {"values": [0.01] * 768}})))
    assert [e.event_type for e in events] == ["ai.request", "ai.response", "ai.embedding"]
    rq, rs, emb = events
    assert rq.data["request_type"] == "embedding"
    assert rq.data["messages"] == [{"role": "user", "content": "What is life?", "content_length": 13}]
    assert rs.data["embedding"] == {"count": 1, "dimensions": 768}
    assert emb.data == {"provider": {"id": "google", "name": "Google AI Studio"},
                        "model": {"id": "gemini-embedding-001"}, "related_event_id": rq.event_id,
                        "response_event_id": rs.event_id, "success": True, "input_count": 1,
                        "embedding_count": 1, "dimensions": 768, "latency_ms": 0}  # fmt: skip
    batch = gcall("/v1beta/models/text-embedding-004:batchEmbedContents",
                  {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]}}
                                for t in ("a", "b", "c")]})  # fmt: skip
    emb = one(
        events_of(exchange(batch, json_response({"embeddings": [{"values": [0.1, 0.2]}] * 3}))),
        "ai.embedding",
    )
    assert (emb.data["input_count"], emb.data["embedding_count"], emb.data["dimensions"]) == (3, 3, 2)


def test_bad_input_never_raises() -> None:
    p = GeminiParser()
    for body in (
        b"",
        b"[",
        b"[1, 2",
        b'{"candidates": "x"}',
        b'{"candidates": [5, {"content": 3}]}',
        b"\x00",
    ):
        p.parse_response(body)
        p.parse_request(body)
    out = p.parse_request(b'{"contents": [{"parts": "nope"}, 3], "generationConfig": []}')
    assert out.fields["messages"] == [
        {"role": "user", "content": "", "content_length": 0, "content_parts": []}
    ]
