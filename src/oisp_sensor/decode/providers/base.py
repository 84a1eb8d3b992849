"""What an API-format parser is, and how the right one is chosen for a request.

A format parser turns one provider wire format (OpenAI chat completions, Anthropic
messages, Gemini generateContent, ...) into OISP-shaped fragments. It knows nothing
about hosts, headers, timing or event ids: the event builder adds those. That split
keeps each parser a pure function of bytes, easy to test against documented bodies,
and lets new formats plug in with one `FormatSpec` line.

Parsers never raise on bad input: they return what they could read plus problem
strings, because captured bodies are routinely cut (size limits, lost bytes, a client
that hung up).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

import orjson

from oisp_sensor.decode.messages import SseEvent

_CACHE_MAX = 4096

# How a stream chunk's time is known (ai.streaming_chunk `timing`).
TIMING_CAPTURED = "captured"  # the capture time of the record that completed the chunk
TIMING_RESPONSE_END = "response_end"  # only known once the body was complete (NDJSON, event-stream)


@dataclass(slots=True)
class ParsedRequest:
    """A request body read by a format parser.

    `fields` holds OISP `ai.request` data keys in their final shape (message_count,
    messages, system_prompt_hash, tools, tool_choice, parameters, ...); the builder
    merges them after provider/model/request_type/streaming.
    """

    model: str | None = None
    streaming: bool = False
    fields: dict[str, Any] = field(default_factory=dict)
    unparsed: bool = False  # the body could not be read as the format (bad/cut JSON)
    problems: list[str] = field(default_factory=list)
    # Set when the body, not the path, tells the kind of call (Bedrock InvokeModel of an
    # embedding model, Vertex :predict): overrides FormatSpec.request_type.
    request_type: str | None = None


@dataclass(slots=True)
class ParsedResponse:
    """A response body (or SSE stream) read by a format parser.

    `fields` holds OISP `ai.response` data keys (choices, usage, error, ...).
    `first_token_ts_ns` is the capture time of the first stream event that carried
    generated content (text or a tool-call delta); 0 when unknown or not a stream.
    `stream_complete` is False when a stream lacked its terminator (e.g. `[DONE]`).
    """

    model: str | None = None
    response_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    chunk_count: int | None = None  # stream events that carried a chunk; None if not a stream
    first_token_ts_ns: int = 0
    stream_complete: bool = True
    unparsed: bool = False
    problems: list[str] = field(default_factory=list)
    # A body that is itself a stream but not SSE (Ollama NDJSON, Bedrock's binary event
    # stream, Gemini's JSON array): `streamed` is set and `chunks` lists its chunks in
    # body order, so the builder can emit ai.streaming_chunk events once it is complete.
    streamed: bool = False
    chunks: list[StreamChunk] | None = None


@dataclass(slots=True)
class StreamChunk:
    """What one stream event added to the answer: the data of an ai.streaming_chunk.

    `delta` is the generated text of the event (content, tool-call arguments or
    reasoning, as `kind` says); `ts_ns` is 0 when the chunk's time is unknown;
    `offset` is the chunk's byte offset in a non-SSE body (-1 for SSE events).
    """

    delta: str = ""
    kind: str = "text"  # text | tool_call | reasoning | none
    finish_reason: str | None = None
    ts_ns: int = 0
    offset: int = -1
    choice_index: int = 0


class StreamAccumulator(Protocol):
    """Reassembles one SSE stream event by event (so each event is parsed only once)."""

    def feed(self, event: SseEvent) -> StreamChunk | None:
        """Apply one event; the chunk it carried, or None (keep-alives, metadata, [DONE])."""
        ...

    def finish(self) -> ParsedResponse:
        """The reassembled response (usage, choices, stream completeness)."""
        ...


class FormatParser(Protocol):
    """One API wire format."""

    def parse_request(self, body: bytes) -> ParsedRequest: ...

    def parse_response(self, body: bytes) -> ParsedResponse: ...

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse: ...

    def stream(self) -> StreamAccumulator: ...


def run_stream(parser: FormatParser, events: Iterable[SseEvent]) -> ParsedResponse:
    """parse_stream in terms of an accumulator: what every parser's parse_stream does."""
    acc = parser.stream()
    for event in events:
        acc.feed(event)
    return acc.finish()


