"""OpenAI chat completions parser, against bodies shaped like OpenAI's documented wire format."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from oisp_sensor.decode.messages import SseEvent
from oisp_sensor.decode.providers.openai_chat import OpenAIChatParser

P = OpenAIChatParser()


def sse(*chunks: object, done: bool = True, t0: int = 1_000) -> list[SseEvent]:
    """SSE events as the HTTP decoder dispatches them: one `data:` payload per event."""
    events = [
        SseEvent(data=c if isinstance(c, str) else orjson.dumps(c).decode(), ts_ns=t0 + i * 1_000_000)
        for i, c in enumerate(chunks)
    ]
    if done:
        events.append(SseEvent(data="[DONE]", ts_ns=t0 + len(chunks) * 1_000_000))
    return events


def chunk(delta: dict, finish: str | None = None, index: int = 0, **extra: object) -> dict:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


# ---- requests ---------------------------------------------------------------------------------


def test_request_full() -> None:
    body = orjson.dumps(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "text", "text": "Be brief."},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_abc123",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_abc123", "content": "22C"},
                {"role": "user", "name": "alice", "content": "thanks"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
                }
            ],
            "tool_choice": "auto",
            "temperature": 0.7,
            "max_tokens": 4096,
            "top_p": 1,
            "n": 1,
            "stop": ["\n\n"],
            "seed": 42,
            "presence_penalty": 0,
            "frequency_penalty": 0.5,
            "response_format": {"type": "json_object"},
            "stream": False,
            "user": "user-1234",
        }
    )
    out = P.parse_request(body)
    assert out.problems == [] and not out.unparsed
    assert out.model == "gpt-4o"
    assert out.streaming is False
    f = out.fields
    assert f["message_count"] == 5
    assert f["messages"] == [
        {"role": "system", "content": "You are a helpful assistant.", "content_length": 28},
        {
            "role": "user",
            "content": "What is in this image?\nBe brief.",
            "content_length": 32,
            "content_parts": ["text", "image_url", "text"],
        },
        {
            "role": "assistant",
            "content_length": 0,
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "22C", "content_length": 3, "tool_call_id": "call_abc123"},
        {"role": "user", "content": "thanks", "content_length": 6, "name": "alice"},
    ]
    expected_hash = hashlib.sha256(b"You are a helpful assistant.").hexdigest()
    assert f["system_prompt_hash"] == "sha256:" + expected_hash
    assert f["tools"] == [{"name": "get_weather", "type": "function"}]
    assert f["tool_choice"] == "auto"
    assert f["parameters"] == {
        "temperature": 0.7,
        "top_p": 1,
        "n": 1,
        "max_tokens": 4096,
        "stop": ["\n\n"],
        "seed": 42,
        "presence_penalty": 0,
        "frequency_penalty": 0.5,
        "response_format": "json_object",
    }
    assert "user" not in f["parameters"]
    # data: URLs of images are never copied
    assert b"base64" not in orjson.dumps(f)


def test_request_streaming_minimal_and_developer_role() -> None:
    body = orjson.dumps(
        {
            "model": "o3-mini",
            "messages": [
                {"role": "developer", "content": "Rule one."},
                {"role": "system", "content": "Rule two."},
                {"role": "user", "content": "hi"},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "reasoning_effort": "high",
            "max_completion_tokens": 500,
            "temperature": None,
        }
    )
    out = P.parse_request(body)
    assert out.streaming is True
    assert out.fields["system_prompt_hash"] == "sha256:" + hashlib.sha256(b"Rule one.\nRule two.").hexdigest()
    assert out.fields["parameters"] == {
        "max_completion_tokens": 500,
        "reasoning_effort": "high",
        "include_usage": True,
    }
    assert "tools" not in out.fields and "tool_choice" not in out.fields


def test_request_without_system_has_no_hash() -> None:
    out = P.parse_request(b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}')
    assert "system_prompt_hash" not in out.fields
    assert "parameters" not in out.fields
    assert out.fields["message_count"] == 1


def test_request_truncated_json_salvages_model() -> None:
    body = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"a very long pro'
    out = P.parse_request(body)
    assert out.unparsed is True
    assert out.model == "gpt-4o-mini"
    assert out.streaming is True
    assert out.fields == {}
    assert out.problems and out.problems[0].startswith("request: invalid JSON")


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"[1,2,3]", b"\xff\xfe\x00", b'{"messages": "nope"}', b'{"messages": [1, null, "x"]}'],
)
def test_request_malformed_never_raises(body: bytes) -> None:
    out = P.parse_request(body)
    assert isinstance(out.problems, list)
    if body.startswith(b'{"messages": ['):
        assert out.fields["messages"] == [{"role": None, "content_length": 0}] * 3


# ---- non-streaming responses -------------------------------------------------------------------

RESPONSE = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}


def test_response_non_streaming() -> None:
    out = P.parse_response(orjson.dumps(RESPONSE))
    assert out.problems == []
    assert out.model == "gpt-4o-2024-08-06"
    assert out.response_id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert out.chunk_count is None
    assert out.fields == {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": "Hello! How can I assist you today?",
                    "content_length": 34,
                },
            }
        ],
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
        },
    }


def test_response_tool_calls_non_streaming() -> None:
    body = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"location": "Boston, MA"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 82,
            "completion_tokens": 17,
            "total_tokens": 99,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 5},
        },
    }
    out = P.parse_response(orjson.dumps(body))
    assert out.fields["choices"] == [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content_length": 0,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Boston, MA"}'},
                    },
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                ],
            },
        }
    ]
    assert out.fields["usage"] == {
        "prompt_tokens": 82,
        "completion_tokens": 17,
        "total_tokens": 99,
        "cached_tokens": 64,
        "reasoning_tokens": 5,
    }


def test_response_refusal_and_no_usage_details() -> None:
    body = {
        "id": "chatcmpl-r",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
    }
    out = P.parse_response(orjson.dumps(body))
    assert out.fields["choices"][0]["message"] == {
        "role": "assistant",
        "content_length": 0,
        "refusal": "I can't help with that.",
    }
    assert out.fields["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {
                "error": {
                    "message": "Incorrect API key provided: sk-proj-****abcd.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
            {
                "type": "invalid_request_error",
                "message": "Incorrect API key provided: sk-proj-****abcd.",
                "code": "invalid_api_key",
            },
        ),
        (
            {
                "error": {
                    "message": "The server had an error while processing your request. Sorry about that!",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
            {
                "type": "server_error",
                "message": "The server had an error while processing your request. Sorry about that!",
            },
        ),
        ({"error": "model not found"}, {"message": "model not found"}),
    ],
)
def test_response_error_bodies(body: dict, error: dict) -> None:
    out = P.parse_response(orjson.dumps(body))
    assert out.fields == {"error": error}
    assert not out.unparsed


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b'{"id": "chatcmpl-1", "choi', b"null"])
def test_response_garbage_never_raises(body: bytes) -> None:
    out = P.parse_response(body)
    assert out.unparsed is True
    assert out.fields == {}
    assert out.problems


def test_response_empty_body() -> None:
    out = P.parse_response(b"")
    assert out.fields == {} and not out.unparsed


# ---- streaming -------------------------------------------------------------------------------


def test_stream_content_without_usage() -> None:
    events = sse(
        chunk({"role": "assistant", "content": "", "refusal": None}),
        chunk({"content": "Hello"}),
        chunk({"content": " there"}),
        chunk({"content": "!"}),
        chunk({}, finish="stop"),
    )
    out = P.parse_stream(events)
    assert out.problems == [] and out.stream_complete
    assert out.model == "gpt-4o-mini-2024-07-18"
    assert out.response_id == "chatcmpl-123"
    assert out.chunk_count == 5
    # the first chunk carries only the role and an empty string: the first token is chunk 2
    assert out.first_token_ts_ns == events[1].ts_ns
    assert out.fields == {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hello there!", "content_length": 12},
            }
        ]
    }


def test_stream_with_usage_final_chunk() -> None:
    events = sse(
        chunk({"role": "assistant", "content": ""}, usage=None),
        chunk({"content": "Hi"}, usage=None),
        chunk({}, finish="stop", usage=None),
        {
            "id": "chatcmpl-123",
            "object": "chat.completion.chunk",
            "created": 1694268190,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [],
            "usage": {
                "prompt_tokens": 9,
                "completion_tokens": 1,
                "total_tokens": 10,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        },
    )
    out = P.parse_stream(events)
    assert out.chunk_count == 4
    assert out.fields["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 1,
        "total_tokens": 10,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert out.fields["choices"][0]["message"]["content"] == "Hi"


def test_stream_tool_call_deltas() -> None:
    events = sse(
        chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ],
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "location"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '":"Paris"}'}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    }
                ]
            }
        ),
        chunk({}, finish="tool_calls"),
    )
    out = P.parse_stream(events)
    assert out.first_token_ts_ns == events[0].ts_ns
    assert out.fields["choices"] == [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content_length": 0,
                "tool_calls": [
                    {
                        "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                    },
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                ],
            },
        }
    ]


def test_stream_multiple_choices_interleaved() -> None:
    events = sse(
        chunk({"role": "assistant", "content": "A"}, index=0),
        chunk({"role": "assistant", "content": "B"}, index=1),
        chunk({"content": "a"}, index=0),
        chunk({"content": "b"}, finish="length", index=1),
        chunk({}, finish="stop", index=0),
    )
    out = P.parse_stream(events)
    choices = out.fields["choices"]
    assert [(c["index"], c["finish_reason"], c["message"]["content"]) for c in choices] == [
        (0, "stop", "Aa"),
        (1, "length", "Bb"),
    ]


def test_stream_cut_short_and_garbage() -> None:
    events = sse(
        chunk({"role": "assistant", "content": "Hel"}),
        '{"id":"chatcmpl-123","choices":[{"index":0,"delta":{"content":"lo',  # cut mid-event
        "not json at all",
        chunk({"content": "lo"}),
        done=False,
    )
    out = P.parse_stream(events)
    assert out.stream_complete is False
    assert out.unparsed is True
    assert out.chunk_count == 2
    assert out.fields["choices"][0]["message"]["content"] == "Hello"
    assert out.fields["choices"][0]["finish_reason"] is None
    assert "stream: 2 event(s) not valid chunk JSON" in out.problems
    assert "stream: no [DONE]" in out.problems


def test_stream_error_event() -> None:
    events = sse({"error": {"message": "overloaded", "type": "server_error", "code": None}}, done=False)
    out = P.parse_stream(events)
    assert out.fields == {"error": {"type": "server_error", "message": "overloaded"}}


def test_stream_empty() -> None:
    out = P.parse_stream([])
    assert out.chunk_count == 0 and out.fields == {} and not out.stream_complete
