"""A short fuzzing run of every target in the normal suite (hypothesis, a few seconds each).

The long coverage-guided runs are bench/fuzz_decoders.py (atheris). Here hypothesis
mutates a handful of valid inputs per target (made with the unit tests' own helpers:
real h2 endpoints, real compressors) with byte flips, insertions, deletions, cuts and
splices, and checks the targets' properties (tests/fuzz/targets.py): no exception
escapes, every event serialises, exchanges are accounted for, decoding stays bounded.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable, Sequence

import brotli
import orjson
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz import targets
from tests.fuzz.script import encode_script
from tests.unit.helpers_ai import json_response, post, sse, streamed_response
from tests.unit.helpers_decode import R, Step, W, chunked, http_request, http_response, records_for
from tests.unit.helpers_h2 import H2Script, gzip_stream

from oisp_sensor.capture.parse import DATA_HDR
from oisp_sensor.capture.rawfile import MAGIC
from oisp_sensor.capture.records import DataRecord
from oisp_sensor.decode.providers import GEMINI_STREAM, OLLAMA_CHAT, OPENAI_CHAT

SMOKE = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """One seed, changed by up to eight random edits (libFuzzer's basic mutations)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(("flip", "insert", "delete", "cut", "splice", "byte")))
        pos = draw(st.integers(0, max(len(data), 1))) if data else 0
        if kind == "flip" and data:
            data[min(pos, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and data:
            data[min(pos, len(data) - 1)] = draw(st.sampled_from((0, 0xFF, 0x0A, 0x0D, 0x3A, 0x7B, 0x80)))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif kind == "cut":
            del data[pos:]
        elif kind == "splice":
            other = draw(st.sampled_from(seeds))
            start = draw(st.integers(0, len(other)))
            data[pos:pos] = other[start : start + draw(st.integers(1, 256))]
    return bytes(data)


def _script(steps: list[Step]) -> bytes:
    return encode_script(records_for(steps))


# ---- seeds -------------------------------------------------------------------------------------


def _http1_seeds() -> list[bytes]:
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
    gz = gzip.compress(b'{"id":"x","choices":[]}')
    return [
        _script([Step(W, http_request(b"POST", b"/v1/chat/completions", body=body)), Step(R, http_response(200, [], b"{}"))]),
        _script(
            [
                Step(W, http_request() + http_request(b"GET", b"/2")),  # pipelined
                Step(R, http_response(200, [(b"Transfer-Encoding", b"chunked")], chunked(b"ab", b"cd"), length=False)),
                Step(R, http_response(404, [], b"no")),
            ]
        ),
        _script([Step(W, http_request()), Step(R, http_response(200, [(b"Content-Encoding", b"gzip")], gz))]),
        _script([Step(W, http_request(b"HEAD")), Step(R, http_response(200, [(b"Content-Length", b"99")])), Step(None)]),
    ]  # fmt: skip


def _http2_seeds() -> list[bytes]:
    script = H2Script()
    sid = script.request(body=b'{"model":"gpt-4o","stream":true}')
    script.respond(sid, pieces=[sse({"choices": [{"delta": {"content": "hi"}}]}), b"data: [DONE]\n\n"])
    gz = H2Script()
    sid = gz.request()
    gz.respond(sid, [(b":status", b"200"), (b"content-encoding", b"gzip")], pieces=gzip_stream([b"{}", b""]))
    whole = _script(script.steps)
    midway = _script(script.steps[2:])  # the capture joined after the preface and SETTINGS
    return [whole, midway, _script(gz.steps)]


def _ai_seeds() -> list[bytes]:
    chat = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    anthropic = {
        "model": "claude-3-5-sonnet",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return [
        _script(
            [
                Step(W, post("api.openai.com", "/v1/chat/completions", chat)),
                Step(R, streamed_response([sse({"choices": [{"delta": {"content": "x"}}]}), b"data: [DONE]\n\n"])),
            ]
        ),
        _script(
            [
                Step(W, post("api.anthropic.com", "/v1/messages", anthropic)),
                Step(R, json_response({"id": "m", "content": [{"type": "text", "text": "x"}], "usage": {"input_tokens": 1}})),
            ]
        ),
        _script(
            [
                Step(W, post("localhost:11434", "/api/chat", {"model": "llama3", "messages": []})),
                Step(R, streamed_response([b'{"message":{"content":"a"},"done":false}\n', b'{"done":true}\n'], b"application/x-ndjson")),
            ]
        ),
        _script(
            [
                Step(W, post("mcp.example.com", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t"}})),
                Step(R, json_response({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})),
            ]
        ),
    ]  # fmt: skip


def _compressed_seeds() -> list[bytes]:
    text = b'data: {"choices":[{"delta":{"content":"hello"}}]}\n\n' * 20
    bodies = [
        gzip.compress(text),
        zlib.compress(text),
        brotli.compress(text),
        zstandard.ZstdCompressor().compress(text),
        brotli.compress(gzip.compress(text)),
        gzip.compress(zstandard.ZstdCompressor().compress(text)),
        gzip.compress(text),
        zlib.compress(zlib.compress(text)),
    ]
    return [bytes([index, 0]) + body for index, body in enumerate(bodies)]


def _provider_seeds() -> list[bytes]:
    chat = targets.PARSERS.index(OPENAI_CHAT)
    return [
        bytes([chat, 0]) + orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "tools": []}),
        bytes([chat, 1]) + orjson.dumps({"id": "c", "choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 1}}),
        bytes([chat, 2]) + sse({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]}),
        bytes([targets.PARSERS.index(GEMINI_STREAM), 1]) + b'[{"candidates":[{"content":{"parts":[{"text":"a"}]}}]},',
        bytes([targets.PARSERS.index(OLLAMA_CHAT), 1]) + b'{"message":{"content":"a"}}\n{"done":true,"eval_count":3}\n',
    ] + [bytes([i, i & 3]) + b'{"model":"m","messages":[{"role":"user","content":"x"}]}' for i in range(len(targets.PARSERS))]  # fmt: skip


def _mcp_stdio_seeds() -> list[bytes]:
    init = orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}) + b"\n"
    call = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "w"}}) + b"\n"
    ok = (
        orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "s"}]}})
        + b"\n"
    )
    return [_script([Step(R, init), Step(W, ok), Step(R, call[:9]), Step(R, call[9:]), Step(W, ok)])]


