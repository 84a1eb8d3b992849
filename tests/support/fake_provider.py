"""A fast, deterministic HTTPS fake of the AI providers' HTTP APIs, for end-to-end tests.

Why: the sensor decodes real AI traffic captured from OpenSSL, so tests need real clients (SDKs,
curl, Node) doing real TLS against something that answers exactly like the providers do, offline,
with answers a test can predict byte for byte. Run it inside a :class:`tests.support.netns.NetNs`
on 127.0.0.1:443 so that ``https://api.openai.com`` reaches it::

    python -m tests.support.fake_provider --host 127.0.0.1 --port 443 \\
        --cert server.pem --key server.key --ready-file /tmp/ready.json

or in-process (any port) with :func:`serve_in_thread`.

Implementation: asyncio + ``httptools`` (already a dependency of the sensor) + ``orjson``,
HTTP/1.1 with keep-alive and pipelining, ALPN ``http/1.1``. With ``--http2`` (or ``http2=True``)
ALPN offers ``h2`` first and ``http/1.1`` second; a client that picks ``h2`` is served the same
endpoints over HTTP/2 by the ``h2`` library (one stream per request, answered concurrently, SSE
as DATA frames as events come, flow control honoured); HTTP/1.1 clients see exactly the same bytes
as without the flag. Measured (2,000 keep-alive chat
completions from one client) at 0.09-0.22 ms of server process CPU per request including TLS, and
0.05-0.10 ms from parsed request to response written; so it stays out of the way of the sensor's
benchmarks. ``GET /_fake/stats`` reports the latter (``handler_seconds``).

Endpoints (any Host; OpenAI-compatible providers are matched by path suffix so Groq's
``/openai/v1/...``, OpenRouter's ``/api/v1/...``, DeepSeek's ``/chat/completions`` and Azure's
``/openai/deployments/D/...`` work too):

* ``POST .../chat/completions`` -- OpenAI Chat Completions, plain or ``"stream": true`` (SSE
  ``data: {chunk}\\n\\n`` ... ``data: [DONE]\\n\\n``; a usage-only chunk with ``"choices": []``
  before ``[DONE]`` when ``stream_options.include_usage`` is true, and ``"usage": null`` on the
  other chunks then, like OpenAI).
* ``POST .../embeddings`` -- ``float`` or ``base64`` (little-endian float32) vectors, dimension 8
  or the request's ``dimensions``; values derived from SHA-256 of the input.
* ``GET .../models`` and ``GET .../models/{id}``.
* ``POST /v1/messages`` -- Anthropic Messages, plain or streamed (``event: message_start``,
  ``content_block_start``, ``ping``, ``content_block_delta``, ``content_block_stop``,
  ``message_delta``, ``message_stop``).
* ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse`` --
  Gemini, text and function calls (``functionCall`` / ``functionResponse``); ``:embedContent``
  and ``:batchEmbedContents``.
* Mistral on ``api.mistral.ai`` (chat, streamed chat, embeddings), Cohere ``/v2/chat`` and
  ``/v2/embed``, Ollama's native ``/api/chat``, ``/api/generate``, ``/api/embed`` (NDJSON
  streams), ``/api/tags``, ``/api/version``: see :mod:`tests.support.fake_apis`. With
  ``--plain`` (no TLS) the same endpoints serve a local Ollama on ``--port 11434``.
* ``GET /_fake/health`` and ``GET /_fake/stats`` (request count, server handling time).

Deterministic content (tests may assert these exact values):

* ``words(s)`` is ``len(s.split())``. The *text* of a message is its string content, or its
  text parts (``{"type": "text", "text": ...}``, Anthropic ``tool_result`` contents, Gemini
  ``{"text": ...}`` parts) joined with a single space.
* Reply text: ``"Hello! You said: " + text(last user message)``. When the conversation ends with a
  tool result (OpenAI ``role: "tool"`` message, Anthropic ``tool_result`` block) the reply is
  ``"Tool result received: " + text(that result)``.
* Input tokens (``prompt_tokens`` / ``input_tokens`` / ``promptTokenCount``):
  ``sum(words(text(m)) for m in messages) + len(messages)``, where a system prompt (OpenAI system
  or developer message, Anthropic ``system``, Gemini ``systemInstruction``) counts as a message.
* Output tokens: ``words(reply text)`` (so ``3 + words(user text)`` for a greeting), or
  :data:`TOOL_CALL_TOKENS` (10) for an OpenAI tool call, or ``words(text) + 10`` for Anthropic's
  text-then-tool_use answer. ``max_tokens`` / ``max_completion_tokens`` smaller than the reply
  truncates it to that many words with ``finish_reason: "length"`` (Anthropic ``"max_tokens"``).
* Streaming splits the reply into one delta per word, whitespace kept in front of the word:
  ``"Hello!"``, ``" You"``, ``" said:"``, ``" <w1>"``, ...; concatenation gives the reply.
* Tools: if the request has tools and the last message is a user message (not a tool result),
  the answer calls the FIRST tool (OpenAI ``finish_reason: "tool_calls"``, Anthropic
  ``stop_reason: "tool_use"`` after a text block ``"I will call <name>."``). Arguments are built
  from the tool's JSON schema, property by property in order: ``default`` if given, else the first
  ``enum`` value, else by type ``string -> "example"``, ``integer -> 1``, ``number -> 1.5``,
  ``boolean -> true``, ``array -> []``, ``object -> {}``. OpenAI arguments are compact JSON
  (``separators=(",", ":")``); streamed in pieces of :data:`ARG_PIECE` characters.
* Embedding usage: ``prompt_tokens == total_tokens == sum(words(input))`` (token-array inputs
  count their length).

Errors: a ``model`` named ``error-NNN`` (e.g. ``error-429``, ``error-500``, ``error-401``,
``error-400``, ``error-529``) is answered with status NNN and the provider's error body
(OpenAI ``{"error": {"message", "type", "param", "code"}}``, Anthropic
``{"type": "error", "error": {"type", "message"}}``, Gemini ``{"error": {"code", "message",
"status"}}``); 429 carries ``retry-after: 1``. Note that the openai and anthropic SDKs retry 408,
409, 429 and 5xx twice by default (with back-off): tests of errors must pass ``max_retries=0`` or
they will be slow and will send the request three times. A request without credentials
(``Authorization`` / ``x-api-key`` / ``x-goog-api-key`` / ``?key=``) gets a 401.

Every response carries ``x-request-id: req_<32 hex>`` (Anthropic ones also ``request-id``).

Test-controlled behaviours, by request header:

* ``x-fake-gzip: 1`` -- gzip the response body (``Content-Encoding: gzip``); streams are
  compressed incrementally with a sync flush after each event, as a proxy would.
* ``x-fake-encoding: gzip|deflate|br|zstd`` -- the same with any of these encodings
  (HTTP/1.1; the HTTP/2 server knows gzip only).
* ``x-fake-chunked: 1`` -- ``Transfer-Encoding: chunked`` for non-streaming answers (body in
  three chunks). Streams are always chunked, as the providers' are. Over HTTP/2 (which has no
  chunked coding) the body goes in three DATA frames and has no ``content-length``.
* ``x-fake-delay-ms: N`` -- wait N ms before answering.
* ``x-fake-stream-delay-ms: N`` -- wait N ms between SSE events, so a client reads them in
  separate ``SSL_read`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import hashlib
import json
import os
import random
import re
import signal
import ssl
import string
import struct
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import brotli
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import httptools
import orjson
import zstandard

#: Output tokens reported for an OpenAI tool call answer.
TOOL_CALL_TOKENS = 10
#: Size of the pieces in which streamed tool-call arguments are sent.
ARG_PIECE = 8
#: Default embedding dimension when the request has no ``dimensions``.
EMBEDDING_DIM = 8
#: ``system_fingerprint`` sent in OpenAI chat answers.
SYSTEM_FINGERPRINT = "fp_0a1b2c3d4e"
#: Models listed by ``GET /v1/models``.
MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
#: ``created`` timestamp of listed models (fixed so answers are reproducible).
MODEL_CREATED = 1715367049

_ALNUM = string.ascii_letters + string.digits
_rng = random.Random()
_WORD_RE = re.compile(r"\s*\S+|\s+$")
_ERROR_MODEL_RE = re.compile(r"^error-(\d{3})$")
_OLLAMA_PATHS = frozenset(
    {"/api/chat", "/api/generate", "/api/embed", "/api/embeddings", "/api/tags", "/api/version"}
)


def fake_apis() -> Any:
    """The Mistral, Cohere, Ollama and Gemini-embedding emulations (`tests.support.fake_apis`).

    Imported on first use: that module builds on this one's helpers.
    """
    from tests.support import fake_apis as module

    return module


# --------------------------------------------------------------------------------------------
# Deterministic content helpers
# --------------------------------------------------------------------------------------------
def words(text: str) -> int:
    """Number of whitespace-separated words: the fake's unit of tokens."""
    return len(text.split())


