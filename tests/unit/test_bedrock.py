"""AWS Bedrock runtime: Converse, ConverseStream, InvokeModel (+ stream) and the event-stream framing."""

from __future__ import annotations

import base64
import struct
import zlib

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

from oisp_sensor.decode.providers.eventstream import decode_frames, encode_frame, looks_like_eventstream
from oisp_sensor.schema.events import Confidence

HOST = "bedrock-runtime.us-east-1.amazonaws.com"
SIGV4 = (
    b"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250115/us-east-1/bedrock/aws4_request, "
    b"SignedHeaders=content-type;host;x-amz-date, Signature=" + b"f" * 64
)
MODEL = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
PATH_MODEL = "us.anthropic.claude-3-7-sonnet-20250219-v1%3A0"
CONVERSE = {
    "messages": [{"role": "user", "content": [{"text": "What's the weather in Seattle?"}]}],
    "system": [{"text": "Be brief."}],
    "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "topP": 0.9},
    "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather",
                                           "inputSchema": {"json": {"type": "object"}}}}]},
}  # fmt: skip
CONVERSE_RESPONSE = {
    "output": {"message": {"role": "assistant", "content": [
        {"text": "Let me look."},
        {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather",
                     "input": {"city": "Seattle"}}}]}},
    "stopReason": "tool_use",
    "usage": {"inputTokens": 30, "outputTokens": 10, "totalTokens": 40},
    "metrics": {"latencyMs": 210},
}  # fmt: skip
EVENTSTREAM = b"application/vnd.amazon.eventstream"


def bcall(action: str, body: object, model: str = PATH_MODEL) -> bytes:
    return post(HOST, f"/model/{model}/{action}", body, (b"Authorization", SIGV4),
                (b"X-Amz-Date", b"20250115T120000Z"))  # fmt: skip


def frame(event_type: str, payload: object, message_type: str = "event") -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": message_type}
    if message_type == "exception":
        headers = {
            ":exception-type": event_type,
            ":content-type": "application/json",
            ":message-type": message_type,
        }
    return encode_frame(headers, orjson.dumps(payload))


def test_converse_tool_use_exact() -> None:
    events = events_of(exchange(bcall("converse", CONVERSE),
                                json_response(CONVERSE_RESPONSE, 200, b"OK", (b"x-amzn-RequestId", b"a1b2-c3"))))  # fmt: skip
    rq, rs, tc = events
    assert b"f" * 64 not in orjson.dumps([e.data for e in events])
    assert rq.data["provider"] == {"id": "aws-bedrock", "name": "AWS Bedrock",
                                   "endpoint": f"https://{HOST}/model/{PATH_MODEL}/converse"}  # fmt: skip
    assert rq.data["model"] == {"id": MODEL, "family": "claude-3.7"}
    assert rq.data["auth"] == {"type": "aws_sigv4", "key_prefix": "AKIA"}
    assert rq.data["messages"] == [
        {"role": "system", "content": "Be brief.", "content_length": 9},
        {
            "role": "user",
            "content": "What's the weather in Seattle?",
            "content_length": 30,
            "content_parts": ["text"],
        },
    ]
    assert rq.data["parameters"] == {"max_tokens": 512, "temperature": 0.5, "top_p": 0.9}
    assert rq.data["tools"] == [{"name": "get_weather", "type": "function"}]
    assert rs.data["request_id"] == "a1b2-c3"
    assert rs.data["choices"][0]["finish_reason"] == "tool_calls"
    assert rs.data["choices"][0]["message"]["content"] == "Let me look."
    assert rs.data["usage"] == {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}
    assert tc.data["call_id"] == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
    assert tc.data["arguments"] == {"city": "Seattle"}


