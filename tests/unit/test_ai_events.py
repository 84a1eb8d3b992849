"""AiEventBuilder: HTTP exchanges (as the tracker reports them) to ai.request / ai.response."""

from __future__ import annotations

import dataclasses
import hashlib

import orjson
import pytest

from oisp_sensor.decode.ai_events import AiEventBuilder
from oisp_sensor.decode.messages import (
    ConnInfo,
    ExchangeDone,
    HttpRequest,
    HttpResponse,
    RequestSeen,
    ResponseStarted,
    Role,
    SseEvent,
    StreamEvent,
)
from oisp_sensor.decode.providers import ProviderRegistry
from oisp_sensor.schema.events import Confidence, SensorEvent

KEY = "sk-proj-" + "Zx9" * 40  # what an OpenAI project key looks like (fake)
T0 = 5_000_000_000  # request start, capture ns
MS = 1_000_000

CONN = ConnInfo(key=(4242, 0x7F00), pid=4242, tid=4243, uid=1000, comm="python3", role=Role.CLIENT)


def ids(ts_ns: int) -> str:
    return f"ID-{ts_ns}"


def request(
    body: object = b"",
    *,
    host: str | None = "api.openai.com",
    target: str = "/v1/chat/completions",
    method: str = "POST",
    headers: list[tuple[str, str]] | None = None,
    auth: str | None = f"Bearer {KEY}",
    **kw: object,
) -> HttpRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    hdrs: list[tuple[str, str]] = []
    if host is not None:
        hdrs.append(("host", host))
    if auth is not None:
        hdrs.append(("authorization", auth))
    hdrs += [("content-type", "application/json"), ("user-agent", "OpenAI/Python 1.54.0")]
    hdrs += headers or []
    return HttpRequest(
        method=method,
        target=target,
        version="1.1",
        headers=hdrs,
        body=raw,
        start_ts_ns=T0,
        end_ts_ns=T0 + 2 * MS,
        body_size=len(raw),
        **kw,  # type: ignore[arg-type]
    )


def response(
    body: object = b"",
    *,
    status: int = 200,
    reason: str = "OK",
    sse: list[SseEvent] | None = None,
    headers: list[tuple[str, str]] | None = None,
    **kw: object,
) -> HttpResponse:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    ctype = "text/event-stream; charset=utf-8" if sse is not None else "application/json"
    return HttpResponse(
        status=status,
        reason=reason,
        version="1.1",
        headers=[("content-type", ctype), ("x-request-id", "req_7f3e2a"), *(headers or [])],
        body=raw,
        start_ts_ns=T0 + 300 * MS,
        end_ts_ns=T0 + 1250 * MS + 400_000,  # 1250.4 ms after the request started
        body_size=len(raw),
        sse_events=sse or [],
        **kw,  # type: ignore[arg-type]
    )


def run_all(
    req: HttpRequest, resp: HttpResponse | None, builder: AiEventBuilder | None = None
) -> list[SensorEvent]:
    """Every event of one exchange (request, chunks, response, tool calls ...)."""
    b = builder or AiEventBuilder(ProviderRegistry.default(), ids)
    events = b.process(RequestSeen(CONN, req, 7))
    events += b.process(ExchangeDone(CONN, 7, req, resp))
    for event in events:
        assert KEY not in orjson.dumps(event.data).decode()
        assert KEY not in orjson.dumps(dataclasses.asdict(event)).decode()
    return events


def run(
    req: HttpRequest, resp: HttpResponse | None, builder: AiEventBuilder | None = None
) -> list[SensorEvent]:
    """The ai.request / ai.response pair of one exchange."""
    return [e for e in run_all(req, resp, builder) if e.event_type in ("ai.request", "ai.response")]


CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello"},
    ],
    "temperature": 0.2,
    "max_tokens": 64,
}

CHAT_RESPONSE = {
    "id": "chatcmpl-AbC123",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 20,
        "completion_tokens": 2,
        "total_tokens": 22,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
    "system_fingerprint": "fp_0ba0d124f1",
}