def split_deltas(text: str) -> list[str]:
    """One piece per word with its leading whitespace; ``"".join(result) == text``."""
    return _WORD_RE.findall(text)


def content_text(content: Any) -> str:
    """Text of a message ``content`` in any provider's shape (string, parts, tool results)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "tool_result":
                    texts.append(content_text(part.get("content")))
        return " ".join(texts)
    return ""


def greeting(text: str) -> str:
    """The reply to a user message."""
    return f"Hello! You said: {text}"


def tool_reply(text: str) -> str:
    """The reply after a tool result was sent back."""
    return f"Tool result received: {text}"


def truncate(reply: str, limit: Any) -> tuple[str, bool]:
    """Cut ``reply`` to ``limit`` words if ``limit`` is a smaller positive int; report if cut."""
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < words(reply):
        return "".join(split_deltas(reply)[:limit]), True
    return reply, False


def example_args(schema: Any) -> dict[str, Any]:
    """Deterministic arguments for a JSON-schema ``object`` (see the module docstring)."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    out: dict[str, Any] = {}
    for name, spec in props.items():
        spec = spec if isinstance(spec, dict) else {}
        if "default" in spec:
            out[name] = spec["default"]
            continue
        if isinstance(spec.get("enum"), list) and spec["enum"]:
            out[name] = spec["enum"][0]
            continue
        kind = spec.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        out[name] = {
            "integer": 1,
            "number": 1.5,
            "boolean": True,
            "array": [],
            "object": {},
            "null": None,
        }.get(str(kind), "example")
    return out


def embedding_vector(text: str, dim: int) -> list[float]:
    """A unit-ish vector derived from SHA-256 of ``text``: same input, same vector."""
    out: list[float] = []
    counter = 0
    while len(out) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(digest), 2):
            if len(out) == dim:
                break
            (val,) = struct.unpack_from("<H", digest, i)
            out.append(round(val / 32767.5 - 1.0, 6))
        counter += 1
    return out


def _rand_id(prefix: str, n: int) -> str:
    """Provider-looking random id (``chatcmpl-...``, ``msg_...``, ``call_...``)."""
    return prefix + "".join(_rng.choices(_ALNUM, k=n))


def _request_id() -> str:
    """``req_`` + 32 hex digits, like OpenAI's ``x-request-id``."""
    return f"req_{_rng.getrandbits(128):032x}"


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------
@dataclass
class Request:
    """A parsed HTTP request (header names lower-cased; repeated headers: last one wins)."""

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    keep_alive: bool

    def header_flag(self, name: str) -> bool:
        """Whether a test-control header is set to a true-ish value."""
        return self.headers.get(name, "").strip().lower() in ("1", "true", "yes", "on")

    def encoding(self) -> str:
        """The Content-Encoding asked for by the test-control headers ("" for none)."""
        asked = self.headers.get("x-fake-encoding", "").strip().lower()
        if asked in _ENCODERS:
            return asked
        return "gzip" if self.header_flag("x-fake-gzip") else ""

    def header_ms(self, name: str) -> float:
        """A test-control header holding milliseconds, as seconds (0 if absent or invalid)."""
        try:
            return max(0.0, float(self.headers.get(name, "0"))) / 1000.0
        except ValueError:
            return 0.0


@dataclass
class Response:
    """What a handler answers: a whole ``body``, or SSE ``events`` sent as they come."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"
    events: list[bytes] | None = None


_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}

_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """RFC 7231 date, recomputed at most once a second (formatting it costs more than a request)."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _json(obj: Any) -> bytes:
    """Compact JSON like the providers send."""
    return orjson.dumps(obj)


