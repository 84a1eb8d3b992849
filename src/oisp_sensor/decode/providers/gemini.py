"""Google Gemini `generateContent` / `streamGenerateContent` and embeddings.

One wire format behind AI Studio (`/v1beta/models/{m}:generateContent`) and Vertex AI
(`/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`); the
model is in the path. Both camelCase and the snake_case proto names are read, since
clients send either.

Normalisation: `systemInstruction` becomes the system message, role "model" becomes
"assistant", `functionCall` parts become tool_calls (id when the API gives one, else
None: results are then matched by name) and `functionResponse` parts become
`{"role": "tool"}` messages; thought parts count as reasoning and are not copied.
Usage: completion_tokens includes thoughtsTokenCount (billed as output), which is
also reported as reasoning_tokens.

Streams: `?alt=sse` gives SSE events, each a whole GenerateContentResponse chunk;
without it the body is one JSON array, split when the exchange is done.
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
    load_json_object,
    make_usage,
    response_object,
    run_stream,
    system_hash,
    text_message,
    tool_call,
)
from oisp_sensor.decode.providers.bodystreams import split_json_array
from oisp_sensor.decode.providers.openai_embeddings import embedding_fields, input_fields

_PARAMETERS = {
    "temperature": "temperature",
    "topP": "top_p",
    "top_p": "top_p",
    "topK": "top_k",
    "top_k": "top_k",
    "maxOutputTokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "candidateCount": "n",
    "candidate_count": "n",
    "stopSequences": "stop",
    "stop_sequences": "stop",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "responseMimeType": "response_format",
    "response_mime_type": "response_format",
}
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
}

_ROLES = {"model": "assistant", "user": "user", "function": "tool", "tool": "tool"}


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _parts_text(parts: object) -> tuple[str, list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """(text, part types, tool calls, tool results) of a Content's parts."""
    texts: list[str] = []
    types: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    if not isinstance(parts, list):
        return "", types, calls, results
    for part in parts:
        if not isinstance(part, dict):
            continue
        fc = _get(part, "functionCall", "function_call")
        fr = _get(part, "functionResponse", "function_response")
        if isinstance(part.get("text"), str):
            if part.get("thought") is True:
                types.append("thought")
            else:
                types.append("text")
                texts.append(part["text"])
        elif isinstance(fc, dict):
            types.append("function_call")
            calls.append(tool_call(fc.get("id"), fc.get("name"), fc.get("args", {})))
        elif isinstance(fr, dict):
            types.append("function_response")
            results.append(text_message("tool", json_text(fr.get("response")), tool_call_id=fr.get("id"),
                                        name=fr.get("name")))  # fmt: skip
        else:
            types.append(next(iter(part), "unknown"))
    return "".join(texts), types, calls, results


def usage_fields(meta: object) -> dict[str, int] | None:
    if not isinstance(meta, dict):
        return None
    prompt = as_int(_get(meta, "promptTokenCount", "prompt_token_count"))
    tool_prompt = as_int(_get(meta, "toolUsePromptTokenCount", "tool_use_prompt_token_count"))
    if prompt is not None and tool_prompt:
        prompt += tool_prompt
    candidates = as_int(_get(meta, "candidatesTokenCount", "candidates_token_count"))
    thoughts = as_int(_get(meta, "thoughtsTokenCount", "thoughts_token_count"))
    completion = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    return make_usage(
        prompt,
        completion,
        _get(meta, "totalTokenCount", "total_token_count"),
        cached=_get(meta, "cachedContentTokenCount", "cached_content_token_count"),
        reasoning=thoughts,
    )


def _finish(native: object, has_calls: bool) -> str | None:
    if not isinstance(native, str):
        return None
    if native == "STOP" and has_calls:
        return "tool_calls"
    return FINISH_REASONS.get(native, native.lower())