def test_non_streaming_exchange_exact() -> None:
    req = request(CHAT_REQUEST)
    events = run(req, response(CHAT_RESPONSE))
    assert [e.event_type for e in events] == ["ai.request", "ai.response"]
    rq, rs = events

    assert rq.event_id == f"ID-{T0}"
    assert rq.ts_ns == T0
    assert (rq.pid, rq.tid, rq.uid, rq.comm) == (4242, 4243, 1000, "python3")
    assert rq.capture_point == "ssl"
    assert rq.confidence == Confidence()
    assert rq.data == {
        "provider": {
            "id": "openai",
            "name": "OpenAI",
            "endpoint": "https://api.openai.com/v1/chat/completions",
        },
        "model": {"id": "gpt-4o-mini", "family": "gpt-4"},
        "request_type": "chat",
        "streaming": False,
        "message_count": 2,
        "messages": [
            {"role": "system", "content": "You are terse.", "content_length": 14},
            {"role": "user", "content": "Say hello", "content_length": 9},
        ],
        "system_prompt_hash": "sha256:" + hashlib.sha256(b"You are terse.").hexdigest(),
        "parameters": {"temperature": 0.2, "max_tokens": 64},
        "conversation_id": rq.data["conversation_id"],
        # (3 + ceil(14/4)) + (3 + ceil(9/4)) tokens, at gpt-4o-mini's $0.15 / MTok input
        "token_estimate": {"input": 13, "method": "heuristic", "estimated_cost_usd": 1.95e-06},
        "auth": {"type": "bearer", "key_prefix": "sk-proj-"},
        "http": {
            "method": "POST",
            "path": "/v1/chat/completions",
            "host": "api.openai.com",
            "user_agent": "OpenAI/Python 1.54.0",
        },
        "request_bytes": len(req.body),
    }

    end = T0 + 1250 * MS + 400_000
    assert rs.event_id == f"ID-{end}"
    assert rs.ts_ns == end
    assert rs.confidence == Confidence()
    assert rs.data == {
        "provider": {"id": "openai", "name": "OpenAI"},
        "model": {"id": "gpt-4o-mini-2024-07-18"},
        "request_id": "chatcmpl-AbC123",
        "related_event_id": rq.event_id,
        "status_code": 200,
        "success": True,
        "streaming": False,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hello!", "content_length": 6},
            }
        ],
        "usage": {
            "prompt_tokens": 20,
            "completion_tokens": 2,
            "total_tokens": 22,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
        },
        "cost": {"usd": 4.2e-06},  # 20 x $0.15 + 2 x $0.60 per MTok
        "conversation_id": rq.data["conversation_id"],
        "latency_ms": 1250,
        "time_to_first_byte_ms": 300,
        "response_bytes": len(orjson.dumps(CHAT_RESPONSE)),
    }
    # the seed's jq paths
    assert orjson.loads(orjson.dumps(rs.data))["choices"][0]["message"]["content"] == "Hello!"
    assert [m["content"] for m in rq.data["messages"]] == ["You are terse.", "Say hello"]


def chunk(delta: dict, finish: str | None = None, **extra: object) -> str:
    return orjson.dumps(
        {
            "id": "chatcmpl-S1",
            "object": "chat.completion.chunk",
            "created": 1694268190,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }
    ).decode()


def stream(*datas: str) -> list[SseEvent]:
    return [SseEvent(data=d, ts_ns=T0 + (400 + 10 * i) * MS) for i, d in enumerate(datas)]


