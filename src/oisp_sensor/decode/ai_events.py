"""HTTP exchanges in, OISP AI and agent events out.

Every decoded client exchange passes through here, and most of them are not AI
traffic (pip, apt, telemetry), so the first job is a cheap decision: a known provider
host (or an unknown host with an unmistakable AI API path) makes it an AI call,
anything else is counted and dropped without parsing a byte of body.

For an AI call the provider's `api_format` plus the path picks a format parser (see
`providers.default_format_registry`); the parser turns bodies into OISP fragments and
this module adds what only the HTTP layer knows: endpoint, auth key prefix, sizes,
timings, and how complete the capture was. Every call is an `ai.request` (sent as soon
as the request is seen, so a call that never gets an answer is still reported) plus an
`ai.response` (on ExchangeDone, linked by `related_event_id`). Beside them, never
instead of them:

* `ai.streaming_chunk` for each chunk of a streamed answer: as each SSE event arrives
  (StreamEvent), or, for streams that are not SSE (Ollama NDJSON, Bedrock's binary
  event stream, Gemini's JSON array), once the body is complete (`timing` says so);
* `ai.embedding` after the response of an embedding call;
* `agent.tool_call` for each tool call the model asked for, and `agent.tool_result`
  when a later request carries its result (matched by call id, or by tool name for
  APIs without call ids);
* `token_estimate` on requests and `cost` on responses (offline: `tokens`, `pricing`);
  a stream without usage gets estimated usage, marked `estimated`.

Events of one conversation share `conversation_id` (see `_conversation_id`).
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

from oisp_sensor.decode.mcp import McpCounters, McpTracker
from oisp_sensor.decode.mcp_http import McpExchange, McpHttp
from oisp_sensor.decode.messages import (
    ConnInfo,
    DecodeOutput,
    ExchangeDone,
    HttpRequest,
    HttpResponse,
    RequestSeen,
    StreamEvent,
)
from oisp_sensor.decode.pricing import Pricing
from oisp_sensor.decode.providers import (
    GENERIC,
    UNKNOWN_PROVIDER,
    FormatRegistry,
    FormatSpec,
    Provider,
    ProviderRegistry,
    default_format_registry,
    model_family,
)
from oisp_sensor.decode.providers.base import (
    TIMING_CAPTURED,
    TIMING_RESPONSE_END,
    FormatParser,
    ParsedResponse,
    StreamAccumulator,
    StreamChunk,
)
from oisp_sensor.decode.providers.registry import is_local_host, split_host
from oisp_sensor.decode.sse import split_sse_body
from oisp_sensor.decode.tokens import TokenCounter, heuristic_tokens, shared_counter
from oisp_sensor.schema.events import (
    AGENT_TOOL_CALL,
    AGENT_TOOL_RESULT,
    AI_EMBEDDING,
    AI_REQUEST,
    AI_RESPONSE,
    AI_STREAMING_CHUNK,
    Confidence,
    SensorEvent,
)

IdFactory = Callable[[int], str]

# Known-provider requests whose path matches no format: still an AI call, read generically.
_OTHER_SPEC = FormatSpec(name="generic", request_type="other", path=re.compile(""), parser=GENERIC)
_API_KEY_HEADERS = ("api-key", "x-api-key", "x-goog-api-key")
_DEFAULT_MAX_PENDING = 65536
_MAX_TOOL_CALLS = 16384  # tool calls remembered until their result comes back
_MCP_LINK_WINDOW = 64  # newest waiting model tool calls searched for the one an MCP call executes
_MAX_CONVERSATIONS = 16384  # response id -> conversation (Responses API previous_response_id)
# Conversation ids computed from a request's opening messages: only a cache (an id costs a
# hash to recompute), kept small so that it is full within minutes and memory levels off.
_CONVERSATION_CACHE = 2048
_MAX_AUTHS = 256  # credentials whose auth dict is remembered
_SYSTEM_ROLES = frozenset({"system", "developer"})
_CONVERSATION_TYPES = frozenset({"chat", "responses"})
_ESTIMATE_TYPES = frozenset({"chat", "responses", "completion", "embedding"})
_MESSAGE_OVERHEAD = 3  # tokens a chat format adds per message (role, separators)
# Error types for error responses whose body names none.
_STATUS_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
    529: "overloaded_error",
}
_RATE_LIMIT_WORDS = ("rate", "throttl", "quota", "resource_exhausted", "too_many")


@dataclass(slots=True)
class AiEventCounters:
    """What the builder did, for `status`, `/metrics` and the UI."""

    ai_requests: int = 0
    ai_responses: int = 0
    non_ai_exchanges: int = 0
    unparsed_bodies: int = 0  # request or response bodies the format parser could not read
    unknown_provider_requests: int = 0  # AI-shaped path to a host no provider claims
    responses_missing: int = 0  # exchange ended with no response at all
    late_requests: int = 0  # ExchangeDone without a prior RequestSeen: both events at once
    pending_evicted: int = 0  # requests forgotten before their ExchangeDone (table full)
    ignored_outputs: int = 0  # ResponseStarted, and StreamEvents of non-AI exchanges
    streaming_chunks: int = 0  # ai.streaming_chunk events emitted
    embeddings: int = 0
    tool_calls: int = 0
    tool_results: int = 0
    error_responses: int = 0  # ai.response with success false (HTTP or in-stream errors)
    estimated_usages: int = 0  # streams without usage whose tokens were counted here
    stream_gaps: int = 0  # StreamEvents missing from a stream (reassembled from the body)


@dataclass(slots=True)
class _Call:
    """An AI request waiting for its response: what the later events need from it."""

    event_id: str
    provider: Provider
    spec: FormatSpec
    parser: FormatParser
    model_id: str | None
    streaming: bool
    request_type: str
    start_ts_ns: int
    conversation_id: str | None = None
    input_count: int | None = None  # embedding inputs
    texts: list[str] | None = None  # request texts, kept for streams (usage estimation)
    acc: StreamAccumulator | None = None  # the stream being reassembled from StreamEvents
    next_index: int = 0  # the StreamEvent index expected next
    chunks_sent: int = 0
    broken: bool = False  # a StreamEvent was missed: reassemble from the body instead


@dataclass(slots=True)
class _ToolCall:
    """A tool call waiting for its result."""

    name: str | None
    event_id: str
    ts_ns: int  # end of the response that asked for it
    conversation_id: str | None
    pid: int = 0
    executed: bool = False  # an MCP tools/call was linked to it already


@dataclass(slots=True)
class _Route:
    """Where a request goes: the outcome of classification."""

    provider: Provider
    spec: FormatSpec
    host: str  # Host header value as sent (lower case)
    path: str  # without query
    query: str
    scheme: str


def _text_of(messages: object) -> list[str]:
    """Message texts (content and tool-call arguments) of normalised messages or choices."""
    texts: list[str] = []
    if not isinstance(messages, list):
        return texts
    for item in messages:
        if not isinstance(item, dict):
            continue
        message = item.get("message", item)
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str) and content:
            texts.append(content)
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                texts.append(function["arguments"])
    return texts


def _ms(delta_ns: int) -> int:
    """Nanoseconds to whole milliseconds, rounded half up, never negative."""
    return (delta_ns + 500_000) // 1_000_000 if delta_ns > 0 else 0


def _has_gap(problems: list[str]) -> bool:
    return any(p.startswith("gap") for p in problems)


class AiEventBuilder:
    """Turns tracker outputs into OISP AI and agent SensorEvents.

    Holds one small record per in-flight exchange (bounded: the oldest is forgotten
    when `max_pending` is reached, so a tracker that never closes exchanges cannot
    grow it without limit), plus bounded tables of tool calls awaiting their results
    and of response ids that later requests may continue from.
    """

    def __init__(
        self,
        registry: ProviderRegistry,
        id_factory: IdFactory,
        formats: FormatRegistry | None = None,
        *,
        max_pending: int = _DEFAULT_MAX_PENDING,
        streaming_chunks: bool = True,
        pricing: Pricing | None = None,
        tokens: TokenCounter | None = None,
    ) -> None:
        self._registry = registry
        self._new_id = id_factory
        self._formats = formats if formats is not None else default_format_registry()
        self._max_pending = max_pending
        self._streaming_chunks = streaming_chunks
        local = frozenset(p.id for p in registry if p.default_ports)
        self._pricing = pricing if pricing is not None else Pricing(local_providers=local)
        self._tokens = tokens if tokens is not None else shared_counter()
        # exchange_id -> the AI call (or MCP exchange), or None for one already judged neither.
        self._pending: dict[int, _Call | McpExchange | None] = {}
        self._tool_calls: OrderedDict[object, _ToolCall] = OrderedDict()
        self._response_conversations: OrderedDict[str, str] = OrderedDict()
        self._conversations: dict[tuple[object, ...], str] = {}  # opening -> id (a cache)
        self._auths: dict[tuple[object, ...], dict[str, Any] | None] = {}  # see _auth
        self.counters = AiEventCounters()
        self._mcp = McpHttp(McpTracker(id_factory, link=self._model_call_for))

    @property
    def mcp_tracker(self) -> McpTracker:
        """The MCP tracker, shared with the stdio transport (decode/mcp_stdio.py)."""
        return self._mcp.tracker

    @property
    def mcp_counters(self) -> McpCounters:
        return self._mcp.tracker.counters

    def process(self, output: DecodeOutput) -> list[SensorEvent]:
        """Events for one tracker output (usually zero or one)."""
        kind = type(output)
        if kind is StreamEvent:
            return self._on_stream_event(output)  # type: ignore[arg-type]
        if kind is RequestSeen:
            return self._on_request(output)  # type: ignore[arg-type]
        if kind is ExchangeDone:
            return self._on_done(output)  # type: ignore[arg-type]
        self.counters.ignored_outputs += 1  # ResponseStarted
        return []

    # ---- tracker outputs ------------------------------------------------------------------

    def _on_request(self, seen: RequestSeen) -> list[SensorEvent]:
        if seen.exchange_id in self._pending:
            return []  # already handled (a tracker repeating itself)
        headers = self._headers(seen.request)
        route = self._route(seen.request, headers)
        if route is None:
            events, exchange = self._mcp_request(seen.conn, seen.request, headers)
            self._remember(seen.exchange_id, exchange)
            return events
        events, call = self._request_events(seen.conn, seen.request, route, headers)
        self._remember(seen.exchange_id, call)
        return events

    def _mcp_request(
        self, conn: ConnInfo, request: HttpRequest, headers: dict[str, str]
    ) -> tuple[list[SensorEvent], McpExchange | None]:
        """A non-AI exchange: MCP, or counted and forgotten."""
        host = (headers.get("host") or headers.get(":authority") or "").strip().lower()
        events, exchange = self._mcp.request(conn, request, headers, host)
        if exchange is None:
            self.counters.non_ai_exchanges += 1
        return events, exchange

    def _model_call_for(self, pid: int, name: str) -> str | None:
        """The newest model tool call of `pid` named `name` that no MCP call executed yet."""
        for index, waiting in enumerate(reversed(self._tool_calls.values())):
            if index >= _MCP_LINK_WINDOW:
                break
            if waiting.pid == pid and waiting.name == name and not waiting.executed:
                waiting.executed = True
                return waiting.event_id
        return None

    def _on_stream_event(self, item: StreamEvent) -> list[SensorEvent]:
        call = self._pending.get(item.exchange_id)
        if call is None:
            self.counters.ignored_outputs += 1
            return []
        if type(call) is McpExchange:
            return self._mcp.stream_event(item, call)
        assert isinstance(call, _Call)
        if call.broken:
            return []
        if item.index != call.next_index:
            # An event was missed (or repeated): the body will be reassembled at the end.
            call.broken = True
            self.counters.stream_gaps += 1
            return []
        call.next_index += 1
        acc = call.acc
        if acc is None:
            acc = call.acc = call.parser.stream()
        chunk = acc.feed(item.event)
        if chunk is None or not self._streaming_chunks:
            return []
        return [self._chunk_event(item.conn, call, chunk, item.event.ts_ns, TIMING_CAPTURED)]

    def _on_done(self, done: ExchangeDone) -> list[SensorEvent]:
        call = self._pending.pop(done.exchange_id, _MISSING)
        if call is None:
            return []  # judged not AI when the request was seen
        if call is _MISSING:
            # No RequestSeen came first (evicted, or the tracker only reported the end).
            headers = self._headers(done.request)
            route = self._route(done.request, headers)
            if route is None:
                events, exchange = self._mcp_request(done.conn, done.request, headers)
                if exchange is not None:
                    events.extend(self._mcp.done(done, exchange))
                return events
            self.counters.late_requests += 1
            events, call = self._request_events(done.conn, done.request, route, headers)
            events.extend(self._response_events(done.conn, done.request, done.response, call))
            return events
        if type(call) is McpExchange:
            return self._mcp.done(done, call)
        assert isinstance(call, _Call)
        return self._response_events(done.conn, done.request, done.response, call)

    def _remember(self, exchange_id: int, call: _Call | McpExchange | None) -> None:
        pending = self._pending
        if len(pending) >= self._max_pending:
            evicted = pending.pop(next(iter(pending)))
            if evicted is not None:
                self.counters.pending_evicted += 1
        pending[exchange_id] = call

    # ---- classification -------------------------------------------------------------------

    @staticmethod
    def _headers(request: HttpRequest) -> dict[str, str]:
        """The request's headers by name, first occurrence of each, built in C. Only a few
        are ever looked up (host, credentials, user-agent, origin, referer, sec-fetch-site
        for the `web` context, MCP's headers); the dict is never iterated."""
        return dict(reversed(request.headers))

    def _route(self, request: HttpRequest, headers: dict[str, str]) -> _Route | None:
        """Provider and format of a request, or None when it is not an AI call."""
        if request.method == "CONNECT":
            return None
        target = request.target
        host = headers.get("host") or headers.get(":authority") or ""
        if not target.startswith("/"):
            # absolute-form (through a proxy): "https://host/path?query"
            scheme_end = target.find("://")
            if scheme_end < 0:
                return None
            rest = target[scheme_end + 3 :]
            slash = rest.find("/")
            authority, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
            host = host or authority
        path, _, query = target.partition("?")
        path = path.partition("#")[0]
        host = host.strip().lower()
        match = self._registry.lookup(host) if host else None
        if match is not None:
            provider = match.provider
            spec = self._formats.find(provider.api_format, path)
            if spec is None:
                if match.strict:
                    return None
                spec = _OTHER_SPEC
            local = match.via == "port" or is_local_host(match.host)
        else:
            if request.method != "POST":
                return None
            spec = self._formats.find_for_unknown_host(path)
            if spec is None:
                return None
            provider = UNKNOWN_PROVIDER
            local = is_local_host(split_host(host)[0])
        scheme = "http" if local else "https"
        return _Route(provider, spec, host, path, query, scheme)

    # ---- credentials ----------------------------------------------------------------------

    def _auth(self, headers: dict[str, str], query: str, provider: Provider) -> dict[str, Any] | None:
        """OISP auth {type, key_prefix}: never more of a credential than its prefix.

        A client sends the same credential with every call: the answer is remembered per
        (credential headers, query, provider), and the dict is shared by its events."""
        key = (
            headers.get("authorization"),
            headers.get("api-key"),
            headers.get("x-api-key"),
            headers.get("x-goog-api-key"),
            query,
            provider.id,
        )
        cache = self._auths
        try:
            return cache[key]
        except KeyError:
            pass
        auth = self._read_auth(headers, query, provider)
        if len(cache) >= _MAX_AUTHS:
            cache.clear()
        cache[key] = auth
        return auth

    def _read_auth(self, headers: dict[str, str], query: str, provider: Provider) -> dict[str, Any] | None:
        registry = self._registry
        authorization = headers.get("authorization")
        if authorization:
            scheme, _, credential = authorization.strip().partition(" ")
            scheme = scheme.lower()
            credential = credential.strip()
            if scheme == "bearer":
                return self._auth_dict("bearer", registry.key_prefix(credential, provider))
            if scheme == "aws4-hmac-sha256":
                # "Credential=AKIA.../date/region/service/aws4_request, SignedHeaders=..., Signature=..."
                start = credential.find("Credential=")
                access_key = credential[start + 11 :].split("/", 1)[0] if start >= 0 else ""
                return self._auth_dict("aws_sigv4", registry.key_prefix(access_key, provider))
            return {"type": scheme}  # basic, digest, ...: nothing of the secret is shown
        for name in _API_KEY_HEADERS:
            value = headers.get(name)
            if value:
                return self._auth_dict("api_key", registry.key_prefix(value, provider))
        if query:
            key = self._query_key(query)
            if key:
                return self._auth_dict("api_key", registry.key_prefix(key, provider))
        return None

    @staticmethod
    def _auth_dict(kind: str, prefix: str | None) -> dict[str, Any]:
        return {"type": kind, "key_prefix": prefix} if prefix else {"type": kind}

    @staticmethod
    def _query_key(query: str) -> str | None:
        """The `key=` query parameter (Gemini's API key in the URL)."""
        for part in query.split("&"):
            if part.startswith("key="):
                return unquote(part[4:])
        return None

    @staticmethod
    def _secrets(headers: dict[str, str], query: str) -> list[str]:
        """Credential values of a request, to scrub them from echoed error messages."""
        out: list[str] = []
        authorization = headers.get("authorization")
        if authorization:
            credential = authorization.strip().partition(" ")[2].strip()
            if len(credential) >= 8:
                out.append(credential)
        for name in _API_KEY_HEADERS:
            value = headers.get(name)
            if value and len(value.strip()) >= 8:
                out.append(value.strip())
        if query:
            key = AiEventBuilder._query_key(query)
            if key and len(key) >= 8:
                out.append(key)
        return out

    # ---- ai.request -----------------------------------------------------------------------

    def _request_events(
        self, conn: ConnInfo, request: HttpRequest, route: _Route, headers: dict[str, str]
    ) -> tuple[list[SensorEvent], _Call]:
        provider = route.provider
        spec = route.spec
        path_model = spec.model_from_path(route.path) if spec.path_model is not None else None
        parser = spec.parser_for(path_model, route.path)
        parsed = parser.parse_request(request.body)
        model_id = parsed.model or path_model
        request_type = parsed.request_type or spec.request_type

        host = route.host
        default_port = ":443" if route.scheme == "https" else ":80"
        endpoint_host = host[: -len(default_port)] if host.endswith(default_port) else host
        data: dict[str, Any] = {
            "provider": {
                "id": provider.id,
                "name": provider.name,
                "endpoint": f"{route.scheme}://{endpoint_host}{route.path}",
            }
        }
        if model_id:
            data["model"] = {"id": model_id, "family": model_family(model_id)}
        data["request_type"] = request_type
        data["streaming"] = parsed.streaming
        fields = parsed.fields
        if fields:
            data.update(fields)
        messages = fields.get("messages")
        conversation_id = None
        if request_type in _CONVERSATION_TYPES and messages:
            conversation_id = self._conversation_id(conn.pid, provider.id, messages, fields)
            data["conversation_id"] = conversation_id
        if request_type in _ESTIMATE_TYPES and messages:
            data["token_estimate"] = self._token_estimate(
                provider.id, model_id, messages, request.start_ts_ns
            )
        auth = self._auth(headers, route.query, provider)
        if auth is not None:
            data["auth"] = auth
        http: dict[str, Any] = {"method": request.method, "path": route.path, "host": host}
        user_agent = headers.get("user-agent")
        if user_agent is not None:
            http["user_agent"] = user_agent
        if "origin" in headers:
            http["origin"] = headers["origin"]
        if "referer" in headers:  # the query string and fragment may hold search terms and tokens
            http["referer"] = headers["referer"].partition("#")[0].partition("?")[0]
        if "sec-fetch-site" in headers:
            http["sec_fetch_site"] = headers["sec-fetch-site"]
        data["http"] = http
        data["request_bytes"] = request.body_size or len(request.body)

        reasons: list[str] = []
        if request.truncated:
            reasons.append("request_truncated")
        if request.problems and _has_gap(request.problems):
            reasons.append("gap")
        if parsed.unparsed:
            reasons.append("body_unparsed")
            self.counters.unparsed_bodies += 1
        completeness = "partial" if reasons else "full"
        level = "high"
        if provider is UNKNOWN_PROVIDER:
            reasons.append("provider_unknown")
            level = "medium"
            self.counters.unknown_provider_requests += 1
        confidence = Confidence(level, completeness, reasons) if reasons else Confidence()

        event_id = self._new_id(request.start_ts_ns)
        self.counters.ai_requests += 1
        event = SensorEvent(
            event_type=AI_REQUEST,
            event_id=event_id,
            ts_ns=request.start_ts_ns,
            data=data,
            pid=conn.pid,
            tid=conn.tid,
            uid=conn.uid,
            comm=conn.comm,
            capture_point=conn.capture_point,
            capture_method=conn.capture_method,
            confidence=confidence,
        )
        call = _Call(
            event_id, provider, spec, parser, model_id, parsed.streaming, request_type, request.start_ts_ns,
            conversation_id,
        )  # fmt: skip
        if request_type == "embedding":
            count = fields.get("input_count")
            call.input_count = count if isinstance(count, int) else None
        elif parsed.streaming or parser is not spec.parser:
            # Streams may end without usage: keep the prompt texts (references, no copies).
            call.texts = _text_of(messages)
        events = [event]
        if messages and self._tool_calls:
            events.extend(self._tool_results(conn, request, messages, event_id, conversation_id))
        return events, call

    def _token_estimate(
        self, provider_id: str, model_id: str | None, messages: list[dict[str, Any]], ts_ns: int
    ) -> dict[str, Any]:
        """OISP token_estimate {input, estimated_cost_usd}: the fast heuristic, offline."""
        tokens = _MESSAGE_OVERHEAD * len(messages)
        for message in messages:
            content = message.get("content")
            if content:
                tokens += heuristic_tokens(content)
            if "tool_calls" in message:
                for call in message["tool_calls"]:
                    arguments = call.get("function", {}).get("arguments") if isinstance(call, dict) else None
                    if isinstance(arguments, str):
                        tokens += heuristic_tokens(arguments)
        out: dict[str, Any] = {"input": tokens, "method": "heuristic"}
        cost = self._pricing.input_cost(provider_id, model_id, tokens, ts_ns)
        if cost is not None:
            out["estimated_cost_usd"] = cost
        return out

    def _conversation_id(
        self, pid: int, provider_id: str, messages: list[dict[str, Any]], fields: dict[str, Any]
    ) -> str:
        """The conversation a chat request belongs to, from its message history.

        A conversation resends its history with every turn, so its opening (the system
        prompt and the first non-system message) is the same in every request of it:
        the id is a hash of that opening, scoped to the calling process (two runs of
        the same agent are two conversations). A Responses API request that continues
        with `previous_response_id` (and so carries only the new turn) takes the
        conversation of that response.
        """
        previous = fields.get("previous_response_id")
        if isinstance(previous, str):
            known = self._response_conversations.get(previous)
            if known is not None:
                return known
        system = ""
        first: dict[str, Any] | None = None
        for message in messages:
            role = message.get("role")
            if role in _SYSTEM_ROLES:
                if not system and isinstance(message.get("content"), str):
                    system = message["content"]
                continue
            first = message
            break
        if first is None:
            role, opening = "", ""
        else:
            content = first.get("content")
            role = first.get("role")
            opening = content if isinstance(content, str) else orjson.dumps(first.get("tool_calls")).decode()
        # Hashes, not the texts: a cached key must not keep a long system prompt alive.
        key = (pid, provider_id, hash(system), len(system), role, hash(opening), len(opening))
        cache = self._conversations
        found = cache.get(key)
        if found is not None:
            return found
        # SHA-256 runs in hardware on current CPUs: half the time of blake2b per prompt.
        digest = hashlib.sha256(
            f"{pid}\x1f{provider_id}\x1f{system}\x1f{role}\x1f{opening}".encode("utf-8", "surrogatepass")
        )
        found = "conv_" + digest.hexdigest()[:24]
        if len(cache) >= _CONVERSATION_CACHE:
            cache.clear()  # recomputed on demand: only costs a hash
        cache[key] = found
        return found

    def _tool_results(
        self,
        conn: ConnInfo,
        request: HttpRequest,
        messages: list[dict[str, Any]],
        request_event_id: str,
        conversation_id: str | None,
    ) -> list[SensorEvent]:
        """agent.tool_result for tool messages answering a call this builder reported.

        A request resends every earlier result of its conversation; only results whose
        call is still waiting produce an event, once. Results without a call id (Gemini,
        Ollama) match the latest waiting call of the same tool name in this process, so
        the history is read newest first.
        """
        events: list[SensorEvent] = []
        waiting = self._tool_calls
        for message in reversed(messages):
            if message.get("role") != "tool":
                continue
            call_id = message.get("tool_call_id")
            key: object = (
                call_id if isinstance(call_id, str) and call_id else ("name", conn.pid, message.get("name"))
            )
            seen = waiting.pop(key, None)
            if seen is None:
                continue
            data: dict[str, Any] = {
                "tool": {"name": seen.name},
                "call_id": call_id if isinstance(call_id, str) else None,
                "success": message.get("is_error") is not True,
                "result_length": message.get("content_length", 0),
                "duration_ms": _ms(request.start_ts_ns - seen.ts_ns),
                "related_event_id": seen.event_id,
                "request_event_id": request_event_id,
            }
            if conversation_id or seen.conversation_id:
                data["conversation_id"] = conversation_id or seen.conversation_id
            self.counters.tool_results += 1
            events.append(self._event(AGENT_TOOL_RESULT, request.start_ts_ns, data, conn))
        events.reverse()
        return events

    # ---- ai.response ----------------------------------------------------------------------

    def _response_events(
        self, conn: ConnInfo, request: HttpRequest, response: HttpResponse | None, call: _Call
    ) -> list[SensorEvent]:
        provider = call.provider
        data: dict[str, Any] = {"provider": {"id": provider.id, "name": provider.name}}
        reasons: list[str] = []
        before: list[SensorEvent] = []  # chunk events of a stream decoded only now
        parsed: ParsedResponse | None = None
        if response is None:
            ts_ns = request.end_ts_ns
            if call.model_id:
                data["model"] = {"id": call.model_id}
            data["related_event_id"] = call.event_id
            data["success"] = False
            data["streaming"] = call.streaming
            reasons.append("response_missing")
            self.counters.responses_missing += 1
            self.counters.error_responses += 1
        else:
            ts_ns = response.end_ts_ns
            parsed, streamed, chunks, timing = self._parse_response(response, call)
            if chunks and self._streaming_chunks:
                chunk_ts = response.end_ts_ns if timing == TIMING_RESPONSE_END else 0
                before = [
                    self._chunk_event(
                        conn, call, chunk, chunk_ts or chunk.ts_ns or response.end_ts_ns, timing
                    )
                    for chunk in chunks
                ]
            model_id = parsed.model or call.model_id
            if model_id:
                data["model"] = {"id": model_id}
            request_id = (
                parsed.response_id or response.header("x-request-id") or response.header("request-id")
                or response.header("x-amzn-requestid")
            )  # fmt: skip
            if request_id:
                data["request_id"] = request_id
            data["related_event_id"] = call.event_id
            if call.conversation_id:
                data["conversation_id"] = call.conversation_id
            status = response.status
            fields = parsed.fields
            success = 200 <= status < 300 and "error" not in fields
            data["status_code"] = status
            data["success"] = success
            data["streaming"] = streamed
            if fields:
                data.update(fields)
            if not success:
                self.counters.error_responses += 1
                data["error"] = self._error(data.get("error"), request, response)
            elif "usage" not in data:
                self._fill_usage(data, response, call, parsed, streamed)
            usage = data.get("usage")
            if usage and "cost" not in data:
                cost = self._pricing.cost(provider.id, model_id, usage, request.start_ts_ns)
                if cost is not None:
                    data["cost"] = (
                        {"usd": cost, "estimated": True} if usage.get("estimated") else {"usd": cost}
                    )
            start = request.start_ts_ns
            data["latency_ms"] = _ms(response.end_ts_ns - start)
            data["time_to_first_byte_ms"] = _ms(response.start_ts_ns - start)
            if streamed:
                if parsed.first_token_ts_ns:
                    data["time_to_first_token_ms"] = _ms(parsed.first_token_ts_ns - start)
                elif timing == TIMING_RESPONSE_END and chunks:
                    data["time_to_first_token_ms"] = data["time_to_first_byte_ms"]
                    data["time_to_first_token_source"] = "first_byte"
                if parsed.chunk_count is not None:
                    data["chunk_count"] = parsed.chunk_count
            data["response_bytes"] = response.body_size or len(response.body)

            if not response.complete:
                reasons.append("response_incomplete")
            if response.truncated:
                reasons.append("response_truncated")
            if response.problems and _has_gap(response.problems):
                reasons.append("gap")
            if parsed.unparsed:
                reasons.append("body_unparsed")
                self.counters.unparsed_bodies += 1
            if streamed and not parsed.stream_complete and response.complete:
                reasons.append("stream_incomplete")

        self.counters.ai_responses += 1
        event = SensorEvent(
            event_type=AI_RESPONSE,
            event_id=self._new_id(ts_ns),
            ts_ns=ts_ns,
            data=data,
            pid=conn.pid,
            tid=conn.tid,
            uid=conn.uid,
            comm=conn.comm,
            capture_point=conn.capture_point,
            capture_method=conn.capture_method,
            confidence=Confidence("high", "partial", reasons) if reasons else Confidence(),
        )
        events = [*before, event]
        if call.request_type == "embedding" and response is not None:
            events.append(self._embedding_event(conn, call, data, event))
        choices = data.get("choices")
        if choices and data.get("success"):
            events.extend(self._tool_call_events(conn, call, choices, event, ts_ns))
        if (
            call.request_type == "responses"
            and isinstance(data.get("request_id"), str)
            and call.conversation_id
        ):
            conversations = self._response_conversations
            if len(conversations) >= _MAX_CONVERSATIONS:
                conversations.popitem(last=False)
            conversations[data["request_id"]] = call.conversation_id
        return events

    def _parse_response(
        self, response: HttpResponse, call: _Call
    ) -> tuple[ParsedResponse, bool, list[StreamChunk] | None, str]:
        """(parsed, streamed, chunks to emit now, their timing) for a finished response."""
        parser = call.parser
        acc = call.acc
        if acc is not None or response.sse_events or response.is_event_stream:
            if acc is not None and not call.broken:
                return acc.finish(), True, None, TIMING_CAPTURED
            # No (or not every) StreamEvent reached us: reassemble from what the tracker kept.
            events = response.sse_events or split_sse_body(response.body)
            acc = parser.stream()
            chunks = []
            for event in events:
                chunk = acc.feed(event)
                if chunk is not None:
                    chunks.append(chunk)
            late = chunks if call.chunks_sent == 0 else None  # never report a chunk twice
            return acc.finish(), True, late, TIMING_CAPTURED
        parsed = parser.parse_response(response.body)
        if parsed.streamed:
            return parsed, True, parsed.chunks, TIMING_RESPONSE_END
        return parsed, False, None, TIMING_CAPTURED

    def _fill_usage(
        self,
        data: dict[str, Any],
        response: HttpResponse,
        call: _Call,
        parsed: ParsedResponse,
        streamed: bool,
    ) -> None:
        """Usage when the body had none: Bedrock's token headers, else an offline count."""
        prompt = response.header("x-amzn-bedrock-input-token-count")
        completion = response.header("x-amzn-bedrock-output-token-count")
        if prompt is not None and prompt.isdigit():
            usage = {"prompt_tokens": int(prompt)}
            if completion is not None and completion.isdigit():
                usage["completion_tokens"] = int(completion)
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            data["usage"] = usage
            return
        if not streamed or "choices" not in data:
            return
        tokens = self._tokens
        prompt_tokens = tokens.count_all(call.texts or [])
        completion_tokens = tokens.count_all(_text_of(data["choices"]))
        data["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "estimated": True,
            "estimation_method": tokens.method,
        }
        self.counters.estimated_usages += 1

    def _error(self, error: object, request: HttpRequest, response: HttpResponse) -> dict[str, Any]:
        """The OISP error of a failed call: the provider's type and message, credentials scrubbed."""
        out: dict[str, Any] = dict(error) if isinstance(error, dict) else {}
        status = response.status
        if "type" not in out:
            amzn = response.header("x-amzn-errortype")
            if amzn:
                out["type"] = amzn.split(":", 1)[0]
            elif "message" not in out:
                out["type"] = "http_error"
            elif status in _STATUS_ERRORS:
                out["type"] = _STATUS_ERRORS[status]
        if "message" not in out and not (200 <= status < 300):
            out["message"] = f"{status} {response.reason}".strip()
        etype = str(out.get("type", "")).lower()
        if status == 429 or any(word in etype for word in _RATE_LIMIT_WORDS):
            out["rate_limited"] = True
            retry = response.header("retry-after")
            if retry is not None and retry.strip().isdigit():
                out["retry_after_s"] = int(retry.strip())
        self._scrub_error(out, request)
        return out

    def _scrub_error(self, error: dict[str, Any], request: HttpRequest) -> None:
        """Remove the request's own credential from an error echoed by the server."""
        message = error.get("message")
        if not isinstance(message, str):
            return
        headers = self._headers(request)
        query = request.target.partition("?")[2]
        for secret in self._secrets(headers, query):
            if secret in message:
                message = message.replace(secret, "[REDACTED]")
        error["message"] = message

    # ---- the events beside the pair -------------------------------------------------------

    def _event(self, event_type: str, ts_ns: int, data: dict[str, Any], conn: ConnInfo) -> SensorEvent:
        return SensorEvent(
            event_type=event_type,
            event_id=self._new_id(ts_ns),
            ts_ns=ts_ns,
            data=data,
            pid=conn.pid,
            tid=conn.tid,
            uid=conn.uid,
            comm=conn.comm,
            capture_point=conn.capture_point,
            capture_method=conn.capture_method,
        )

    def _chunk_event(
        self, conn: ConnInfo, call: _Call, chunk: StreamChunk, ts_ns: int, timing: str
    ) -> SensorEvent:
        provider = call.provider
        data: dict[str, Any] = {"provider": {"id": provider.id, "name": provider.name}}
        if call.model_id:
            data["model"] = {"id": call.model_id}
        data["related_event_id"] = call.event_id
        if call.conversation_id:
            data["conversation_id"] = call.conversation_id
        data["chunk_index"] = call.chunks_sent
        data["delta"] = chunk.delta
        data["delta_length"] = len(chunk.delta)
        data["delta_type"] = chunk.kind
        data["finish_reason"] = chunk.finish_reason
        data["time_since_request_ms"] = _ms(ts_ns - call.start_ts_ns)
        data["timing"] = timing
        if chunk.offset >= 0:
            data["body_offset"] = chunk.offset
        call.chunks_sent += 1
        self.counters.streaming_chunks += 1
        return self._event(AI_STREAMING_CHUNK, ts_ns, data, conn)

    def _embedding_event(
        self, conn: ConnInfo, call: _Call, response_data: dict[str, Any], response_event: SensorEvent
    ) -> SensorEvent:
        data: dict[str, Any] = {"provider": response_data["provider"]}
        if "model" in response_data:
            data["model"] = response_data["model"]
        data["related_event_id"] = call.event_id
        data["response_event_id"] = response_event.event_id
        data["success"] = response_data.get("success", False)
        if call.input_count is not None:
            data["input_count"] = call.input_count
        summary = response_data.get("embedding")
        if isinstance(summary, dict):
            data["embedding_count"] = summary.get("count")
            if summary.get("dimensions") is not None:
                data["dimensions"] = summary["dimensions"]
        usage = response_data.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            data["tokens"] = usage["prompt_tokens"]
        if "cost" in response_data:
            data["cost"] = response_data["cost"]
        data["latency_ms"] = response_data.get("latency_ms", 0)
        self.counters.embeddings += 1
        return self._event(AI_EMBEDDING, response_event.ts_ns, data, conn)

    def _tool_call_events(
        self, conn: ConnInfo, call: _Call, choices: list[Any], response_event: SensorEvent, ts_ns: int
    ) -> list[SensorEvent]:
        events: list[SensorEvent] = []
        waiting = self._tool_calls
        for item in choices:
            message = item.get("message") if isinstance(item, dict) else None
            calls = message.get("tool_calls") if isinstance(message, dict) else None
            if not calls:
                continue
            for tool_call in calls:
                if not isinstance(tool_call, dict):
                    continue
                function = tool_call.get("function")
                function = function if isinstance(function, dict) else {}
                name = function.get("name")
                raw = function.get("arguments")
                call_id = tool_call.get("id")
                data: dict[str, Any] = {
                    "tool": {"name": name, "type": tool_call.get("type") or "function"},
                    "arguments": _arguments(raw),
                    "call_id": call_id,
                    "related_event_id": response_event.event_id,
                    "request_event_id": call.event_id,
                    "provider": {"id": call.provider.id, "name": call.provider.name},
                }
                if call.conversation_id:
                    data["conversation_id"] = call.conversation_id
                event = self._event(AGENT_TOOL_CALL, ts_ns, data, conn)
                events.append(event)
                self.counters.tool_calls += 1
                key: object = call_id if isinstance(call_id, str) and call_id else ("name", conn.pid, name)
                waiting.pop(key, None)
                if len(waiting) >= _MAX_TOOL_CALLS:
                    waiting.popitem(last=False)
                waiting[key] = _ToolCall(name if isinstance(name, str) else None, event.event_id, ts_ns,
                                         call.conversation_id, conn.pid)  # fmt: skip
        return events


def _arguments(raw: object) -> object:
    """Tool-call arguments as the object they encode (the JSON text when it is not JSON)."""
    if not isinstance(raw, str):
        return raw
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


_MISSING: Any = object()
