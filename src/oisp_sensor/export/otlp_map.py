"""OISP events -> OpenTelemetry spans and log records (GenAI semantic conventions).

* An AI call (`ai.request` + its `ai.response`) is one CLIENT span named
  "{gen_ai.operation.name} {gen_ai.request.model}", from the request's capture time
  to the response's, with the gen_ai.* attributes.
* A tool call (`agent.tool_call` until its `agent.tool_result`) is an `execute_tool`
  span, child of the AI call whose answer asked for it.
* Every other event is a log record whose body is the OISP event and whose
  `event.name` is its type; the events of an AI call (streaming chunks, embeddings)
  carry that call's trace and span ids.

Ids are derived from the events, not random: the trace id from the conversation (else
the AI call), so the calls and tool runs of one agent conversation form one trace,
and the span id from the event id. That needs no state across restarts and gives the
same ids for the same events.

The SDK builds the spans and log records (limits, resource, scope); a pair waiting for
its second half is held here (bounded) and ended without it after `max_wait_s` or at
shutdown, marked incomplete, so no event is held forever.
"""

from __future__ import annotations

import calendar
import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

SCOPE = "oisp-sensor"

# gen_ai.operation.name by OISP request_type (the rest pass through as they are).
_OPERATIONS = {
    "chat": "chat",
    "responses": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
}
# gen_ai.provider.name well-known values, by OISP provider id.
_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertex-ai": "gcp.vertex_ai",
    "azure": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "aws-bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "groq": "groq",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}
_PAIRED = frozenset({"ai.request", "ai.response", "agent.tool_call", "agent.tool_result"})


def event_time_ns(event: dict[str, Any]) -> int:
    """The OISP timestamp ("2026-11-22T10:00:00.123456Z") as Unix nanoseconds, exactly."""
    text = event.get("timestamp")
    if not isinstance(text, str) or len(text) < 20:
        return time.time_ns()
    try:
        whole = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return time.time_ns()
    frac = text[20:].rstrip("Z")[:9] if text[19:20] == "." else ""
    return whole * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac.isdigit() else 0)


def _hash_id(text: str, size: int) -> int:
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=size).digest(), "big")
    return value or 1  # zero is the invalid id


def trace_id_of(key: str) -> int:
    return _hash_id(f"trace:{key}", 16)


def span_id_of(event_id: str) -> int:
    return _hash_id(f"span:{event_id}", 8)


class _FixedIds(IdGenerator):
    """Hands the SDK the ids decided here for the next span."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.span_id


class _Collect(SpanProcessor, LogRecordProcessor):
    """Keeps what the SDK finished, for the exporter thread to send as one batch."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.logs: list[ReadWriteLogRecord] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.logs.append(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass
class Converted:
    """One batch of telemetry, and how many OISP events each part carries."""

    spans: list[ReadableSpan] = field(default_factory=list)
    span_counts: list[int] = field(default_factory=list)  # OISP events in each span

    @property
    def span_events(self) -> int:
        return sum(self.span_counts)

    logs: list[ReadWriteLogRecord] = field(default_factory=list)
    log_events: int = 0