def test_streaming_with_usage() -> None:
    req = request(
        {**CHAT_REQUEST, "model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}}
    )
    usage = {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23}
    events = stream(
        chunk({"role": "assistant", "content": ""}, usage=None),
        chunk({"content": "Hel"}, usage=None),
        chunk({"content": "lo!"}, usage=None),
        chunk({}, "stop", usage=None),
        orjson.dumps({"id": "chatcmpl-S1", "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06",
                      "choices": [], "usage": usage}).decode(),
        "[DONE]",
    )  # fmt: skip
    body = "".join(f"data: {e.data}\n\n" for e in events).encode()
    rq, rs = run(req, response(body, sse=events))
    assert rq.data["streaming"] is True
    assert rq.data["parameters"] == {"temperature": 0.2, "max_tokens": 64, "include_usage": True}
    assert rs.confidence == Confidence()
    assert rs.data["streaming"] is True
    assert rs.data["request_id"] == "chatcmpl-S1"
    assert rs.data["model"] == {"id": "gpt-4o-2024-08-06"}
    assert rs.data["choices"] == [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hello!", "content_length": 6},
        }
    ]
    assert rs.data["usage"] == usage
    assert rs.data["chunk_count"] == 5
    assert rs.data["time_to_first_token_ms"] == 410  # the "Hel" chunk, not the role-only one
    assert rs.data["time_to_first_byte_ms"] == 300
    assert rs.data["latency_ms"] == 1250
    assert rs.data["response_bytes"] == len(body)


def test_streaming_without_usage_and_tool_calls() -> None:
    req = request({**CHAT_REQUEST, "stream": True, "tools": [
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}}], "tool_choice": "required"})  # fmt: skip
    events = stream(
        chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_W1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    )  # fmt: skip
    rq, rs = run(req, response(b"", sse=events))
    assert rq.data["tools"] == [{"name": "get_weather", "type": "function"}]
    assert rq.data["tool_choice"] == "required"
    # no usage in the stream: counted offline with cl100k_base, and marked as estimated
    assert rs.data["usage"] == {
        "prompt_tokens": 4 + 2,  # "You are terse." + "Say hello"
        "completion_tokens": 6,  # '{"city":"Oslo"}'
        "total_tokens": 12,
        "estimated": True,
        "estimation_method": "cl100k_base",
    }
    assert rs.data["cost"] == {"usd": 7.5e-05, "estimated": True}  # gpt-4o: 6 x $2.50 + 6 x $10 per MTok
    assert rs.data["chunk_count"] == 4
    assert rs.data["time_to_first_token_ms"] == 400
    assert rs.data["choices"] == [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content_length": 0,
                "tool_calls": [
                    {"id": "call_W1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
                ],
            },
        }
    ]  # fmt: skip


def test_stream_body_without_split_events() -> None:
    # the HTTP decoder left sse_events empty: the builder splits the body itself
    body = f"data: {chunk({'content': 'Hi'})}\n\ndata: {chunk({}, 'stop')}\n\ndata: [DONE]\n\n".encode()
    resp = response(body)
    resp.headers[0] = ("content-type", "text/event-stream")
    _, rs = run(request({**CHAT_REQUEST, "stream": True}), resp)
    assert rs.data["streaming"] is True
    assert rs.data["choices"][0]["message"]["content"] == "Hi"
    assert rs.data["chunk_count"] == 2
    assert "time_to_first_token_ms" not in rs.data  # no per-event timestamps


def test_stream_cut_short() -> None:
    events = stream(chunk({"role": "assistant", "content": "Hel"}), '{"id":"chatcmpl-S1","choi')
    _, rs = run(request({**CHAT_REQUEST, "stream": True}), response(b"", sse=events, complete=False))
    assert rs.confidence == Confidence("high", "partial", ["response_incomplete", "body_unparsed"])
    assert rs.data["choices"][0]["message"]["content"] == "Hel"
    assert rs.data["choices"][0]["finish_reason"] is None


def test_stream_without_done_on_complete_response() -> None:
    events = stream(chunk({"content": "x"}, "stop"))
    _, rs = run(request({**CHAT_REQUEST, "stream": True}), response(b"", sse=events))
    assert rs.confidence == Confidence("high", "partial", ["stream_incomplete"])