def test_converse_tool_result_next_turn() -> None:
    follow = {**CONVERSE, "messages": [
        *CONVERSE["messages"], CONVERSE_RESPONSE["output"]["message"],
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                                                     "content": [{"json": {"temp": 12}}], "status": "error"}}]},
    ]}  # fmt: skip
    done = {**CONVERSE_RESPONSE, "stopReason": "end_turn",
            "output": {"message": {"role": "assistant", "content": [{"text": "12C"}]}}}  # fmt: skip
    events = conversation(exchange(bcall("converse", CONVERSE), json_response(CONVERSE_RESPONSE)),
                          exchange(bcall("converse", follow), json_response(done)))  # fmt: skip
    result = one(events, "agent.tool_result")
    assert result.data["call_id"] == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
    assert result.data["success"] is False  # status "error"
    assert result.data["result_length"] == len('{"temp":12}')


STREAM_FRAMES = [
    frame("messageStart", {"role": "assistant", "p": "abcdefgh"}),
    frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}, "p": "ab"}),
    frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " there"}, "p": "abcd"}),
    frame("contentBlockStop", {"contentBlockIndex": 0, "p": "a"}),
    frame("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {
        "toolUseId": "tooluse_1", "name": "get_weather"}}, "p": "abc"}),
    frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
    frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Oslo\"}"}}}),
    frame("contentBlockStop", {"contentBlockIndex": 1}),
    frame("messageStop", {"stopReason": "tool_use", "p": "abcdef"}),
    frame("metadata", {"usage": {"inputTokens": 25, "outputTokens": 12, "totalTokens": 37},
                       "metrics": {"latencyMs": 400}, "p": "ab"}),
]  # fmt: skip


def test_converse_stream_event_frames_split_at_every_boundary() -> None:
    body = b"".join(STREAM_FRAMES)
    steps = exchange(
        bcall("converse-stream", CONVERSE), streamed_response([body[:100], body[100:]], EVENTSTREAM)
    )
    events = assert_split_invariant(steps)
    assert [e.event_type for e in events] == [
        "ai.request",
        *["ai.streaming_chunk"] * 5,
        "ai.response",
        "agent.tool_call",
    ]
    assert events[0].data["streaming"] is True
    chunks = by_type(events, "ai.streaming_chunk")
    offsets = [c.data["body_offset"] for c in chunks]
    assert offsets == sorted(offsets) and offsets[0] == len(STREAM_FRAMES[0])
    assert [
        (c.data["delta"], c.data["delta_type"], c.data["finish_reason"], c.data["timing"]) for c in chunks
    ] == [
        ("Hello", "text", None, "response_end"),
        (" there", "text", None, "response_end"),
        ('{"city":', "tool_call", None, "response_end"),
        ('"Oslo"}', "tool_call", None, "response_end"),
        ("", "none", "tool_calls", "response_end"),
    ]
    rs = one(events, "ai.response")
    assert rs.data["streaming"] is True
    assert rs.data["choices"][0]["message"]["content"] == "Hello there"
    assert rs.data["choices"][0]["message"]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }
    assert rs.data["usage"] == {"prompt_tokens": 25, "completion_tokens": 12, "total_tokens": 37}
    assert rs.data["chunk_count"] == 10
    assert rs.confidence == Confidence()
    assert one(events, "agent.tool_call").data["call_id"] == "tooluse_1"


def test_exception_frame_and_http_throttling() -> None:
    body = b"".join(STREAM_FRAMES[:2]) + frame(
        "throttlingException", {"message": "Too many tokens"}, "exception"
    )
    rs = one(events_of(exchange(bcall("converse-stream", CONVERSE), streamed_response([body], EVENTSTREAM))),
             "ai.response")  # fmt: skip
    assert rs.data["success"] is False
    assert rs.data["error"] == {
        "type": "throttlingException",
        "message": "Too many tokens",
        "rate_limited": True,
    }
    resp = json_response({"message": "Too many requests, please wait before trying again."}, 429,
                         b"Too Many Requests",
                         (b"x-amzn-ErrorType", b"ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"))  # fmt: skip
    rs = one(events_of(exchange(bcall("converse", CONVERSE), resp)), "ai.response")
    assert rs.data["error"] == {"message": "Too many requests, please wait before trying again.",
                                "type": "ThrottlingException", "rate_limited": True}  # fmt: skip