@dataclass(slots=True)
class _Held:
    event: dict[str, Any]
    since: float  # monotonic


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _clean(value: Any) -> Any:
    """A log body the OTLP encoder accepts (no nulls, no non-string keys)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value if v is not None]
    return value


class OtlpMapper:
    def __init__(self, resource: Resource, max_wait_s: float = 600.0, max_held: int = 10_000) -> None:
        self._ids = _FixedIds()
        self._collect = _Collect()
        self.tracer_provider = TracerProvider(resource=resource, id_generator=self._ids, sampler=ALWAYS_ON)
        self.tracer_provider.add_span_processor(self._collect)
        self.tracer = self.tracer_provider.get_tracer(SCOPE)
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(self._collect)
        self.logger = self.logger_provider.get_logger(SCOPE)
        self.max_wait_s = max_wait_s
        self.max_held = max_held
        self._requests: OrderedDict[str, _Held] = OrderedDict()  # request event id -> waiting
        self._tools: OrderedDict[str, _Held] = OrderedDict()  # tool_call event id -> waiting
        # AI call (request event id) -> (trace id, span id), for its later events.
        self._calls: OrderedDict[str, tuple[int, int]] = OrderedDict()

    @property
    def held(self) -> int:
        return len(self._requests) + len(self._tools)

    # -- conversion --
    def convert(self, events: Sequence[dict[str, Any]]) -> Converted:
        out = Converted()
        for event in events:
            kind = event.get("event_type")
            if kind == "ai.request":
                self._hold(self._requests, event, out)
                self._call_ids(event)
            elif kind == "ai.response":
                self._response(event, out)
            elif kind == "agent.tool_call":
                self._hold(self._tools, event, out)
            elif kind == "agent.tool_result":
                self._tool_result(event, out)
            else:
                self._log(event, out)
        return self._take(out)

    def expire(self, now: float | None = None, everything: bool = False) -> Converted:
        """End what waited too long for its other half (all of it when `everything`)."""
        out = Converted()
        limit = (now if now is not None else time.monotonic()) - self.max_wait_s
        for held_map, end in ((self._requests, self._call_span), (self._tools, self._tool_span)):
            while held_map:
                key, held = next(iter(held_map.items()))
                if not everything and held.since > limit:
                    break
                del held_map[key]
                end(held.event, None, out)
        return self._take(out)

    def _take(self, out: Converted) -> Converted:
        out.spans, self._collect.spans = self._collect.spans, []
        out.logs, self._collect.logs = self._collect.logs, []
        return out

    def _hold(self, held_map: OrderedDict[str, _Held], event: dict[str, Any], out: Converted) -> None:
        if len(held_map) >= self.max_held:  # bounded: the oldest ends without its other half
            _key, oldest = held_map.popitem(last=False)
            (self._call_span if held_map is self._requests else self._tool_span)(oldest.event, None, out)
        held_map[str(event.get("event_id"))] = _Held(event, time.monotonic())

    def _call_ids(self, request: dict[str, Any]) -> tuple[int, int]:
        event_id = str(request.get("event_id"))
        found = self._calls.get(event_id)
        if found is not None:
            return found
        data = request.get("data") or {}
        ids = (trace_id_of(str(data.get("conversation_id") or event_id)), span_id_of(event_id))
        self._calls[event_id] = ids
        if len(self._calls) > 4 * self.max_held:
            self._calls.popitem(last=False)
        return ids

    def _ids_of_call(self, event: dict[str, Any]) -> tuple[int, int] | None:
        data = event.get("data") or {}
        for key in ("request_event_id", "related_event_id"):
            ref = data.get(key)
            if isinstance(ref, str) and ref in self._calls:
                return self._calls[ref]
        return None

    def _response(self, response: dict[str, Any], out: Converted) -> None:
        related = (response.get("data") or {}).get("related_event_id")
        held = self._requests.pop(related, None) if isinstance(related, str) else None
        if held is not None:
            self._call_span(held.event, response, out)
        else:  # its request ended earlier (waited too long) or came before a restart
            self._call_span(None, response, out)

    def _tool_result(self, result: dict[str, Any], out: Converted) -> None:
        related = (result.get("data") or {}).get("related_event_id")
        held = self._tools.pop(related, None) if isinstance(related, str) else None
        if held is not None:
            self._tool_span(held.event, result, out)
        else:
            self._log(result, out)

    # -- spans --
    def _start(self, name: str, trace_id: int, span_id: int, parent: int | None, start: int) -> Any:
        ids = self._ids
        ids.trace_id, ids.span_id = trace_id, span_id
        context: Context | None = None
        if parent is not None:
            parent_ctx = SpanContext(trace_id, parent, is_remote=False, trace_flags=TraceFlags(1))
            context = set_span_in_context(NonRecordingSpan(parent_ctx))
        return self.tracer.start_span(name, context=context, kind=SpanKind.CLIENT, start_time=start)

    def _call_span(
        self, request: dict[str, Any] | None, response: dict[str, Any] | None, out: Converted
    ) -> None:
        first = request or response
        assert first is not None
        req = (request or {}).get("data") or {}
        resp = (response or {}).get("data") or {}
        if request is not None:
            trace_id, span_id = self._call_ids(request)
            start = event_time_ns(request)
        else:
            assert response is not None
            related = str(resp.get("related_event_id") or response.get("event_id"))
            trace_id = trace_id_of(str(resp.get("conversation_id") or related))
            span_id = span_id_of(related)
            latency = resp.get("latency_ms")
            start = event_time_ns(response) - int((latency if isinstance(latency, int | float) else 0) * 1e6)
        end = event_time_ns(response) if response is not None else start
        operation = _OPERATIONS.get(str(req.get("request_type") or "chat"), str(req.get("request_type")))
        request_model = (req.get("model") or {}).get("id") or (resp.get("model") or {}).get("id") or ""
        span = self._start(f"{operation} {request_model}".strip(), trace_id, span_id, None, start)
        span.set_attributes(_call_attributes(operation, first, request, response))
        if response is None:
            span.set_attribute("oisp.incomplete", "response_not_seen")
        elif not resp.get("success", True):
            error = resp.get("error") if isinstance(resp.get("error"), dict) else {}
            etype = str(error.get("type") or resp.get("status_code") or "error")
            span.set_attribute("error.type", etype)
            span.set_status(Status(StatusCode.ERROR, str(error.get("message") or etype)[:500]))
        span.end(end_time=max(end, start))
        out.span_counts.append((request is not None) + (response is not None))

    def _tool_span(self, call: dict[str, Any], result: dict[str, Any] | None, out: Converted) -> None:
        data = call.get("data") or {}
        tool = data.get("tool") or {}
        name = str(tool.get("name") or "tool")
        ids = self._ids_of_call(call)
        call_id = str(call.get("event_id"))
        if ids is not None:
            trace_id, parent = ids
        else:
            ref = str(data.get("request_event_id") or call_id)
            trace_id, parent = trace_id_of(str(data.get("conversation_id") or ref)), span_id_of(ref)
        start = event_time_ns(call)
        span = self._start(f"execute_tool {name}", trace_id, span_id_of(call_id), parent, start)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": str(tool.get("type") or "function"),
            "oisp.event_id": call_id,
            "oisp.event_type": "agent.tool_call",
        }
        _put(attributes, "gen_ai.tool.call.id", data.get("call_id"))
        _put(attributes, "gen_ai.conversation.id", data.get("conversation_id"))
        if "arguments" in data:
            attributes["gen_ai.tool.call.arguments"] = _json(data["arguments"])
        _process_attributes(attributes, call)
        end = start
        if result is not None:
            rdata = result.get("data") or {}
            end = event_time_ns(result)
            attributes["oisp.result_event_id"] = str(result.get("event_id"))
            _put(attributes, "oisp.tool.result_length", rdata.get("result_length"))
            if rdata.get("success") is False:
                attributes["error.type"] = "tool_error"
                span.set_status(Status(StatusCode.ERROR, "the tool reported an error"))
        else:
            attributes["oisp.incomplete"] = "result_not_seen"
        span.set_attributes(attributes)
        span.end(end_time=max(end, start))
        out.span_counts.append(1 + (result is not None))

    # -- logs --
    def _log(self, event: dict[str, Any], out: Converted) -> None:
        kind = str(event.get("event_type"))
        context: Context | None = None
        if kind.startswith(("ai.", "agent.")):
            ids = self._ids_of_call(event)
            if ids is not None:
                parent = SpanContext(ids[0], ids[1], is_remote=False, trace_flags=TraceFlags(1))
                context = set_span_in_context(NonRecordingSpan(parent))
        attributes = {"event.name": kind, "oisp.event_id": str(event.get("event_id"))}
        _process_attributes(attributes, event)
        self.logger.emit(
            timestamp=event_time_ns(event),
            observed_timestamp=time.time_ns(),
            context=context,
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body=_clean(event),
            attributes=attributes,
            event_name=kind,
        )
        out.log_events += 1


def _put(attributes: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, str | bool | int | float) and value != "":
        attributes[key] = value


def _process_attributes(attributes: dict[str, Any], event: dict[str, Any]) -> None:
    process = event.get("process") or {}
    _put(attributes, "process.pid", process.get("pid"))
    _put(attributes, "process.executable.name", process.get("name"))
    _put(attributes, "process.executable.path", process.get("exe"))
    app = event.get("app") or {}
    _put(attributes, "oisp.app.id", app.get("id"))


def _call_attributes(
    operation: str, first: dict[str, Any], request: dict[str, Any] | None, response: dict[str, Any] | None
) -> dict[str, Any]:
    req = (request or {}).get("data") or {}
    resp = (response or {}).get("data") or {}
    provider = req.get("provider") or resp.get("provider") or {}
    provider_id = str(provider.get("id") or "unknown")
    a: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": _PROVIDERS.get(provider_id, provider_id),
        "oisp.provider.id": provider_id,
    }
    _put(a, "oisp.provider.name", provider.get("name"))
    _put(a, "gen_ai.request.model", (req.get("model") or {}).get("id"))
    _put(a, "gen_ai.response.model", (resp.get("model") or {}).get("id"))
    _put(a, "gen_ai.response.id", resp.get("request_id"))
    _put(a, "gen_ai.conversation.id", req.get("conversation_id") or resp.get("conversation_id"))
    params = req.get("parameters") or {}
    for key, attr in (
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
        ("top_k", "gen_ai.request.top_k"),
        ("max_tokens", "gen_ai.request.max_tokens"),
        ("max_output_tokens", "gen_ai.request.max_tokens"),
        ("frequency_penalty", "gen_ai.request.frequency_penalty"),
        ("presence_penalty", "gen_ai.request.presence_penalty"),
        ("seed", "gen_ai.request.seed"),
    ):
        _put(a, attr, params.get(key))
    usage = resp.get("usage") or {}
    _put(a, "gen_ai.usage.input_tokens", usage.get("prompt_tokens"))
    _put(a, "gen_ai.usage.output_tokens", usage.get("completion_tokens"))
    reasons = [
        str(c["finish_reason"])
        for c in resp.get("choices") or []
        if isinstance(c, dict) and c.get("finish_reason")
    ]
    if reasons:
        a["gen_ai.response.finish_reasons"] = reasons
    endpoint = (provider.get("endpoint") or "").split("://", 1)[-1]
    http = req.get("http") or {}
    host = http.get("host") or endpoint.split("/", 1)[0]
    if host:
        name, _, port = str(host).partition(":")
        a["server.address"] = name
        a["server.port"] = int(port) if port.isdigit() else 443
    if req.get("streaming") is not None:
        a["oisp.streaming"] = bool(req.get("streaming"))
    _put(a, "oisp.request_type", req.get("request_type"))
    if request is not None:
        a["oisp.event_id"] = str(request.get("event_id"))
    if response is not None:
        a["oisp.response_event_id"] = str(response.get("event_id"))
        _put(a, "http.response.status_code", resp.get("status_code"))
    _put(a, "oisp.latency_ms", resp.get("latency_ms"))
    _put(a, "oisp.time_to_first_token_ms", resp.get("time_to_first_token_ms"))
    _put(a, "oisp.cost_usd", (resp.get("cost") or {}).get("usd"))
    # The content, as redaction left it for this destination (absent in minimal mode).
    if req.get("messages"):
        a["gen_ai.input.messages"] = _json(req["messages"])
    if resp.get("choices"):
        a["gen_ai.output.messages"] = _json(resp["choices"])
    if req.get("tools"):
        a["gen_ai.tool.definitions"] = _json(req["tools"])
    _process_attributes(a, first)
    return a
