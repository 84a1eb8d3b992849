"""AWS Bedrock runtime: Converse / ConverseStream and InvokeModel (+ its stream).

Paths: `/model/{modelId}/converse`, `/converse-stream`, `/invoke`,
`/invoke-with-response-stream`. The model id is in the path (URL-encoded, possibly an
inference-profile id like `us.anthropic...` or an ARN), and whether the call streams is
in the path too, so `dispatch()` picks a parser per request.

Converse has one shape for every model; its messages are normalised like the other
formats (system blocks -> system message, toolUse -> tool_calls, toolResult -> tool
messages). Usage: inputTokens excludes cache reads/writes, which are added back into
prompt_tokens (and reported as cached_tokens / cache_write_tokens).

InvokeModel carries each vendor's native body: Anthropic Messages for `anthropic.*`,
the Converse-like "messages-v1" schema for Amazon Nova, OpenAI chat for `openai.*`, and
older per-vendor shapes (Llama, Mistral, Titan, Cohere, AI21) read by key.

Both stream forms answer with AWS event-stream frames (see `eventstream`), decoded once
the body is complete: ConverseStream frames are typed by `:event-type`, InvokeModel
stream frames are `chunk` events whose payload `{"bytes": base64}` holds the vendor's
own stream chunk JSON, fed to that vendor's stream reader.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import orjson

from oisp_sensor.decode.messages import SseEvent
from oisp_sensor.decode.providers.anthropic_messages import AnthropicMessagesParser
from oisp_sensor.decode.providers.base import (
    FormatParser,
    GenericJsonParser,
    ParsedRequest,
    ParsedResponse,
    StreamAccumulator,
    StreamChunk,
    as_int,
    choice,
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
from oisp_sensor.decode.providers.eventstream import decode_frames, looks_like_eventstream
from oisp_sensor.decode.providers.openai_chat import OpenAIChatParser
from oisp_sensor.decode.providers.openai_embeddings import embedding_fields, input_fields

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "model_context_window_exceeded": "length",
}
_INFERENCE = {
    "maxTokens": "max_tokens",
    "temperature": "temperature",
    "topP": "top_p",
    "stopSequences": "stop",
}
_REGION_PREFIXES = frozenset({"us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"})


def finish_reason(native: object) -> str | None:
    if not isinstance(native, str):
        return None
    return FINISH_REASONS.get(native, native)


def vendor_of(model: str | None) -> str:
    """`anthropic` for `us.anthropic.claude-...`, `arn:...:inference-profile/eu.meta.llama...`."""
    if not model:
        return ""
    name = model.rsplit("/", 1)[-1].lower()
    parts = name.split(".")
    if len(parts) > 2 and parts[0] in _REGION_PREFIXES:
        parts = parts[1:]
    return parts[0] if len(parts) > 1 else ""


# ---- Converse ----------------------------------------------------------------------------------


def _blocks(content: object) -> tuple[str, list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """(text, block types, tool calls, tool result messages) of Converse content blocks."""
    texts: list[str] = []
    types: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    if not isinstance(content, list):
        return "", types, calls, results
    for block in content:
        if not isinstance(block, dict) or not block:
            continue
        key = next(iter(block))
        if "text" in block and isinstance(block["text"], str):
            types.append("text")
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            types.append("toolUse")
            calls.append(tool_call(use.get("toolUseId"), use.get("name"), use.get("input", {})))
        elif isinstance(block.get("toolResult"), dict):
            res = block["toolResult"]
            parts = []
            for item in res.get("content") or ():
                if isinstance(item, dict):
                    if isinstance(item.get("text"), str):
                        parts.append(item["text"])
                    elif "json" in item:
                        parts.append(json_text(item["json"]))
            extra: dict[str, Any] = {"tool_call_id": res.get("toolUseId")}
            if res.get("status") == "error":
                extra["is_error"] = True
            results.append(text_message("tool", "\n".join(parts), **extra))
        else:
            types.append(key)
    return "\n".join(texts), types, calls, results


def read_converse_request(obj: dict[str, Any], out: ParsedRequest) -> None:
    """Converse (and Nova "messages-v1") request body -> fields."""
    fields = out.fields
    messages: list[dict[str, Any]] = []
    system_text: str | None = None
    system = obj.get("system")
    if isinstance(system, list):
        system_text = _blocks(system)[0]
        messages.append(text_message("system", system_text))
    raw = obj.get("messages")
    if isinstance(raw, list):
        for message in raw:
            if not isinstance(message, dict):
                continue
            text, types, calls, results = _blocks(message.get("content"))
            messages.extend(results)
            if results and not types:
                continue
            item = text_message(message.get("role"), text, content_parts=types)
            if calls:
                item["tool_calls"] = calls
            messages.append(item)
    else:
        out.problems.append("request: no messages list")
    if messages:
        fields["message_count"] = len(messages)
        fields["messages"] = messages
    if system_text:
        fields["system_prompt_hash"] = system_hash([system_text])
    tool_config = obj.get("toolConfig")
    if isinstance(tool_config, dict):
        tools = [
            {"name": t["toolSpec"].get("name"), "type": "function"}
            for t in tool_config.get("tools") or ()
            if isinstance(t, dict) and isinstance(t.get("toolSpec"), dict)
        ]
        if tools:
            fields["tools"] = tools
        if tool_config.get("toolChoice") is not None:
            fields["tool_choice"] = tool_config["toolChoice"]
    config = obj.get("inferenceConfig")
    if isinstance(config, dict):
        params = {_INFERENCE[k]: v for k, v in config.items() if k in _INFERENCE and v is not None}
        if params:
            fields["parameters"] = params


def converse_usage(usage: object) -> dict[str, int] | None:
    if not isinstance(usage, dict):
        return None
    inp = as_int(usage.get("inputTokens"))
    read = as_int(usage.get("cacheReadInputTokens", usage.get("cacheReadInputTokenCount")))
    write = as_int(usage.get("cacheWriteInputTokens", usage.get("cacheWriteInputTokenCount")))
    prompt = None if inp is None else inp + (read or 0) + (write or 0)
    total = usage.get("totalTokens")
    if (read or write) and as_int(total) is not None and as_int(usage.get("outputTokens")) is not None:
        total = None  # recomputed from the re-based prompt count
    return make_usage(prompt, usage.get("outputTokens"), total, cached=read, cache_write=write)


def read_converse_response(obj: dict[str, Any], out: ParsedResponse) -> None:
    output = obj.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    if isinstance(message, dict):
        text, _types, calls, _ = _blocks(message.get("content"))
        item = text_message(message.get("role") or "assistant", text)
        if calls:
            item["tool_calls"] = calls
        result = choice(item, finish_reason(obj.get("stopReason")))
        if isinstance(obj.get("stopReason"), str):
            result["native_finish_reason"] = obj["stopReason"]
        out.fields["choices"] = [result]
    usage = converse_usage(obj.get("usage"))
    if usage:
        out.fields["usage"] = usage
    if message is None and isinstance(obj.get("message"), str):
        out.fields["error"] = {"message": obj["message"]}  # {"message": "..."} error bodies


class _ConverseStream:
    """Converse stream events, keyed by event type (frames, or Nova's keyed chunks)."""

    __slots__ = ("blocks", "chunks", "error", "out", "role", "stop", "usage")

    def __init__(self) -> None:
        self.out = ParsedResponse(chunk_count=0, stream_complete=False, streamed=True, chunks=[])
        self.blocks: dict[int, list[Any]] = {}  # index -> [kind, id, name, [parts]]
        self.role: str | None = None
        self.stop: str | None = None
        self.usage: dict[str, int] | None = None
        self.error: dict[str, Any] | None = None
        self.chunks = 0

    def event(self, etype: str, payload: dict[str, Any], ts_ns: int, offset: int) -> StreamChunk | None:
        self.chunks += 1
        out = self.out
        index = as_int(payload.get("contentBlockIndex")) or 0
        if etype == "contentBlockDelta":
            delta = payload.get("delta")
            if not isinstance(delta, dict):
                return None
            block = self.blocks.setdefault(index, ["text", None, None, []])
            text: object = None
            kind = "text"
            if isinstance(delta.get("text"), str):
                text = delta["text"]
            elif isinstance(delta.get("toolUse"), dict):
                text, kind = delta["toolUse"].get("input"), "tool_call"
            elif isinstance(delta.get("reasoningContent"), dict):
                text, kind = delta["reasoningContent"].get("text"), "reasoning"
            if not isinstance(text, str):
                return None
            if kind != "reasoning":
                block[3].append(text)
            if text and not out.first_token_ts_ns:
                out.first_token_ts_ns = ts_ns
            return StreamChunk(text, kind, None, ts_ns, offset, 0)
        if etype == "contentBlockStart":
            start = payload.get("start")
            use = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(use, dict):
                self.blocks[index] = ["tool_use", use.get("toolUseId"), use.get("name"), []]
            return None
        if etype == "messageStart":
            if isinstance(payload.get("role"), str):
                self.role = payload["role"]
            return None
        if etype == "messageStop":
            if isinstance(payload.get("stopReason"), str):
                self.stop = payload["stopReason"]
            return StreamChunk("", "none", finish_reason(self.stop), ts_ns, offset, 0)
        if etype == "metadata":
            self.usage = converse_usage(payload.get("usage")) or self.usage
            out.stream_complete = True
            return None
        if etype == "contentBlockStop":
            return None
        self.chunks -= 1
        return None

    def exception(self, etype: str, payload: bytes) -> None:
        problems: list[str] = []
        obj = load_json_object(payload, "exception", problems) if payload else None
        message = obj.get("message", obj.get("Message")) if obj else None
        self.error = {"type": etype or "exception"}
        if isinstance(message, str):
            self.error["message"] = message
        self.out.stream_complete = True

    def finish(self) -> ParsedResponse:
        out = self.out
        out.chunk_count = self.chunks
        if self.blocks or self.stop:
            texts: list[str] = []
            calls: list[dict[str, Any]] = []
            for index in sorted(self.blocks):
                kind, block_id, name, parts = self.blocks[index]
                if kind == "tool_use":
                    calls.append(tool_call(block_id, name, "".join(parts) or "{}"))
                else:
                    texts.extend(parts)
            message = text_message(self.role or "assistant", "".join(texts))
            if calls:
                message["tool_calls"] = calls
            item = choice(message, finish_reason(self.stop))
            if self.stop:
                item["native_finish_reason"] = self.stop
            out.fields["choices"] = [item]
        if self.usage:
            out.fields["usage"] = self.usage
        if self.error:
            out.fields["error"] = self.error
        if not out.stream_complete:
            out.problems.append("stream: no metadata event")
        return out


def _frames_problems(body: bytes, out: ParsedResponse, bad: int, skipped: int, trailing: int) -> None:
    if bad or skipped:
        out.problems.append(f"event-stream: {bad} bad frame(s), {skipped} byte(s) skipped")
        out.unparsed = out.unparsed or not out.chunks
    if trailing:
        out.problems.append(f"event-stream: {trailing} byte(s) of an incomplete frame")


def _error_body(body: bytes) -> ParsedResponse:
    """A JSON (error) body where a stream was expected."""
    out, obj = response_object(body)
    if obj is None:
        return out
    message = obj.get("message", obj.get("Message"))
    if isinstance(message, str):
        out.fields["error"] = {"message": message}
    return out


class BedrockConverseParser:
    """FormatParser for Converse (streaming=True: ConverseStream, event-stream body)."""

    def __init__(self, *, streaming: bool = False) -> None:
        self._streaming = streaming

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = ParsedRequest(streaming=self._streaming)
        obj = load_json_object(body, "request", out.problems) if body else None
        if obj is None:
            out.unparsed = bool(body)
            return out
        read_converse_request(obj, out)
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        if not body:
            return ParsedResponse()
        if looks_like_eventstream(body):
            return self._parse_frames(body)
        if self._streaming:
            return _error_body(body)
        out, obj = response_object(body)
        if obj is None:
            return out
        read_converse_response(obj, out)
        return out

    @staticmethod
    def _parse_frames(body: bytes) -> ParsedResponse:
        decoded = decode_frames(body)
        acc = _ConverseStream()
        assert acc.out.chunks is not None
        bad_payloads = 0
        for frame in decoded.frames:
            if frame.message_type != "event":
                acc.exception(frame.event_type, frame.payload)
                continue
            try:
                payload = orjson.loads(frame.payload) if frame.payload else {}
            except orjson.JSONDecodeError:
                bad_payloads += 1
                continue
            if not isinstance(payload, dict):
                bad_payloads += 1
                continue
            info = acc.event(frame.event_type, payload, 0, frame.offset)
            if info is not None:
                acc.out.chunks.append(info)
        out = acc.finish()
        _frames_problems(
            body, out, decoded.bad_frames + bad_payloads, decoded.skipped_bytes, decoded.trailing_bytes
        )
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> StreamAccumulator:
        return GenericJsonParser().stream()  # Bedrock never streams SSE


# ---- InvokeModel -------------------------------------------------------------------------------


def _first_text(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """(generated text, native stop reason) of a vendor-native response or stream chunk."""
    for key in ("generation", "outputText", "completion", "text"):
        if isinstance(obj.get(key), str):
            stop = obj.get("stop_reason", obj.get("completionReason", obj.get("finish_reason")))
            return obj[key], stop if isinstance(stop, str) else None
    for key in ("outputs", "results", "generations"):
        items = obj.get(key)
        if isinstance(items, list) and items and isinstance(items[0], dict):
            first = items[0]
            text = first.get("text", first.get("outputText"))
            stop = first.get("stop_reason", first.get("completionReason", first.get("finish_reason")))
            return (text if isinstance(text, str) else None), (stop if isinstance(stop, str) else None)
    completions = obj.get("completions")  # AI21 Jurassic
    if isinstance(completions, list) and completions and isinstance(completions[0], dict):
        data = completions[0].get("data")
        reason = completions[0].get("finishReason")
        text = data.get("text") if isinstance(data, dict) else None
        stop = reason.get("reason") if isinstance(reason, dict) else None
        return (text if isinstance(text, str) else None), (stop if isinstance(stop, str) else None)
    return None, None


def _native_usage(obj: dict[str, Any]) -> dict[str, int] | None:
    prompt = obj.get("prompt_token_count", obj.get("inputTextTokenCount"))
    completion = obj.get("generation_token_count")
    results = obj.get("results")
    if completion is None and isinstance(results, list) and results and isinstance(results[0], dict):
        completion = results[0].get("tokenCount", results[0].get("totalOutputTextTokenCount"))
    metrics = obj.get("amazon-bedrock-invocationMetrics")
    if isinstance(metrics, dict):
        prompt = metrics.get("inputTokenCount", prompt)
        completion = metrics.get("outputTokenCount", completion)
    if prompt is None and completion is None:
        return None
    return make_usage(prompt, completion)


class BedrockNativeParser:
    """InvokeModel bodies of vendors without a dedicated parser, read by key.

    Requests: `prompt` (Llama, Mistral, Cohere generate), `inputText` (Titan),
    `message` + `chat_history` (Cohere command-r), `texts` (Cohere embed). Responses:
    `generation`, `outputs[].text`, `results[].outputText`, `completions[].data.text`,
    `text`; embeddings: `embedding` / `embeddings`.
    """

    def __init__(self, *, streaming: bool = False, embedding: bool = False) -> None:
        self._streaming = streaming
        self._embedding = embedding

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = ParsedRequest(streaming=self._streaming)
        if self._embedding:
            out.request_type = "embedding"
        obj = load_json_object(body, "request", out.problems) if body else None
        if obj is None:
            out.unparsed = bool(body)
            return out
        messages: list[dict[str, Any]] = []
        for key in ("prompt", "inputText", "message"):
            if isinstance(obj.get(key), str):
                messages.append(text_message("user", obj[key]))
                break
        if isinstance(obj.get("texts"), list):
            messages.extend(text_message("user", t) for t in obj["texts"] if isinstance(t, str))
        if self._embedding:
            input_fields(messages, out)
        elif messages:
            out.fields["message_count"] = len(messages)
            out.fields["messages"] = messages
        params = {}
        for key, name in (("max_gen_len", "max_tokens"), ("max_tokens", "max_tokens"), ("temperature", "temperature"),
                          ("top_p", "top_p"), ("dimensions", "dimensions")):  # fmt: skip
            if obj.get(key) is not None:
                params[name] = obj[key]
        if params:
            out.fields["parameters"] = params
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        if not body:
            return ParsedResponse()
        if looks_like_eventstream(body):
            return _parse_invoke_frames(body, self)
        out, obj = response_object(body)
        if obj is None:
            return out
        self.read_object(obj, out)
        return out

    def read_object(self, obj: dict[str, Any], out: ParsedResponse) -> None:
        if isinstance(obj.get("id"), str):
            out.response_id = obj["id"]
        if self._embedding or "embedding" in obj or "embeddings" in obj:
            vectors = obj.get("embeddings", [obj.get("embedding")] if "embedding" in obj else [])
            if isinstance(vectors, dict):  # Cohere embedding_types: {"float": [[...]]}
                vectors = next(iter(vectors.values()), [])
            if isinstance(vectors, list):
                first = vectors[0] if vectors else None
                out.fields["embedding"] = embedding_fields(
                    len(vectors), len(first) if isinstance(first, list) else None
                )
        else:
            text, stop = _first_text(obj)
            if text is not None or stop is not None:
                result = choice(text_message("assistant", text), finish_reason(stop))
                out.fields["choices"] = [result]
        usage = _native_usage(obj)
        if usage:
            out.fields["usage"] = usage
        if isinstance(obj.get("message"), str) and "choices" not in out.fields:
            out.fields["error"] = {"message": obj["message"]}

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> _NativeStream:
        return _NativeStream()


class _NativeStream:
    """Vendor-native InvokeModel stream chunks (Llama, Mistral, Titan, ...)."""

    __slots__ = ("bad", "chunks", "out", "stop", "texts", "usage")

    def __init__(self) -> None:
        self.out = ParsedResponse(chunk_count=0, stream_complete=False)
        self.texts: list[str] = []
        self.stop: str | None = None
        self.usage: dict[str, int] | None = None
        self.bad = 0
        self.chunks = 0

    def feed(self, event: SseEvent) -> StreamChunk | None:
        obj = event_object(event.data)
        if obj is None:
            self.bad += 1
            return None
        self.chunks += 1
        text, stop = _first_text(obj)
        usage = _native_usage(obj)
        if usage and "amazon-bedrock-invocationMetrics" in obj:
            self.usage = usage
            self.out.stream_complete = True
        elif usage:
            self.usage = usage
        if stop:
            self.stop = stop
            self.out.stream_complete = True
        if text is None and stop is None:
            return None
        if text:
            self.texts.append(text)
            if not self.out.first_token_ts_ns:
                self.out.first_token_ts_ns = event.ts_ns
        return StreamChunk(text or "", "text" if text else "none", finish_reason(stop), event.ts_ns)

    def finish(self) -> ParsedResponse:
        out = self.out
        out.chunk_count = self.chunks
        if self.texts or self.stop:
            out.fields["choices"] = [
                choice(text_message("assistant", "".join(self.texts)), finish_reason(self.stop))
            ]
        if self.usage:
            out.fields["usage"] = self.usage
        if self.bad:
            out.problems.append(f"stream: {self.bad} chunk(s) not valid JSON")
            out.unparsed = True
        return out


class _NovaStream:
    """Amazon Nova InvokeModel stream chunks: `{"contentBlockDelta": {...}}` keyed objects."""

    __slots__ = ("inner",)

    def __init__(self) -> None:
        self.inner = _ConverseStream()

    def feed(self, event: SseEvent) -> StreamChunk | None:
        obj = event_object(event.data)
        if obj is None:
            return None
        info = None
        for key, payload in obj.items():
            if key == "amazon-bedrock-invocationMetrics":
                continue
            if isinstance(payload, dict):
                info = self.inner.event(key, payload, event.ts_ns, -1) or info
        return info

    def finish(self) -> ParsedResponse:
        out = self.inner.finish()
        out.streamed = False
        out.chunks = None
        return out


class _NovaParser(BedrockNativeParser):
    """Amazon Nova "messages-v1" InvokeModel bodies (Converse-shaped)."""

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = ParsedRequest(streaming=self._streaming)
        obj = load_json_object(body, "request", out.problems) if body else None
        if obj is None:
            out.unparsed = bool(body)
            return out
        read_converse_request(obj, out)
        return out

    def read_object(self, obj: dict[str, Any], out: ParsedResponse) -> None:
        read_converse_response(obj, out)

    def stream(self) -> _NovaStream:  # type: ignore[override]
        return _NovaStream()


class _Invoke:
    """InvokeModel with a vendor parser whose body format is not Bedrock's own (Anthropic, OpenAI)."""

    def __init__(self, inner: FormatParser, *, streaming: bool) -> None:
        self._inner = inner
        self._streaming = streaming

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = self._inner.parse_request(body)
        out.streaming = self._streaming
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        if body and looks_like_eventstream(body):
            return _parse_invoke_frames(body, self._inner)
        return self._inner.parse_response(body)

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return self._inner.parse_stream(events)

    def stream(self) -> StreamAccumulator:
        return self._inner.stream()


def _parse_invoke_frames(body: bytes, parser: FormatParser) -> ParsedResponse:
    """InvokeModelWithResponseStream: `chunk` frames carrying base64 vendor chunks."""
    decoded = decode_frames(body)
    acc = parser.stream()
    chunks: list[StreamChunk] = []
    error: dict[str, Any] | None = None
    bad = 0
    for frame in decoded.frames:
        if frame.message_type != "event":
            problems: list[str] = []
            obj = load_json_object(frame.payload, "exception", problems) if frame.payload else None
            error = {"type": frame.event_type or "exception"}
            message = obj.get("message") if obj else None
            if isinstance(message, str):
                error["message"] = message
            continue
        try:
            envelope = orjson.loads(frame.payload)
            data = base64.b64decode(envelope["bytes"], validate=True)
        except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error):
            bad += 1
            continue
        info = acc.feed(SseEvent(data=data.decode("utf-8", "replace")))
        if info is not None:
            info.offset = frame.offset
            chunks.append(info)
    out = acc.finish()
    out.streamed = True
    out.chunks = chunks
    if error is not None:
        out.fields["error"] = error
        out.stream_complete = True
    _frames_problems(body, out, decoded.bad_frames + bad, decoded.skipped_bytes, decoded.trailing_bytes)
    return out


_CONVERSE = BedrockConverseParser()
_CONVERSE_STREAM = BedrockConverseParser(streaming=True)
_ANTHROPIC = (
    _Invoke(AnthropicMessagesParser(), streaming=False),
    _Invoke(AnthropicMessagesParser(), streaming=True),
)
_OPENAI = (_Invoke(OpenAIChatParser(), streaming=False), _Invoke(OpenAIChatParser(), streaming=True))
_NOVA = (_NovaParser(), _NovaParser(streaming=True))
_NATIVE = (BedrockNativeParser(), BedrockNativeParser(streaming=True))
_EMBED = BedrockNativeParser(embedding=True)


def dispatch(model: str | None, path: str) -> FormatParser:
    """The parser for one Bedrock runtime request, from its path and model id."""
    if path.endswith("/converse"):
        return _CONVERSE
    if path.endswith("/converse-stream"):
        return _CONVERSE_STREAM
    streaming = path.endswith("/invoke-with-response-stream")
    vendor = vendor_of(model)
    name = (model or "").lower()
    if "embed" in name:
        return _EMBED
    if vendor == "anthropic":
        return _ANTHROPIC[streaming]
    if vendor == "openai":
        return _OPENAI[streaming]
    if vendor == "amazon" and ".nova" in name:
        return _NOVA[streaming]
    return _NATIVE[streaming]


__all__ = ["BedrockConverseParser", "BedrockNativeParser", "dispatch", "vendor_of"]
