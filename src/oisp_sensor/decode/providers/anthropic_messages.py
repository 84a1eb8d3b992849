"""Anthropic Messages (`POST /v1/messages`) as OISP fragments.

The same body is also sent to Bedrock InvokeModel (`anthropic_version:
"bedrock-2023-05-31"`, model in the path) and Vertex AI rawPredict, and served by a few
Anthropic-compatible gateways, so the model may be absent from the body.

Normalisation to the OpenAI-like shape: the top-level `system` becomes a leading
system message; `tool_use` blocks become `tool_calls` ({id, type, function {name,
arguments}} with the input object as JSON text); each `tool_result` block becomes a
`{"role": "tool", "tool_call_id": ...}` message; `thinking` text is never copied, only
listed as a part type. Usage is re-based so prompt_tokens counts every input token:
Anthropic's `input_tokens` excludes cache reads and writes, which are added back and
also reported as cached_tokens / cache_write_tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oisp_sensor.decode.messages import SseEvent
from oisp_sensor.decode.providers.base import (
    ParsedRequest,
    ParsedResponse,
    StreamChunk,
    as_int,
    choice,
    error_fields,
    event_object,
    load_json_object,
    make_usage,
    response_object,
    run_stream,
    salvage_model,
    system_hash,
    text_message,
    tool_call,
)

_PARAMETER_KEYS = frozenset(
    {"max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "service_tier", "container"}
)
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}


def finish_reason(native: object) -> str | None:
    """OpenAI-vocabulary finish reason for a stop_reason (unknown ones pass through)."""
    if not isinstance(native, str):
        return None
    return FINISH_REASONS.get(native, native)


def blocks_text(content: object) -> tuple[str | None, list[str] | None]:
    """(joined text, part types) of a string or a list of content blocks."""
    if isinstance(content, str):
        return content, None
    if not isinstance(content, list):
        return None, None
    texts: list[str] = []
    types: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        types.append(btype if isinstance(btype, str) else "unknown")
        if btype == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
    return "\n".join(texts), types


def _tool_result_text(content: object) -> str:
    if isinstance(content, str):
        return content
    text, _ = blocks_text(content)
    return text or ""


def _request_messages(message: object, out: list[dict[str, Any]]) -> None:
    """Append the normalised message(s) of one Anthropic message."""
    if not isinstance(message, dict):
        out.append({"role": None, "content_length": 0})
        return
    role = message.get("role")
    content = message.get("content")
    if isinstance(content, str) or not isinstance(content, list):
        out.append(text_message(role, content if isinstance(content, str) else None))
        return
    texts: list[str] = []
    types: list[str] = []
    calls: list[dict[str, Any]] = []
    results = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "tool_result":
            results += 1
            text = _tool_result_text(block.get("content"))
            extra: dict[str, Any] = {"tool_call_id": block.get("tool_use_id")}
            if block.get("is_error") is True:
                extra["is_error"] = True
            out.append(text_message("tool", text, **extra))
            continue
        types.append(btype if isinstance(btype, str) else "unknown")
        if btype == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif btype in ("tool_use", "server_tool_use"):
            calls.append(tool_call(block.get("id"), block.get("name"), block.get("input")))
    if types or not results:
        item = text_message(role, "\n".join(texts), content_parts=types)
        if calls:
            item["tool_calls"] = calls
        out.append(item)


def _tools(value: object) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    out = []
    for tool in value:
        if isinstance(tool, dict):
            ttype = tool.get("type")
            # Client tools have no type (or "custom"); server tools name their version.
            out.append({"name": tool.get("name"), "type": "function" if ttype in (None, "custom") else ttype})
    return out or None


def usage_fields(usage: object) -> dict[str, int] | None:
    """OISP usage from an Anthropic usage object (see the module docstring)."""
    if not isinstance(usage, dict):
        return None
    inp = as_int(usage.get("input_tokens"))
    read = as_int(usage.get("cache_read_input_tokens"))
    write = as_int(usage.get("cache_creation_input_tokens"))
    prompt = None if inp is None else inp + (read or 0) + (write or 0)
    return make_usage(prompt, usage.get("output_tokens"), cached=read, cache_write=write)


def read_request(obj: dict[str, Any], out: ParsedRequest) -> None:
    """Fill `out` from a decoded Messages request body."""
    model = obj.get("model")
    out.model = model if isinstance(model, str) else None
    out.streaming = obj.get("stream") is True
    fields = out.fields
    messages: list[dict[str, Any]] = []
    system = obj.get("system")
    system_text, _ = blocks_text(system)
    if system_text is not None:
        messages.append(text_message("system", system_text))
    raw = obj.get("messages")
    if isinstance(raw, list):
        for message in raw:
            _request_messages(message, messages)
    else:
        out.problems.append("request: no messages list")
    if messages:
        fields["message_count"] = len(messages)
        fields["messages"] = messages
    if system_text:
        fields["system_prompt_hash"] = system_hash([system_text])
    tools = _tools(obj.get("tools"))
    if tools:
        fields["tools"] = tools
    if obj.get("tool_choice") is not None:
        fields["tool_choice"] = obj["tool_choice"]
    params = {k: v for k, v in obj.items() if k in _PARAMETER_KEYS and v is not None}
    thinking = obj.get("thinking")
    if isinstance(thinking, dict) and isinstance(thinking.get("budget_tokens"), int):
        params["thinking_budget_tokens"] = thinking["budget_tokens"]
    if params:
        fields["parameters"] = params


def read_message(obj: dict[str, Any], out: ParsedResponse) -> None:
    """Fill `out` from a Message object (a response body, or message_start's message)."""
    if out.response_id is None and isinstance(obj.get("id"), str):
        out.response_id = obj["id"]
    if out.model is None and isinstance(obj.get("model"), str):
        out.model = obj["model"]
    content = obj.get("content")
    if isinstance(content, list):
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in content:
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            if btype == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif btype in ("tool_use", "server_tool_use"):
                calls.append(tool_call(block.get("id"), block.get("name"), block.get("input")))
        message = text_message(obj.get("role") or "assistant", "".join(texts))
        if calls:
            message["tool_calls"] = calls
        item = choice(message, finish_reason(obj.get("stop_reason")))
        if isinstance(obj.get("stop_reason"), str):
            item["native_finish_reason"] = obj["stop_reason"]
        out.fields["choices"] = [item]
    usage = usage_fields(obj.get("usage"))
    if usage:
        out.fields["usage"] = usage


def error_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """{"type": "error", "error": {"type", "message"}} -> OISP error."""
    return error_fields(obj.get("error")) if obj.get("type") == "error" or "error" in obj else None


class AnthropicMessagesParser:
    """FormatParser for the Messages API (also behind Bedrock and Vertex)."""

    def __init__(self, *, streaming: bool | None = None) -> None:
        # streaming=True for paths that always stream (Bedrock invoke-with-response-stream).
        self._streaming = streaming

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = ParsedRequest()
        if not body:
            out.problems.append("request: empty body")
            return out
        obj = load_json_object(body, "request", out.problems)
        if obj is None:
            out.model, out.streaming = salvage_model(body)
            out.unparsed = True
        else:
            read_request(obj, out)
        if self._streaming is not None:
            out.streaming = self._streaming
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        out, obj = response_object(body)
        if obj is None:
            return out
        read_message(obj, out)
        error = error_of(obj)
        if error:
            out.fields["error"] = error
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> AnthropicStream:
        return AnthropicStream()


class _Block:
    __slots__ = ("id", "kind", "name", "parts")

    def __init__(self, kind: str, block_id: object = None, name: object = None) -> None:
        self.kind = kind
        self.id = block_id
        self.name = name
        self.parts: list[str] = []


class AnthropicStream:
    """Reassembles message_start / content_block_* / message_delta / message_stop events.

    Also fed by the Bedrock decoder with the JSON of each InvokeModel stream chunk (same
    event objects, plus `amazon-bedrock-invocationMetrics` on the last one).
    """

    __slots__ = ("bad", "blocks", "chunks", "error", "out", "stop_reason", "usage_in", "usage_out")

    def __init__(self) -> None:
        self.out = ParsedResponse(chunk_count=0, stream_complete=False)
        self.blocks: dict[int, _Block] = {}
        self.stop_reason: str | None = None
        self.usage_in: dict[str, Any] = {}
        self.usage_out: int | None = None
        self.error: dict[str, Any] | None = None
        self.bad = 0
        self.chunks = 0

    def feed(self, event: SseEvent) -> StreamChunk | None:
        if not event.data:
            return None
        obj = event_object(event.data)
        if obj is None:
            self.bad += 1
            return None
        return self.feed_object(obj, event.ts_ns)

    def feed_object(self, obj: dict[str, Any], ts_ns: int, offset: int = -1) -> StreamChunk | None:
        etype = obj.get("type")
        if etype == "ping":
            return None
        self.chunks += 1
        out = self.out
        if etype == "content_block_delta":
            index = as_int(obj.get("index")) or 0
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return None
            block = self.blocks.get(index)
            if block is None:
                block = self.blocks[index] = _Block("text")
            dtype = delta.get("type")
            if dtype == "text_delta":
                text, kind = delta.get("text"), "text"
            elif dtype == "input_json_delta":
                text, kind = delta.get("partial_json"), "tool_call"
            elif dtype == "thinking_delta":
                text, kind = delta.get("thinking"), "reasoning"
            else:
                return None  # signature_delta, citations_delta: no generated text
            if not isinstance(text, str):
                return None
            if kind != "reasoning":
                block.parts.append(text)
            if text and not out.first_token_ts_ns:
                out.first_token_ts_ns = ts_ns
            return StreamChunk(text, kind, None, ts_ns, offset, 0)
        if etype == "content_block_start":
            index = as_int(obj.get("index")) or 0
            block_obj = obj.get("content_block")
            if isinstance(block_obj, dict):
                btype = block_obj.get("type")
                if btype in ("tool_use", "server_tool_use"):
                    self.blocks[index] = _Block("tool_use", block_obj.get("id"), block_obj.get("name"))
                elif btype == "text":
                    block = self.blocks[index] = _Block("text")
                    if isinstance(block_obj.get("text"), str) and block_obj["text"]:
                        block.parts.append(block_obj["text"])
                else:
                    self.blocks[index] = _Block(btype if isinstance(btype, str) else "unknown")
            return None
        if etype == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                if out.response_id is None and isinstance(message.get("id"), str):
                    out.response_id = message["id"]
                if out.model is None and isinstance(message.get("model"), str):
                    out.model = message["model"]
                usage = message.get("usage")
                if isinstance(usage, dict):
                    self.usage_in.update(usage)
            return None
        if etype == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
            usage = obj.get("usage")
            if isinstance(usage, dict):
                n = as_int(usage.get("output_tokens"))
                if n is not None:
                    self.usage_out = n
                for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
                    if as_int(usage.get(key)) is not None:
                        self.usage_in[key] = usage[key]
            if self.stop_reason is not None:
                return StreamChunk("", "none", finish_reason(self.stop_reason), ts_ns, offset, 0)
            return None
        if etype == "message_stop":
            out.stream_complete = True
            metrics = obj.get("amazon-bedrock-invocationMetrics")
            if isinstance(metrics, dict):
                if "input_tokens" not in self.usage_in and as_int(metrics.get("inputTokenCount")) is not None:
                    self.usage_in["input_tokens"] = metrics["inputTokenCount"]
                if self.usage_out is None:
                    self.usage_out = as_int(metrics.get("outputTokenCount"))
            return None
        if etype == "error":
            self.error = error_fields(obj.get("error")) or {"type": "error"}
            return None
        if etype != "content_block_stop":
            self.chunks -= 1  # not an event of this format
        return None

    def finish(self) -> ParsedResponse:
        out = self.out
        out.chunk_count = self.chunks
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for index in sorted(self.blocks):
            block = self.blocks[index]
            if block.kind == "text":
                texts.extend(block.parts)
            elif block.kind == "tool_use":
                calls.append(tool_call(block.id, block.name, "".join(block.parts) or "{}"))
        if self.blocks or self.stop_reason:
            message = text_message("assistant", "".join(texts))
            if calls:
                message["tool_calls"] = calls
            item = choice(message, finish_reason(self.stop_reason))
            if self.stop_reason:
                item["native_finish_reason"] = self.stop_reason
            out.fields["choices"] = [item]
        usage_obj = dict(self.usage_in)
        if self.usage_out is not None:
            usage_obj["output_tokens"] = self.usage_out
        usage = usage_fields(usage_obj)
        if usage:
            out.fields["usage"] = usage
        if self.error:
            out.fields["error"] = self.error
        if self.bad:
            out.problems.append(f"stream: {self.bad} event(s) not valid JSON")
            out.unparsed = True
        if not out.stream_complete:
            out.problems.append("stream: no message_stop")
        return out
