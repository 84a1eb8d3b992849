"""Cohere chat (v2, and v1 where it differs) and embed, as OISP fragments.

v2 chat messages are OpenAI-like already (system/user/assistant/tool roles,
`tool_calls` with JSON-string arguments, `tool_call_id` on results), with content as a
string or a list of `{"type": "text"}` parts. The response has one `message` and a
top-level upper-case `finish_reason`; usage is `usage.tokens` (what ran) with
`usage.billed_units` beside it. v2 streams are SSE events typed by `type`
(message-start, content-delta, tool-call-start/-delta, message-end, ...).

v1 chat (`message`, `chat_history`, `preamble`) and v1 embed responses are read too,
because `api.cohere.com` still serves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oisp_sensor.decode.messages import SseEvent
from oisp_sensor.decode.providers.base import GenericJsonParser as _Generic
from oisp_sensor.decode.providers.base import (
    ParsedRequest,
    ParsedResponse,
    StreamAccumulator,
    StreamChunk,
    as_int,
    choice,
    error_fields,
    event_object,
    load_json_object,
    make_usage,
    model_request_object,
    response_object,
    run_stream,
    salvage_model,
    system_hash,
    text_message,
    tool_call,
)
from oisp_sensor.decode.providers.bodystreams import split_ndjson
from oisp_sensor.decode.providers.openai_chat import content_text, tools_of
from oisp_sensor.decode.providers.openai_embeddings import embedding_fields, input_fields

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "error",
    "ERROR_TOXIC": "content_filter",
    "USER_CANCEL": "cancelled",
}
_PARAMETERS = {"temperature": "temperature", "max_tokens": "max_tokens", "p": "top_p", "k": "top_k",
               "stop_sequences": "stop", "seed": "seed", "frequency_penalty": "frequency_penalty",
               "presence_penalty": "presence_penalty"}  # fmt: skip
_V1_ROLES = {"USER": "user", "CHATBOT": "assistant", "SYSTEM": "system", "TOOL": "tool"}


def finish_reason(native: object) -> str | None:
    if not isinstance(native, str):
        return None
    return FINISH_REASONS.get(native, native.lower())


def usage_fields(usage: object) -> dict[str, int] | None:
    """v2 `usage` {tokens, billed_units} or v1 `meta`: tokens when given, else billed units."""
    if not isinstance(usage, dict):
        return None
    for key in ("tokens", "billed_units"):
        counts = usage.get(key)
        if isinstance(counts, dict) and (
            as_int(counts.get("input_tokens")) is not None or as_int(counts.get("output_tokens")) is not None
        ):
            return make_usage(counts.get("input_tokens"), counts.get("output_tokens"))
    return None


def _v2_message(message: dict[str, Any]) -> dict[str, Any]:
    text, parts = content_text(message.get("content"))
    role = message.get("role")
    item = text_message(role, text)
    if parts is not None:
        item["content_parts"] = parts
    if isinstance(message.get("tool_call_id"), str):
        item["tool_call_id"] = message["tool_call_id"]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        item["tool_calls"] = [
            tool_call(
                c.get("id"), (c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments")
            )
            for c in calls
            if isinstance(c, dict)
        ]
    return item


class CohereChatParser:
    """FormatParser for `/v2/chat` (and `/v1/chat`)."""

    def parse_request(self, body: bytes) -> ParsedRequest:
        out, obj = model_request_object(body)
        if obj is None:
            return out
        messages: list[dict[str, Any]] = []
        if isinstance(obj.get("messages"), list):  # v2
            messages = [_v2_message(m) for m in obj["messages"] if isinstance(m, dict)]
        else:  # v1: preamble, chat_history, message, tool_results
            if isinstance(obj.get("preamble"), str):
                messages.append(text_message("system", obj["preamble"]))
            for turn in obj.get("chat_history") or ():
                if isinstance(turn, dict):
                    role = turn.get("role")
                    messages.append(text_message(_V1_ROLES.get(role, role) if isinstance(role, str) else None,
                                                 turn.get("message") if isinstance(turn.get("message"), str) else None))  # fmt: skip
            if isinstance(obj.get("message"), str):
                messages.append(text_message("user", obj["message"]))
        out.fields["message_count"] = len(messages)
        out.fields["messages"] = messages
        system = [m["content"] for m in messages if m.get("role") == "system" and m.get("content")]
        if system:
            out.fields["system_prompt_hash"] = system_hash(system)
        tools = tools_of(obj)
        if tools:
            out.fields["tools"] = tools
        if obj.get("tool_choice") is not None:
            out.fields["tool_choice"] = obj["tool_choice"]
        params = {_PARAMETERS[k]: v for k, v in obj.items() if k in _PARAMETERS and v is not None}
        if params:
            out.fields["parameters"] = params
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        stripped = body.strip()
        if stripped.startswith(b"{") and b"\n{" in stripped:  # v1 stream: NDJSON
            return self._v1_stream(body)
        out, obj = response_object(body)
        if obj is None:
            return out
        if isinstance(obj.get("id"), str):
            out.response_id = obj["id"]
        elif isinstance(obj.get("generation_id"), str):
            out.response_id = obj["generation_id"]
        message = obj.get("message")
        if isinstance(message, dict):
            item = _v2_message({**message, "role": message.get("role") or "assistant"})
            if isinstance(message.get("tool_plan"), str):
                item["tool_plan"] = message["tool_plan"]
            result = choice(item, finish_reason(obj.get("finish_reason")))
            if isinstance(obj.get("finish_reason"), str):
                result["native_finish_reason"] = obj["finish_reason"]
            out.fields["choices"] = [result]
        elif isinstance(obj.get("text"), str):  # v1
            out.fields["choices"] = [
                choice(text_message("assistant", obj["text"]), finish_reason(obj.get("finish_reason")))
            ]
        elif isinstance(message, str) and "choices" not in out.fields:
            out.fields["error"] = {"message": message}  # {"id": ..., "message": "..."} error bodies
        usage = usage_fields(obj.get("usage")) or usage_fields(obj.get("meta"))
        if usage:
            out.fields["usage"] = usage
        if obj.get("error") is not None:
            out.fields["error"] = error_fields(obj["error"]) or {"message": str(obj["error"])}
        return out

    @staticmethod
    def _v1_stream(body: bytes) -> ParsedResponse:
        items, bad = split_ndjson(body)
        out = ParsedResponse(chunk_count=len(items), streamed=True, chunks=[], stream_complete=False)
        assert out.chunks is not None
        texts: list[str] = []
        finish = None
        for offset, obj in items:
            kind = obj.get("event_type")
            if kind == "text-generation" and isinstance(obj.get("text"), str):
                texts.append(obj["text"])
                out.chunks.append(StreamChunk(obj["text"], "text", None, 0, offset))
            elif kind == "stream-end":
                out.stream_complete = True
                finish = obj.get("finish_reason")
                out.chunks.append(StreamChunk("", "none", finish_reason(finish), 0, offset))
                response = obj.get("response")
                if isinstance(response, dict):
                    usage = usage_fields(response.get("meta"))
                    if usage:
                        out.fields["usage"] = usage
                    if isinstance(response.get("generation_id"), str):
                        out.response_id = response["generation_id"]
        out.fields["choices"] = [choice(text_message("assistant", "".join(texts)), finish_reason(finish))]
        if bad:
            out.problems.append(f"stream: {bad} line(s) not valid JSON")
            out.unparsed = True
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> _CohereStream:
        return _CohereStream()


class _CohereStream:
    """v2 chat stream events (`type`: message-start ... message-end)."""

    __slots__ = ("bad", "calls", "chunks", "error", "finish_native", "out", "plan", "texts", "usage")

    def __init__(self) -> None:
        self.out = ParsedResponse(chunk_count=0, stream_complete=False)
        self.texts: list[str] = []
        self.plan: list[str] = []
        self.calls: dict[int, list[Any]] = {}  # index -> [id, name, [args]]
        self.finish_native: str | None = None
        self.usage: dict[str, int] | None = None
        self.error: dict[str, Any] | None = None
        self.bad = 0
        self.chunks = 0

    def feed(self, event: SseEvent) -> StreamChunk | None:
        if not event.data or event.data.strip() == "[DONE]":
            return None
        obj = event_object(event.data)
        if obj is None:
            self.bad += 1
            return None
        self.chunks += 1
        out = self.out
        etype = obj.get("type") or event.event
        delta = obj.get("delta")
        message = delta.get("message") if isinstance(delta, dict) else None
        message = message if isinstance(message, dict) else {}
        if etype == "content-delta":
            content = message.get("content")
            text = content.get("text", content.get("thinking")) if isinstance(content, dict) else None
            if not isinstance(text, str):
                return None
            kind = (
                "reasoning"
                if isinstance(content, dict) and "thinking" in content and "text" not in content
                else "text"
            )
            if kind == "text":
                self.texts.append(text)
            if text and not out.first_token_ts_ns:
                out.first_token_ts_ns = event.ts_ns
            return StreamChunk(text, kind, None, event.ts_ns)
        if etype in ("tool-call-start", "tool-call-delta"):
            index = as_int(obj.get("index")) or 0
            call = message.get("tool_calls")
            slot = self.calls.setdefault(index, [None, None, []])
            args = ""
            if isinstance(call, dict):
                if isinstance(call.get("id"), str):
                    slot[0] = call["id"]
                fn = call.get("function")
                if isinstance(fn, dict):
                    if isinstance(fn.get("name"), str):
                        slot[1] = fn["name"]
                    if isinstance(fn.get("arguments"), str):
                        args = fn["arguments"]
                        slot[2].append(args)
            if not out.first_token_ts_ns:
                out.first_token_ts_ns = event.ts_ns
            return StreamChunk(args, "tool_call", None, event.ts_ns)
        if etype == "tool-plan-delta":
            if isinstance(message.get("tool_plan"), str):
                self.plan.append(message["tool_plan"])
                return StreamChunk(message["tool_plan"], "reasoning", None, event.ts_ns)
            return None
        if etype == "message-start":
            if isinstance(obj.get("id"), str):
                out.response_id = obj["id"]
            return None
        if etype == "message-end":
            out.stream_complete = True
            if isinstance(delta, dict):
                if isinstance(delta.get("finish_reason"), str):
                    self.finish_native = delta["finish_reason"]
                self.usage = usage_fields(delta.get("usage")) or self.usage
                if isinstance(delta.get("error"), str) and delta["error"]:
                    self.error = {"message": delta["error"]}
            return StreamChunk("", "none", finish_reason(self.finish_native), event.ts_ns)
        return None

    def finish(self) -> ParsedResponse:
        out = self.out
        out.chunk_count = self.chunks
        if self.texts or self.calls or self.finish_native:
            message = text_message("assistant", "".join(self.texts))
            if self.plan:
                message["tool_plan"] = "".join(self.plan)
            if self.calls:
                message["tool_calls"] = [
                    tool_call(c[0], c[1], "".join(c[2])) for _, c in sorted(self.calls.items())
                ]
            result = choice(message, finish_reason(self.finish_native))
            if self.finish_native:
                result["native_finish_reason"] = self.finish_native
            out.fields["choices"] = [result]
        if self.usage:
            out.fields["usage"] = self.usage
        if self.error:
            out.fields["error"] = self.error
        if self.bad:
            out.problems.append(f"stream: {self.bad} event(s) not valid JSON")
            out.unparsed = True
        if not out.stream_complete:
            out.problems.append("stream: no message-end")
        return out


class CohereEmbedParser:
    """FormatParser for `/v1/embed` and `/v2/embed`."""

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = ParsedRequest()
        obj = load_json_object(body, "request", out.problems) if body else None
        if obj is None:
            out.model, _ = salvage_model(body)
            out.unparsed = bool(body)
            return out
        model = obj.get("model")
        out.model = model if isinstance(model, str) else None
        texts = obj.get("texts")
        messages = (
            [text_message("user", t) for t in texts if isinstance(t, str)] if isinstance(texts, list) else []
        )
        if not messages and isinstance(obj.get("images"), list):
            messages = [
                {"role": "user", "content_length": 0, "content_parts": ["image"]} for _ in obj["images"]
            ]
        input_fields(messages, out)
        params = {
            k: obj[k] for k in ("input_type", "embedding_types", "output_dimension", "truncate") if k in obj
        }
        if params:
            out.fields["parameters"] = params
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        out, obj = response_object(body)
        if obj is None:
            return out
        if isinstance(obj.get("id"), str):
            out.response_id = obj["id"]
        vectors = obj.get("embeddings")
        if isinstance(vectors, dict):  # embeddings_by_type: {"float": [[...]], "int8": [[...]]}
            vectors = next((v for v in vectors.values() if isinstance(v, list)), [])
        if isinstance(vectors, list):
            first = vectors[0] if vectors else None
            out.fields["embedding"] = embedding_fields(
                len(vectors), len(first) if isinstance(first, list) else None
            )
        meta = obj.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        if isinstance(billed, dict) and as_int(billed.get("input_tokens")) is not None:
            out.fields["usage"] = {
                "prompt_tokens": billed["input_tokens"],
                "total_tokens": billed["input_tokens"],
            }
        if vectors is None and isinstance(obj.get("message"), str):
            out.fields["error"] = {"message": obj["message"]}
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> StreamAccumulator:
        return _Generic().stream()
