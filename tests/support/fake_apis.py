"""Mistral, Cohere v2, Ollama and Gemini embeddings for the fake provider (`fake_provider`).

Same deterministic rules as the rest of the fake (see its module docstring): the reply to
a user message is ``greeting(text)``, after a tool result ``tool_reply(text)``; input tokens
are ``sum(words(text(m))) + len(messages)``, output tokens ``words(reply)``, or
``TOOL_CALL_TOKENS`` for a tool call; streams send one delta per word; a request with tools
whose last message is from the user calls the first tool with ``example_args`` of its
schema; embeddings are ``embedding_vector(text, EMBEDDING_DIM)``.

Wire shapes, as each provider documents them:

* Mistral (``api.mistral.ai``): OpenAI-like chat completions with 9-character tool-call ids,
  ``prefix`` on messages, and usage on the final stream chunk (Mistral always sends it);
  embeddings with ``completion_tokens: 0`` in usage.
* Cohere v2 (``/v2/chat``, ``/v2/embed``): ``message.content`` as text parts, upper-case
  ``finish_reason``, ``usage.billed_units`` and ``usage.tokens``; tool calls with a
  ``tool_plan``; streams are SSE events typed ``message-start``, ``content-start``,
  ``content-delta``, ``content-end``, ``tool-plan-delta``, ``tool-call-start``,
  ``tool-call-delta``, ``tool-call-end``, ``message-end``.
* Ollama (``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/tags``, ``/api/version``):
  streams are NDJSON (``application/x-ndjson``), one object per line, the last with
  ``done: true``, ``done_reason`` and the counts (``prompt_eval_count``, ``eval_count``);
  tool calls carry arguments as objects and no id; durations are nanoseconds.
* Gemini ``:embedContent`` and ``:batchEmbedContents``.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.support.fake_provider import (
    EMBEDDING_DIM,
    TOOL_CALL_TOKENS,
    Request,
    Response,
    _json,
    _rand_id,
    content_text,
    embedding_vector,
    example_args,
    greeting,
    split_deltas,
    tool_reply,
    truncate,
    words,
)

#: Nanosecond durations Ollama reports (fixed: the fake does no work worth timing).
OLLAMA_DURATION_NS = 1_000_000
OLLAMA_VERSION = "0.12.0"


def _error(status: int, message: str) -> Response:
    return Response(status, _json({"message": message}))


def _body(req: Request) -> dict[str, Any] | None:
    try:
        data = json.loads(req.body or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _tool_name_and_args(tool: Any) -> tuple[str, dict[str, Any]]:
    fn = tool.get("function", {}) if isinstance(tool, dict) else {}
    return str(fn.get("name") or "tool"), example_args(fn.get("parameters"))


def _turn(messages: list[dict[str, Any]], tools: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(tool to call with its arguments, or None; reply text, or None) for a chat request."""
    last = messages[-1]
    if isinstance(tools, list) and tools and last.get("role") == "user":
        name, args = _tool_name_and_args(tools[0])
        return {"name": name, "arguments": args}, None
    if last.get("role") == "tool":
        return None, tool_reply(content_text(last.get("content")))
    user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return None, greeting(content_text(user.get("content")))


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(words(content_text(m.get("content"))) for m in messages) + len(messages)


