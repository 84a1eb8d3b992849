"""HTTP exchanges in, OISP `ai.request` / `ai.response` events out.

Every decoded client exchange passes through here, and most of them are not AI
traffic (pip, apt, telemetry), so the first job is a cheap decision: a known provider
host (or an unknown host with an unmistakable AI API path) makes it an AI call,
anything else is counted and dropped without parsing a byte of body.

For an AI call the provider's `api_format` plus the path picks a format parser (see
`providers.default_format_registry`); the parser turns bodies into OISP fragments and
this module adds what only the HTTP layer knows: endpoint, auth key prefix, sizes,
timings, and how complete the capture was. The `ai.request` goes out as soon as the
request is seen, so a call that never gets an answer is still reported; the
`ai.response` follows on ExchangeDone, linked by `related_event_id`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from oisp_sensor.decode.messages import (
    ConnInfo,
    DecodeOutput,
    ExchangeDone,
    HttpRequest,
    HttpResponse,
    RequestSeen,
    SseEvent,
)
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
from oisp_sensor.decode.providers.registry import is_local_host, split_host
from oisp_sensor.schema.events import AI_REQUEST, AI_RESPONSE, Confidence, SensorEvent

IdFactory = Callable[[int], str]

# Known-provider requests whose path matches no format: still an AI call, read generically.
_OTHER_SPEC = FormatSpec(name="generic", request_type="other", path=re.compile(""), parser=GENERIC)
# Headers read from each request, in one pass.
_WANTED_HEADERS = frozenset(
    {"host", ":authority", "authorization", "api-key", "x-api-key", "x-goog-api-key", "user-agent"}
)
_API_KEY_HEADERS = ("api-key", "x-api-key", "x-goog-api-key")
_DEFAULT_MAX_PENDING = 65536


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
    ignored_outputs: int = 0  # ResponseStarted / StreamEvent (not turned into events yet)


@dataclass(slots=True)
class _Call:
    """An AI request waiting for its response: what the ai.response needs from it."""

    event_id: str
    provider: Provider
    spec: FormatSpec
    model_id: str | None
    streaming: bool


@dataclass(slots=True)
class _Route:
    """Where a request goes: the outcome of classification."""

    provider: Provider
    spec: FormatSpec
    host: str  # Host header value as sent (lower case)
    path: str  # without query
    query: str
    scheme: str


def _ms(delta_ns: int) -> int:
    """Nanoseconds to whole milliseconds, rounded half up, never negative."""
    return (delta_ns + 500_000) // 1_000_000 if delta_ns > 0 else 0


def _has_gap(problems: list[str]) -> bool:
    return any(p.startswith("gap") for p in problems)


def _sse_from_body(body: bytes) -> list[SseEvent]:
    """Minimal SSE split for an event-stream body the HTTP decoder did not split.

    Only `data:` lines are kept (joined per event with newlines), which is all the
    chunk formats use. Timestamps are unknown (0).
    """
    events: list[SseEvent] = []
    text = body.decode("utf-8", "replace").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        lines = [line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")]
        if lines:
            events.append(SseEvent(data="\n".join(lines)))
    return events


class AiEventBuilder:
    """Turns tracker outputs into ai.request / ai.response SensorEvents.

    Holds one small record per in-flight exchange (bounded: the oldest is forgotten
    when `max_pending` is reached, so a tracker that never closes exchanges cannot
    grow it without limit).
    """

    def __init__(
        self,
        registry: ProviderRegistry,
        id_factory: IdFactory,
        formats: FormatRegistry | None = None,
        *,
        max_pending: int = _DEFAULT_MAX_PENDING,
    ) -> None:
        self._registry = registry
        self._new_id = id_factory
        self._formats = formats if formats is not None else default_format_registry()
        self._max_pending = max_pending
        # exchange_id -> the AI call, or None for an exchange already judged not AI.
        self._pending: dict[int, _Call | None] = {}
        self.counters = AiEventCounters()

    def process(self, output: DecodeOutput) -> list[SensorEvent]:
        """Events for one tracker output (usually zero or one)."""
        kind = type(output)
        if kind is RequestSeen:
            return self._on_request(output)  # type: ignore[arg-type]
        if kind is ExchangeDone:
            return self._on_done(output)  # type: ignore[arg-type]
        # ResponseStarted / StreamEvent: reserved for ai.streaming_chunk.
        self.counters.ignored_outputs += 1
        return []

    # ---- tracker outputs ------------------------------------------------------------------

    def _on_request(self, seen: RequestSeen) -> list[SensorEvent]:
        if seen.exchange_id in self._pending:
            return []  # already handled (a tracker repeating itself)
        headers = self._headers(seen.request)
        route = self._route(seen.request, headers)
        if route is None:
            self.counters.non_ai_exchanges += 1
            self._remember(seen.exchange_id, None)
            return []
        event, call = self._request_event(seen.conn, seen.request, route, headers)
        self._remember(seen.exchange_id, call)
        return [event]

    def _on_done(self, done: ExchangeDone) -> list[SensorEvent]:
        call = self._pending.pop(done.exchange_id, _MISSING)
        if call is None:
            return []  # judged not AI when the request was seen
        if call is _MISSING:
            # No RequestSeen came first (evicted, or the tracker only reported the end).
            headers = self._headers(done.request)
            route = self._route(done.request, headers)
            if route is None:
                self.counters.non_ai_exchanges += 1
                return []
            self.counters.late_requests += 1
            event, call = self._request_event(done.conn, done.request, route, headers)
            return [event, self._response_event(done.conn, done.request, done.response, call)]
        assert isinstance(call, _Call)
        return [self._response_event(done.conn, done.request, done.response, call)]

    def _remember(self, exchange_id: int, call: _Call | None) -> None:
        pending = self._pending
        if len(pending) >= self._max_pending:
            evicted = pending.pop(next(iter(pending)))
            if evicted is not None:
                self.counters.pending_evicted += 1
        pending[exchange_id] = call

    # ---- classification -------------------------------------------------------------------

    @staticmethod
    def _headers(request: HttpRequest) -> dict[str, str]:
        """The few headers this module reads, first occurrence of each, in one pass."""
        found: dict[str, str] = {}
        for name, value in request.headers:
            if name in _WANTED_HEADERS and name not in found:
                found[name] = value
        return found

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

    # ---- events ---------------------------------------------------------------------------

    def _auth(self, headers: dict[str, str], query: str, provider: Provider) -> dict[str, Any] | None:
        """OISP auth {type, key_prefix}: never more of a credential than its prefix."""
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

    def _request_event(
        self, conn: ConnInfo, request: HttpRequest, route: _Route, headers: dict[str, str]
    ) -> tuple[SensorEvent, _Call]:
        provider = route.provider
        spec = route.spec
        parsed = spec.parser.parse_request(request.body)
        model_id = parsed.model or spec.model_from_path(route.path)

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
        data["request_type"] = spec.request_type
        data["streaming"] = parsed.streaming
        if parsed.fields:
            data.update(parsed.fields)
        auth = self._auth(headers, route.query, provider)
        if auth is not None:
            data["auth"] = auth
        http: dict[str, Any] = {"method": request.method, "path": route.path, "host": host}
        user_agent = headers.get("user-agent")
        if user_agent is not None:
            http["user_agent"] = user_agent
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
            capture_point="ssl",
            confidence=confidence,
        )
        return event, _Call(event_id, provider, spec, model_id, parsed.streaming)

    def _response_event(
        self, conn: ConnInfo, request: HttpRequest, response: HttpResponse | None, call: _Call
    ) -> SensorEvent:
        provider = call.provider
        data: dict[str, Any] = {"provider": {"id": provider.id, "name": provider.name}}
        reasons: list[str] = []
        if response is None:
            ts_ns = request.end_ts_ns
            if call.model_id:
                data["model"] = {"id": call.model_id}
            data["related_event_id"] = call.event_id
            data["success"] = False
            data["streaming"] = call.streaming
            reasons.append("response_missing")
            self.counters.responses_missing += 1
        else:
            ts_ns = response.end_ts_ns
            streamed = bool(response.sse_events) or response.is_event_stream
            parser = call.spec.parser
            if streamed:
                events = response.sse_events or _sse_from_body(response.body)
                parsed = parser.parse_stream(events)
            else:
                parsed = parser.parse_response(response.body)
            model_id = parsed.model or call.model_id
            if model_id:
                data["model"] = {"id": model_id}
            request_id = (
                parsed.response_id or response.header("x-request-id") or response.header("request-id")
            )
            if request_id:
                data["request_id"] = request_id
            data["related_event_id"] = call.event_id
            status = response.status
            success = 200 <= status < 300
            data["status_code"] = status
            data["success"] = success
            data["streaming"] = streamed
            if parsed.fields:
                data.update(parsed.fields)
            if not success and "error" not in data:
                data["error"] = {"type": "http_error", "message": f"{status} {response.reason}".strip()}
            if "error" in data:
                self._scrub_error(data["error"], request)
            start = request.start_ts_ns
            data["latency_ms"] = _ms(response.end_ts_ns - start)
            data["time_to_first_byte_ms"] = _ms(response.start_ts_ns - start)
            if streamed:
                if parsed.first_token_ts_ns:
                    data["time_to_first_token_ms"] = _ms(parsed.first_token_ts_ns - start)
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
        return SensorEvent(
            event_type=AI_RESPONSE,
            event_id=self._new_id(ts_ns),
            ts_ns=ts_ns,
            data=data,
            pid=conn.pid,
            tid=conn.tid,
            uid=conn.uid,
            comm=conn.comm,
            capture_point="ssl",
            confidence=Confidence("high", "partial", reasons) if reasons else Confidence(),
        )

    def _scrub_error(self, error: object, request: HttpRequest) -> None:
        """Remove the request's own credential from an error echoed by the server."""
        if not isinstance(error, dict):
            return
        message = error.get("message")
        if not isinstance(message, str):
            return
        headers = self._headers(request)
        query = request.target.partition("?")[2]
        for secret in self._secrets(headers, query):
            if secret in message:
                message = message.replace(secret, "[REDACTED]")
        error["message"] = message


_MISSING: Any = object()