ANTHROPIC_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 256,
                  "messages": [{"role": "user", "content": "Hi"}]}  # fmt: skip


def chunk_frame(obj: object) -> bytes:
    return frame("chunk", {"bytes": base64.b64encode(orjson.dumps(obj)).decode(), "p": "abc"})


def test_invoke_model_anthropic_and_its_stream() -> None:
    resp = {"id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude-3-7-sonnet-20250219",
            "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 8, "output_tokens": 3}}  # fmt: skip
    rq, rs = events_of(exchange(bcall("invoke", ANTHROPIC_BODY), json_response(resp)))
    assert rq.data["model"]["id"] == MODEL  # from the path: the body has none
    assert rq.data["messages"] == [{"role": "user", "content": "Hi", "content_length": 2}]
    assert rs.data["choices"][0]["message"]["content"] == "Hello!"
    assert rs.data["usage"] == {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}
    frames = [
        chunk_frame({"type": "message_start", "message": {"id": "msg_bdrk_02", "model": "claude-3-7-sonnet-20250219",
                     "role": "assistant", "content": [], "usage": {"input_tokens": 8, "output_tokens": 1}}}),
        chunk_frame({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        chunk_frame({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        chunk_frame({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " you"}}),
        chunk_frame({"type": "content_block_stop", "index": 0}),
        chunk_frame({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}}),
        chunk_frame({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 8, "outputTokenCount": 4, "invocationLatency": 500, "firstByteLatency": 200}}),
    ]  # fmt: skip
    events = assert_split_invariant(exchange(bcall("invoke-with-response-stream", ANTHROPIC_BODY),
                                             streamed_response([b"".join(frames)], EVENTSTREAM)))  # fmt: skip
    assert events[0].data["streaming"] is True
    assert [c.data["delta"] for c in by_type(events, "ai.streaming_chunk")] == ["Hi", " you", ""]
    rs = one(events, "ai.response")
    assert rs.data["request_id"] == "msg_bdrk_02"
    assert rs.data["choices"][0]["message"]["content"] == "Hi you"
    assert rs.data["usage"] == {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12}
    assert rs.confidence == Confidence()


def test_invoke_model_native_bodies() -> None:
    llama = {"prompt": "<|begin_of_text|>Hi", "max_gen_len": 64, "temperature": 0.2}
    resp = {
        "generation": "Hello.",
        "prompt_token_count": 5,
        "generation_token_count": 2,
        "stop_reason": "stop",
    }
    rq, rs = events_of(
        exchange(bcall("invoke", llama, "meta.llama3-1-70b-instruct-v1%3A0"), json_response(resp))
    )
    assert rq.data["messages"] == [{"role": "user", "content": "<|begin_of_text|>Hi", "content_length": 19}]
    assert rq.data["parameters"] == {"max_tokens": 64, "temperature": 0.2}
    assert rs.data["choices"][0]["message"]["content"] == "Hello."
    assert rs.data["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    titan = {"inputText": "hello world", "dimensions": 512}
    events = events_of(exchange(bcall("invoke", titan, "amazon.titan-embed-text-v2%3A0"),
                                json_response({"embedding": [0.5] * 512, "inputTextTokenCount": 3})))  # fmt: skip
    rq, rs, emb = events
    assert rq.data["request_type"] == "embedding"
    assert (emb.data["input_count"], emb.data["dimensions"], emb.data["tokens"]) == (1, 512, 3)
    # token counts only in headers (InvokeModel)
    mistral = {"prompt": "<s>[INST] Hi [/INST]", "max_tokens": 10}
    resp = json_response({"outputs": [{"text": "Hey", "stop_reason": "stop"}]}, 200, b"OK",
                         (b"X-Amzn-Bedrock-Input-Token-Count", b"9"), (b"X-Amzn-Bedrock-Output-Token-Count", b"2"))  # fmt: skip
    rs = one(
        events_of(exchange(bcall("invoke", mistral, "mistral.mistral-7b-instruct-v0%3A2"), resp)),
        "ai.response",
    )
    assert rs.data["usage"] == {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    assert rs.data["choices"][0]["message"]["content"] == "Hey"


def test_eventstream_decoder_frames_headers_and_crcs() -> None:
    data = encode_frame({":event-type": "chunk", ":message-type": "event"}, b'{"a":1}')
    (total, headers_len, prelude_crc) = struct.unpack(">III", data[:12])
    # per header: name length, name, value type, value length, value
    assert headers_len == (1 + 11 + 1 + 2 + 5) + (1 + 13 + 1 + 2 + 5)
    assert total == len(data) and prelude_crc == zlib.crc32(data[:8])
    assert struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4])
    assert looks_like_eventstream(data) and not looks_like_eventstream(b'{"message": "x"}')
    result = decode_frames(data + data)
    assert [(f.offset, f.event_type, f.payload) for f in result.frames] == [(0, "chunk", b'{"a":1}'),
                                                                           (len(data), "chunk", b'{"a":1}')]  # fmt: skip
    # every header value type
    block = (b"\x02:b\x00" + b"\x02:c\x01" + b"\x02:d\x02\x05" + b"\x02:e\x03\x00\x06" + b"\x02:f\x04\x00\x00\x00\x07"
             + b"\x02:g\x05" + (8).to_bytes(8, "big") + b"\x02:h\x06\x00\x02hi" + b"\x02:i\x08" + (9).to_bytes(8, "big")
             + b"\x02:j\x09" + b"u" * 16)  # fmt: skip
    prelude = struct.pack(">II", 12 + len(block) + 4, len(block))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + block
    message += struct.pack(">I", zlib.crc32(message))
    (only,) = decode_frames(message).frames
    assert only.headers == {":b": True, ":c": False, ":d": 5, ":e": 6, ":f": 7, ":g": 8, ":h": b"hi", ":i": 9,
                            ":j": b"u" * 16}  # fmt: skip
    # a corrupted payload byte: that frame is dropped, the next one still read
    bad = bytearray(data)
    bad[-6] ^= 0xFF
    result = decode_frames(bytes(bad) + data)
    assert [f.offset for f in result.frames] == [len(data)] and result.bad_frames == 1
    # garbage, a cut frame, an unknown header type: no exception
    assert decode_frames(b"garbage" + data[:20]).frames == []
    assert decode_frames(data[:-3]).trailing_bytes == len(data) - 3
    weird = prelude[:0] + struct.pack(">II", 12 + 3 + 4, 3)
    weird += struct.pack(">I", zlib.crc32(weird)) + b"\x01x\x63"
    weird += struct.pack(">I", zlib.crc32(weird))
    assert decode_frames(weird).bad_frames == 1


def test_garbage_stream_body_is_reported_not_raised() -> None:
    body = b"".join(STREAM_FRAMES[:3])
    start = len(STREAM_FRAMES[0]) + 40  # inside the "Hello" frame
    broken = body[:start] + b"\x00" * 10 + body[start + 10 :]
    from oisp_sensor.decode.providers.bedrock import BedrockConverseParser

    parsed = BedrockConverseParser(streaming=True).parse_response(broken)
    assert parsed.problems == [
        "stream: no metadata event",
        f"event-stream: 1 bad frame(s), {len(STREAM_FRAMES[1])} byte(s) skipped",
    ]
    rs = one(events_of(exchange(bcall("converse-stream", CONVERSE), streamed_response([broken], EVENTSTREAM))),
             "ai.response")  # fmt: skip
    assert rs.confidence == Confidence("high", "partial", ["stream_incomplete"])
    assert rs.data["choices"][0]["message"]["content"] == " there"  # the frame after the damage