def test_401_error_echoing_the_key_is_scrubbed() -> None:
    body = {
        "error": {
            "message": f"Incorrect API key provided: {KEY}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    _, rs = run(request(CHAT_REQUEST), response(body, status=401, reason="Unauthorized"))
    assert rs.data["status_code"] == 401
    assert rs.data["success"] is False
    assert rs.data["error"] == {
        "type": "invalid_request_error",
        "message": "Incorrect API key provided: [REDACTED]. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "code": "invalid_api_key",
    }
    assert rs.data["model"] == {"id": "gpt-4o-mini"}  # from the request
    assert rs.data["request_id"] == "req_7f3e2a"  # from the header
    assert "choices" not in rs.data and "usage" not in rs.data
    assert rs.confidence == Confidence()


def test_429_and_500_error_bodies() -> None:
    rate = {"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "param": None,
                      "code": "rate_limit_exceeded"}}  # fmt: skip
    _, rs = run(request(CHAT_REQUEST), response(rate, status=429, reason="Too Many Requests"))
    assert rs.data["error"] == {"type": "requests", "message": "Rate limit reached for gpt-4o-mini",
                                "code": "rate_limit_exceeded", "rate_limited": True}  # fmt: skip
    server = {
        "error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}
    }
    _, rs = run(request(CHAT_REQUEST), response(server, status=500, reason="Internal Server Error"))
    assert rs.data["error"] == {"type": "server_error", "message": "The server had an error"}
    assert rs.data["success"] is False


def test_non_json_error_page() -> None:
    _, rs = run(
        request(CHAT_REQUEST), response(b"<html>bad gateway</html>", status=502, reason="Bad Gateway")
    )
    assert rs.data["error"] == {"type": "http_error", "message": "502 Bad Gateway"}
    assert rs.confidence == Confidence("high", "partial", ["body_unparsed"])


def test_garbage_and_truncated_bodies() -> None:
    b = AiEventBuilder(ProviderRegistry.default(), ids)
    cut = orjson.dumps(CHAT_REQUEST)[:40]
    rq, rs = run(request(cut, truncated=True, problems=["gap"]), response(b'{"id": "chatcmpl-1", "cho'), b)
    assert rq.data["model"] == {"id": "gpt-4o-mini", "family": "gpt-4"}  # salvaged
    assert "messages" not in rq.data
    assert rq.confidence == Confidence("high", "partial", ["request_truncated", "gap", "body_unparsed"])
    assert rs.confidence == Confidence("high", "partial", ["body_unparsed"])
    assert rs.data["success"] is True
    assert b.counters.unparsed_bodies == 2


def test_response_missing() -> None:
    b = AiEventBuilder(ProviderRegistry.default(), ids)
    req = request(CHAT_REQUEST)
    rq, rs = run(req, None, b)
    assert rs.ts_ns == req.end_ts_ns
    assert rs.data == {
        "provider": {"id": "openai", "name": "OpenAI"},
        "model": {"id": "gpt-4o-mini"},
        "related_event_id": rq.event_id,
        "success": False,
        "streaming": False,
    }
    assert rs.confidence == Confidence("high", "partial", ["response_missing"])
    assert b.counters.responses_missing == 1


def test_azure_deployment_api_key_and_query() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}  # Azure: model is the deployment
    key = "0123456789abcdef0123456789abcdef"
    req = request(
        body,
        host="contoso.openai.azure.com",
        target="/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
        auth=None,
        headers=[("api-key", key)],
    )
    rq, rs = run(req, response({**CHAT_RESPONSE, "model": "gpt-4o-2024-08-06"}))
    assert rq.data["provider"] == {
        "id": "azure",
        "name": "Azure OpenAI",
        "endpoint": "https://contoso.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions",
    }
    assert rq.data["model"] == {"id": "gpt-4o-prod", "family": "gpt-4"}
    assert rq.data["auth"] == {"type": "api_key", "key_prefix": "0123"}
    assert rq.data["http"]["path"] == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert rs.data["model"] == {"id": "gpt-4o-2024-08-06"}
    assert key not in orjson.dumps([rq.data, rs.data]).decode()
    assert "api-version" not in orjson.dumps(rq.data).decode()


def test_gemini_key_in_query_never_leaks() -> None:
    key = "AIzaSyD-" + "k" * 31
    req = request(
        {"contents": [{"parts": [{"text": "hi"}]}]},
        host="generativelanguage.googleapis.com",
        target=f"/v1beta/models/gemini-2.0-flash:generateContent?key={key}",
        auth=None,
    )
    rq, rs = run(req, response({"candidates": [], "modelVersion": "gemini-2.0-flash"}))
    assert rq.data["provider"]["id"] == "google"
    assert rq.data["provider"]["endpoint"] == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
    )
    assert rq.data["model"] == {"id": "gemini-2.0-flash", "family": "gemini-2.0"}
    assert rq.data["request_type"] == "chat"
    assert rq.data["auth"] == {"type": "api_key", "key_prefix": "AIza"}
    assert key not in orjson.dumps([rq.data, rs.data]).decode()