class Stats:
    """Counters served by ``GET /_fake/stats`` (handy to check a benchmark's server cost)."""

    def __init__(self) -> None:
        """Start from zero."""
        self.requests = 0
        self.connections = 0
        self.handler_seconds = 0.0
        self.by_path: dict[str, int] = {}

    def as_dict(self) -> dict[str, Any]:
        """JSON-able snapshot."""
        return {
            "requests": self.requests,
            "connections": self.connections,
            "handler_seconds": self.handler_seconds,
            "by_path": dict(self.by_path),
        }


class _Connection(asyncio.Protocol):
    """One client connection: parse with httptools, answer requests strictly in order."""

    def __init__(self, app: FakeProvider) -> None:
        """Bind to the application; parsing state is reset at each message start."""
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.h2: _H2Connection | None = None  # set when ALPN chose h2: it handles everything

    # asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport; hand an ``h2`` connection over to :class:`_H2Connection`."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.app.stats.connections += 1
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self.h2 = _H2Connection(self.app, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop any in-flight slow answer."""
        self.closed = True
        if self.task is not None:
            self.task.cancel()
        if self.h2 is not None:
            self.h2.connection_lost()

    def data_received(self, data: bytes) -> None:
        """Feed the parser; malformed HTTP gets a 400 and the connection closed."""
        if self.h2 is not None:
            self.h2.data_received(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None and not self.closed:
                self.transport.write(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
                self.transport.close()
            self.closed = True

    # httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        """Reset per-request state."""
        self._url = b""
        self._headers = {}
        self._body = []

    def on_url(self, url: bytes) -> None:
        """Accumulate the request target (it may arrive in pieces)."""
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """Store a header, name lower-cased."""
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        """Honour ``Expect: 100-continue`` (curl sends it for large bodies)."""
        if self._headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        """Accumulate the body."""
        self._body.append(body)

    def on_message_complete(self) -> None:
        """Queue the request and answer it now unless an earlier slow answer is in flight."""
        target = self._url.decode("latin-1")
        parts = urlsplit(target)
        body = b"".join(self._body)
        if self._headers.get("content-encoding", "").lower() == "gzip" and body:
            with contextlib.suppress(OSError, EOFError, zlib.error):
                body = gzip.decompress(body)
        self.pending.append(
            Request(
                method=self.parser.get_method().decode("latin-1"),
                target=target,
                path=parts.path,
                query=parse_qs(parts.query),
                headers=self._headers,
                body=body,
                keep_alive=self.parser.should_keep_alive(),
            )
        )
        if self.task is None:
            self._drain()

    # answering -----------------------------------------------------------------------------
    def _drain(self) -> None:
        """Answer queued requests; hand over to a task at the first one that must wait."""
        while self.pending and not self.closed:
            req = self.pending.popleft()
            t0 = time.perf_counter()
            resp = self.app.handle(req)
            if req.header_ms("x-fake-delay-ms") or (
                resp.events is not None and req.header_ms("x-fake-stream-delay-ms")
            ):
                self.task = self.loop.create_task(self._answer_slowly(req, resp))
                return
            self._write_all(req, resp)
            self.app.stats.handler_seconds += time.perf_counter() - t0

    async def _answer_slowly(self, req: Request, resp: Response) -> None:
        """Answer after ``x-fake-delay-ms``, spacing events by ``x-fake-stream-delay-ms``."""
        try:
            delay = req.header_ms("x-fake-delay-ms")
            if delay:
                await asyncio.sleep(delay)
            gap = req.header_ms("x-fake-stream-delay-ms")
            if resp.events is None or not gap:
                if not self.closed:
                    self._write_all(req, resp)
            else:
                enc = _StreamEncoder(req.encoding())
                self._write(self._head(req, resp, streaming=True, encoding=enc.encoding))
                for i, event in enumerate(resp.events):
                    if i:
                        await asyncio.sleep(gap)
                    if self.closed:
                        return
                    self._write(enc.chunk(event))
                self._write(enc.finish())
                self._after_response(req)
        except asyncio.CancelledError:
            return
        finally:
            self.task = None
        if not self.closed:
            self._drain()

    def _write(self, data: bytes) -> None:
        """Write unless the client went away."""
        if self.transport is not None and not self.closed and data:
            self.transport.write(data)

    def _head(
        self, req: Request, resp: Response, *, streaming: bool, encoding: str, length: int = 0
    ) -> bytes:
        """Status line and headers; ``length`` is used unless the body is chunked (``streaming``)."""
        lines = [
            f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}",
            f"date: {_http_date()}",
            f"content-type: {resp.content_type}",
        ]
        if streaming:
            lines.append("transfer-encoding: chunked")
        else:
            lines.append(f"content-length: {length}")
        lines.append("connection: keep-alive" if req.keep_alive else "connection: close")
        if encoding:
            lines.append(f"content-encoding: {encoding}")
        if resp.events is not None:
            lines.append("cache-control: no-cache")
        lines.extend(f"{k}: {v}" for k, v in resp.headers)
        lines.append("server: oisp-fake-provider")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write_all(self, req: Request, resp: Response) -> None:
        """Send a complete answer in one write (events too, when no pacing was asked)."""
        encoding = req.encoding()
        if resp.events is not None:
            enc = _StreamEncoder(encoding)
            out = [self._head(req, resp, streaming=True, encoding=encoding)]
            out.extend(enc.chunk(event) for event in resp.events)
            out.append(enc.finish())
            self._write(b"".join(out))
        else:
            body = _ENCODERS[encoding]().whole(resp.body) if encoding else resp.body
            if req.header_flag("x-fake-chunked"):
                third = max(1, -(-len(body) // 3))
                pieces = [body[i : i + third] for i in range(0, len(body), third)]
                out = [self._head(req, resp, streaming=True, encoding=encoding)]
                out.extend(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
                out.append(b"0\r\n\r\n")
                self._write(b"".join(out))
            else:
                self._write(
                    self._head(req, resp, streaming=False, encoding=encoding, length=len(body)) + body
                )
        self._after_response(req)

    def _after_response(self, req: Request) -> None:
        """Close the connection if the client asked for it (``Connection: close`` / HTTP/1.0)."""
        if not req.keep_alive and self.transport is not None:
            self.closed = True
            self.transport.close()


class _Compressor:
    """An incremental compressor for one Content-Encoding: `part` compresses and flushes
    (so the client can decode what it has so far, as a proxy's streamed answer allows),
    `end` finishes the stream, `whole` compresses a complete body."""

    def part(self, data: bytes) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        raise NotImplementedError

    def whole(self, data: bytes) -> bytes:
        return self.part(data) + self.end()


class _Zlib(_Compressor):
    def __init__(self, wbits: int) -> None:
        self._z = zlib.compressobj(6, zlib.DEFLATED, wbits)

    def part(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def end(self) -> bytes:
        return self._z.flush()


class _Brotli(_Compressor):
    def __init__(self) -> None:
        self._c = brotli.Compressor()

    def part(self, data: bytes) -> bytes:
        return self._c.process(data) + self._c.flush()

    def end(self) -> bytes:
        return self._c.finish()


class _Zstd(_Compressor):
    def __init__(self) -> None:
        self._c = zstandard.ZstdCompressor().compressobj()

    def part(self, data: bytes) -> bytes:
        return self._c.compress(data) + self._c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def end(self) -> bytes:
        return self._c.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


_ENCODERS: dict[str, Callable[[], _Compressor]] = {
    "gzip": lambda: _Zlib(31),
    "deflate": lambda: _Zlib(15),  # HTTP's "deflate" is the zlib format
    "br": _Brotli,
    "zstd": _Zstd,
}


class _StreamEncoder:
    """Turns SSE events into HTTP chunks, optionally compressed with a flush after each."""

    def __init__(self, encoding: str) -> None:
        """Set up the compressor for `encoding` ("" for none)."""
        self.encoding = encoding
        self._z = _ENCODERS[encoding]() if encoding else None

    @staticmethod
    def _frame(data: bytes) -> bytes:
        """One HTTP/1.1 chunk (empty data gives nothing: an empty chunk would end the body)."""
        return b"%x\r\n%s\r\n" % (len(data), data) if data else b""

    def chunk(self, event: bytes) -> bytes:
        """Encode one event."""
        if self._z is not None:
            event = self._z.part(event)
        return self._frame(event)

    def finish(self) -> bytes:
        """The compressed stream's end if any, then the terminating zero-length chunk."""
        tail = self._frame(self._z.end()) if self._z is not None else b""
        return tail + b"0\r\n\r\n"


class _H2Connection:
    """One HTTP/2 connection, served with the ``h2`` library (ALPN ``h2`` only).

    Why its own class: HTTP/2 multiplexes, so requests are answered per stream and
    concurrently, never in connection order, and every write must respect flow control.
    Bodies wait in a per-stream queue that is pumped whenever a window opens.
    """

    def __init__(self, app: FakeProvider, transport: asyncio.Transport) -> None:
        """Start the connection: send our SETTINGS (the server preface)."""
        self.app = app
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.closed = False
        self.heads: dict[int, list[tuple[str, str]]] = {}
        self.bodies: dict[int, list[bytes]] = {}
        self.outgoing: dict[int, deque[tuple[bytes, bool]]] = {}  # (data, end_stream) to send
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.conn.initiate_connection()
        self._flush()

    # input -----------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        """Feed h2; act on its events; a protocol error ends the connection (h2 sent GOAWAY)."""
        if self.closed:
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()
            self.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self.heads[event.stream_id] = [(str(k), str(v)) for k, v in event.headers or []]
                self.bodies[event.stream_id] = []
            elif isinstance(event, h2.events.DataReceived):
                if event.stream_id in self.bodies and event.data:
                    self.bodies[event.stream_id].append(event.data)
                if event.flow_controlled_length:  # read at once: open the windows again
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._request_complete(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._forget(event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated):
                for sid in [event.stream_id] if event.stream_id else list(self.outgoing):
                    self._pump(sid)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.close()
                return
        self._flush()

    def connection_lost(self) -> None:
        """The client went away: stop every slow answer."""
        self.closed = True
        for task in list(self.tasks.values()):
            task.cancel()

    def close(self) -> None:
        """Close the transport (after what is queued has been written)."""
        self.closed = True
        self.transport.close()

    # requests --------------------------------------------------------------------------------
    def _request_complete(self, sid: int) -> None:
        """A whole request arrived on ``sid``: parse it like HTTP/1.1 does and answer it."""
        head = self.heads.pop(sid, None)
        body = b"".join(self.bodies.pop(sid, []))
        if head is None:
            return
        pseudo = {name: value for name, value in head if name.startswith(":")}
        headers = {name: value for name, value in head if not name.startswith(":")}
        if ":authority" in pseudo:
            headers.setdefault("host", pseudo[":authority"])
        if headers.get("content-encoding", "").lower() == "gzip" and body:
            with contextlib.suppress(OSError, EOFError, zlib.error):
                body = gzip.decompress(body)
        target = pseudo.get(":path", "/")
        parts = urlsplit(target)
        req = Request(
            method=pseudo.get(":method", "GET"),
            target=target,
            path=parts.path,
            query=parse_qs(parts.query),
            headers=headers,
            body=body,
            keep_alive=True,
        )
        t0 = time.perf_counter()
        resp = self.app.handle(req)
        if req.header_ms("x-fake-delay-ms") or (
            resp.events is not None and req.header_ms("x-fake-stream-delay-ms")
        ):
            self.tasks[sid] = self.loop.create_task(self._answer_slowly(sid, req, resp))
            return
        self._answer(sid, req, resp)
        self.app.stats.handler_seconds += time.perf_counter() - t0

    def _head(self, resp: Response, *, gzipped: bool, length: int | None) -> list[tuple[str, str]]:
        """The response header list (HTTP/1.1's, less the hop-by-hop fields h2 forbids)."""
        headers = [
            (":status", str(resp.status)),
            ("date", _http_date()),
            ("content-type", resp.content_type),
        ]
        if length is not None:
            headers.append(("content-length", str(length)))
        if gzipped:
            headers.append(("content-encoding", "gzip"))
        if resp.events is not None:
            headers.append(("cache-control", "no-cache"))
        headers.extend((k.lower(), v) for k, v in resp.headers)
        headers.append(("server", "oisp-fake-provider"))
        return headers

    def _answer(self, sid: int, req: Request, resp: Response) -> None:
        """Send a whole answer now (events too, when no pacing was asked)."""
        gzipped = req.header_flag("x-fake-gzip")
        if resp.events is not None:
            z = zlib.compressobj(6, zlib.DEFLATED, 31) if gzipped else None
            self._send_head(sid, self._head(resp, gzipped=gzipped, length=None))
            for event in resp.events:
                self._send(sid, z.compress(event) + z.flush(zlib.Z_SYNC_FLUSH) if z else event, False)
            self._send(sid, z.flush() if z else b"", True)
            return
        body = gzip.compress(resp.body, compresslevel=6, mtime=0) if gzipped else resp.body
        if req.header_flag("x-fake-chunked"):
            self._send_head(sid, self._head(resp, gzipped=gzipped, length=None))
            third = max(1, -(-len(body) // 3))
            pieces = [body[i : i + third] for i in range(0, len(body), third)] or [b""]
            for index, piece in enumerate(pieces):
                self._send(sid, piece, index == len(pieces) - 1)
            return
        self._send_head(sid, self._head(resp, gzipped=gzipped, length=len(body)))
        self._send(sid, body, True)

    async def _answer_slowly(self, sid: int, req: Request, resp: Response) -> None:
        """Answer after ``x-fake-delay-ms``, spacing events by ``x-fake-stream-delay-ms``."""
        try:
            delay = req.header_ms("x-fake-delay-ms")
            if delay:
                await asyncio.sleep(delay)
            gap = req.header_ms("x-fake-stream-delay-ms")
            if self.closed:
                return
            if resp.events is None or not gap:
                self._answer(sid, req, resp)
                self._flush()
                return
            gzipped = req.header_flag("x-fake-gzip")
            z = zlib.compressobj(6, zlib.DEFLATED, 31) if gzipped else None
            self._send_head(sid, self._head(resp, gzipped=gzipped, length=None))
            for index, event in enumerate(resp.events):
                if index:
                    await asyncio.sleep(gap)
                if self.closed or sid not in self.outgoing:
                    return
                self._send(sid, z.compress(event) + z.flush(zlib.Z_SYNC_FLUSH) if z else event, False)
                self._flush()
            self._send(sid, z.flush() if z else b"", True)
            self._flush()
        except asyncio.CancelledError:
            return
        finally:
            self.tasks.pop(sid, None)

    # output ------------------------------------------------------------------------------------
    def _send_head(self, sid: int, headers: list[tuple[str, str]]) -> None:
        if self.closed:
            return
        try:
            self.conn.send_headers(sid, headers)
        except h2.exceptions.StreamClosedError:
            return
        self.outgoing[sid] = deque()

    def _send(self, sid: int, data: bytes, end: bool) -> None:
        """Queue body bytes (``end``: the last) and send what the windows allow."""
        queue = self.outgoing.get(sid)
        if queue is None:
            return
        queue.append((data, end))
        self._pump(sid)

    def _pump(self, sid: int) -> None:
        """Send queued DATA of ``sid`` within the flow-control windows and frame size."""
        queue = self.outgoing.get(sid)
        conn = self.conn
        try:
            while queue:
                data, end = queue[0]
                if not data:
                    queue.popleft()
                    if end:
                        conn.end_stream(sid)
                        self.outgoing.pop(sid, None)
                        return
                    continue
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if room <= 0:
                    return  # resumed by WindowUpdated
                chunk = data[:room]
                rest = data[room:]
                last = end and not rest
                conn.send_data(sid, chunk, end_stream=last)
                if rest:
                    queue[0] = (rest, end)
                else:
                    queue.popleft()
                if last:
                    self.outgoing.pop(sid, None)
                    return
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._forget(sid)

    def _forget(self, sid: int) -> None:
        """The stream is gone (reset by the client): drop what it still had to send."""
        self.outgoing.pop(sid, None)
        self.heads.pop(sid, None)
        self.bodies.pop(sid, None)
        task = self.tasks.pop(sid, None)
        if task is not None:
            task.cancel()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)


# --------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------
_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", "invalid_value", "Invalid value for 'model': this model triggers a 400."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-proj-****. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country not supported."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Limit: 3, Used: 3, Requested: 1. Please try again in 1s.",
    ),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request: this model triggers a 400."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "An unexpected error has occurred internal to Anthropic's systems."),
    529: ("overloaded_error", "Anthropic's API is temporarily overloaded."),
}
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class _BadRequest(Exception):
    """A client error to report in the provider's error format with status 400."""


class FakeProvider:
    """The request router and the providers' emulations. Stateless apart from :class:`Stats`."""

    def __init__(self) -> None:
        """Create with fresh statistics."""
        self.stats = Stats()

    # dispatch --------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """Route ``req`` to an emulation; never raises (errors become HTTP errors)."""
        self.stats.requests += 1
        path = req.path.rstrip("/") or "/"
        self.stats.by_path[path] = self.stats.by_path.get(path, 0) + 1
        try:
            if path.startswith("/_fake/"):
                return self._control(req, path)
            if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path):
                return self._gemini(req, path)
            if path in _OLLAMA_PATHS:
                return fake_apis().ollama(req, path)
            if path in ("/v2/chat", "/v2/embed"):
                return self._with_request_id(fake_apis().cohere(req, path))
            host = req.headers.get("host", "").split(":", 1)[0].lower()
            if host == "api.mistral.ai" and (
                path.endswith("/chat/completions") or path.endswith("/embeddings")
            ):
                return self._with_request_id(fake_apis().mistral(req, path))
            if path == "/v1/messages":
                rid = _rand_id("req_011", 21)
                return self._with_request_id(self._anthropic(req, rid), rid, anthropic=True)
            if path.endswith("/chat/completions"):
                return self._with_request_id(self._openai_chat(req))
            if path.endswith("/embeddings"):
                return self._with_request_id(self._openai_embeddings(req))
            if req.method == "GET" and (path.endswith("/models") or "/models/" in path):
                return self._with_request_id(self._openai_models(path))
            return self._with_request_id(
                self._openai_error(
                    404, f"Invalid URL ({req.method} {req.path})", "invalid_request_error", None
                )
            )
        except Exception as exc:  # the fake must answer, whatever a test sends it
            return self._openai_error(500, f"fake provider bug: {exc!r}", "server_error", None)

    @staticmethod
    def _with_request_id(resp: Response, rid: str | None = None, anthropic: bool = False) -> Response:
        """Add ``x-request-id`` (and Anthropic's ``request-id``, same value as in error bodies)."""
        rid = rid or _request_id()
        resp.headers.append(("x-request-id", rid))
        if anthropic:
            resp.headers.append(("request-id", rid))
        return resp

    def _control(self, req: Request, path: str) -> Response:
        """The fake's own endpoints: health and statistics."""
        if path == "/_fake/health":
            return Response(200, _json({"ok": True, "pid": os.getpid()}))
        if path == "/_fake/stats":
            return Response(200, _json(self.stats.as_dict()))
        return Response(404, _json({"error": "unknown control endpoint"}))

    @staticmethod
    def _parse_json(req: Request) -> dict[str, Any]:
        """The JSON object body, or :class:`_BadRequest`."""
        if req.method != "POST":
            raise _BadRequest(f"method {req.method} not allowed here, use POST")
        try:
            data = orjson.loads(req.body)
        except orjson.JSONDecodeError as exc:
            raise _BadRequest(f"We could not parse the JSON body of your request. ({exc})") from None
        if not isinstance(data, dict):
            raise _BadRequest("The request body must be a JSON object.")
        return data

    @staticmethod
    def _error_status(model: Any) -> int | None:
        """The status a magic ``error-NNN`` model name asks for."""
        if isinstance(model, str) and (m := _ERROR_MODEL_RE.match(model)):
            return int(m.group(1))
        return None

    # OpenAI ------------------------------------------------------------------------------
    @staticmethod
    def _openai_error(
        status: int, message: str, type_: str, code: str | None, param: str | None = None
    ) -> Response:
        """An error in OpenAI's format."""
        headers = [("retry-after", "1")] if status == 429 else []
        body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        return Response(status, _json(body), headers)

    def _openai_magic_error(self, status: int) -> Response:
        """The canned OpenAI error for an ``error-NNN`` model."""
        type_, code, message = _OPENAI_ERRORS.get(status, ("server_error", None, f"Fake error {status}."))
        return self._openai_error(status, message, type_, code)

    @staticmethod
    def _openai_authorized(req: Request) -> bool:
        """Whether any kind of credential was sent (the fake does not check its value)."""
        return bool(req.headers.get("authorization") or req.headers.get("api-key"))

    def _openai_preamble(self, req: Request) -> tuple[dict[str, Any] | None, Response | None]:
        """Parse and run the checks shared by OpenAI endpoints: body, credentials, magic errors."""
        try:
            data = self._parse_json(req)
        except _BadRequest as exc:
            return None, self._openai_error(400, str(exc), "invalid_request_error", None)
        if not self._openai_authorized(req):
            return None, self._openai_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )
        status = self._error_status(data.get("model"))
        if status is not None:
            return None, self._openai_magic_error(status)
        if not isinstance(data.get("model"), str):
            return None, self._openai_error(
                400, "you must provide a model parameter", "invalid_request_error", None
            )
        return data, None

    def _openai_chat(self, req: Request) -> Response:
        """``POST /v1/chat/completions``."""
        data, err = self._openai_preamble(req)
        if err is not None:
            return err
        assert data is not None
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return self._openai_error(
                400,
                "Invalid 'messages': expected a non-empty array of objects.",
                "invalid_request_error",
                "invalid_type",
                "messages",
            )
        model: str = data["model"]
        prompt_tokens = sum(words(content_text(m.get("content"))) for m in messages) + len(messages)
        last = messages[-1]
        tools = data.get("tools")
        tool_call: dict[str, Any] | None = None
        finish = "stop"
        text: str | None
        if isinstance(tools, list) and tools and last.get("role") == "user":
            fn = tools[0].get("function", {}) if isinstance(tools[0], dict) else {}
            name = str(fn.get("name") or "tool")
            args = json.dumps(example_args(fn.get("parameters")), separators=(",", ":"))
            tool_call = {
                "id": _rand_id("call_", 24),
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            text, finish, completion_tokens = None, "tool_calls", TOOL_CALL_TOKENS
        else:
            if last.get("role") == "tool":
                text = tool_reply(content_text(last.get("content")))
            else:
                user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
                text = greeting(content_text(user.get("content")))
            limit = data.get("max_completion_tokens", data.get("max_tokens"))
            text, cut = truncate(text, limit)
            finish = "length" if cut else "stop"
            completion_tokens = words(text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        cid = _rand_id("chatcmpl-", 29)
        created = int(time.time())
        if data.get("stream") is True:
            opts = data.get("stream_options")
            include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
            return self._openai_chat_stream(
                cid, created, model, text, tool_call, finish, usage, include_usage
            )
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        if tool_call is not None:
            message["tool_calls"] = [tool_call]
        body = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        return Response(200, _json(body), [("openai-processing-ms", "1"), ("openai-version", "2020-10-01")])

    @staticmethod
    def _openai_chat_stream(
        cid: str,
        created: int,
        model: str,
        text: str | None,
        tool_call: dict[str, Any] | None,
        finish: str,
        usage: dict[str, Any],
        include_usage: bool,
    ) -> Response:
        """The SSE rendering of a chat completion, OpenAI style."""

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            obj: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                obj["usage"] = None
            return b"data: " + _json(obj) + b"\n\n"

        events: list[bytes] = []
        if tool_call is not None:
            fn = tool_call["function"]
            first = {
                "index": 0,
                "id": tool_call["id"],
                "type": "function",
                "function": {"name": fn["name"], "arguments": ""},
            }
            events.append(
                chunk({"role": "assistant", "content": None, "tool_calls": [first], "refusal": None})
            )
            args: str = fn["arguments"]
            for i in range(0, len(args), ARG_PIECE):
                events.append(
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + ARG_PIECE]}}]})
                )
        else:
            events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            events.extend(chunk({"content": piece}) for piece in split_deltas(text or ""))
        events.append(chunk({}, finish))
        if include_usage:
            final = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [],
                "usage": usage,
            }
            events.append(b"data: " + _json(final) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return Response(
            200,
            headers=[("openai-processing-ms", "1"), ("openai-version", "2020-10-01")],
            content_type="text/event-stream; charset=utf-8",
            events=events,
        )

    def _openai_embeddings(self, req: Request) -> Response:
        """``POST /v1/embeddings``."""
        data, err = self._openai_preamble(req)
        if err is not None:
            return err
        assert data is not None
        raw = data.get("input")
        inputs: list[Any]
        if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw)):
            inputs = [raw]
        elif isinstance(raw, list) and raw:
            inputs = raw
        else:
            return self._openai_error(
                400, "'input' must be a non-empty string or array", "invalid_request_error", None, "input"
            )
        dim = data.get("dimensions", EMBEDDING_DIM)
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 4096:
            return self._openai_error(
                400, "Invalid 'dimensions'", "invalid_request_error", None, "dimensions"
            )
        as_base64 = data.get("encoding_format") == "base64"
        items: list[dict[str, Any]] = []
        tokens = 0
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                key, n = item, words(item)
            elif isinstance(item, list):
                key, n = " ".join(map(str, item)), len(item)
            else:
                return self._openai_error(400, "Invalid 'input' item", "invalid_request_error", None, "input")
            tokens += n
            vec = embedding_vector(key, dim)
            emb: Any = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode() if as_base64 else vec
            items.append({"object": "embedding", "index": i, "embedding": emb})
        body = {
            "object": "list",
            "data": items,
            "model": data["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Response(200, _json(body), [("openai-processing-ms", "1"), ("openai-version", "2020-10-01")])

    def _openai_models(self, path: str) -> Response:
        """``GET /v1/models`` and ``GET /v1/models/{id}``."""

        def model(mid: str) -> dict[str, Any]:
            return {"id": mid, "object": "model", "created": MODEL_CREATED, "owned_by": "system"}

        if path.endswith("/models"):
            return Response(200, _json({"object": "list", "data": [model(m) for m in MODELS]}))
        mid = path.rsplit("/models/", 1)[1]
        if mid in MODELS:
            return Response(200, _json(model(mid)))
        return self._openai_error(
            404, f"The model '{mid}' does not exist", "invalid_request_error", "model_not_found", "model"
        )

    # Anthropic ---------------------------------------------------------------------------
    @staticmethod
    def _anthropic_error(rid: str, status: int, type_: str, message: str) -> Response:
        """An error in Anthropic's format."""
        headers = [("retry-after", "1")] if status == 429 else []
        if status in (429, 500, 529):
            headers.append(("x-should-retry", "true"))
        body = {
            "type": "error",
            "error": {"type": type_, "message": message},
            "request_id": rid,
        }
        return Response(status, _json(body), headers)

    def _anthropic(self, req: Request, rid: str) -> Response:
        """``POST /v1/messages``."""
        try:
            data = self._parse_json(req)
        except _BadRequest as exc:
            return self._anthropic_error(rid, 400, "invalid_request_error", str(exc))
        if not (req.headers.get("x-api-key") or req.headers.get("authorization")):
            return self._anthropic_error(rid, 401, "authentication_error", "x-api-key header is required")
        status = self._error_status(data.get("model"))
        if status is not None:
            type_, message = _ANTHROPIC_ERRORS.get(status, ("api_error", f"Fake error {status}."))
            return self._anthropic_error(rid, status, type_, message)
        messages = data.get("messages")
        model = data.get("model")
        if not isinstance(model, str):
            return self._anthropic_error(rid, 400, "invalid_request_error", "model: Field required")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return self._anthropic_error(rid, 400, "invalid_request_error", "messages: Field required")
        system = data.get("system")
        input_tokens = sum(words(content_text(m.get("content"))) for m in messages) + len(messages)
        if system:
            input_tokens += words(content_text(system)) + 1
        last = messages[-1]
        last_content = last.get("content")
        results = (
            [b for b in last_content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if isinstance(last_content, list)
            else []
        )
        tools = data.get("tools")
        blocks: list[dict[str, Any]] = []
        if (
            isinstance(tools, list)
            and tools
            and isinstance(tools[0], dict)
            and last.get("role") == "user"
            and not results
        ):
            name = str(tools[0].get("name") or "tool")
            lead = f"I will call {name}."
            blocks.append({"type": "text", "text": lead})
            blocks.append(
                {
                    "type": "tool_use",
                    "id": _rand_id("toolu_", 24),
                    "name": name,
                    "input": example_args(tools[0].get("input_schema")),
                }
            )
            stop_reason = "tool_use"
            output_tokens = words(lead) + TOOL_CALL_TOKENS
        else:
            if results:
                text = tool_reply(" ".join(content_text(r.get("content")) for r in results))
            else:
                user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
                text = greeting(content_text(user.get("content")))
            text, cut = truncate(text, data.get("max_tokens"))
            blocks.append({"type": "text", "text": text})
            stop_reason = "max_tokens" if cut else "end_turn"
            output_tokens = words(text)
        mid = _rand_id("msg_01", 22)
        usage = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        if data.get("stream") is True:
            return self._anthropic_stream(mid, model, blocks, stop_reason, usage)
        body = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        return Response(200, _json(body))

    @staticmethod
    def _anthropic_stream(
        mid: str, model: str, blocks: list[dict[str, Any]], stop_reason: str, usage: dict[str, Any]
    ) -> Response:
        """The SSE rendering of a message, following Anthropic's documented event flow."""

        def event(name: str, obj: dict[str, Any]) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + _json(obj) + b"\n\n"

        start_usage = dict(usage, output_tokens=1)
        events = [
            event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": mid,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            )
        ]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                start: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in split_deltas(block["text"])]
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                args = json.dumps(block["input"], separators=(",", ":"))
                deltas = [{"type": "input_json_delta", "partial_json": ""}]
                deltas += [
                    {"type": "input_json_delta", "partial_json": args[i : i + ARG_PIECE]}
                    for i in range(0, len(args), ARG_PIECE)
                ]
            events.append(
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            if index == 0:
                events.append(event("ping", {"type": "ping"}))
            events.extend(
                event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                for d in deltas
            )
            events.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
        )
        events.append(event("message_stop", {"type": "message_stop"}))
        return Response(200, content_type="text/event-stream; charset=utf-8", events=events)

    # Gemini ------------------------------------------------------------------------------
    @staticmethod
    def _gemini_error(status: int, message: str) -> Response:
        """An error in Google's format."""
        body = {
            "error": {"code": status, "message": message, "status": _GEMINI_STATUS.get(status, "UNKNOWN")}
        }
        return Response(status, _json(body))

    def _gemini(self, req: Request, path: str) -> Response:
        """``POST /v1beta/models/{model}:generateContent`` / ``:streamGenerateContent`` (text only)."""
        match = re.match(
            r"^/v1(?:beta)?/models/([^:/]+):(generateContent|streamGenerateContent|embedContent|batchEmbedContents)$",
            path,
        )
        if match is None:
            return self._gemini_error(404, f"Unknown path {path}")
        model, method = match.groups()
        try:
            data = self._parse_json(req)
        except _BadRequest as exc:
            return self._gemini_error(400, str(exc))
        if not (
            req.headers.get("x-goog-api-key") or req.query.get("key") or req.headers.get("authorization")
        ):
            return self._gemini_error(401, "Method doesn't allow unregistered callers.")
        status = self._error_status(model)
        if status is not None:
            return self._gemini_error(status, f"Fake error {status}.")
        if method in ("embedContent", "batchEmbedContents"):
            return fake_apis().gemini_embed(model, method, data)
        contents = data.get("contents")
        if not isinstance(contents, list) or not contents:
            return self._gemini_error(400, "* GenerateContentRequest.contents: contents is not specified")
        prompt = sum(words(content_text(c.get("parts"))) for c in contents if isinstance(c, dict)) + len(
            contents
        )
        system = data.get("systemInstruction") or data.get("system_instruction")
        if isinstance(system, dict):
            prompt += words(content_text(system.get("parts"))) + 1
        user = next(
            (c for c in reversed(contents) if isinstance(c, dict) and c.get("role", "user") == "user"), {}
        )
        call, reply = fake_apis().gemini_turn(data, contents)
        text = reply if reply is not None else greeting(content_text(user.get("parts")))
        cfg = data.get("generationConfig")
        text, cut = truncate(text, cfg.get("maxOutputTokens") if isinstance(cfg, dict) else None)
        out_tokens = words(text)
        if call is not None:
            text, out_tokens = "", TOOL_CALL_TOKENS
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": out_tokens,
            "totalTokenCount": prompt + out_tokens,
        }
        finish = "MAX_TOKENS" if cut else "STOP"
        rid = _rand_id("", 22)

        def chunk(piece: str, last: bool) -> dict[str, Any]:
            parts = [{"functionCall": call}] if call is not None else [{"text": piece}]
            cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if last:
                cand["finishReason"] = finish
            out: dict[str, Any] = {"candidates": [cand], "modelVersion": model, "responseId": rid}
            if last:
                out["usageMetadata"] = usage
            return out

        if method == "generateContent":
            return Response(200, _json(chunk(text, True)))
        pieces = split_deltas(text) if call is None else []
        pieces = pieces or [""]
        objs = [chunk(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
        if req.query.get("alt") == ["sse"]:
            return Response(
                200,
                content_type="text/event-stream",
                events=[b"data: " + _json(o) + b"\r\n\r\n" for o in objs],
            )
        return Response(200, _json(objs))


# --------------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------------
def make_ssl_context(
    cert: str | os.PathLike[str], key: str | os.PathLike[str], *, http2: bool = False
) -> ssl.SSLContext:
    """Server context: the given chain and key; ALPN ``http/1.1``, or ``h2`` then ``http/1.1``.

    HTTP/2 is opt-in so that clients which prefer it (curl does) keep speaking HTTP/1.1 to
    the default fake, as every existing test expects.
    """
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.fspath(cert), os.fspath(key))
    ctx.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    return ctx


async def start_server(
    host: str, port: int, ssl_context: ssl.SSLContext | None, app: FakeProvider | None = None
) -> tuple[asyncio.Server, FakeProvider]:
    """Listen on ``host:port`` (port 0 picks one); ``ssl_context=None`` serves plain HTTP."""
    app = app or FakeProvider()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(app), host, port, ssl=ssl_context, reuse_address=True, backlog=512
    )
    return server, app


class ThreadedServer:
    """A fake provider running in a background thread of this process (for in-process tests).

    Attributes ``host``, ``port`` and ``app`` (its :class:`FakeProvider`, to read stats).
    """

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        """Start the event loop thread and wait until the socket listens."""
        self.host = host
        self.app = FakeProvider()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(host, port, ssl_context), daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        assert self._server is not None
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _main(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        """Thread body: run the loop until :meth:`close`."""
        asyncio.set_event_loop(self._loop)
        try:
            self._server, _ = self._loop.run_until_complete(start_server(host, port, ssl_context, self.app))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    def close(self) -> None:
        """Stop serving and join the thread."""
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextlib.contextmanager
def serve_in_thread(
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    http2: bool = False,
) -> Iterator[ThreadedServer]:
    """Run a fake provider in this process; TLS when ``cert`` and ``key`` are given (h2 if asked)."""
    ctx = make_ssl_context(cert, key, http2=http2) if cert is not None and key is not None else None
    server = ThreadedServer(host, port, ctx)
    try:
        yield server
    finally:
        server.close()


async def _serve_forever(args: argparse.Namespace) -> None:
    """CLI main: listen, write the ready file, serve until SIGTERM/SIGINT."""
    ctx = make_ssl_context(args.cert, args.key, http2=args.http2) if args.cert else None
    server, _app = await start_server(args.host, args.port, ctx)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.ready_file:
        ready = Path(args.ready_file)
        tmp = ready.with_name(ready.name + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "host": args.host, "port": port}))
        tmp.replace(ready)  # atomic: a waiter never reads a half-written file
    print(f"fake provider listening on {args.host}:{port}", file=sys.stderr, flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="HTTPS fake of the AI providers' APIs for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", help="server certificate chain (PEM); plain HTTP if omitted")
    parser.add_argument("--key", help="server private key (PEM)")
    parser.add_argument("--ready-file", help="written (atomically, JSON) once the socket listens")
    parser.add_argument("--http2", action="store_true", help="offer h2 (then http/1.1) via ALPN")
    parser.add_argument(
        "--plain", action="store_true", help="plain HTTP, no TLS (a local Ollama: --plain --port 11434)"
    )
    args = parser.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    if args.plain and args.cert:
        parser.error("--plain serves without TLS: no --cert/--key")
    asyncio.run(_serve_forever(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