# Chooses the parser from what the path says (model id from the path, and the path).
Dispatch = Callable[[str | None, str], "FormatParser"]


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """When a parser applies: provider api_formats plus a path shape.

    `api_formats` None means the path alone is distinctive enough to name the wire format
    whoever serves it (`.../chat/completions` is OpenAI-shaped on every OpenAI-compatible
    server). `unknown_host_ok` marks shapes distinctive enough to call a POST to an
    unknown host an AI call. `path_model` extracts the model (named group "model") from
    the path for APIs that put it there (Gemini, Bedrock, Azure deployments).
    """

    name: str
    request_type: str
    path: re.Pattern[str]
    parser: FormatParser
    api_formats: frozenset[str] | None = None
    unknown_host_ok: bool = False
    path_model: re.Pattern[str] | None = None
    # For paths whose body format depends on the model or the path (Bedrock InvokeModel
    # carries each vendor's native body; `:streamGenerateContent` streams whatever the
    # body says): returns the parser to use instead of `parser`.
    dispatch: Dispatch | None = None

    def model_from_path(self, path: str) -> str | None:
        if self.path_model is None:
            return None
        m = self.path_model.search(path)
        return unquote(m.group("model")) if m else None

    def parser_for(self, model: str | None, path: str) -> FormatParser:
        """The parser for one request (the spec's own unless it dispatches)."""
        return self.dispatch(model, path) if self.dispatch is not None else self.parser


class FormatRegistry:
    """Ordered list of FormatSpecs; the first that fits (api_format, path) wins."""

    def __init__(self, specs: Iterable[FormatSpec] = ()) -> None:
        self._specs: list[FormatSpec] = list(specs)
        self._cache: dict[tuple[str, str], FormatSpec | None] = {}

    def register(self, spec: FormatSpec, *, first: bool = False) -> None:
        """Add a spec (at the front with first=True, to override a shape)."""
        if first:
            self._specs.insert(0, spec)
        else:
            self._specs.append(spec)
        self._cache.clear()

    @property
    def specs(self) -> tuple[FormatSpec, ...]:
        return tuple(self._specs)

    def find(self, api_format: str, path: str) -> FormatSpec | None:
        """Spec for a known provider's format and a request path (query already removed)."""
        key = (api_format, path)
        cache = self._cache
        try:
            return cache[key]
        except KeyError:
            pass
        found = None
        for spec in self._specs:
            if (spec.api_formats is None or api_format in spec.api_formats) and spec.path.search(path):
                found = spec
                break
        if len(cache) >= _CACHE_MAX:
            cache.clear()  # paths carry ids (deployments, models): stay bounded
        cache[key] = found
        return found

    def find_for_unknown_host(self, path: str) -> FormatSpec | None:
        """Spec for a request to a host no provider claims: distinctive shapes only."""
        key = ("\0unknown-host", path)
        cache = self._cache
        try:
            return cache[key]
        except KeyError:
            pass
        found = None
        for spec in self._specs:
            if spec.unknown_host_ok and spec.path.search(path):
                found = spec
                break
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = found
        return found


# ---- the fallback parser for formats without a dedicated one yet -----------------------------

_MODEL_RE = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')
_STREAM_RE = re.compile(rb'"stream"\s*:\s*(true|false)')
_JSON_OBJECT_START = re.compile(rb"\s*\{")


def salvage_model(body: bytes) -> tuple[str | None, bool]:
    """Model and stream flag from a body that is not valid JSON (usually cut short).

    A regex over the raw bytes: good enough to name the model of a truncated request.
    """
    m = _MODEL_RE.search(body)
    model = m.group(1).decode("utf-8", "replace") if m else None
    s = _STREAM_RE.search(body)
    return model, bool(s and s.group(1) == b"true")


