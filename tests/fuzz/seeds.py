"""Seed corpora for the fuzz targets, taken from the unit tests' own fixtures.

The unit tests already build realistic traffic (real h2 endpoints, every provider's
documented bodies, split and corrupted variants). Rather than copying those fixtures,
the harvester runs the unit test files in-process with the decoders' entry points
wrapped, records what each test fed them, and encodes it in each target's input format.
A few inputs no test has are added: decompression bombs, deep nesting, huge numbers.

    python -m tests.fuzz.seeds OUTDIR   # writes OUTDIR/<target>/<n>
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import brotli
import orjson
import pytest
import zstandard
from tests.fuzz import targets
from tests.fuzz.script import encode_script

from oisp_sensor.capture import parse as capture_parse
from oisp_sensor.capture.parse import DATA_HDR
from oisp_sensor.capture.rawfile import MAGIC
from oisp_sensor.capture.records import DataRecord, RawRecord
from oisp_sensor.decode.connection import ConnectionTracker
from oisp_sensor.decode.encoding import ContentDecoder
from oisp_sensor.decode.http1 import RequestParser, ResponseParser
from oisp_sensor.decode.mcp_stdio import McpStdio
from oisp_sensor.decode.messages import ExchangeDone
from oisp_sensor.decode.sse import SseParser

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "tests" / "unit"
_AI_TESTS = (
    "test_openai_chat.py",
    "test_openai_completions.py",
    "test_openai_responses.py",
    "test_anthropic_messages.py",
    "test_gemini.py",
    "test_bedrock.py",
    "test_cohere.py",
    "test_ollama.py",
    "test_mcp.py",
    "test_ai_events.py",
    "test_providers.py",
)
# which unit test files seed which wire target
WIRE_SOURCES = {
    "http1": ("test_http1.py",),
    "http2": ("test_http2.py",),
    "connection": ("test_connection.py",),
    "ai": _AI_TESTS,
}
OTHER_SOURCES = (
    "test_sse.py",
    "test_encoding.py",
    "test_mcp_stdio.py",
    "test_parse_records.py",
    "test_config.py",
)
_PER_TEST = 3  # logs kept per test (split-invariance tests make thousands of near copies)
MAX_SEED = 32 * 1024


class _Harvest:
    """What the wrapped entry points saw, by unit test file."""

    def __init__(self) -> None:
        self.current = ""
        self.per_test: dict[str, int] = {}
        self.records: dict[str, list[list[RawRecord]]] = {}
        self.sse: list[list[str]] = []
        self.codings: list[tuple[list[str], list[bytes]]] = []
        self.stdio: list[list[RawRecord]] = []
        self.raw_records: list[bytes] = []
        self.configs: list[bytes] = []
        self.parsers: list[tuple[int, list[bytes]]] = []  # (0 request / 1 response, fed chunks)

    def take(self) -> bool:
        """Whether one more log of the current test is kept."""
        count = self.per_test.get(self.current, 0)
        self.per_test[self.current] = count + 1
        return count < _PER_TEST

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.current = item.nodeid


@contextmanager
def _wrapped(h: _Harvest) -> Iterator[None]:
    saved: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, make(original))

    def tracker_init(original: Any) -> Any:
        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            log: list[RawRecord] = []
            self._fuzz_log = log
            if h.take():
                h.records.setdefault(h.current.split("::")[0].rsplit("/", 1)[-1], []).append(log)

        return init

    def tracker_feed(original: Any) -> Any:
        def feed(self: Any, record: RawRecord) -> Any:
            log = getattr(self, "_fuzz_log", None)
            if log is not None:
                log.append(record)
            return original(self, record)

        return feed

    def sse_feed(original: Any) -> Any:
        def feed(self: Any, text: str, ts_ns: int = 0) -> Any:
            log = _SSE_LOGS.setdefault(id(self), [])
            if not log:
                h.sse.append(log)
            log.append(text)
            return original(self, text, ts_ns)

        return feed

    def decoder_init(original: Any) -> Any:
        def init(self: Any, codings: Any, *args: Any, **kwargs: Any) -> None:
            original(self, codings, *args, **kwargs)
            entry: tuple[list[str], list[bytes]] = (list(codings), [])
            _DECODER_LOGS[id(self)] = entry[1]
            h.codings.append(entry)

        return init

    def decoder_feed(original: Any) -> Any:
        def feed(self: Any, data: bytes) -> Any:
            log = _DECODER_LOGS.get(id(self))
            if log is not None:
                log.append(bytes(data))
            return original(self, data)

        return feed

    def stdio_feed(original: Any) -> Any:
        def feed(self: Any, record: DataRecord) -> Any:
            log = _STDIO_LOGS.setdefault(id(self), [])
            if not log:
                h.stdio.append(log)
            log.append(record)
            return original(self, record)

        return feed

    def parse_record(original: Any) -> Any:
        def parse(buf: bytes) -> Any:
            h.raw_records.append(bytes(buf))
            return original(buf)

        return parse

    def read_text(original: Any) -> Any:
        def read(self: Path, *args: Any, **kwargs: Any) -> str:
            text = original(self, *args, **kwargs)
            if self.suffix == ".toml":
                h.configs.append(text.encode())
            return text

        return read

    def parser_init(kind: int) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            def init(self: Any, *args: Any, **kwargs: Any) -> None:
                original(self, *args, **kwargs)
                if "test_http1.py" in h.current and h.take():
                    log: list[bytes] = []
                    _PARSER_LOGS[id(self)] = log
                    h.parsers.append((kind, log))

            return init

        return make

    def parser_feed(original: Any) -> Any:
        def feed(self: Any, data: bytes, ts_ns: int) -> Any:
            log = _PARSER_LOGS.get(id(self))
            if log is not None:
                log.append(bytes(data))
            return original(self, data, ts_ns)

        return feed

    for kind, cls in enumerate((RequestParser, ResponseParser)):
        wrap(cls, "__init__", parser_init(kind))
        wrap(cls, "feed", parser_feed)
    wrap(ConnectionTracker, "__init__", tracker_init)
    wrap(ConnectionTracker, "feed", tracker_feed)
    wrap(SseParser, "feed", sse_feed)
    wrap(ContentDecoder, "__init__", decoder_init)
    wrap(ContentDecoder, "feed", decoder_feed)
    wrap(McpStdio, "feed", stdio_feed)
    wrap(capture_parse, "parse_record", parse_record)
    wrap(Path, "read_text", read_text)
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


# slotted classes cannot take attributes: their logs are kept by object id while harvesting
_SSE_LOGS: dict[int, list[str]] = {}
_DECODER_LOGS: dict[int, list[bytes]] = {}
_STDIO_LOGS: dict[int, list[RawRecord]] = {}
_PARSER_LOGS: dict[int, list[bytes]] = {}


def harvest() -> _Harvest:
    """Run the seeding unit test files once, with the entry points wrapped."""
    h = _Harvest()
    files = [str(UNIT / name) for names in WIRE_SOURCES.values() for name in names]
    files += [str(UNIT / name) for name in OTHER_SOURCES]
    files = [f for f in files if Path(f).exists()]
    with _wrapped(h):
        pytest.main(
            ["-q", "-p", "no:cacheprovider", "-x", "--no-header", "-o", "addopts=", *files], plugins=[h]
        )
    return h


# ---- inputs no unit test has -------------------------------------------------------------


def bombs() -> dict[str, bytes]:
    """Compressed bodies that inflate a thousandfold and more."""
    zeros = b"\0" * (64 << 20)
    return {
        "gzip": gzip.compress(zeros, 9),
        "deflate": zlib.compress(zeros, 9),
        "br": brotli.compress(zeros, quality=5),
        "zstd": zstandard.ZstdCompressor(level=3).compress(zeros),
    }


def _http_response(body: bytes, encoding: str, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Encoding: {encoding}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _script_exchange(request: bytes, response: bytes) -> bytes:
    out = bytearray()
    for op, data in ((0, request), (1, response)):
        for start in range(0, len(data), 0xFFFF):
            piece = data[start : start + 0xFFFF]
            out += bytes([op]) + len(piece).to_bytes(2, "big") + piece
    return bytes(out)


_CHAT = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s"
)


def _chat_request(body: bytes) -> bytes:
    return _CHAT % (len(body), body)


def hostile_json() -> list[bytes]:
    """JSON bodies built to trip parsers: nesting, huge numbers, wrong types."""
    return [
        b"[" * 5000 + b"]" * 5000,
        b'{"model":' * 2000 + b"1" + b"}" * 2000,
        b'{"model":"gpt-4o","max_tokens":1e400,"temperature":-1e308,"n":123456789012345678901234567890}',
        b'{"model":["x"],"messages":{"role":"user"},"stream":"yes","tools":7}',
        b'{"model":"gpt-4o","messages":[null,1,"x",[],{"role":5,"content":{"a":[1]}}]}',
        b'{"usage":{"prompt_tokens":1e30,"completion_tokens":-5,"total_tokens":"x"},"choices":[{"message":null}]}',
        b'{"usage":{"prompt_tokens":99999999999999999999999},"choices":"none","model":{}}',
        b'{"error":{"message":{"deep":[1,2]},"type":7},"id":[]}',
        b'{"model":"\xff\xfe","messages":[{"role":"user","content":"\xed\xa0\x80"}]}',
    ]


# ---- writing the corpora -------------------------------------------------------------------


def _raw_file(records: list[bytes]) -> bytes:
    out = bytearray(MAGIC + b'{"clock_offset_ns":0}\n')
    for rec in records:
        out += struct.pack("<I", len(rec)) + rec
    return bytes(out)


def _data_record_bytes(record: DataRecord) -> bytes:
    payload = record.data
    hdr = DATA_HDR.pack(
        1,
        0,
        record.pid,
        record.tid,
        record.uid,
        record.ts_ns,
        record.conn_id,
        record.stream_offset,
        len(payload),
        len(payload),
        int(record.direction),
        0,
        record.comm.encode()[:16],
    )
    return hdr + payload


def build(outdir: Path) -> dict[str, int]:
    """Write every target's seed corpus under outdir; returns the number of seeds per target."""
    h = harvest()
    corpora: dict[str, list[bytes]] = {name: [] for name in targets.TARGETS}
    for target, files in WIRE_SOURCES.items():
        for name in files:
            for log in h.records.get(name, []):
                if log:
                    corpora[target].append(encode_script(log))
    for kind, chunks in h.parsers:
        # a response needs a request before it for the tracker to take the client's side
        script = b"" if kind == 0 else _script_exchange(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"")
        for chunk in chunks:
            for start in range(0, len(chunk), 0xFFFF):
                piece = chunk[start : start + 0xFFFF]
                script += bytes([kind]) + len(piece).to_bytes(2, "big") + piece
        corpora["http1"].append(script)
    corpora["http1"] += corpora["connection"]
    # the connection target also gets several connections interleaved
    singles = corpora["http1"][:40] + corpora["http2"][:20]
    corpora["connection"] += [a + b for a, b in zip(singles[::2], singles[1::2], strict=False)]
    for index, chunks in enumerate(h.sse):
        text = "".join(chunks).encode()
        corpora["sse"].append(bytes([index & 3, len(chunks[0]) & 0xFF]) + text)
    for codings, pieces in h.codings:
        body = b"".join(pieces)
        match = [i for i, c in enumerate(targets.CODINGS) if c == codings]
        if match and body:
            corpora["compressed"].append(bytes([match[0], 3]) + body)
    bomb = bombs()
    for index, codings in enumerate(targets.CODINGS):
        if len(codings) == 1 and codings[0] in bomb:
            corpora["compressed"].append(bytes([index, 255]) + bomb[codings[0]])
    for encoding, body in bomb.items():
        corpora["http1"].append(
            _script_exchange(_chat_request(b'{"model":"gpt-4o"}'), _http_response(body, encoding))
        )
        corpora["ai"].append(
            _script_exchange(
                _chat_request(b'{"model":"gpt-4o","stream":true}'),
                _http_response(body, encoding, "text/event-stream"),
            )
        )
    for log in h.stdio:
        corpora["mcp_stdio"].append(encode_script(log))
    records = [encode_script(log) for logs in h.records.values() for log in logs if log][:200]
    corpora["rawfile"] += [_raw_file([rec]) for rec in h.raw_records[:100]]
    for log in [log for logs in h.records.values() for log in logs if log][:100]:
        corpora["rawfile"].append(
            _raw_file([_data_record_bytes(r) for r in log if isinstance(r, DataRecord)])
        )
    corpora["config"] += h.configs
    corpora["config"].append(
        b"[capture]\nmax_body_mb = 8\n" + targets._ENV_SPLIT + b"CAPTURE__SSL=false\nREDACTION__MODE=full"
    )
    # provider bodies: what each parser is given by the AI tests' exchanges
    corpora["provider"] += _provider_seeds(records)
    for body in hostile_json():
        for index in range(len(targets.PARSERS)):
            corpora["provider"].append(bytes([index, index & 1]) + body)
        corpora["ai"].append(
            _script_exchange(
                _chat_request(body), b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        )
    counts: dict[str, int] = {}
    for target, seeds in corpora.items():
        folder = outdir / target
        folder.mkdir(parents=True, exist_ok=True)
        unique = {hashlib.sha1(s).hexdigest(): s for s in seeds if s and len(s) <= MAX_SEED * 4}
        for digest, seed in unique.items():
            (folder / digest).write_bytes(seed)
        counts[target] = len(unique)
    return counts


def _provider_seeds(scripts: list[bytes]) -> list[bytes]:
    """(parser, mode, body) inputs: the bodies each parser gets when the AI tests' traffic
    goes through the real builder."""
    from tests.fuzz.script import decode_script

    index_of = {id(p): i for i, p in enumerate(targets.PARSERS)}
    seen: list[tuple[int, int, bytes]] = []
    originals: dict[type, tuple[Any, Any]] = {}
    for parser in targets.PARSERS:
        cls = type(parser)
        if cls in originals:
            continue
        originals[cls] = (cls.parse_request, cls.parse_response)

        def make(kind: int, original: Any) -> Any:
            def call(self: Any, body: bytes) -> Any:
                if id(self) in index_of:
                    seen.append((index_of[id(self)], kind, bytes(body)))
                return original(self, body)

            return call

        cls.parse_request = make(0, cls.parse_request)  # type: ignore[method-assign]
        cls.parse_response = make(1, cls.parse_response)  # type: ignore[method-assign]
    streams: list[bytes] = []
    try:
        for script in scripts:
            run = targets._WireRun()
            for record in decode_script(script):
                outputs = run.tracker.feed(record)
                for out in outputs:
                    if (
                        isinstance(out, ExchangeDone)
                        and out.response is not None
                        and out.response.is_event_stream
                    ):
                        streams.append(out.response.body)
                run.consume(outputs)
    except Exception:  # a seed the harness rejects is still a seed; the fuzzer will report it
        pass
    finally:
        for cls, (req, resp) in originals.items():
            cls.parse_request = req  # type: ignore[method-assign]
            cls.parse_response = resp  # type: ignore[method-assign]
    out = [bytes([index, kind]) + body for index, kind, body in seen]
    stream_parsers = sorted({index for index, kind, _ in seen if kind == 0})
    for body in streams[:60]:
        for index in stream_parsers:
            out.append(bytes([index, 2]) + body)
    return out


def main() -> int:
    outdir = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/oisp-fuzz/seeds")
    counts = build(outdir)
    print(orjson.dumps(counts).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