def test_anthropic_messages_read_generically() -> None:
    req = request(
        {"model": "claude-3-5-sonnet-20241022", "max_tokens": 1024, "stream": False,
         "messages": [{"role": "user", "content": "Hello"}]},
        host="api.anthropic.com", target="/v1/messages", auth=None,
        headers=[("x-api-key", "sk-ant-api03-" + "q" * 80), ("anthropic-version", "2023-06-01")],
    )  # fmt: skip
    rq, rs = run(req, response({"id": "msg_01XF", "type": "message", "model": "claude-3-5-sonnet-20241022"}))
    assert rq.data["provider"]["id"] == "anthropic"
    assert rq.data["model"] == {"id": "claude-3-5-sonnet-20241022", "family": "claude-3.5"}
    assert rq.data["auth"] == {"type": "api_key", "key_prefix": "sk-ant-api03-"}
    assert rs.data["request_id"] == "msg_01XF"


def test_ollama_local_plain_http() -> None:
    req = request({"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}], "stream": False},
                  host="localhost:11434", target="/api/chat", auth=None)  # fmt: skip
    rq, _ = run(req, response({"model": "llama3.1:8b", "message": {"role": "assistant", "content": "yo"}}))
    assert rq.data["provider"] == {
        "id": "ollama",
        "name": "Ollama",
        "endpoint": "http://localhost:11434/api/chat",
    }
    assert rq.data["model"] == {"id": "llama3.1:8b", "family": "llama-3.1"}
    assert "auth" not in rq.data


def test_unknown_host_with_ai_path() -> None:
    b = AiEventBuilder(ProviderRegistry.default(), ids)
    rq, rs = run(request(CHAT_REQUEST, host="llm.internal.example:8443"), response(CHAT_RESPONSE), b)
    assert rq.data["provider"] == {
        "id": "unknown",
        "name": "Unknown",
        "endpoint": "https://llm.internal.example:8443/v1/chat/completions",
    }
    assert rq.confidence == Confidence("medium", "full", ["provider_unknown"])
    assert rs.data["provider"] == {"id": "unknown", "name": "Unknown"}
    assert rs.data["choices"][0]["message"]["content"] == "Hello!"
    assert b.counters.unknown_provider_requests == 1


def test_extra_hosts_from_config() -> None:
    reg = ProviderRegistry.default({"llm.internal.example": {"id": "corp-llm", "name": "Corp LLM"}})
    rq, _ = run(request(CHAT_REQUEST, host="llm.internal.example"), response(CHAT_RESPONSE),
                AiEventBuilder(reg, ids))  # fmt: skip
    assert rq.data["provider"]["id"] == "corp-llm"
    assert rq.confidence == Confidence()


@pytest.mark.parametrize(
    ("host", "method", "target"),
    [
        ("pypi.org", "GET", "/simple/orjson/"),
        ("files.pythonhosted.org", "GET", "/packages/aa/bb/orjson.whl"),
        ("example.com", "POST", "/upload"),
        ("example.com", "GET", "/v1/chat/completions"),  # AI shape but not a POST
        ("localhost:11434", "GET", "/api/tags"),  # local server port: AI paths only
        ("localhost:8000", "POST", "/login"),
        ("openrouter.ai", "GET", "/models"),  # strict provider: web site traffic
        ("api.openai.com:443", "CONNECT", "api.openai.com:443"),
    ],
)
def test_non_ai_traffic_is_ignored(host: str, method: str, target: str) -> None:
    b = AiEventBuilder(ProviderRegistry.default(), ids)
    req = request(b"{}", host=host, method=method, target=target)
    assert b.process(RequestSeen(CONN, req, 1)) == []
    assert b.process(ExchangeDone(CONN, 1, req, response(b"ok"))) == []
    assert b.counters.non_ai_exchanges == 1
    assert b.counters.ai_requests == 0 and b.counters.ai_responses == 0


def test_known_provider_other_path() -> None:
    rq, rs = run(request(b"", method="GET", target="/v1/models"), response({"object": "list", "data": []}))
    assert rq.data["request_type"] == "other"
    assert "model" not in rq.data
    assert rs.data["success"] is True


def test_absolute_form_target_and_http2_authority() -> None:
    req = request(CHAT_REQUEST, host=None, target="https://api.openai.com/v1/chat/completions?x=1")
    rq, _ = run(req, response(CHAT_RESPONSE))
    assert rq.data["provider"]["endpoint"] == "https://api.openai.com/v1/chat/completions"
    req = request(CHAT_REQUEST, host=None, headers=[(":authority", "api.groq.com")])
    rq, _ = run(req, response(CHAT_RESPONSE))
    assert rq.data["provider"]["id"] == "groq"


def test_late_exchange_done_emits_both() -> None:
    b = AiEventBuilder(ProviderRegistry.default(), ids)
    req = request(CHAT_REQUEST)
    events = b.process(ExchangeDone(CONN, 99, req, response(CHAT_RESPONSE)))
    assert [e.event_type for e in events] == ["ai.request", "ai.response"]
    assert events[1].data["related_event_id"] == events[0].event_id
    assert b.counters.late_requests == 1


def test_response_started_is_ignored_and_stream_events_of_unknown_exchanges_too() -> None:
    b = AiEventBuilder(ProviderRegistry.default(), ids)
    req = request(CHAT_REQUEST)
    b.process(RequestSeen(CONN, req, 3))
    assert b.process(ResponseStarted(CONN, 3, response(b""))) == []
    assert b.process(StreamEvent(CONN, 99, SseEvent(data="{}"), 0)) == []  # no such exchange
    assert b.counters.ignored_outputs == 2
    assert len(b.process(ExchangeDone(CONN, 3, req, response(CHAT_RESPONSE)))) == 1


def test_pending_table_is_bounded() -> None:
    b = AiEventBuilder(ProviderRegistry.default(), ids, max_pending=8)
    req = request(CHAT_REQUEST)
    for i in range(20):
        b.process(RequestSeen(CONN, req, i))
    assert len(b._pending) == 8
    assert b.counters.pending_evicted == 12
    # an evicted exchange still gets its response (and a late request event)
    assert len(b.process(ExchangeDone(CONN, 0, req, response(CHAT_RESPONSE)))) == 2
    # a remembered one gets only the response, and is then forgotten
    assert len(b.process(ExchangeDone(CONN, 19, req, response(CHAT_RESPONSE)))) == 1
    assert 19 not in b._pending


def test_auth_variants() -> None:
    cases = [
        ("Bearer gsk_" + "a" * 52, {"type": "bearer", "key_prefix": "gsk_"}),
        ("bearer sometokenwithoutknownprefix", {"type": "bearer", "key_prefix": "some"}),
        ("Bearer ollama", {"type": "bearer"}),
        ("Basic dXNlcjpwYXNzd29yZA==", {"type": "basic"}),
        (
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/bedrock/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
            {"type": "aws_sigv4", "key_prefix": "AKIA"},
        ),
    ]
    for header, expected in cases:
        rq, _ = run(request(CHAT_REQUEST, auth=header), response(CHAT_RESPONSE))
        assert rq.data["auth"] == expected, header
        secret = header.split(" ", 1)[1]
        assert secret not in orjson.dumps(rq.data).decode() or len(secret) < 8


def test_latency_rounding() -> None:
    resp = response(CHAT_RESPONSE)
    resp.end_ts_ns = T0 + 1_499_999  # 1.499999 ms
    resp.start_ts_ns = T0 + 500_000  # 0.5 ms rounds up
    _, rs = run(request(CHAT_REQUEST), resp)
    assert rs.data["latency_ms"] == 1
    assert rs.data["time_to_first_byte_ms"] == 1


def test_multipart_upload_is_not_a_parse_failure() -> None:
    body = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF....\r\n--xyz--\r\n'
    req = request(body, target="/v1/audio/transcriptions",
                  headers=[("content-type", "multipart/form-data; boundary=xyz")])  # fmt: skip
    b = AiEventBuilder(ProviderRegistry.default(), ids)
    rq, rs = run(req, response({"text": "hello"}), b)
    assert rq.data["request_type"] == "transcription"
    assert rq.confidence == Confidence() and rs.confidence == Confidence()
    assert b.counters.unparsed_bodies == 0


def test_stream_events_become_chunks_as_they_arrive_and_gaps_fall_back_to_the_body() -> None:
    b = AiEventBuilder(ProviderRegistry.default(), ids)
    req = request({**CHAT_REQUEST, "stream": True})
    events = stream(
        chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({}, "stop"), "[DONE]"
    )
    b.process(RequestSeen(CONN, req, 5))
    first = b.process(StreamEvent(CONN, 5, events[0], 0))
    second = b.process(StreamEvent(CONN, 5, events[1], 1))
    assert [e.data["delta"] for e in first + second] == ["", "Hel"]
    assert second[0].ts_ns == T0 + 410 * MS
    assert second[0].data["time_since_request_ms"] == 410
    assert second[0].data["chunk_index"] == 1
    assert second[0].data["related_event_id"] == f"ID-{T0}"
    # index 2 never arrives: the builder stops streaming chunks and reassembles from the body
    assert b.process(StreamEvent(CONN, 5, events[3], 3)) == []
    (rs,) = b.process(ExchangeDone(CONN, 5, req, response(b"", sse=events)))
    assert rs.data["choices"][0]["message"]["content"] == "Hel"
    assert rs.data["choices"][0]["finish_reason"] == "stop"
    assert b.counters.stream_gaps == 1 and b.counters.streaming_chunks == 2


def test_tool_result_duration_and_unmatched_results() -> None:
    counter = iter(range(100))
    b = AiEventBuilder(ProviderRegistry.default(), lambda ts: f"X{next(counter)}")
    calls = {**CHAT_RESPONSE, "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_A", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "/etc/x"}'}},
            {"id": "call_B", "type": "function", "function": {"name": "ls", "arguments": "not json"}}]}}]}  # fmt: skip
    events = run_all(request(CHAT_REQUEST), response(calls), b)
    tool_calls = [e for e in events if e.event_type == "agent.tool_call"]
    assert [(t.data["call_id"], t.data["arguments"]) for t in tool_calls] == [
        ("call_A", {"path": "/etc/x"}),
        ("call_B", "not json"),
    ]
    follow = dict(CHAT_REQUEST, messages=[*CHAT_REQUEST["messages"], calls["choices"][0]["message"],
                  {"role": "tool", "tool_call_id": "call_A", "content": "x" * 1024},
                  {"role": "tool", "tool_call_id": "call_unknown", "content": "?"}])  # fmt: skip
    req2 = request(follow)
    req2.start_ts_ns = req2.end_ts_ns = T0 + 1250 * MS + 400_000 + 15 * MS  # 15 ms after the response ended
    later = b.process(RequestSeen(CONN, req2, 8))
    assert [e.event_type for e in later] == ["ai.request", "agent.tool_result"]
    result = later[1].data
    assert result == {
        "tool": {"name": "read_file"}, "call_id": "call_A", "success": True, "result_length": 1024,
        "duration_ms": 15, "related_event_id": tool_calls[0].event_id, "request_event_id": later[0].event_id,
        "conversation_id": later[0].data["conversation_id"],
    }  # fmt: skip
    assert later[0].data["conversation_id"] == events[0].data["conversation_id"]
    assert b.counters.tool_calls == 2 and b.counters.tool_results == 1
    # another process with the same opening is another conversation
    other = ConnInfo(key=(7, 1), pid=7, tid=7, uid=0, comm="node", role=Role.CLIENT)
    (rq,) = b.process(RequestSeen(other, request(CHAT_REQUEST), 9))
    assert rq.data["conversation_id"] != events[0].data["conversation_id"]