def event_object(data: str) -> dict[str, Any] | None:
    """One streamed event's payload as a JSON object; None when it is not one."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def load_json_object(body: bytes, what: str, problems: list[str]) -> dict[str, Any] | None:
    """orjson.loads that never raises: a dict, or None with a problem noted."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        problems.append(f"{what}: invalid JSON ({exc})")
        return None
    if not isinstance(obj, dict):
        problems.append(f"{what}: JSON is not an object")
        return None
    return obj


def model_request_object(body: bytes) -> tuple[ParsedRequest, dict[str, Any] | None]:
    """A request body read as a JSON object whose `model` and `stream` keys say the model and
    whether the answer is streamed (the OpenAI shape), with the ParsedRequest to fill and
    those two read. The object is None when the body is empty or not a JSON object: the
    model is then salvaged from the raw bytes and a non-empty body is marked unparsed."""
    out = ParsedRequest()
    obj = load_json_object(body, "request", out.problems) if body else None
    if obj is None:
        out.model, out.streaming = salvage_model(body)
        out.unparsed = bool(body)
        return out, None
    model = obj.get("model")
    out.model = model if isinstance(model, str) else None
    out.streaming = obj.get("stream") is True
    return out, obj


def response_object(body: bytes) -> tuple[ParsedResponse, dict[str, Any] | None]:
    """A response body read as a JSON object, with the ParsedResponse to fill. The object is
    None when there is nothing to read: an empty body, or one that is not a JSON object
    (noted in `problems`, the response marked unparsed)."""
    out = ParsedResponse()
    if not body:
        return out, None
    obj = load_json_object(body, "response", out.problems)
    if obj is None:
        out.unparsed = True
    return out, obj


class GenericJsonParser:
    """Reads only what every JSON AI API shares: `model`, `stream`, `id`.

    Used for path shapes that are recognised as AI calls but whose format has no
    dedicated parser yet, so they still yield a well-formed request/response pair.
    Bodies that are not JSON objects at all (multipart audio uploads, binary event
    streams) are skipped without complaint: there is nothing generic to read in them.
    """

    def parse_request(self, body: bytes) -> ParsedRequest:
        if not body or _JSON_OBJECT_START.match(body) is None:
            return ParsedRequest()
        return model_request_object(body)[0]

    def parse_response(self, body: bytes) -> ParsedResponse:
        if not body or _JSON_OBJECT_START.match(body) is None:
            return ParsedResponse()
        out, obj = response_object(body)
        if obj is None:
            return out
        model = obj.get("model")
        out.model = model if isinstance(model, str) else None
        rid = obj.get("id")
        out.response_id = rid if isinstance(rid, str) else None
        error = error_fields(obj.get("error"))
        if error:
            out.fields["error"] = error
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> StreamAccumulator:
        return _GenericStream()


class _GenericStream:
    """Counts the data events of a stream whose chunk format is not known."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def feed(self, event: SseEvent) -> StreamChunk | None:
        if event.data and event.data != "[DONE]":
            self.count += 1
        return None

    def finish(self) -> ParsedResponse:
        return ParsedResponse(chunk_count=self.count)


def error_fields(error: object) -> dict[str, Any] | None:
    """OISP `error` {type, message, code} from an OpenAI-style `error` value.

    Accepts the documented object ({"message", "type", "param", "code"}), Google's
    ({"code": 429, "message", "status": "RESOURCE_EXHAUSTED"}: status is the type) and
    the bare string some compatible servers (and Ollama) send.
    """
    if isinstance(error, dict):
        out: dict[str, Any] = {}
        etype = error.get("type")
        if etype is None:
            etype = error.get("status")
        if isinstance(etype, str):
            out["type"] = etype
        message = error.get("message")
        if message is not None:
            out["message"] = message if isinstance(message, str) else str(message)
        code = error.get("code")
        if code is not None:
            out["code"] = code
        return out or None
    if isinstance(error, str):
        return {"message": error}
    return None


# ---- shared helpers of the format parsers ----------------------------------------------------


def as_int(value: object) -> int | None:
    """An int token count, or None (bools and floats of other types are not counts)."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def make_usage(
    prompt: object,
    completion: object,
    total: object = None,
    *,
    cached: object = None,
    reasoning: object = None,
    cache_write: object = None,
) -> dict[str, int] | None:
    """OISP usage from a provider's counts, in the OpenAI sense.

    prompt_tokens counts every input token, cached or not; completion_tokens every
    output token, reasoning included. total_tokens is computed when the provider does
    not send it. Counts the provider did not report are left out, never guessed.
    """
    out: dict[str, int] = {}
    p = as_int(prompt)
    c = as_int(completion)
    if p is not None:
        out["prompt_tokens"] = p
    if c is not None:
        out["completion_tokens"] = c
    t = as_int(total)
    if t is None and p is not None and c is not None:
        t = p + c
    if t is not None:
        out["total_tokens"] = t
    for key, value in (
        ("cached_tokens", cached),
        ("reasoning_tokens", reasoning),
        ("cache_write_tokens", cache_write),
    ):
        n = as_int(value)
        if n is not None:
            out[key] = n
    return out or None