def _valid_messages(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    messages = data.get("messages")
    if isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
        return messages
    return None


def _sse(obj: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + _json(obj) + b"\n\n"


# ---- Mistral -----------------------------------------------------------------------------------


def mistral(req: Request, path: str) -> Response:
    """``POST /v1/chat/completions`` and ``/v1/embeddings`` on api.mistral.ai."""
    if not req.headers.get("authorization"):
        return Response(401, _json({"message": "Unauthorized", "request_id": uuid.uuid4().hex}))
    data = _body(req)
    if data is None or not isinstance(data.get("model"), str):
        return Response(422, _json({"object": "error", "message": "Invalid model", "type": "invalid_model"}))
    if path.endswith("/embeddings"):
        return _mistral_embeddings(data)
    messages = _valid_messages(data)
    if messages is None:
        return Response(
            422, _json({"object": "error", "message": "messages required", "type": "invalid_request"})
        )
    call, text = _turn(messages, data.get("tools"))
    prompt = _prompt_tokens(messages)
    message: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": None, "prefix": False}
    finish = "stop"
    if call is not None:
        args = json.dumps(call["arguments"], separators=(",", ":"))
        message["tool_calls"] = [{"id": _rand_id("", 9), "type": "function", "index": 0,
                                  "function": {"name": call["name"], "arguments": args}}]  # fmt: skip
        completion, finish = TOOL_CALL_TOKENS, "tool_calls"
    else:
        text, cut = truncate(text or "", data.get("max_tokens"))
        message["content"] = text
        completion, finish = words(text), ("length" if cut else "stop")
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    cid, created, model = uuid.uuid4().hex, int(time.time()), data["model"]
    if data.get("stream") is True:
        return _mistral_stream(cid, created, model, message, finish, usage)
    body = {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}  # fmt: skip
    return Response(200, _json(body))


def _mistral_stream(
    cid: str, created: int, model: str, message: dict[str, Any], finish: str, usage: dict[str, int]
) -> Response:
    def chunk(delta: dict[str, Any], reason: str | None = None, last: bool = False) -> bytes:
        obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                               "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}  # fmt: skip
        if last:
            obj["usage"] = usage
        return b"data: " + _json(obj) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    if message["tool_calls"]:
        events.append(chunk({"tool_calls": message["tool_calls"]}))
    else:
        events.extend(chunk({"content": piece}) for piece in split_deltas(message["content"]))
    events.append(chunk({"content": ""}, finish, last=True))
    events.append(b"data: [DONE]\n\n")
    return Response(200, content_type="text/event-stream", events=events)


def _mistral_embeddings(data: dict[str, Any]) -> Response:
    raw = data.get("input", data.get("inputs"))
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        return Response(
            422, _json({"object": "error", "message": "input required", "type": "invalid_request"})
        )
    tokens = sum(words(t) for t in inputs)
    body = {"id": uuid.uuid4().hex, "object": "list", "model": data["model"],
            "data": [{"object": "embedding", "index": i, "embedding": embedding_vector(t, EMBEDDING_DIM)}
                     for i, t in enumerate(inputs)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}}  # fmt: skip
    return Response(200, _json(body))


# ---- Cohere v2 ---------------------------------------------------------------------------------


def cohere(req: Request, path: str) -> Response:
    """``POST /v2/chat`` and ``/v2/embed``."""
    if not req.headers.get("authorization"):
        return Response(401, _json({"id": str(uuid.uuid4()), "message": "no api key supplied"}))
    data = _body(req)
    if data is None or not isinstance(data.get("model"), str):
        return Response(
            400, _json({"id": str(uuid.uuid4()), "message": "invalid request: model is required"})
        )
    if path == "/v2/embed":
        return _cohere_embed(data)
    if path != "/v2/chat":
        return Response(404, _json({"id": str(uuid.uuid4()), "message": f"route {path} not found"}))
    messages = _valid_messages(data)
    if messages is None:
        return Response(
            400, _json({"id": str(uuid.uuid4()), "message": "invalid request: messages required"})
        )
    call, text = _turn(messages, data.get("tools"))
    prompt = _prompt_tokens(messages)
    mid = str(uuid.uuid4())
    if call is not None:
        plan = f"I will call {call['name']}."
        tool_call = {"id": f"{call['name']}_{_rand_id('', 12).lower()}", "type": "function",
                     "function": {"name": call["name"],
                                  "arguments": json.dumps(call["arguments"], separators=(",", ":"))}}  # fmt: skip
        message: dict[str, Any] = {"role": "assistant", "tool_plan": plan, "tool_calls": [tool_call]}
        completion, finish = TOOL_CALL_TOKENS, "TOOL_CALL"
    else:
        text, cut = truncate(text or "", data.get("max_tokens"))
        message = {"role": "assistant", "content": [{"type": "text", "text": text}]}
        completion, finish = words(text), ("MAX_TOKENS" if cut else "COMPLETE")
    usage = {"billed_units": {"input_tokens": prompt, "output_tokens": completion},
             "tokens": {"input_tokens": prompt + 2, "output_tokens": completion}}  # fmt: skip
    if data.get("stream") is True:
        return _cohere_stream(mid, message, finish, usage)
    return Response(200, _json({"id": mid, "finish_reason": finish, "message": message, "usage": usage}))


def _cohere_stream(mid: str, message: dict[str, Any], finish: str, usage: dict[str, Any]) -> Response:
    start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    events = [_sse({"id": mid, "type": "message-start", "delta": {"message": start}}, "message-start")]
    if "tool_calls" in message:
        events.extend(
            _sse({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}}, "tool-plan-delta")
            for piece in split_deltas(message["tool_plan"])
        )
        call = message["tool_calls"][0]
        head = {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        events.append(_sse({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": head}}},
                           "tool-call-start"))  # fmt: skip
        args = call["function"]["arguments"]
        events.extend(
            _sse({"type": "tool-call-delta", "index": 0,
                  "delta": {"message": {"tool_calls": {"function": {"arguments": args[i : i + 8]}}}}},
                 "tool-call-delta")
            for i in range(0, len(args), 8)
        )  # fmt: skip
        events.append(_sse({"type": "tool-call-end", "index": 0}, "tool-call-end"))
    else:
        text = message["content"][0]["text"]
        events.append(_sse({"type": "content-start", "index": 0,
                            "delta": {"message": {"content": {"type": "text", "text": ""}}}}, "content-start"))  # fmt: skip
        events.extend(
            _sse({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece}}}},
                 "content-delta")
            for piece in split_deltas(text)
        )  # fmt: skip
        events.append(_sse({"type": "content-end", "index": 0}, "content-end"))
    events.append(
        _sse({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage}}, "message-end")
    )
    return Response(200, content_type="text/event-stream", events=events)


