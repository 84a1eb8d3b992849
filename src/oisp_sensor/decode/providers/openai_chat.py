"""OpenAI chat completions (`POST /v1/chat/completions`) as OISP fragments.

Covers the request body, the JSON response, and the streamed response (SSE events
of `chat.completion.chunk` objects ending with `data: [DONE]`), which is reassembled
here: content and refusal text concatenated per choice, tool calls merged by their
`index` (id, type and name come in the first delta, `arguments` arrive in pieces),
the finish_reason kept, and `usage` taken from the final chunk that carries it (sent
when the request set `stream_options.include_usage`).

The same wire format is served by most OpenAI-compatible servers (Azure OpenAI,
Groq, Mistral, vLLM, Ollama's /v1, ...), so nothing here assumes api.openai.com.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from oisp_sensor.decode.messages import SseEvent
from oisp_sensor.decode.providers.base import (
    ParsedRequest,
    ParsedResponse,
    StreamChunk,
    error_fields,
    model_request_object,
    response_object,
    run_stream,
)

# Sampling/generation parameters copied verbatim into data.parameters when present.
_PARAMETER_KEYS = frozenset(
    {
        "temperature",
        "top_p",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "parallel_tool_calls",
        "reasoning_effort",
        "verbosity",
        "service_tier",
        "store",
    }
)
# Message roles whose text is "the system prompt" (o-series models call it developer).
_SYSTEM_ROLES = frozenset({"system", "developer"})
# Content part types whose `text` counts as message text.
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


def _tool_calls(value: object) -> list[dict[str, Any]] | None:
    """Normalised tool calls: [{id, type, function {name, arguments}}]."""
    if not isinstance(value, list):
        return None
    out: list[dict[str, Any]] = []
    for call in value:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        fn = function if isinstance(function, dict) else {}
        out.append(
            {
                "id": call.get("id"),
                "type": call.get("type", "function"),
                "function": {"name": fn.get("name"), "arguments": fn.get("arguments")},
            }
        )
    return out


def _content_text(content: object) -> tuple[str | None, list[str] | None]:
    """(text, part types) of a message's content: a string, or a list of typed parts.

    For multi-part content the text parts are joined with newlines; images, audio and
    files are not copied, only their part types are listed.
    """
    if isinstance(content, str):
        return content, None
    if isinstance(content, list):
        texts: list[str] = []
        types: list[str] = []
        for part in content:
            if isinstance(part, dict):
                ptype = part.get("type")
                types.append(ptype if isinstance(ptype, str) else "unknown")
                text = part.get("text")
                if ptype in _TEXT_PART_TYPES and isinstance(text, str):
                    texts.append(text)
            elif isinstance(part, str):
                types.append("text")
                texts.append(part)
        return "\n".join(texts), types
    return None, None


def _request_message(message: object) -> tuple[dict[str, Any], str | None]:
    """One OISP message from a request message, plus its text when it is a system prompt."""
    if not isinstance(message, dict):
        return {"role": None, "content_length": 0}, None
    role = message.get("role")
    text, parts = _content_text(message.get("content"))
    out: dict[str, Any] = {"role": role}
    if text is not None:
        out["content"] = text
    out["content_length"] = len(text) if text is not None else 0
    if parts is not None:
        out["content_parts"] = parts
    if len(message) <= 2:  # the usual {"role", "content"}: nothing more to read
        return out, (text if role in _SYSTEM_ROLES and text is not None else None)
    name = message.get("name")
    if isinstance(name, str):
        out["name"] = name
    tool_call_id = message.get("tool_call_id")
    if isinstance(tool_call_id, str):
        out["tool_call_id"] = tool_call_id
    calls = _tool_calls(message.get("tool_calls"))
    if calls:
        out["tool_calls"] = calls
    return out, (text if role in _SYSTEM_ROLES and text is not None else None)


def _tools(obj: dict[str, Any]) -> list[dict[str, Any]] | None:
    """[{name, type}] from `tools` (or the legacy `functions`)."""
    out: list[dict[str, Any]] = []
    tools = obj.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            ttype = tool.get("type", "function")
            fn = tool.get("function")
            name = fn.get("name") if isinstance(fn, dict) else tool.get("name")
            out.append({"name": name, "type": ttype})
    functions = obj.get("functions")
    if isinstance(functions, list):
        out.extend({"name": f.get("name"), "type": "function"} for f in functions if isinstance(f, dict))
    return out or None


def _parameters(obj: dict[str, Any]) -> dict[str, Any]:
    # Walk the body (a handful of keys) rather than the parameter list; body order is kept.
    params = {key: value for key, value in obj.items() if key in _PARAMETER_KEYS and value is not None}
    response_format = obj.get("response_format")
    if isinstance(response_format, dict) and isinstance(response_format.get("type"), str):
        params["response_format"] = response_format["type"]
    stream_options = obj.get("stream_options")
    if isinstance(stream_options, dict) and isinstance(stream_options.get("include_usage"), bool):
        params["include_usage"] = stream_options["include_usage"]
    return params


def _usage(value: object) -> dict[str, int] | None:
    """OISP usage; cached/reasoning tokens only when the provider reported them."""
    if not isinstance(value, dict):
        return None
    out: dict[str, int] = {}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        n = value.get(key)
        if isinstance(n, int):
            out[key] = n
    details = value.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        out["cached_tokens"] = details["cached_tokens"]
    details = value.get("completion_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
        out["reasoning_tokens"] = details["reasoning_tokens"]
    return out or None


def _response_message(message: object) -> dict[str, Any]:
    if not isinstance(message, dict):
        return {"role": None, "content_length": 0}
    content = message.get("content")
    text, _parts = _content_text(content)
    out: dict[str, Any] = {"role": message.get("role")}
    if text is not None:
        out["content"] = text
    out["content_length"] = len(text) if text is not None else 0
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        out["refusal"] = refusal
    calls = _tool_calls(message.get("tool_calls"))
    if calls:
        out["tool_calls"] = calls
    return out


class _ToolCallAcc:
    """A tool call being reassembled from stream deltas."""

    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []

    def add(self, delta: dict[str, Any]) -> None:
        if self.id is None and isinstance(delta.get("id"), str):
            self.id = delta["id"]
        if self.type is None and isinstance(delta.get("type"), str):
            self.type = delta["type"]
        fn = delta.get("function")
        if isinstance(fn, dict):
            # The name comes whole in the first delta; some servers repeat it: keep the first.
            if not self.name and isinstance(fn.get("name"), str):
                self.name = fn["name"]
            if isinstance(fn.get("arguments"), str):
                self.arguments.append(fn["arguments"])

    def result(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type or "function",
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }


class _ChoiceAcc:
    """One choice of a streamed completion being reassembled."""

    __slots__ = ("content", "finish_reason", "refusal", "role", "tool_calls")

    def __init__(self) -> None:
        self.role: str | None = None
        self.content: list[str] | None = None
        self.refusal: list[str] | None = None
        self.tool_calls: dict[int, _ToolCallAcc] = {}
        self.finish_reason: str | None = None

    def add(self, choice: dict[str, Any]) -> bool:
        """Apply one delta; True when it carried generated output (for time to first token)."""
        produced = False
        delta = choice.get("delta")
        if isinstance(delta, dict):
            role = delta.get("role")
            if self.role is None and isinstance(role, str):
                self.role = role
            content = delta.get("content")
            if isinstance(content, str):
                if self.content is None:
                    self.content = []
                self.content.append(content)
                produced = produced or bool(content)
            refusal = delta.get("refusal")
            if isinstance(refusal, str):
                if self.refusal is None:
                    self.refusal = []
                self.refusal.append(refusal)
                produced = produced or bool(refusal)
            # Reasoning text (DeepSeek, OpenRouter, vLLM) is output too, though not kept.
            for key in ("reasoning_content", "reasoning"):
                if isinstance(delta.get(key), str) and delta[key]:
                    produced = True
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if not isinstance(call, dict):
                        continue
                    index = call.get("index")
                    key = index if isinstance(index, int) else len(self.tool_calls)
                    acc = self.tool_calls.get(key)
                    if acc is None:
                        acc = self.tool_calls[key] = _ToolCallAcc()
                    acc.add(call)
                    produced = True
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            self.finish_reason = finish
        return produced

    def result(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role or "assistant"}
        text = "".join(self.content) if self.content is not None else None
        if text is not None:
            message["content"] = text
        message["content_length"] = len(text) if text is not None else 0
        if self.refusal is not None:
            message["refusal"] = "".join(self.refusal)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[k].result() for k in sorted(self.tool_calls)]
        return {"index": index, "finish_reason": self.finish_reason, "message": message}


class OpenAIChatParser:
    """FormatParser for OpenAI chat completions."""

    def parse_request(self, body: bytes) -> ParsedRequest:
        if not body:
            return ParsedRequest(problems=["request: empty body"])
        out, obj = model_request_object(body)
        if obj is None:
            return out
        fields = out.fields
        messages = obj.get("messages")
        if isinstance(messages, list):
            converted: list[dict[str, Any]] = []
            system_texts: list[str] = []
            for message in messages:
                item, system_text = _request_message(message)
                converted.append(item)
                if system_text is not None:
                    system_texts.append(system_text)
            fields["message_count"] = len(converted)
            fields["messages"] = converted
            if system_texts:
                digest = hashlib.sha256("\n".join(system_texts).encode("utf-8", "surrogatepass"))
                fields["system_prompt_hash"] = "sha256:" + digest.hexdigest()
        else:
            out.problems.append("request: no messages list")
        tools = _tools(obj)
        if tools:
            fields["tools"] = tools
        tool_choice = obj.get("tool_choice", obj.get("function_call"))
        if tool_choice is not None:
            fields["tool_choice"] = tool_choice
        params = _parameters(obj)
        if params:
            fields["parameters"] = params
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        out, obj = response_object(body)
        if obj is None:
            return out
        self._read_head(obj, out)
        choices = obj.get("choices")
        if isinstance(choices, list):
            out.fields["choices"] = [
                {
                    "index": c.get("index", i),
                    "finish_reason": c.get("finish_reason"),
                    "message": _response_message(c.get("message")),
                }
                for i, c in enumerate(choices)
                if isinstance(c, dict)
            ]
        usage = _usage(obj.get("usage"))
        if usage:
            out.fields["usage"] = usage
        error = error_fields(obj.get("error"))
        if error:
            out.fields["error"] = error
        return out

    @staticmethod
    def _read_head(obj: dict[str, Any], out: ParsedResponse) -> None:
        if out.response_id is None and isinstance(obj.get("id"), str):
            out.response_id = obj["id"]
        if out.model is None and isinstance(obj.get("model"), str):
            out.model = obj["model"]

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> _ChatStream:
        return _ChatStream()


class _ChatStream:
    """A chat completion stream (`chat.completion.chunk` events then `[DONE]`), reassembled."""

    __slots__ = ("bad", "choices", "chunks", "error", "out", "usage")

    def __init__(self) -> None:
        self.out = ParsedResponse(chunk_count=0, stream_complete=False)
        self.choices: dict[int, _ChoiceAcc] = {}
        self.bad = 0
        self.chunks = 0
        self.usage: dict[str, int] | None = None
        self.error: dict[str, Any] | None = None

    def feed(self, event: SseEvent) -> StreamChunk | None:
        data = event.data
        if not data:
            return None
        if data == "[DONE]" or data.strip() == "[DONE]":
            self.out.stream_complete = True
            return None
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.bad += 1
            return None
        if not isinstance(chunk, dict):
            self.bad += 1
            return None
        self.chunks += 1
        out = self.out
        OpenAIChatParser._read_head(chunk, out)
        if "error" in chunk:
            self.error = error_fields(chunk["error"]) or self.error
        chunk_usage = chunk.get("usage")
        if chunk_usage is not None:
            self.usage = _usage(chunk_usage) or self.usage
        chunk_choices = chunk.get("choices")
        if not isinstance(chunk_choices, list) or not chunk_choices:
            return None
        info: StreamChunk | None = None
        for choice in chunk_choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if not isinstance(index, int):
                index = 0
            acc = self.choices.get(index)
            if acc is None:
                acc = self.choices[index] = _ChoiceAcc()
            produced = acc.add(choice)
            if produced and not out.first_token_ts_ns:
                out.first_token_ts_ns = event.ts_ns
            if info is None:
                info = StreamChunk(delta="", kind="none", ts_ns=event.ts_ns, choice_index=index)
            _describe(choice, info)
        return info

    def finish(self) -> ParsedResponse:
        out = self.out
        out.chunk_count = self.chunks
        choices = self.choices
        if choices:
            out.fields["choices"] = [choices[i].result(i) for i in sorted(choices)]
        if self.usage:
            out.fields["usage"] = self.usage
        if self.error:
            out.fields["error"] = self.error
        if self.bad:
            out.problems.append(f"stream: {self.bad} event(s) not valid chunk JSON")
            out.unparsed = True
        if not out.stream_complete:
            out.problems.append("stream: no [DONE]")
        return out


def _describe(choice: dict[str, Any], info: StreamChunk) -> None:
    """Add one choice delta's text, kind and finish_reason to a StreamChunk."""
    finish = choice.get("finish_reason")
    if isinstance(finish, str):
        info.finish_reason = finish
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return
    for key, kind in (("content", "text"), ("refusal", "text"), ("reasoning_content", "reasoning"),
                      ("reasoning", "reasoning")):  # fmt: skip
        text = delta.get(key)
        if isinstance(text, str) and text:
            info.delta += text
            if info.kind == "none":
                info.kind = kind
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            args = fn.get("arguments") if isinstance(fn, dict) else None
            if isinstance(args, str):
                info.delta += args
            if info.kind == "none":
                info.kind = "tool_call"


# Shared with the other OpenAI formats (completions, Responses, embeddings, Cohere v2).
usage_fields = _usage
content_text = _content_text
tools_of = _tools