def text_message(role: str | None, text: str | None, **extra: Any) -> dict[str, Any]:
    """One normalised (OpenAI-like) message: role, content and content_length."""
    out: dict[str, Any] = {"role": role}
    if text is not None:
        out["content"] = text
    out["content_length"] = len(text) if text is not None else 0
    if extra:
        out.update(extra)
    return out


def system_hash(texts: Sequence[str]) -> str:
    """OISP system_prompt_hash of the system texts of a request."""
    import hashlib

    return "sha256:" + hashlib.sha256("\n".join(texts).encode("utf-8", "surrogatepass")).hexdigest()


def json_text(value: object) -> str:
    """Compact JSON text of a structured value (tool arguments given as objects)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def tool_call(call_id: object, name: object, arguments: object, ctype: str = "function") -> dict[str, Any]:
    """A tool call in the normalised shape {id, type, function {name, arguments}}."""
    return {
        "id": call_id if isinstance(call_id, str) else None,
        "type": ctype,
        "function": {"name": name if isinstance(name, str) else None, "arguments": json_text(arguments)},
    }


def choice(message: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
    """One normalised response choice."""
    return {"index": index, "finish_reason": finish_reason, "message": message}


# ---- model family ----------------------------------------------------------------------------
#
# family(model id) groups model versions the way people talk about them. Rules, first match
# wins, applied to the id lower-cased with any "vendor/" or Bedrock "vendor." / region
# prefix, ":tag" (Ollama) and trailing date stamp removed:
#
#   gpt-4o*, gpt-4-turbo*, gpt-4, gpt-4-0613, chatgpt-4o*  -> gpt-4
#   gpt-4.1* / gpt-4.5* / gpt-5* / gpt-3.5*                 -> gpt-4.1 / gpt-4.5 / gpt-5 / gpt-3.5
#   o1*, o3*, o4* (o-series reasoning models)               -> o-series
#   claude-3-5-sonnet, claude-3.5-sonnet                    -> claude-3.5
#   claude-sonnet-4-5, claude-opus-4-1, claude-sonnet-4     -> claude-4.5, claude-4.1, claude-4
#   claude-2.1, claude-instant-1.2                          -> claude-2, claude-instant
#   gemini-1.5-pro, gemini-2.5-flash                        -> gemini-1.5, gemini-2.5
#   llama3.1:8b, meta-llama-3.1-70b, llama-3.3-70b          -> llama-3.1, llama-3.3
#   mistral-large-latest, mixtral-8x7b, codestral-2501      -> mistral-large, mixtral, codestral
#   qwen2.5-coder, qwen3                                    -> qwen-2.5, qwen-3
#   grok-3-mini                                             -> grok-3
#   command-r-plus, command-a-03-2025                       -> command-r, command-a
#   text-embedding-3-small, text-embedding-ada-002          -> text-embedding-3, text-embedding-ada
#   anything else: its stem, the first "-" token plus the next one when that is a version
#   number ("phi-3-mini" -> "phi-3", "deepseek-chat" -> "deepseek", "gemma2:9b" -> "gemma2")

_DATE_SUFFIX_RE = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4})(?=$|-v\d)")
_BEDROCK_PREFIX_RE = re.compile(r"^(?:(?:us|eu|apac|global|us-gov)\.)?[a-z0-9-]+\.(?=[a-z])")
_VERSION = r"(\d+(?:\.\d+)?)"


def _claude(m: re.Match[str]) -> str:
    major, minor = m.group("major"), m.group("minor")
    return f"claude-{major}.{minor}" if minor else f"claude-{major}"


_FAMILY_RULES: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"^(?:chat)?gpt-4o\b|^gpt-4(?:-turbo|-\d{4}|-32k|-vision)?\b(?!\.)"), "gpt-4"),
    (re.compile(r"^gpt-(4\.1|4\.5|5|3\.5)"), lambda m: f"gpt-{m.group(1)}"),
    (re.compile(r"^gpt-oss"), "gpt-oss"),
    (re.compile(r"^o[1-9](?:-|$)"), "o-series"),
    (
        re.compile(r"^claude-(?P<major>\d)(?:[.-](?P<minor>\d))?-(?:opus|sonnet|haiku)"),
        _claude,
    ),
    (
        re.compile(r"^claude-(?:opus|sonnet|haiku)-(?P<major>\d)(?:[.-](?P<minor>\d{1,2})(?!\d))?"),
        _claude,
    ),
    (re.compile(r"^claude-instant"), "claude-instant"),
    (re.compile(r"^claude-(\d)"), lambda m: f"claude-{m.group(1)}"),
    (re.compile(r"^gemini-" + _VERSION), lambda m: f"gemini-{m.group(1)}"),
    (re.compile(r"^(?:meta-)?llama-?" + _VERSION), lambda m: f"llama-{m.group(1)}"),
    (re.compile(r"^mistral-(large|medium|small|tiny|nemo|saba)"), lambda m: f"mistral-{m.group(1)}"),
    (re.compile(r"^(mixtral|codestral|ministral|pixtral|magistral|devstral)"), lambda m: m.group(1)),
    (re.compile(r"^qwen-?" + _VERSION), lambda m: f"qwen-{m.group(1)}"),
    (re.compile(r"^grok-" + _VERSION), lambda m: f"grok-{m.group(1)}"),
    (re.compile(r"^command-(r|a)\b"), lambda m: f"command-{m.group(1)}"),
    (re.compile(r"^text-embedding-(3|ada)"), lambda m: f"text-embedding-{m.group(1)}"),
)


def _normalise_model(model_id: str) -> str:
    name = model_id.strip().lower()
    name = name.rsplit("/", 1)[-1]  # "openai/gpt-4o", "models/gemini-1.5-pro", "accounts/.../x"
    name = _BEDROCK_PREFIX_RE.sub("", name, count=1)  # "us.anthropic.claude-..." -> "claude-..."
    name = name.split(":", 1)[0]  # "llama3.1:8b", Bedrock "...-v1:0"
    return _DATE_SUFFIX_RE.sub("", name)


def _stem(name: str) -> str:
    parts = name.split("-")
    if len(parts) > 1 and parts[1].replace(".", "").isdigit():
        return f"{parts[0]}-{parts[1]}"
    return parts[0]


_family_cache: dict[str, str] = {}


def model_family(model_id: str) -> str:
    """Family of a model id (see the rule table above); cached, ids repeat constantly."""
    family = _family_cache.get(model_id)
    if family is not None:
        return family
    name = _normalise_model(model_id)
    family = None
    for pattern, result in _FAMILY_RULES:
        m = pattern.search(name)
        if m is not None:
            family = result if isinstance(result, str) else result(m)
            break
    if family is None:
        family = _stem(name) if name else model_id
    if len(_family_cache) >= _CACHE_MAX:
        _family_cache.clear()
    _family_cache[model_id] = family
    return family
