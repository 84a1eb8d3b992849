"""Real OpenAI Python SDK client for the end-to-end tests; prints ONE JSON line on stdout.

Why a separate program: the sensor must see a genuine process using the SDK exactly as an
application would (the SDK's own HTTP stack, connection pool and OpenSSL), not the test runner.
It talks to ``https://api.openai.com`` (the SDK's default base URL): run it inside the test
namespace where that name points at the fake provider, with the CA in ``SSL_CERT_FILE`` and the
key in ``OPENAI_API_KEY`` (the ``fake_provider`` fixture's ``run`` sets both).

Options:
    --model M          model name (``error-429`` etc. make the fake fail; see fake_provider)
    --message TEXT     the user message
    --stream           stream the answer (with ``stream_options.include_usage``)
    --n-requests N     N sequential requests on ONE client (keep-alive connection reuse)
    --tools            send a function tool, then send its result back (two requests)
    --max-retries R    SDK retries (default 0: the SDK retries 429/5xx twice otherwise)
    --header K:V       extra request header, repeatable (e.g. ``x-fake-gzip:1``)

Pitfalls seen with openai 3.54 (httpx2): SSL_CERT_FILE is honoured (the default context is
built from it); the SYNC client's stream stops reading at ``data: [DONE]`` without draining the
chunked body, so every ``--stream`` request opens a new TLS connection (the async client drains
and reuses it). Non-streaming requests reuse one keep-alive connection.

Output: ``{"ok": true, "pid": ..., "results": [...], ...}``; on an API error ``ok`` is false, an
``error`` object describes it and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import openai
from openai import Stream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
#: What the "tool" returns in the round trip; sent back as the ``tool`` message content.
TOOL_RESULT = {"temperature": 21, "condition": "sunny"}


def _usage(usage: Any) -> dict[str, Any] | None:
    """The three standard counters (the rest varies between SDK versions)."""
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def chat_once(
    client: openai.OpenAI, model: str, messages: list[dict[str, Any]], stream: bool, tools: list[Any] | None
) -> dict[str, Any]:
    """One chat completion, summarised the same way whether streamed or not."""
    # Plain dicts (not the SDK's TypedDicts) are what applications often pass; typed as Any here.
    params: dict[str, Any] = {"model": model, "messages": messages}
    if tools:
        params["tools"] = tools
    if not stream:
        resp: ChatCompletion = client.chat.completions.create(**params)
        choice = resp.choices[0]
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in (choice.message.tool_calls or [])
            if c.type == "function"
        ]
        return {
            "id": resp.id,
            "model": resp.model,
            "content": choice.message.content,
            "finish_reason": choice.finish_reason,
            "tool_calls": calls,
            "usage": _usage(resp.usage),
        }
    pieces: list[str] = []
    calls_by_index: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {"id": None, "model": None, "finish_reason": None, "usage": None, "chunks": 0}
    events: Stream[ChatCompletionChunk] = client.chat.completions.create(
        **params, stream=True, stream_options={"include_usage": True}
    )
    for chunk in events:
        out["chunks"] += 1
        out["id"], out["model"] = chunk.id, chunk.model
        if chunk.usage is not None:
            out["usage"] = _usage(chunk.usage)
        for part in chunk.choices:
            if part.delta.content:
                pieces.append(part.delta.content)
            for tc in part.delta.tool_calls or []:
                slot = calls_by_index.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function is not None:
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""
            if part.finish_reason:
                out["finish_reason"] = part.finish_reason
    out["content"] = "".join(pieces) if pieces else None
    out["tool_calls"] = [calls_by_index[i] for i in sorted(calls_by_index)]
    return out


def tool_round_trip(client: openai.OpenAI, model: str, message: str, stream: bool) -> list[dict[str, Any]]:
    """Ask with a tool, receive the call, send the tool's result back, return both summaries."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": message}]
    first = chat_once(client, model, messages, stream, [TOOL])
    calls = first["tool_calls"]
    if not calls:
        return [first]
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls
            ],
        }
    )
    for c in calls:
        messages.append({"role": "tool", "tool_call_id": c["id"], "content": json.dumps(TOOL_RESULT)})
    second = chat_once(client, model, messages, stream, [TOOL])
    return [first, second]


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the requests, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--message", default="Hello from the oisp-sensor tests")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--n-requests", type=int, default=1)
    parser.add_argument("--tools", action="store_true")
    parser.add_argument("--max-retries", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    client = openai.OpenAI(
        max_retries=args.max_retries, timeout=args.timeout, default_headers=headers or None
    )
    report: dict[str, Any] = {
        "ok": True,
        "pid": os.getpid(),
        "sdk": "openai-python",
        "version": openai.__version__,
    }
    results: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        for _ in range(args.n_requests):
            if args.tools:
                results.extend(tool_round_trip(client, args.model, args.message, args.stream))
            else:
                msgs = [{"role": "user", "content": args.message}]
                results.append(chat_once(client, args.model, msgs, args.stream, None))
    except openai.APIStatusError as exc:
        report["ok"] = False
        report["error"] = {
            "status_code": exc.status_code,
            "class": type(exc).__name__,
            "message": exc.message,
            "body": exc.body,
            "request_id": exc.request_id,
            "retry_after": exc.response.headers.get("retry-after"),
        }
    except openai.APIConnectionError as exc:
        report["ok"] = False
        report["error"] = {"class": type(exc).__name__, "message": str(exc), "cause": repr(exc.__cause__)}
    elapsed = time.perf_counter() - t0
    report["elapsed_s"] = round(elapsed, 4)
    report["n_requests"] = len(results)
    # A 2,000-request loop would make a huge line: keep the first and last results only.
    report["results"] = results if len(results) <= 20 else [results[0], results[-1]]
    print(json.dumps(report), flush=True)
    client.close()
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
