"""OpenAI legacy completions and embeddings, as documented."""

from __future__ import annotations

from tests.unit.helpers_ai import (
    assert_split_invariant,
    by_type,
    events_of,
    exchange,
    json_response,
    one,
    post,
    sse,
    streamed_response,
)

from oisp_sensor.decode.providers.openai_embeddings import vector_dimensions

AUTH = (b"Authorization", b"Bearer sk-proj-" + b"C" * 60)


def call(target: str, body: object) -> bytes:
    return post("api.openai.com", target, body, AUTH)


def test_completion_and_its_stream() -> None:
    body = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "Say this is a test",
        "max_tokens": 7,
        "temperature": 0,
    }
    resp = {"id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7", "object": "text_completion", "created": 1589478378,
            "model": "gpt-3.5-turbo-instruct", "choices": [{"text": "\n\nThis is indeed a test", "index": 0,
            "logprobs": None, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}  # fmt: skip
    rq, rs = events_of(exchange(call("/v1/completions", body), json_response(resp)))
    assert rq.data["request_type"] == "completion"
    assert rq.data["messages"] == [{"role": "user", "content": "Say this is a test", "content_length": 18}]
    assert rq.data["parameters"] == {"max_tokens": 7, "temperature": 0}
    assert rs.data["choices"] == [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "\n\nThis is indeed a test", "content_length": 23}}]  # fmt: skip
    assert rs.data["cost"] == {"usd": round(5 * 1.5e-6 + 7 * 2e-6, 12)}
    chunks = [
        {"id": "cmpl-S", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
         "choices": [{"text": "This", "index": 0, "logprobs": None, "finish_reason": None}]},
        {"id": "cmpl-S", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
         "choices": [{"text": " is", "index": 0, "logprobs": None, "finish_reason": "length"}]},
    ]  # fmt: skip
    events = assert_split_invariant(exchange(call("/v1/completions", {**body, "stream": True}),
                                             streamed_response([*(sse(c) for c in chunks), sse("[DONE]")])))  # fmt: skip
    assert [(c.data["delta"], c.data["finish_reason"]) for c in by_type(events, "ai.streaming_chunk")] == [
        ("This", None),
        (" is", "length"),
    ]
    rs = one(events, "ai.response")
    assert rs.data["choices"][0]["message"]["content"] == "This is"
    # no usage in the stream: estimated offline (cl100k_base)
    assert rs.data["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "estimated": True,
                                "estimation_method": "cl100k_base"}  # fmt: skip


def test_embeddings_float_and_base64() -> None:
    body = {"model": "text-embedding-3-small", "input": ["The food was delicious", "and the waiter..."],
            "encoding_format": "float"}  # fmt: skip
    resp = {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [0.0023, -0.0093] * 768}
                                       for i in range(2)],
            "model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}}  # fmt: skip
    events = events_of(exchange(call("/v1/embeddings", body), json_response(resp)))
    assert [e.event_type for e in events] == ["ai.request", "ai.response", "ai.embedding"]
    rq, rs, emb = events
    assert rq.data["request_type"] == "embedding"
    assert rq.data["input_count"] == 2
    assert [m["content"] for m in rq.data["messages"]] == ["The food was delicious", "and the waiter..."]
    assert rs.data["embedding"] == {"count": 2, "dimensions": 1536}
    assert rs.data["cost"] == {"usd": round(8 * 0.02e-6, 12)}
    assert emb.data == {"provider": {"id": "openai", "name": "OpenAI"}, "model": {"id": "text-embedding-3-small"},
                        "related_event_id": rq.event_id, "response_event_id": rs.event_id, "success": True,
                        "input_count": 2, "embedding_count": 2, "dimensions": 1536, "tokens": 8,
                        "cost": {"usd": 1.6e-07}, "latency_ms": 0}  # fmt: skip
    # the SDK's default: base64 float32, measured without decoding
    assert vector_dimensions("AAAAAAAAAAAAAAAA") == 3  # 12 bytes
    assert vector_dimensions("AAAAAAAAAAA=") == 2  # 8 bytes
    tokens_body = {"model": "text-embedding-3-small", "input": [[1, 2, 3], [4, 5]]}
    rq = events_of(exchange(call("/v1/embeddings", tokens_body), json_response(resp)))[0]
    assert rq.data["messages"] == [{"role": "user", "content_length": 3, "content_parts": ["tokens"]},
                                   {"role": "user", "content_length": 2, "content_parts": ["tokens"]}]  # fmt: skip
    err = {"error": {"message": "This model's maximum context length is 8192 tokens", "type": "invalid_request_error",
                     "param": None, "code": None}}  # fmt: skip
    events = events_of(exchange(call("/v1/embeddings", body), json_response(err, 400, b"Bad Request")))
    assert one(events, "ai.embedding").data["success"] is False
    assert one(events, "ai.response").data["error"]["type"] == "invalid_request_error"