def _rawfile_seeds() -> list[bytes]:
    records = records_for([Step(W, http_request()), Step(R, http_response(200, [], b"ok")), Step(None)])
    out = bytearray(MAGIC + b'{"clock_offset_ns":0}\n')
    for r in records:
        if isinstance(r, DataRecord):
            rec = DATA_HDR.pack(1, 0, r.pid, r.tid, r.uid, r.ts_ns, r.conn_id, r.stream_offset, len(r.data), len(r.data), int(r.direction), 0, b"python3") + r.data  # fmt: skip
            out += struct.pack("<I", len(rec)) + rec
    return [bytes(out)]


SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "http1": _http1_seeds,
    "http2": _http2_seeds,
    "ai": _ai_seeds,
    "connection": lambda: [a + b for a in _http1_seeds()[:2] for b in _http2_seeds()[:2]],
    "sse": lambda: [b"\x03\x05" + sse({"a": 1}, "message") + b": c\r\nid: 7\rdata: x\r\n\r\n", b"\x00\x00data: " + b"y" * 40 + b"\n\n"],
    "compressed": _compressed_seeds,
    "provider": _provider_seeds,
    "mcp_stdio": _mcp_stdio_seeds,
    "rawfile": _rawfile_seeds,
    "config": lambda: [b"[capture]\nmax_body_mb = 8\ncomm = ['python*']\n[redaction]\nmode = 'safe'\n", b"[export.jsonl]\npath = 'a'" + targets._ENV_SPLIT + b"CAPTURE__SSL=false"],
}  # fmt: skip


def test_every_target_has_smoke_seeds() -> None:
    assert set(SEEDS) == set(targets.TARGETS)


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_target_holds_on_mutated_inputs(name: str) -> None:
    seeds = SEEDS[name]()
    target = targets.TARGETS[name]
    for seed in seeds:  # the seeds themselves must pass first
        target(seed)

    @SMOKE
    @given(mutated(seeds))
    def fuzz(data: bytes) -> None:
        target(data)

    fuzz()
