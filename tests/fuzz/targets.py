"""Fuzz targets: one function per decoder entry point, ``target(data: bytes) -> None``.

Each target feeds arbitrary bytes through the project's real, public entry points
(the same calls the pipeline makes) and raises only when a property is broken:

* no exception escapes (the connection tracker's own safety net, which turns a decoder
  bug into a counted ``internal_errors``, is switched off here so such bugs surface);
* every decoded event serialises as the exporters serialise it (orjson);
* every exchange the tracker reported as seen is also reported done;
* decompression output stays within the body cap (no decompression bomb).

Hangs and memory are bounded by the runner (per-input time limit, RSS limit); targets
that decompress also check their own output sizes. The same functions run under
atheris (bench/fuzz_decoders.py), under hypothesis (tests/unit/test_fuzz_smoke.py) and
on saved crash inputs (tests/unit/test_fuzz_regressions.py).
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from tests.fuzz.script import decode_script

from oisp_sensor.capture.parse import MalformedRecord, parse_record
from oisp_sensor.capture.rawfile import RawFileError, read_raw
from oisp_sensor.capture.records import DataRecord, ProcessExitRecord, RawRecord, Source
from oisp_sensor.config import ConfigError, SensorConfig, load_config
from oisp_sensor.decode.ai_events import AiEventBuilder
from oisp_sensor.decode.connection import ConnectionTracker
from oisp_sensor.decode.encoding import ContentDecoder
from oisp_sensor.decode.mcp import McpTracker
from oisp_sensor.decode.mcp_stdio import McpStdio
from oisp_sensor.decode.messages import DecodeOutput, ExchangeDone, RequestSeen
from oisp_sensor.decode.pricing import Pricing
from oisp_sensor.decode.providers import (
    ANTHROPIC,
    COHERE_CHAT,
    COHERE_EMBED,
    GEMINI,
    GEMINI_EMBED,
    GEMINI_STREAM,
    GENERIC,
    OLLAMA_CHAT,
    OLLAMA_EMBED,
    OLLAMA_GENERATE,
    OPENAI_CHAT,
    OPENAI_COMPLETIONS,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSES,
    FormatParser,
    ProviderRegistry,
    bedrock,
)
from oisp_sensor.decode.sse import SseParser, split_sse_body
from oisp_sensor.enrich.process import ProcessInfo
from oisp_sensor.schema.events import SensorEvent

FUZZ_BODY_LIMIT = 256 * 1024  # body cap in the targets: small, so the cap paths are reached


class PropertyBroken(AssertionError):
    """A target's property does not hold for this input (a finding)."""


# ---- the wire: records -> connection tracker -> AI event builder ----------------------------


class StrictTracker(ConnectionTracker):
    """The real tracker without its last-resort catch: what it would count as an
    ``internal_errors`` (a decoder bug hidden from the user) propagates instead."""

    def _recover(self, conn: Any, key: Any) -> None:
        raise  # called from the tracker's except block: re-raise its exception

    def _finish(self, conn: Any, out: list[DecodeOutput]) -> None:
        conn.out = out
        conn.close()


_REGISTRY = ProviderRegistry.default()
_PRICING = Pricing(reference_time=None, local_providers=frozenset(p.id for p in _REGISTRY if p.default_ports))


def new_builder() -> AiEventBuilder:
    counter = itertools.count(1)
    return AiEventBuilder(_REGISTRY, lambda ts: f"E{next(counter)}", pricing=_PRICING)


def _check_event(event: SensorEvent) -> None:
    try:
        orjson.dumps(event.data)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise PropertyBroken(f"{event.event_type} does not serialise: {exc}") from None


class _WireRun:
    """Feeds records, builds AI events, and checks exchange bookkeeping."""

    def __init__(self) -> None:
        self.tracker = StrictTracker(max_body_bytes=FUZZ_BODY_LIMIT)
        self.builder = new_builder()
        self.seen: set[int] = set()
        self.done: set[int] = set()

    def consume(self, outputs: list[DecodeOutput]) -> None:
        for output in outputs:
            if isinstance(output, RequestSeen):
                self.seen.add(output.exchange_id)
            elif isinstance(output, ExchangeDone):
                if output.exchange_id in self.done:
                    raise PropertyBroken(f"exchange {output.exchange_id} reported done twice")
                self.done.add(output.exchange_id)
            for event in self.builder.process(output):
                _check_event(event)

    def run(self, records: list[RawRecord]) -> None:
        tracker = self.tracker
        for record in records:
            self.consume(tracker.feed(record))
        self.consume(tracker.flush(10**15))
        missing = self.seen - self.done
        if missing:
            raise PropertyBroken(f"exchanges seen but never done: {sorted(missing)[:5]}")
        if tracker.counters.internal_errors:
            raise PropertyBroken("the tracker counted internal errors")


def wire(data: bytes) -> None:
    """HTTP/1.1, HTTP/2 (with midway joins), SSE, compressed bodies, provider formats and MCP
    over HTTP: whatever the records carry, on up to four connections of two processes."""
    _WireRun().run(decode_script(data))


# ---- SSE ---------------------------------------------------------------------------------


def sse(data: bytes) -> None:
    """The SSE parser: cut anywhere, events are the same; an event never outgrows the cap."""
    if len(data) < 2:
        return
    max_event = (16, 256, 4096, 1 << 20)[data[0] & 3]
    step = data[1] + 1
    text = data[2:].decode("utf-8", "replace")
    whole = SseParser(max_event)
    events = whole.feed(text, 1)
    cut = SseParser(max_event)
    pieces: list[Any] = []
    for start in range(0, len(text), step):
        pieces.extend(cut.feed(text[start : start + step], 1))
    for event in events + pieces:
        if len(event.data) > max_event:
            raise PropertyBroken(f"event of {len(event.data)} characters past the cap {max_event}")
    if not whole.dropped_events and not cut.dropped_events and events != pieces:
        raise PropertyBroken("events depend on how the stream was cut")
    split_sse_body(data[2:])


