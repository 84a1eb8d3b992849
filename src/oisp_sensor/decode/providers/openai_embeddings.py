"""OpenAI embeddings (`POST /v1/embeddings`) as OISP fragments.

Shared by every OpenAI-compatible embeddings endpoint (Azure, Mistral, Voyage, Jina,
vLLM, Ollama's /v1, ...). The inputs become user messages (content where every format
keeps it); the response is summarised, never copied: how many vectors and their
dimension (`embedding` {count, dimensions}), plus usage. Vectors sent base64-encoded
(`encoding_format: "base64"`, the SDK default) are measured without decoding them.
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
    error_fields,
    load_json_object,
    response_object,
    run_stream,
    salvage_model,
)
from oisp_sensor.decode.providers.openai_chat import usage_fields
from oisp_sensor.decode.providers.openai_completions import prompt_messages


def vector_dimensions(vector: object) -> int | None:
    """Length of one embedding: a list of floats, or base64 of little-endian float32."""
    if isinstance(vector, list):
        return len(vector)
    if isinstance(vector, str):
        size = len(vector) * 3 // 4 - vector[-2:].count("=")
        return size // 4
    return None


def embedding_fields(count: int, dimensions: int | None) -> dict[str, Any]:
    """The `embedding` summary of a response: {count, dimensions}."""
    out: dict[str, Any] = {"count": count}
    if dimensions is not None:
        out["dimensions"] = dimensions
    return out


def input_fields(messages: list[dict[str, Any]], out: ParsedRequest) -> None:
    """messages / message_count / input_count of an embeddings request."""
    if messages:
        out.fields["message_count"] = len(messages)
        out.fields["messages"] = messages
    out.fields["input_count"] = len(messages)


class OpenAIEmbeddingsParser:
    """FormatParser for `/v1/embeddings`."""

    def parse_request(self, body: bytes) -> ParsedRequest:
        out = ParsedRequest()
        obj = load_json_object(body, "request", out.problems) if body else None
        if obj is None:
            out.model, _ = salvage_model(body)
            out.unparsed = bool(body)
            return out
        model = obj.get("model")
        out.model = model if isinstance(model, str) else None
        input_fields(prompt_messages(obj.get("input")), out)
        params = {k: obj[k] for k in ("encoding_format", "dimensions") if obj.get(k) is not None}
        if params:
            out.fields["parameters"] = params
        return out

    def parse_response(self, body: bytes) -> ParsedResponse:
        out, obj = response_object(body)
        if obj is None:
            return out
        if isinstance(obj.get("model"), str):
            out.model = obj["model"]
        if isinstance(obj.get("id"), str):
            out.response_id = obj["id"]
        data = obj.get("data")
        if isinstance(data, list):
            first = data[0] if data and isinstance(data[0], dict) else {}
            out.fields["embedding"] = embedding_fields(len(data), vector_dimensions(first.get("embedding")))
        usage = usage_fields(obj.get("usage"))
        if usage:
            out.fields["usage"] = usage
        error = error_fields(obj.get("error"))
        if error:
            out.fields["error"] = error
        return out

    def parse_stream(self, events: Sequence[SseEvent]) -> ParsedResponse:
        return run_stream(self, events)

    def stream(self) -> StreamAccumulator:
        return _Generic().stream()  # embeddings never stream; count whatever came
