"""OpenAI legacy completions (`POST /v1/completions`) as OISP fragments.

The prompt (a string, a list of strings, or token arrays) becomes user messages so
content sits where it does for every format; each choice's `text` becomes
`choices[].message.content`. Streams are `text_completion` chunks ending with `[DONE]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from oisp_sensor.decode.messages import SseEvent
from oisp_sensor.decode.providers.base import (
    ParsedRequest,
    ParsedResponse,
    StreamChunk,
    choice,
    error_fields,
    model_request_object,
    response_object,
    run_stream,
    text_message,
)
from oisp_sensor.decode.providers.openai_chat import usage_fields

_PARAMETER_KEYS = frozenset(
    {"max_tokens", "temperature", "top_p", "n", "stop", "seed", "presence_penalty", "frequency_penalty",
     "logprobs", "echo", "best_of", "suffix"}
)  # fmt: skip


def prompt_messages(prompt: object) -> list[dict[str, Any]]:
    """User messages for a prompt: text as content; token arrays only as a length."""
    if isinstance(prompt, str):
        return [text_message("user", prompt)]
    if not isinstance(prompt, list) or not prompt:
        return []
    if all(isinstance(t, int) for t in prompt):  # one prompt given as tokens
        return [{"role": "user", "content_length": len(prompt), "content_parts": ["tokens"]}]
    out: list[dict[str, Any]] = []
    for item in prompt:
        if isinstance(item, str):
            out.append(text_message("user", item))
        elif isinstance(item, list):
            out.append({"role": "user", "content_length": len(item), "content_parts": ["tokens"]})
    return out


class OpenAICompletionsParser:
    """FormatParser for `/v1/completions` (and Azure's deployment form)."""

    def parse_request(self, body: bytes) -> ParsedRequest:
        out, obj = model_request_object(body)
        if obj is None:
            return out
        messages = prompt_messages(obj.get("prompt"))
        if messages:
            out.fields["message_count"] = len(messages)
            out.fields["messages"] = messages
        params = {k: v for k, v in obj.items() if k in _PARAMETER_KEYS and v is not None}
        if params:
            out.fields["parameters"] = params
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        out, obj = response_object(body)
        if obj is None:
            return out
        _head(obj, out)
        choices = obj.get("choices")
        if isinstance(choices, list):
            out.fields["choices"] = [
                choice(
                    text_message("assistant", c.get("text") if isinstance(c.get("text"), str) else None),
                    c.get("finish_reason"),
                    c.get("index", i),
                )
                for i, c in enumerate(choices)
                if isinstance(c, dict)
            ]
        usage = usage_fields(obj.get("usage"))
        if usage:
            out.fields["usage"] = usage
        error = error_fields(obj.get("error"))
        if error:
            out.fields["error"] = error
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> _CompletionStream:
        return _CompletionStream()


def _head(obj: dict[str, Any], out: ParsedResponse) -> None:
    if out.response_id is None and isinstance(obj.get("id"), str):
        out.response_id = obj["id"]
    if out.model is None and isinstance(obj.get("model"), str):
        out.model = obj["model"]


class _CompletionStream:
    __slots__ = ("bad", "chunks", "error", "finishes", "out", "texts", "usage")

    def __init__(self) -> None:
        self.out = ParsedResponse(chunk_count=0, stream_complete=False)
        self.texts: dict[int, list[str]] = {}
        self.finishes: dict[int, str] = {}
        self.usage: dict[str, int] | None = None
        self.error: dict[str, Any] | None = None
        self.bad = 0
        self.chunks = 0

    def feed(self, event: SseEvent) -> StreamChunk | None:
        data = event.data
        if not data:
            return None
        if data.strip() == "[DONE]":
            self.out.stream_complete = True
            return None
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.bad += 1
            return None
        if not isinstance(obj, dict):
            self.bad += 1
            return None
        self.chunks += 1
        _head(obj, self.out)
        if obj.get("usage") is not None:
            self.usage = usage_fields(obj["usage"]) or self.usage
        if obj.get("error") is not None:
            self.error = error_fields(obj["error"])
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            return None
        info = StreamChunk(kind="none", ts_ns=event.ts_ns)
        for i, c in enumerate(choices):
            if not isinstance(c, dict):
                continue
            index = c.get("index", i) if isinstance(c.get("index", i), int) else i
            text = c.get("text")
            if isinstance(text, str):
                self.texts.setdefault(index, []).append(text)
                info.delta += text
                if text:
                    info.kind = "text"
                    if not self.out.first_token_ts_ns:
                        self.out.first_token_ts_ns = event.ts_ns
            if isinstance(c.get("finish_reason"), str):
                self.finishes[index] = c["finish_reason"]
                info.finish_reason = c["finish_reason"]
        return info

    def finish(self) -> ParsedResponse:
        out = self.out
        out.chunk_count = self.chunks
        indexes = sorted(set(self.texts) | set(self.finishes))
        if indexes:
            out.fields["choices"] = [
                choice(text_message("assistant", "".join(self.texts.get(i, []))), self.finishes.get(i), i)
                for i in indexes
            ]
        if self.usage:
            out.fields["usage"] = self.usage
        if self.error:
            out.fields["error"] = self.error
        if self.bad:
            out.problems.append(f"stream: {self.bad} event(s) not valid JSON")
            out.unparsed = True
        if not out.stream_complete:
            out.problems.append("stream: no [DONE]")
        return out