# ---- compressed bodies -----------------------------------------------------------------------

CODINGS = (
    ["gzip"],
    ["deflate"],
    ["br"],
    ["zstd"],
    ["gzip", "br"],
    ["zstd", "gzip"],
    ["x-gzip"],
    ["deflate", "deflate"],
)


def compressed(data: bytes) -> None:
    """Content decoders: never raise, never return more than their inflation limit per call
    (set low here, as low as the body cap, so that bombs are easy to reach)."""
    if len(data) < 2:
        return
    codings = CODINGS[data[0] % len(CODINGS)]
    step = (data[1] + 1) * 64
    body = data[2:]
    decoder = ContentDecoder(codings, max_output=FUZZ_BODY_LIMIT)
    for start in range(0, len(body), step):
        out = decoder.feed(body[start : start + step])
        if len(out) > FUZZ_BODY_LIMIT:
            raise PropertyBroken(f"{codings}: one call decoded {len(out)} bytes")
    out = decoder.finish()
    if len(out) > FUZZ_BODY_LIMIT:
        raise PropertyBroken(f"{codings}: finish decoded {len(out)} bytes")


# ---- provider formats ----------------------------------------------------------------------

PARSERS: tuple[FormatParser, ...] = (
    GENERIC,
    OPENAI_CHAT,
    OPENAI_COMPLETIONS,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSES,
    ANTHROPIC,
    GEMINI,
    GEMINI_STREAM,
    GEMINI_EMBED,
    COHERE_CHAT,
    COHERE_EMBED,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    OLLAMA_EMBED,
    *(
        bedrock.dispatch(model, path)
        for path in ("/converse", "/converse-stream", "/invoke", "/invoke-with-response-stream")
        for model in (
            "anthropic.claude-3",
            "openai.gpt-oss",
            "amazon.nova-pro",
            "meta.llama3",
            "cohere.embed",
        )
    ),
)


def _check_fields(fields: dict[str, Any], what: str) -> None:
    try:
        orjson.dumps(fields)
    except TypeError as exc:
        raise PropertyBroken(f"{what} fields do not serialise: {exc}") from None


def provider(data: bytes) -> None:
    """Every format parser on a request body, a response body and an SSE stream."""
    if len(data) < 2:
        return
    parser = PARSERS[data[0] % len(PARSERS)]
    body = data[2:]
    mode = data[1] & 3
    if mode == 0:
        req = parser.parse_request(body)
        _check_fields(req.fields, "request")
        return
    if mode == 1:
        resp = parser.parse_response(body)
    else:
        acc = parser.stream()
        for event in split_sse_body(body):
            acc.feed(event)
        resp = acc.finish() if mode == 2 else parser.parse_stream(split_sse_body(body))
    _check_fields(resp.fields, "response")


# ---- MCP over stdio ------------------------------------------------------------------------


def _process(pid: int) -> ProcessInfo:
    return ProcessInfo(pid=pid, ppid=1, name="mcp-server", cmdline=["mcp-server"], uid=1000, complete=True)


def mcp_stdio(data: bytes) -> None:
    """JSON-RPC lines on a stdio MCP server's pipes (records from the script codec)."""
    ids = itertools.count(1)
    stdio = McpStdio(McpTracker(lambda ts: f"id{next(ids)}"), _process)
    for record in decode_script(data):
        if isinstance(record, DataRecord):
            record.source = Source.STDIO
            events = stdio.feed(record)
        elif isinstance(record, ProcessExitRecord):
            events = stdio.process_exit(record.pid, record.ts_ns)
        else:
            continue
        for event in events:
            _check_event(event)


# ---- raw capture files -------------------------------------------------------------------


def rawfile(data: bytes) -> None:
    """A raw capture file: reader, record parser, tracker, builder (what decode-raw runs)."""
    try:
        _, records = read_raw(io.BytesIO(data))
        raw = list(records)
    except RawFileError:
        return
    parsed: list[RawRecord] = []
    for buf in raw:
        try:
            parsed.append(parse_record(buf))
        except MalformedRecord:
            continue
    _WireRun().run(parsed)  # the tracker ignores kinds it does not decode


# ---- configuration -------------------------------------------------------------------------

_CONFIG_DIR = Path(tempfile.mkdtemp(prefix="oisp-fuzz-config-"))
_ENV_SPLIT = b"\n\x00ENV\x00\n"


def config(data: bytes) -> None:
    """The config loader on a file's bytes (and OISP_* variables after a separator):
    a valid config or one ConfigError with a one-line message, nothing else."""
    text, _, env_part = data.partition(_ENV_SPLIT)
    path = _CONFIG_DIR / f"c{os.getpid()}.toml"
    path.write_bytes(text)
    environ: dict[str, str] = {}
    for line in env_part.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition("=")
        if sep and "\0" not in name:
            environ["OISP_" + name] = value
    try:
        result, _ = load_config(str(path), environ=environ)
    except ConfigError as exc:
        message = str(exc)
        if "\n" in message or not message:
            raise PropertyBroken(f"config error message is not one line: {message!r}") from None
        return
    if not isinstance(result, SensorConfig):
        raise PropertyBroken("load_config returned something else than a SensorConfig")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "http1": wire,
    "http2": wire,
    "connection": wire,
    "ai": wire,
    "sse": sse,
    "compressed": compressed,
    "provider": provider,
    "mcp_stdio": mcp_stdio,
    "rawfile": rawfile,
    "config": config,
}
