"""Ollama's native API: `/api/chat`, `/api/generate`, `/api/embed` (and `/api/embeddings`).

Ollama streams by default: a request without `"stream": false` is answered with
newline-delimited JSON (`application/x-ndjson`), one object per token batch, the last
with `"done": true`, `done_reason` and the token counts (`prompt_eval_count`,
`eval_count`). The body is split when the exchange is done. Tool calls carry their
arguments as an object and usually no id, so results (`role: "tool"`, `tool_name`)
are matched by name. Errors are `{"error": "..."}`, also as a stream's last line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oisp_sensor.decode.messages import SseEvent
from oisp_sensor.decode.providers.base import (
    ParsedRequest,
    ParsedResponse,
    StreamChunk,
    choice,
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
from oisp_sensor.decode.providers.bodystreams import looks_like_ndjson, split_ndjson
from oisp_sensor.decode.providers.openai_embeddings import embedding_fields, input_fields

_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "num_predict": "max_tokens",
            "stop": "stop", "seed": "seed", "num_ctx": "num_ctx"}  # fmt: skip


def _calls(value: object) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    out = []
    for call in value:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            out.append(tool_call(call.get("id"), fn.get("name"), fn.get("arguments", {})))
    return out or None


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    content = message.get("content")
    item = text_message(role, content if isinstance(content, str) else None)
    if isinstance(message.get("images"), list):
        item["content_parts"] = ["text", *(["image"] * len(message["images"]))]
    calls = _calls(message.get("tool_calls"))
    if calls:
        item["tool_calls"] = calls
    name = message.get("tool_name", message.get("name"))
    if role == "tool" and isinstance(name, str):
        item["name"] = name
    if role == "tool" and isinstance(message.get("tool_call_id"), str):
        item["tool_call_id"] = message["tool_call_id"]
    return item


def _usage(obj: dict[str, Any]) -> dict[str, int] | None:
    if "prompt_eval_count" not in obj and "eval_count" not in obj:
        return None
    return make_usage(obj.get("prompt_eval_count"), obj.get("eval_count"))


class OllamaParser:
    """FormatParser for `/api/chat` (chat=True) and `/api/generate`."""

    def __init__(self, *, chat: bool) -> None:
        self._chat = chat

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = ParsedRequest(streaming=True)
        obj = load_json_object(body, "request", out.problems) if body else None
        if obj is None:
            out.model, _ = salvage_model(body)
            out.streaming = b'"stream":false' not in body.replace(b" ", b"")
            out.unparsed = bool(body)
            return out
        model = obj.get("model")
        out.model = model if isinstance(model, str) else None
        out.streaming = obj.get("stream") is not False  # Ollama's default is to stream
        fields = out.fields
        messages: list[dict[str, Any]] = []
        if isinstance(obj.get("system"), str):
            messages.append(text_message("system", obj["system"]))
        if self._chat:
            raw = obj.get("messages")
            if isinstance(raw, list):
                messages.extend(_message(m) for m in raw if isinstance(m, dict))
        elif isinstance(obj.get("prompt"), str):
            messages.append(text_message("user", obj["prompt"]))
        fields["message_count"] = len(messages)
        fields["messages"] = messages
        system = [m["content"] for m in messages if m.get("role") == "system" and m.get("content")]
        if system:
            fields["system_prompt_hash"] = system_hash(system)
        tools = obj.get("tools")
        if isinstance(tools, list):
            listed = [
                {"name": (t.get("function") or {}).get("name"), "type": t.get("type", "function")}
                for t in tools
                if isinstance(t, dict)
            ]
            if listed:
                fields["tools"] = listed
        params: dict[str, Any] = {}
        options = obj.get("options")
        if isinstance(options, dict):
            params = {_OPTIONS[k]: v for k, v in options.items() if k in _OPTIONS and v is not None}
        if obj.get("format") is not None:
            params["response_format"] = obj["format"] if isinstance(obj["format"], str) else "json_schema"
        if obj.get("think") is not None:
            params["think"] = obj["think"]
        if params:
            fields["parameters"] = params
        return out

    def _read(self, obj: dict[str, Any], state: dict[str, Any]) -> StreamChunk | None:
        """Apply one response object (whole body or stream line) to the state."""
        if isinstance(obj.get("model"), str):
            state["model"] = obj["model"]
        if isinstance(obj.get("error"), str):
            state["error"] = {"message": obj["error"]}
            return None
        text = None
        kind = "text"
        calls = None
        if self._chat:
            message = obj.get("message")
            if isinstance(message, dict):
                text = message.get("content")
                calls = _calls(message.get("tool_calls"))
                if not text and isinstance(message.get("thinking"), str) and message["thinking"]:
                    text, kind = message["thinking"], "reasoning"
        else:
            text = obj.get("response")
            if not text and isinstance(obj.get("thinking"), str) and obj["thinking"]:
                text, kind = obj["thinking"], "reasoning"
        text = text if isinstance(text, str) else ""
        if kind == "text":
            state["texts"].append(text)
        delta = text
        if calls:
            state["calls"].extend(calls)
            delta += "".join(c["function"]["arguments"] for c in calls)
            kind = "tool_call" if not text else kind
        finish = None
        if obj.get("done") is True:
            state["done"] = True
            reason = obj.get("done_reason")
            finish = (
                "length" if reason == "length" else ("tool_calls" if state["calls"] else (reason or "stop"))
            )
            state["finish"] = finish
            usage = _usage(obj)
            if usage:
                state["usage"] = usage
        if not delta and finish is None:
            return StreamChunk("", "none")
        return StreamChunk(delta, kind if delta else "none", finish)

    @staticmethod
    def _new_state() -> dict[str, Any]:
        return {
            "texts": [],
            "calls": [],
            "done": False,
            "finish": None,
            "usage": None,
            "model": None,
            "error": None,
        }

    def _result(self, state: dict[str, Any], out: ParsedResponse) -> None:
        out.model = state["model"]
        if state["texts"] or state["calls"] or state["done"]:
            message = text_message("assistant", "".join(state["texts"]))
            if state["calls"]:
                message["tool_calls"] = state["calls"]
            out.fields["choices"] = [choice(message, state["finish"])]
        if state["usage"]:
            out.fields["usage"] = state["usage"]
        if state["error"]:
            out.fields["error"] = state["error"]

    def parse_response(self, body: bytes) -> ParsedResponse:
        if not body:
            return ParsedResponse()
        state = self._new_state()
        if looks_like_ndjson(body):
            items, bad = split_ndjson(body)
            out = ParsedResponse(chunk_count=len(items), streamed=True, chunks=[])
            assert out.chunks is not None
            for offset, obj in items:
                info = self._read(obj, state)
                if info is not None and (info.delta or info.finish_reason):
                    info.offset = offset
                    out.chunks.append(info)
            self._result(state, out)
            out.stream_complete = state["done"] or state["error"] is not None
            if not out.stream_complete:
                out.problems.append('stream: no "done": true line')
            if bad:
                out.problems.append(f"stream: {bad} line(s) not valid JSON")
                out.unparsed = True
            return out
        out = ParsedResponse()
        obj = load_json_object(body, "response", out.problems)
        if obj is None:
            out.unparsed = True
            return out
        self._read(obj, state)
        self._result(state, out)
        if obj.get("done") is False:  # a one-line stream (cut short or a single chunk)
            out.streamed = True
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> _OllamaSse:
        return _OllamaSse(self)


class _OllamaSse:
    """Ollama never streams SSE; accepts it anyway (proxies re-framing NDJSON as SSE)."""

    __slots__ = ("count", "parser", "state")

    def __init__(self, parser: OllamaParser) -> None:
        self.parser = parser
        self.state = parser._new_state()
        self.count = 0

    def feed(self, event: SseEvent) -> StreamChunk | None:
        obj = event_object(event.data)
        if obj is None:
            return None
        self.count += 1
        info = self.parser._read(obj, self.state)
        if info is not None:
            info.ts_ns = event.ts_ns
        return info

    def finish(self) -> ParsedResponse:
        out = ParsedResponse(chunk_count=self.count, stream_complete=self.state["done"])
        self.parser._result(self.state, out)
        return out


class OllamaEmbedParser:
    """FormatParser for `/api/embed` (input: str or list) and legacy `/api/embeddings` (prompt)."""

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = ParsedRequest()
        obj = load_json_object(body, "request", out.problems) if body else None
        if obj is None:
            out.model, _ = salvage_model(body)
            out.unparsed = bool(body)
            return out
        model = obj.get("model")
        out.model = model if isinstance(model, str) else None
        value = obj.get("input", obj.get("prompt"))
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        input_fields([text_message("user", t) for t in texts if isinstance(t, str)], out)
        if isinstance(obj.get("dimensions"), int):
            out.fields["parameters"] = {"dimensions": obj["dimensions"]}
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        out, obj = response_object(body)
        if obj is None:
            return out
        if isinstance(obj.get("model"), str):
            out.model = obj["model"]
        vectors = obj.get("embeddings")
        if vectors is None and isinstance(obj.get("embedding"), list):
            vectors = [obj["embedding"]]
        if isinstance(vectors, list):
            first = vectors[0] if vectors else None
            out.fields["embedding"] = embedding_fields(
                len(vectors), len(first) if isinstance(first, list) else None
            )
        if "prompt_eval_count" in obj:
            out.fields["usage"] = make_usage(obj["prompt_eval_count"], None, obj["prompt_eval_count"]) or {}
        if isinstance(obj.get("error"), str):
            out.fields["error"] = {"message": obj["error"]}
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> _OllamaSse:
        return _OllamaSse(OllamaParser(chat=False))
