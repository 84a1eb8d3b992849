"""OpenAI Responses API (`POST /v1/responses`) as OISP fragments.

Request: `instructions` becomes the system message; `input` (a string or a list of
items) becomes messages: message items keep their role and text, `function_call`
items become assistant `tool_calls` (keyed by `call_id`, the id a result refers to),
`function_call_output` items become `{"role": "tool", "tool_call_id": call_id}`.
`previous_response_id` is kept so the builder can continue the conversation of a
request that carries only the new turn.

Response: the `output` items fold into one assistant choice (output_text joined, function
calls as tool_calls); `status` gives the finish reason. Streams are typed events
(`response.created`, `response.output_text.delta`, `response.function_call_arguments.delta`,
`response.completed`, ...); the final `response.completed` / `.incomplete` / `.failed`
event carries the whole response, which is then authoritative.
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
    json_text,
    make_usage,
    model_request_object,
    response_object,
    run_stream,
    system_hash,
    text_message,
    tool_call,
)
from oisp_sensor.decode.providers.openai_chat import content_text

_PARAMETER_KEYS = frozenset(
    {"temperature", "top_p", "max_output_tokens", "parallel_tool_calls", "store", "service_tier",
     "truncation", "top_logprobs", "max_tool_calls", "background"}
)  # fmt: skip
_SYSTEM_ROLES = frozenset({"system", "developer"})


def _input_messages(value: object, out: list[dict[str, Any]], system: list[str]) -> None:
    if isinstance(value, str):
        out.append(text_message("user", value))
        return
    if not isinstance(value, list):
        return
    for item in value:
        if not isinstance(item, dict):
            continue
        itype = item.get("type")
        if itype == "function_call" or itype == "custom_tool_call":
            args = item.get("arguments", item.get("input"))
            call = tool_call(item.get("call_id"), item.get("name"), args if args is not None else "")
            if out and out[-1].get("role") == "assistant" and "tool_calls" in out[-1]:
                out[-1]["tool_calls"].append(call)
            else:
                message = text_message("assistant", None)
                message["tool_calls"] = [call]
                out.append(message)
        elif itype in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            text = output if isinstance(output, str) else content_text(output)[0] or json_text(output)
            out.append(text_message("tool", text, tool_call_id=item.get("call_id")))
        elif itype in (None, "message"):
            role = item.get("role")
            text, parts = content_text(item.get("content"))
            message = text_message(role, text)
            if parts is not None:
                message["content_parts"] = parts
            out.append(message)
            if role in _SYSTEM_ROLES and text:
                system.append(text)
        # reasoning, item_reference, web_search_call ...: not conversation text


def _tools(value: object) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    out = [
        {"name": t.get("name", t.get("type")), "type": t.get("type", "function")}
        for t in value
        if isinstance(t, dict)
    ]
    return out or None


def usage_fields(usage: object) -> dict[str, int] | None:
    """Responses usage {input_tokens, output_tokens, *_details} -> OISP usage."""
    if not isinstance(usage, dict):
        return None
    inp = usage.get("input_tokens_details")
    outp = usage.get("output_tokens_details")
    return make_usage(
        usage.get("input_tokens"),
        usage.get("output_tokens"),
        usage.get("total_tokens"),
        cached=inp.get("cached_tokens") if isinstance(inp, dict) else None,
        reasoning=outp.get("reasoning_tokens") if isinstance(outp, dict) else None,
    )


def _finish(status: object, incomplete: object, has_calls: bool) -> str | None:
    if status == "completed":
        return "tool_calls" if has_calls else "stop"
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return "length" if reason == "max_output_tokens" else (reason or "incomplete")
    if status == "failed":
        return "error"
    return status if isinstance(status, str) else None


def read_response(obj: dict[str, Any], out: ParsedResponse) -> None:
    """Fill `out` from a Response object."""
    if isinstance(obj.get("id"), str):
        out.response_id = obj["id"]
    if isinstance(obj.get("model"), str):
        out.model = obj["model"]
    output = obj.get("output")
    if isinstance(output, list):
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        refusal: list[str] = []
        for item in output:
            if not isinstance(item, dict):
                continue
            itype = item.get("type")
            if itype == "message":
                for part in item.get("content") or ():
                    if isinstance(part, dict):
                        if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                            texts.append(part["text"])
                        elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                            refusal.append(part["refusal"])
            elif itype in ("function_call", "custom_tool_call"):
                calls.append(tool_call(item.get("call_id"), item.get("name"),
                                       item.get("arguments", item.get("input", ""))))  # fmt: skip
        message = text_message("assistant", "".join(texts))
        if refusal:
            message["refusal"] = "".join(refusal)
        if calls:
            message["tool_calls"] = calls
        item_choice = choice(message, _finish(obj.get("status"), obj.get("incomplete_details"), bool(calls)))
        if isinstance(obj.get("status"), str):
            item_choice["native_finish_reason"] = obj["status"]
        out.fields["choices"] = [item_choice]
    usage = usage_fields(obj.get("usage"))
    if usage:
        out.fields["usage"] = usage
    error = error_fields(obj.get("error"))
    if error:
        out.fields["error"] = error


class OpenAIResponsesParser:
    """FormatParser for the Responses API."""

    def parse_request(self, body: bytes) -> ParsedRequest:
        out, obj = model_request_object(body)
        if obj is None:
            return out
        fields = out.fields
        messages: list[dict[str, Any]] = []
        system: list[str] = []
        instructions = obj.get("instructions")
        if isinstance(instructions, str):
            messages.append(text_message("system", instructions))
            if instructions:
                system.append(instructions)
        _input_messages(obj.get("input"), messages, system)
        fields["message_count"] = len(messages)
        fields["messages"] = messages
        if system:
            fields["system_prompt_hash"] = system_hash(system)
        tools = _tools(obj.get("tools"))
        if tools:
            fields["tools"] = tools
        if obj.get("tool_choice") is not None:
            fields["tool_choice"] = obj["tool_choice"]
        if isinstance(obj.get("previous_response_id"), str):
            fields["previous_response_id"] = obj["previous_response_id"]
        params = {k: v for k, v in obj.items() if k in _PARAMETER_KEYS and v is not None}
        reasoning = obj.get("reasoning")
        if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
            params["reasoning_effort"] = reasoning["effort"]
        if params:
            fields["parameters"] = params
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        out, obj = response_object(body)
        if obj is None:
            return out
        read_response(obj, out)
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> ResponsesStream:
        return ResponsesStream()


_DELTA_KINDS = {
    "response.output_text.delta": "text",
    "response.refusal.delta": "text",
    "response.function_call_arguments.delta": "tool_call",
    "response.custom_tool_call_input.delta": "tool_call",
    "response.reasoning_text.delta": "reasoning",
    "response.reasoning_summary_text.delta": "reasoning",
}
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStream:
    """Typed Responses stream events, reassembled (the final event wins when present)."""

    __slots__ = ("bad", "calls", "chunks", "error", "final", "out", "texts")

    def __init__(self) -> None:
        self.out = ParsedResponse(chunk_count=0, stream_complete=False)
        self.texts: list[str] = []
        self.calls: dict[int, list[Any]] = {}  # output_index -> [call_id, name, [args]]
        self.final: dict[str, Any] | None = None
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
        etype = obj.get("type") or event.event
        self.chunks += 1
        out = self.out
        kind = _DELTA_KINDS.get(etype) if isinstance(etype, str) else None
        if kind is not None:
            delta = obj.get("delta")
            if not isinstance(delta, str):
                return None
            if kind == "text" and etype == "response.output_text.delta":
                self.texts.append(delta)
            elif kind == "tool_call":
                index = as_int(obj.get("output_index")) or 0
                self.calls.setdefault(index, [None, None, []])[2].append(delta)
            if delta and not out.first_token_ts_ns:
                out.first_token_ts_ns = event.ts_ns
            return StreamChunk(delta, kind, None, event.ts_ns, -1, 0)
        if etype == "response.output_item.added":
            item = obj.get("item")
            if isinstance(item, dict) and item.get("type") in ("function_call", "custom_tool_call"):
                index = as_int(obj.get("output_index")) or 0
                slot = self.calls.setdefault(index, [None, None, []])
                slot[0], slot[1] = item.get("call_id"), item.get("name")
            return None
        if etype in ("response.created", "response.in_progress"):
            response = obj.get("response")
            if isinstance(response, dict):
                if isinstance(response.get("id"), str):
                    out.response_id = response["id"]
                if isinstance(response.get("model"), str):
                    out.model = response["model"]
            return None
        if etype in _FINAL_EVENTS:
            out.stream_complete = True
            response = obj.get("response")
            if isinstance(response, dict):
                self.final = response
                finish = _finish(response.get("status"), response.get("incomplete_details"),
                                 bool(self.calls))  # fmt: skip
                return StreamChunk("", "none", finish, event.ts_ns, -1, 0)
            return None
        if etype == "error":
            # {"type": "error", "code", "message", "param"}: the code names the error
            inner = obj.get("error") if isinstance(obj.get("error"), dict) else obj
            code = inner.get("code")
            self.error = error_fields({**inner, "type": code if isinstance(code, str) else "error"})
            return None
        return None

    def finish(self) -> ParsedResponse:
        out = self.out
        out.chunk_count = self.chunks
        if self.final is not None:
            read_response(self.final, out)
        elif self.texts or self.calls:
            message = text_message("assistant", "".join(self.texts))
            if self.calls:
                message["tool_calls"] = [
                    tool_call(c[0], c[1], "".join(c[2])) for _, c in sorted(self.calls.items())
                ]
            out.fields["choices"] = [choice(message, None)]
        if self.error:
            out.fields["error"] = self.error
        if self.bad:
            out.problems.append(f"stream: {self.bad} event(s) not valid JSON")
            out.unparsed = True
        if not out.stream_complete:
            out.problems.append("stream: no response.completed")
        return out