def _cohere_embed(data: dict[str, Any]) -> Response:
    texts = data.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return Response(400, _json({"id": str(uuid.uuid4()), "message": "invalid request: texts required"}))
    kinds = data.get("embedding_types") or ["float"]
    vectors = [embedding_vector(t, EMBEDDING_DIM) for t in texts]
    body = {"id": str(uuid.uuid4()), "texts": texts, "response_type": "embeddings_by_type",
            "embeddings": {kind: vectors for kind in kinds if kind == "float"},
            "meta": {"api_version": {"version": "2"},
                     "billed_units": {"input_tokens": sum(words(t) for t in texts)}}}  # fmt: skip
    return Response(200, _json(body))


# ---- Ollama ------------------------------------------------------------------------------------


def _created_at() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def ollama(req: Request, path: str) -> Response:
    """Ollama's native API (answers the same over HTTPS and plain HTTP)."""
    if path == "/api/version":
        return Response(200, _json({"version": OLLAMA_VERSION}))
    if path == "/api/tags":
        return Response(200, _json({"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest",
                                                "size": 2019393189, "digest": "a80c4f17acd5"}]}))  # fmt: skip
    data = _body(req)
    if data is None or not isinstance(data.get("model"), str) or not data["model"]:
        return _error(400, "model is required")
    model = data["model"]
    if path in ("/api/embed", "/api/embeddings"):
        raw = data.get("input", data.get("prompt"))
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            return _error(400, "invalid input type")
        return Response(200, _json({"model": model, "embeddings": [embedding_vector(t, EMBEDDING_DIM) for t in inputs],
                                    "total_duration": OLLAMA_DURATION_NS, "load_duration": OLLAMA_DURATION_NS,
                                    "prompt_eval_count": sum(words(t) for t in inputs)}))  # fmt: skip
    if path == "/api/chat":
        messages = _valid_messages(data)
        if messages is None:
            return _error(400, "messages are required")
        call, text = _turn(messages, data.get("tools"))
        prompt = _prompt_tokens(messages)
    elif path == "/api/generate":
        prompt_text = data.get("prompt")
        if not isinstance(prompt_text, str):
            return _error(400, "prompt is required")
        call, text, prompt = None, greeting(prompt_text), words(prompt_text) + 1
    else:
        return _error(404, f"404 page not found: {path}")
    options = data.get("options")
    limit = options.get("num_predict") if isinstance(options, dict) else None
    if call is not None:
        completion, reason, text = TOOL_CALL_TOKENS, "stop", ""
    else:
        text, cut = truncate(text or "", limit)
        completion, reason = words(text), ("length" if cut else "stop")
    chat = path == "/api/chat"
    final = {"done": True, "done_reason": reason, "total_duration": OLLAMA_DURATION_NS,
             "load_duration": OLLAMA_DURATION_NS, "prompt_eval_count": prompt,
             "prompt_eval_duration": OLLAMA_DURATION_NS, "eval_count": completion,
             "eval_duration": OLLAMA_DURATION_NS}  # fmt: skip

    def piece(content: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if not chat:
            return {"model": model, "created_at": _created_at(), "response": content}
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {"model": model, "created_at": _created_at(), "message": message}

    tool_calls = [{"function": {"name": call["name"], "arguments": call["arguments"]}}] if call else None
    if data.get("stream") is False:
        return Response(200, _json({**piece(text, tool_calls), **final}))
    lines = [piece("", tool_calls)] if tool_calls else [piece(p) for p in split_deltas(text)]
    lines.append({**piece(""), **final})
    events = [_json(obj) + b"\n" for obj in lines]
    return Response(200, content_type="application/x-ndjson", events=events)


# ---- Gemini function calling and embeddings ---------------------------------------------------


def gemini_turn(data: dict[str, Any], contents: list[Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(functionCall to answer with, or None; reply text, or None for the usual greeting).

    With ``tools[].functionDeclarations`` and a last turn of user text, the first declared
    function is called with ``example_args`` of its parameters; a last turn carrying a
    ``functionResponse`` is answered ``tool_reply`` of that response as compact JSON.
    """
    last = contents[-1] if isinstance(contents[-1], dict) else {}
    parts = last.get("parts") if isinstance(last.get("parts"), list) else []
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
            response = part["functionResponse"].get("response")
            return None, tool_reply(json.dumps(response, separators=(",", ":")))
    tools = data.get("tools")
    declarations = tools[0].get("functionDeclarations") if isinstance(tools, list) and tools else None
    if isinstance(declarations, list) and declarations and isinstance(declarations[0], dict):
        first = declarations[0]
        schema = first.get("parameters") or first.get("parametersJsonSchema")
        return {"name": str(first.get("name") or "tool"), "args": example_args(schema)}, None
    return None, None


def gemini_embed(model: str, method: str, data: dict[str, Any]) -> Response:
    """``:embedContent`` (one ``content``) and ``:batchEmbedContents`` (``requests``)."""
    requests = data.get("requests") if method == "batchEmbedContents" else [data]
    if not isinstance(requests, list) or not requests:
        return Response(400, _json({"error": {"code": 400, "message": "requests is required",
                                              "status": "INVALID_ARGUMENT"}}))  # fmt: skip
    vectors = []
    for item in requests:
        content = item.get("content") if isinstance(item, dict) else None
        text = content_text(content.get("parts")) if isinstance(content, dict) else ""
        vectors.append({"values": embedding_vector(text, EMBEDDING_DIM)})
    if method == "embedContent":
        return Response(200, _json({"embedding": vectors[0]}))
    return Response(200, _json({"embeddings": vectors}))