class _Candidate:
    __slots__ = ("calls", "finish", "role", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.finish: str | None = None
        self.role: str | None = None

    def result(self, index: int) -> dict[str, Any]:
        message = text_message(_ROLES.get(self.role or "model", self.role), "".join(self.texts))
        if self.calls:
            message["tool_calls"] = self.calls
        item = choice(message, _finish(self.finish, bool(self.calls)), index)
        if self.finish:
            item["native_finish_reason"] = self.finish
        return item


class _Reader:
    """Accumulates GenerateContentResponse objects (one, or a stream's chunks)."""

    __slots__ = ("candidates", "error", "feedback", "out", "usage")

    def __init__(self, out: ParsedResponse) -> None:
        self.out = out
        self.candidates: dict[int, _Candidate] = {}
        self.usage: dict[str, int] | None = None
        self.error: dict[str, Any] | None = None
        self.feedback: str | None = None

    def add(self, obj: dict[str, Any], ts_ns: int, offset: int) -> StreamChunk | None:
        out = self.out
        if "error" in obj:
            self.error = error_fields(obj["error"]) or self.error
        if out.response_id is None and isinstance(_get(obj, "responseId", "response_id"), str):
            out.response_id = _get(obj, "responseId", "response_id")
        version = _get(obj, "modelVersion", "model_version")
        if out.model is None and isinstance(version, str):
            out.model = version
        usage = usage_fields(_get(obj, "usageMetadata", "usage_metadata"))
        if usage:
            self.usage = usage
        feedback = _get(obj, "promptFeedback", "prompt_feedback")
        if isinstance(feedback, dict) and isinstance(_get(feedback, "blockReason", "block_reason"), str):
            self.feedback = _get(feedback, "blockReason", "block_reason")
        candidates = obj.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            return None
        info = StreamChunk(kind="none", ts_ns=ts_ns, offset=offset)
        for position, cand in enumerate(candidates):
            if not isinstance(cand, dict):
                continue
            index = as_int(cand.get("index"))
            index = position if index is None else index
            acc = self.candidates.get(index)
            if acc is None:
                acc = self.candidates[index] = _Candidate()
            content = cand.get("content")
            if isinstance(content, dict):
                if acc.role is None and isinstance(content.get("role"), str):
                    acc.role = content["role"]
                text, types, calls, _ = _parts_text(content.get("parts"))
                if text:
                    acc.texts.append(text)
                    info.delta += text
                    info.kind = "text"
                if calls:
                    acc.calls.extend(calls)
                    info.delta += "".join(c["function"]["arguments"] for c in calls)
                    if info.kind == "none":
                        info.kind = "tool_call"
                if "thought" in types and info.kind == "none":
                    info.kind = "reasoning"
                if (text or calls or "thought" in types) and not out.first_token_ts_ns:
                    out.first_token_ts_ns = ts_ns
            native = _get(cand, "finishReason", "finish_reason")
            if isinstance(native, str):
                acc.finish = native
                info.finish_reason = _finish(native, bool(acc.calls))
        return info

    def finish(self) -> None:
        fields = self.out.fields
        if self.candidates:
            fields["choices"] = [self.candidates[i].result(i) for i in sorted(self.candidates)]
        if self.usage:
            fields["usage"] = self.usage
        if self.feedback:
            fields["prompt_blocked"] = self.feedback
        if self.error:
            fields["error"] = self.error


class GeminiParser:
    """FormatParser for generateContent (streaming=True: streamGenerateContent)."""

    def __init__(self, *, streaming: bool = False) -> None:
        self._streaming = streaming

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = ParsedRequest(streaming=self._streaming)
        obj = load_json_object(body, "request", out.problems) if body else None
        if obj is None:
            out.unparsed = bool(body)
            return out
        if isinstance(obj.get("model"), str):
            out.model = obj["model"].removeprefix("models/")
        fields = out.fields
        messages: list[dict[str, Any]] = []
        system = _get(obj, "systemInstruction", "system_instruction")
        system_text = None
        if isinstance(system, dict):
            system_text = _parts_text(system.get("parts"))[0]
        elif isinstance(system, str):
            system_text = system
        if system_text is not None:
            messages.append(text_message("system", system_text))
        contents = obj.get("contents")
        if isinstance(contents, dict):  # a single Content is accepted too
            contents = [contents]
        if isinstance(contents, list):
            for content in contents:
                if not isinstance(content, dict):
                    continue
                text, types, calls, results = _parts_text(content.get("parts"))
                messages.extend(results)
                if results and not calls and set(types) <= {"function_response"}:
                    continue
                role = content.get("role", "user")
                message = text_message(_ROLES.get(role, role) if isinstance(role, str) else None, text,
                                       content_parts=types)  # fmt: skip
                if calls:
                    message["tool_calls"] = calls
                messages.append(message)
        else:
            out.problems.append("request: no contents")
        if messages:
            fields["message_count"] = len(messages)
            fields["messages"] = messages
        if system_text:
            fields["system_prompt_hash"] = system_hash([system_text])
        tools = self._tools(obj.get("tools"))
        if tools:
            fields["tools"] = tools
        tool_config = _get(obj, "toolConfig", "tool_config")
        if tool_config is not None:
            fields["tool_choice"] = tool_config
        config = _get(obj, "generationConfig", "generation_config")
        if isinstance(config, dict):
            params = {_PARAMETERS[k]: v for k, v in config.items() if k in _PARAMETERS and v is not None}
            thinking = _get(config, "thinkingConfig", "thinking_config")
            if isinstance(thinking, dict):
                budget = _get(thinking, "thinkingBudget", "thinking_budget")
                if isinstance(budget, int):
                    params["thinking_budget_tokens"] = budget
            if params:
                fields["parameters"] = params
        return out

    @staticmethod
    def _tools(value: object) -> list[dict[str, Any]] | None:
        if not isinstance(value, list):
            return None
        out: list[dict[str, Any]] = []
        for tool in value:
            if not isinstance(tool, dict):
                continue
            for key, entry in tool.items():
                if key in ("functionDeclarations", "function_declarations") and isinstance(entry, list):
                    out.extend(
                        {"name": d.get("name"), "type": "function"} for d in entry if isinstance(d, dict)
                    )
                else:
                    out.append({"name": key, "type": key})  # googleSearch, codeExecution, ...
        return out or None

    def parse_response(self, body: bytes) -> ParsedResponse:
        if body.lstrip()[:1] == b"[":
            return self._parse_array(body)
        out, obj = response_object(body)
        if obj is None:
            return out
        reader = _Reader(out)
        reader.add(obj, 0, -1)
        reader.finish()
        return out

    def _parse_array(self, body: bytes) -> ParsedResponse:
        """streamGenerateContent without alt=sse: a JSON array of chunks."""
        items, complete = split_json_array(body)
        out = ParsedResponse(chunk_count=len(items), streamed=True, chunks=[], stream_complete=complete)
        reader = _Reader(out)
        assert out.chunks is not None
        for offset, obj in items:
            info = reader.add(obj, 0, offset)
            if info is not None:
                out.chunks.append(info)
        reader.finish()
        if not complete:
            out.problems.append("stream: JSON array cut short")
            if not items:
                out.unparsed = True
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> _GeminiStream:
        return _GeminiStream()


class _GeminiStream:
    __slots__ = ("bad", "out", "reader")

    def __init__(self) -> None:
        self.out = ParsedResponse(chunk_count=0, stream_complete=False)
        self.reader = _Reader(self.out)
        self.bad = 0

    def feed(self, event: SseEvent) -> StreamChunk | None:
        if not event.data:
            return None
        obj = event_object(event.data)
        if obj is None:
            self.bad += 1
            return None
        assert self.out.chunk_count is not None
        self.out.chunk_count += 1
        info = self.reader.add(obj, event.ts_ns, -1)
        if info is not None and info.finish_reason is not None:
            self.out.stream_complete = True  # no terminator event: a finishReason ends it
        if "error" in obj:
            self.out.stream_complete = True
        return info

    def finish(self) -> ParsedResponse:
        self.reader.finish()
        out = self.out
        if self.bad:
            out.problems.append(f"stream: {self.bad} event(s) not valid JSON")
            out.unparsed = True
        if not out.stream_complete:
            out.problems.append("stream: no finishReason")
        return out


class GeminiEmbedParser:
    """embedContent, batchEmbedContents (Gemini API) and Vertex `:predict` for embedding models."""

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = ParsedRequest()
        obj = load_json_object(body, "request", out.problems) if body else None
        if obj is None:
            out.unparsed = bool(body)
            return out
        texts: list[dict[str, Any]] = []
        if isinstance(obj.get("requests"), list):  # batchEmbedContents
            for req in obj["requests"]:
                if isinstance(req, dict) and isinstance(req.get("content"), dict):
                    texts.append(text_message("user", _parts_text(req["content"].get("parts"))[0]))
        elif isinstance(obj.get("content"), dict):  # embedContent
            texts.append(text_message("user", _parts_text(obj["content"].get("parts"))[0]))
        elif isinstance(obj.get("instances"), list):  # Vertex predict
            for inst in obj["instances"]:
                if isinstance(inst, dict) and isinstance(inst.get("content"), str):
                    texts.append(text_message("user", inst["content"]))
        input_fields(texts, out)
        dims = _get(obj, "outputDimensionality", "output_dimensionality")
        if isinstance(dims, int):
            out.fields["parameters"] = {"dimensions": dims}
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        out, obj = response_object(body)
        if obj is None:
            return out
        vectors: list[Any] = []
        tokens = 0
        if isinstance(obj.get("embedding"), dict):
            vectors = [obj["embedding"]]
        elif isinstance(obj.get("embeddings"), list):
            vectors = obj["embeddings"]
        elif isinstance(obj.get("predictions"), list):
            for pred in obj["predictions"]:
                emb = pred.get("embeddings") if isinstance(pred, dict) else None
                if isinstance(emb, dict):
                    vectors.append(emb)
                    stats = emb.get("statistics")
                    if isinstance(stats, dict):
                        tokens += as_int(stats.get("token_count")) or 0
        if vectors:
            first = vectors[0] if isinstance(vectors[0], dict) else {}
            values = first.get("values")
            out.fields["embedding"] = embedding_fields(
                len(vectors), len(values) if isinstance(values, list) else None
            )
        if tokens:
            out.fields["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        error = error_fields(obj.get("error"))
        if error:
            out.fields["error"] = error
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> _GeminiStream:
        return _GeminiStream()
