"""The e2e test infrastructure itself, without the sensor.

Why: every sensor e2e test relies on real clients reaching the fake provider through the real
hostnames inside a private namespace. If that plumbing breaks (certificate, hosts file, wire
format, SDK upgrade), sensor tests would fail in confusing ways; these tests pin it down first:
curl, the openai Python SDK, Node's fetch and the Node SDKs must all get exact, deterministic
answers, and namespaces must disappear afterwards.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from tests.support.fake_provider import TOOL_CALL_TOKENS, example_args, serve_in_thread, split_deltas, words
from tests.support.fixtures import CLIENTS_DIR, FakeProviderHandle, start_fake_provider
from tests.support.netns import NETNS_ETC, NetNs, cleanup_stale_namespaces, list_namespaces, namespace_pids
from tests.support.tls import PROVIDER_HOSTNAMES, TlsMaterial

PY_CLIENT = str(CLIENTS_DIR / "py_openai_chat.py")
MESSAGE = "What is the capital of France?"
GREETING = f"Hello! You said: {MESSAGE}"
#: words(MESSAGE) + 1 message.
PROMPT_TOKENS = words(MESSAGE) + 1
#: words(GREETING) = 3 + words(MESSAGE).
COMPLETION_TOKENS = 3 + words(MESSAGE)
#: What tests/clients send back as the tool result.
TOOL_RESULT_PY = json.dumps({"temperature": 21, "condition": "sunny"})
TOOL_RESULT_JS = json.dumps({"temperature": 21, "condition": "sunny"}, separators=(",", ":"))
WEATHER_ARGS = {"city": "example", "unit": "celsius"}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def last_json_line(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The client's single JSON result line (stderr shown on failure)."""
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"no output (exit {proc.returncode}); stderr:\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_client(fake: FakeProviderHandle, cmd: list[str], expect_ok: bool = True) -> dict[str, Any]:
    """Run a client program inside the namespace and return its JSON report."""
    proc = fake.run(cmd, timeout=120)
    report = last_json_line(proc)
    assert report["ok"] is expect_ok, f"{report}\nstderr:\n{proc.stderr}"
    assert proc.returncode == (0 if expect_ok else 1), proc.stderr
    return report


def curl(fake: FakeProviderHandle, *args: str, timeout: float = 30) -> tuple[dict[str, str], bytes]:
    """curl inside the namespace with ``--cacert``; returns (final response headers, raw body).

    Headers and body go to files: byte-exact (no newline translation) and unambiguous even when
    an interim ``100 Continue`` precedes the answer.
    """
    with tempfile.TemporaryDirectory(prefix="oisp-curl-") as tmp:
        head_path, body_path = Path(tmp, "headers"), Path(tmp, "body")
        cmd = [
            "curl",
            "-sS",
            "--cacert",
            str(fake.ca_path),
            "-D",
            str(head_path),
            "-o",
            str(body_path),
            *args,
        ]
        proc = fake.ns.run(cmd, env=fake.env(), timeout=timeout)
        assert proc.returncode == 0, proc.stderr
        blocks = [blk for blk in head_path.read_bytes().decode("latin-1").split("\r\n\r\n") if blk]
        body = body_path.read_bytes() if body_path.exists() else b""
    lines = blocks[-1].split("\r\n")
    headers: dict[str, str] = {":status": lines[0].split(" ")[1]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


def chat_body(model: str = "gpt-4o-mini", **extra: Any) -> str:
    """A one-message chat completion request body."""
    return json.dumps({"model": model, "messages": [{"role": "user", "content": MESSAGE}], **extra})


def auth(fake: FakeProviderHandle) -> list[str]:
    """curl arguments for OpenAI auth + JSON."""
    return ["-H", f"Authorization: Bearer {fake.openai_api_key}", "-H", "Content-Type: application/json"]


def sse_data(body: bytes) -> list[str]:
    """``data:`` payloads of an SSE body, checking OpenAI's ``data: ...\\n\\n`` framing."""
    text = body.decode()
    assert text.endswith("data: [DONE]\n\n"), text[-200:]
    events = text.split("\n\n")
    assert events[-1] == ""
    payloads = []
    for event in events[:-1]:
        assert event.startswith("data: "), event
        payloads.append(event[len("data: ") :])
    return payloads


# --------------------------------------------------------------------------------------------
# namespace and TLS plumbing
# --------------------------------------------------------------------------------------------
def test_hostnames_resolve_to_loopback_inside_namespace(fake_provider: FakeProviderHandle) -> None:
    """Every provider hostname resolves to 127.0.0.1 in the namespace (getaddrinfo, as clients do)."""
    script = (
        "import json, socket, sys; print(json.dumps({h: sorted({a[4][0] for a in socket.getaddrinfo(h, 443, "
        "socket.AF_INET, socket.SOCK_STREAM)}) for h in sys.argv[1:]}))"
    )
    proc = fake_provider.run([sys.executable, "-c", script, *PROVIDER_HOSTNAMES])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {h: ["127.0.0.1"] for h in PROVIDER_HOSTNAMES}
    links = fake_provider.run(["ip", "-o", "link"]).stdout
    assert [ln.split(":")[1].strip() for ln in links.splitlines()] == ["lo"]


def test_certificate_is_verified_for_each_provider(fake_provider: FakeProviderHandle) -> None:
    """The server certificate verifies for each real hostname (and only with our CA)."""
    for host in ("api.openai.com", "api.anthropic.com", "openrouter.ai", "api.x.ai"):
        headers, body = curl(fake_provider, fake_provider.url(host, "/_fake/health"))
        assert headers[":status"] == "200"
        assert json.loads(body)["ok"] is True
    # Without the CA, verification must fail: proof that clients really check the chain.
    proc = fake_provider.ns.run(
        ["curl", "-sS", "--capath", "/nonexistent", "--cacert", "/dev/null", fake_provider.url()],
        env={"CURL_CA_BUNDLE": None, "SSL_CERT_FILE": None},
    )
    assert proc.returncode == 60 or proc.returncode == 77, (proc.returncode, proc.stderr)


def test_netns_lifecycle_and_cleanup(tls_material: TlsMaterial, tmp_path: Path) -> None:
    """A namespace with a running fake provider and a stray child disappears completely on close."""
    with NetNs() as ns:
        name = ns.name
        assert ns.exists
        assert (NETNS_ETC / name / "hosts").read_text().count("api.openai.com") == 1
        fake = start_fake_provider(ns, tls_material, tmp_path)
        # A detached grandchild, as a misbehaving client could leave behind.
        ns.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 &"])
        headers, _ = curl(
            fake,
            "-H",
            f"Authorization: Bearer {fake.openai_api_key}",
            fake.url("api.openai.com", "/v1/models"),
        )
        assert headers[":status"] == "200"
        assert len(namespace_pids(name)) >= 2
    assert name not in list_namespaces()
    assert not (NETNS_ETC / name).exists()
    assert fake.process.poll() is not None


def test_cleanup_of_stale_namespaces(fake_provider: FakeProviderHandle) -> None:
    """Namespaces of a dead creator are removed; live ones (ours) are kept."""
    dead_pid = 4_194_000
    while True:
        try:
            os.kill(dead_pid, 0)
        except ProcessLookupError:
            break
        dead_pid += 1
    stale = NetNs(name=f"oisp-t-{dead_pid}-dead00").create()
    try:
        removed = cleanup_stale_namespaces()
        assert stale.name in removed
        assert stale.name not in list_namespaces()
        assert not (NETNS_ETC / stale.name).exists()
        assert fake_provider.ns.exists
    finally:
        stale.close()


# --------------------------------------------------------------------------------------------
# curl: exact wire format
# --------------------------------------------------------------------------------------------
def test_curl_chat_completion(fake_provider: FakeProviderHandle) -> None:
    """Non-streaming chat completion: OpenAI's fields, echoed model, deterministic usage."""
    headers, body = curl(
        fake_provider,
        *auth(fake_provider),
        "-d",
        chat_body("gpt-4o-mini-2024-07-18"),
        fake_provider.url("api.openai.com", "/v1/chat/completions"),
    )
    assert headers[":status"] == "200"
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"].startswith("req_")
    data = json.loads(body)
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "gpt-4o-mini-2024-07-18"
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == GREETING
    assert choice["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert data["usage"]["completion_tokens"] == COMPLETION_TOKENS
    assert data["usage"]["total_tokens"] == PROMPT_TOKENS + COMPLETION_TOKENS


def test_curl_chat_stream_framing(fake_provider: FakeProviderHandle) -> None:
    """Streaming: role delta, one delta per word, finish chunk, usage chunk, ``[DONE]``."""
    headers, body = curl(
        fake_provider,
        "-N",
        *auth(fake_provider),
        "-d",
        chat_body(stream=True, stream_options={"include_usage": True}),
        fake_provider.url("api.openai.com", "/v1/chat/completions"),
    )
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    payloads = sse_data(body)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert deltas == split_deltas(GREETING)
    assert "".join(deltas) == GREETING
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == PROMPT_TOKENS + COMPLETION_TOKENS
    assert all(c["usage"] is None for c in chunks[:-1])


def test_curl_stream_without_usage_and_tool_call(fake_provider: FakeProviderHandle) -> None:
    """Without include_usage there is no usage chunk; a tools request streams tool-call deltas."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
                },
            },
        }
    ]
    _, body = curl(
        fake_provider,
        *auth(fake_provider),
        "-d",
        chat_body(stream=True, tools=tools),
        fake_provider.url("api.openai.com", "/v1/chat/completions"),
    )
    chunks = [json.loads(p) for p in sse_data(body)[:-1]]
    assert all("usage" not in c for c in chunks)
    first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["id"].startswith("call_") and first["function"]["name"] == "lookup"
    args = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[:-1])
    assert json.loads(args) == {"q": "example", "n": 1}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_curl_gzip_chunked_and_delay(fake_provider: FakeProviderHandle) -> None:
    """The test-control headers: gzip body, chunked encoding, delayed answer."""
    url = fake_provider.url("api.openai.com", "/v1/chat/completions")
    t0 = time.monotonic()
    headers, body = curl(
        fake_provider,
        *auth(fake_provider),
        "-H",
        "x-fake-gzip: 1",
        "-H",
        "x-fake-chunked: 1",
        "-H",
        "x-fake-delay-ms: 300",
        "-d",
        chat_body(),
        url,
    )
    assert time.monotonic() - t0 >= 0.3
    assert headers["content-encoding"] == "gzip"
    assert headers["transfer-encoding"] == "chunked"
    assert json.loads(gzip.decompress(body))["choices"][0]["message"]["content"] == GREETING
    # Streams are gzipped incrementally; curl --compressed decodes them.
    headers, body = curl(
        fake_provider,
        "--compressed",
        *auth(fake_provider),
        "-H",
        "x-fake-gzip: 1",
        "-H",
        "x-fake-stream-delay-ms: 5",
        "-d",
        chat_body(stream=True),
        url,
    )
    assert headers["content-encoding"] == "gzip"
    assert sse_data(body)[-1] == "[DONE]"


def test_curl_embeddings_and_models(fake_provider: FakeProviderHandle) -> None:
    """Embeddings (default dimension 8, ``dimensions``, base64) and the model list."""
    fake = fake_provider
    key = {"Authorization": f"Bearer {fake.openai_api_key}"}
    data = fake.curl_json(
        "api.openai.com", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "a b c"}, key
    )
    assert data["object"] == "list"
    assert len(data["data"][0]["embedding"]) == 8
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    again = fake.curl_json(
        "api.openai.com", "/v1/embeddings", {"model": "m", "input": ["a b c", "d"], "dimensions": 4}, key
    )
    assert [len(d["embedding"]) for d in again["data"]] == [4, 4]
    assert again["data"][0]["embedding"] == data["data"][0]["embedding"][:4]
    b64 = fake.curl_json(
        "api.openai.com", "/v1/embeddings", {"model": "m", "input": "x", "encoding_format": "base64"}, key
    )
    assert isinstance(b64["data"][0]["embedding"], str)
    models = fake.curl_json("api.openai.com", "/v1/models", headers=key)
    assert models["object"] == "list" and "gpt-4o-mini" in [m["id"] for m in models["data"]]


def test_curl_errors(fake_provider: FakeProviderHandle) -> None:
    """Magic ``error-NNN`` models, missing credentials and unknown paths, in OpenAI's format."""
    url = fake_provider.url("api.openai.com", "/v1/chat/completions")
    for status, code in (
        (429, "rate_limit_exceeded"),
        (500, None),
        (401, "invalid_api_key"),
        (400, "invalid_value"),
    ):
        headers, body = curl(fake_provider, *auth(fake_provider), "-d", chat_body(f"error-{status}"), url)
        assert headers[":status"] == str(status)
        assert json.loads(body)["error"]["code"] == code
        assert ("retry-after" in headers) is (status == 429)
    headers, body = curl(fake_provider, "-H", "Content-Type: application/json", "-d", chat_body(), url)
    assert headers[":status"] == "401"
    headers, body = curl(
        fake_provider, *auth(fake_provider), "-d", "{}", fake_provider.url("api.openai.com", "/v1/nope")
    )
    assert headers[":status"] == "404"
    assert json.loads(body)["error"]["message"] == "Invalid URL (POST /v1/nope)"


def test_curl_anthropic_stream_events(fake_provider: FakeProviderHandle) -> None:
    """Anthropic SSE: documented event order, ``event:`` names matching the data ``type``."""
    body = json.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": MESSAGE}],
        }
    )
    headers, raw = curl(
        fake_provider,
        "-H",
        f"x-api-key: {fake_provider.anthropic_api_key}",
        "-H",
        "anthropic-version: 2023-06-01",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        fake_provider.url("api.anthropic.com", "/v1/messages"),
    )
    assert headers["request-id"] == headers["x-request-id"]
    events = []
    for block in raw.decode().split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[6:])
        assert data["type"] == name_line[7:]
        events.append(data)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == GREETING
    assert events[0]["message"]["usage"]["input_tokens"] == PROMPT_TOKENS
    assert events[-2]["usage"]["output_tokens"] == COMPLETION_TOKENS
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


def test_curl_gemini(fake_provider: FakeProviderHandle) -> None:
    """Gemini generateContent and SSE streamGenerateContent (text only)."""
    body = {"contents": [{"role": "user", "parts": [{"text": MESSAGE}]}]}
    key = {"x-goog-api-key": fake_provider.gemini_api_key}
    data = fake_provider.curl_json(
        "generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5-flash:generateContent", body, key
    )
    assert data["candidates"][0]["content"]["parts"][0]["text"] == GREETING
    assert data["usageMetadata"]["totalTokenCount"] == PROMPT_TOKENS + COMPLETION_TOKENS
    _, raw = curl(
        fake_provider,
        "-H",
        f"x-goog-api-key: {fake_provider.gemini_api_key}",
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps(body),
        fake_provider.url(
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        ),
    )
    chunks = [json.loads(e[6:]) for e in raw.decode().split("\r\n\r\n") if e]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == GREETING


# --------------------------------------------------------------------------------------------
# openai Python SDK
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_python_sdk_chat(fake_provider: FakeProviderHandle, stream: bool) -> None:
    """The openai SDK gets the deterministic answer, streamed or not."""
    cmd = [sys.executable, PY_CLIENT, "--message", MESSAGE] + (["--stream"] if stream else [])
    report = run_client(fake_provider, cmd)
    [result] = report["results"]
    assert result["content"] == GREETING
    assert result["finish_reason"] == "stop"
    assert result["model"] == "gpt-4o-mini"
    assert result["usage"] == {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }
    if stream:
        # role chunk + one per word + finish chunk + usage chunk
        assert result["chunks"] == 1 + words(GREETING) + 1 + 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_python_sdk_tool_round_trip(fake_provider: FakeProviderHandle, stream: bool) -> None:
    """Tool call with schema-derived arguments, then the tool result is answered."""
    cmd = [sys.executable, PY_CLIENT, "--tools", "--message", MESSAGE] + (["--stream"] if stream else [])
    first, second = run_client(fake_provider, cmd)["results"]
    assert first["finish_reason"] == "tool_calls"
    assert first["content"] is None
    [call] = first["tool_calls"]
    assert call["id"].startswith("call_") and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == WEATHER_ARGS
    assert first["usage"]["completion_tokens"] == TOOL_CALL_TOKENS
    assert second["content"] == f"Tool result received: {TOOL_RESULT_PY}"
    assert second["finish_reason"] == "stop"
    # user (words + 1) + assistant with tool_calls (0 + 1) + tool message (words + 1)
    assert second["usage"]["prompt_tokens"] == PROMPT_TOKENS + 1 + words(TOOL_RESULT_PY) + 1


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (429, "RateLimitError"),
        (500, "InternalServerError"),
        (401, "AuthenticationError"),
        (400, "BadRequestError"),
    ],
)
def test_python_sdk_errors(fake_provider: FakeProviderHandle, status: int, error_class: str) -> None:
    """SDK error classes; with max_retries=0 the fake sees exactly one request."""
    before = fake_provider.stats()["by_path"].get("/v1/chat/completions", 0)
    report = run_client(
        fake_provider, [sys.executable, PY_CLIENT, "--model", f"error-{status}"], expect_ok=False
    )
    err = report["error"]
    assert err["status_code"] == status
    assert err["class"] == error_class
    assert err["request_id"].startswith("req_")
    assert err["retry_after"] == ("1" if status == 429 else None)
    assert fake_provider.stats()["by_path"]["/v1/chat/completions"] == before + 1


def test_python_sdk_keep_alive_loop(fake_provider: FakeProviderHandle) -> None:
    """N requests on one client reuse one TLS connection (the benchmark's pattern)."""
    before = fake_provider.stats()
    report = run_client(
        fake_provider, [sys.executable, PY_CLIENT, "--n-requests", "50", "--header", "x-fake-gzip:1"]
    )
    after = fake_provider.stats()
    assert report["n_requests"] == 50
    assert report["results"][-1]["content"].startswith("Hello! You said:")
    # +1 for our own stats request.
    assert after["connections"] - before["connections"] == 1 + 1


# --------------------------------------------------------------------------------------------
# Node: fetch and the SDKs
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_node_fetch(fake_provider: FakeProviderHandle, node_clients: Path, stream: bool) -> None:
    """Node 20's global fetch (undici, Node's own OpenSSL) gets the same answer."""
    cmd = ["node", str(node_clients / "fetch_chat.mjs"), "--message", MESSAGE] + (
        ["--stream"] if stream else []
    )
    [result] = run_client(fake_provider, cmd)["results"]
    assert result["content"] == GREETING
    assert result["usage"]["total_tokens"] == PROMPT_TOKENS + COMPLETION_TOKENS
    if stream:
        assert result["done"] is True


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_node_openai_sdk(fake_provider: FakeProviderHandle, node_clients: Path, stream: bool) -> None:
    """The npm openai SDK: chat and a tool round trip."""
    base = ["node", str(node_clients / "openai_chat.mjs"), "--message", MESSAGE] + (
        ["--stream"] if stream else []
    )
    [result] = run_client(fake_provider, base)["results"]
    assert result["content"] == GREETING
    assert result["usage"]["prompt_tokens"] == PROMPT_TOKENS
    first, second = run_client(fake_provider, [*base, "--tools"])["results"]
    assert first["finish_reason"] == "tool_calls"
    assert json.loads(first["tool_calls"][0]["arguments"]) == WEATHER_ARGS
    assert second["content"] == f"Tool result received: {TOOL_RESULT_JS}"


def test_node_openai_sdk_error(fake_provider: FakeProviderHandle, node_clients: Path) -> None:
    """The npm openai SDK surfaces the fake's 429 as RateLimitError."""
    report = run_client(
        fake_provider,
        ["node", str(node_clients / "openai_chat.mjs"), "--model", "error-429"],
        expect_ok=False,
    )
    assert report["error"]["status_code"] == 429
    assert report["error"]["class"] == "RateLimitError"
    assert report["error"]["body"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_node_anthropic_sdk(fake_provider: FakeProviderHandle, node_clients: Path, stream: bool) -> None:
    """@anthropic-ai/sdk: message, usage, streamed events, tool_use round trip."""
    base = ["node", str(node_clients / "anthropic_messages.mjs"), "--message", MESSAGE]
    base += ["--stream"] if stream else []
    [result] = run_client(fake_provider, base)["results"]
    assert result["content"] == GREETING
    assert result["stop_reason"] == "end_turn"
    assert result["usage"] == {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS}
    if stream:
        assert result["events"][0] == "message_start" and result["events"][-1] == "message_stop"
    first, second = run_client(fake_provider, [*base, "--tools"])["results"]
    assert first["stop_reason"] == "tool_use"
    assert first["content"] == "I will call get_weather."
    assert first["tool_uses"][0]["input"] == WEATHER_ARGS
    assert first["usage"]["output_tokens"] == words(first["content"]) + TOOL_CALL_TOKENS
    assert second["content"] == f"Tool result received: {TOOL_RESULT_JS}"


def test_node_anthropic_sdk_error(fake_provider: FakeProviderHandle, node_clients: Path) -> None:
    """Anthropic's error format reaches the SDK (class and error type)."""
    report = run_client(
        fake_provider,
        ["node", str(node_clients / "anthropic_messages.mjs"), "--model", "error-529"],
        expect_ok=False,
    )
    assert report["error"]["status_code"] == 529
    assert report["error"]["body"]["error"]["type"] == "overloaded_error"


# --------------------------------------------------------------------------------------------
# in-process checks of the server (no namespace needed)
# --------------------------------------------------------------------------------------------
def test_pipelined_requests_and_bad_http(tls_material: TlsMaterial) -> None:
    """Two pipelined requests get two ordered answers; garbage gets a 400 and a close."""
    ctx = ssl.create_default_context(cafile=str(tls_material.ca_path))
    with serve_in_thread(tls_material.cert_path, tls_material.key_path) as srv:
        req = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer k\r\n"
            "x-fake-delay-ms: {delay}\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n{body}"
        )
        bodies = [
            chat_body(),
            json.dumps({"model": "m2", "messages": [{"role": "user", "content": "second"}]}),
        ]
        raw = "".join(req.format(delay=50 - 50 * i, n=len(b), body=b) for i, b in enumerate(bodies))
        with (
            socket.create_connection(("127.0.0.1", srv.port)) as sock,
            ctx.wrap_socket(sock, server_hostname="api.openai.com") as tls,
        ):
            tls.sendall(raw.encode())
            data = b""
            while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}"):
                chunk = tls.recv(65536)
                assert chunk
                data += chunk
        first, second = data.split(b"HTTP/1.1 200 OK")[1:]
        assert GREETING.encode() in first and b"You said: second" in second
        with (
            socket.create_connection(("127.0.0.1", srv.port)) as sock,
            ctx.wrap_socket(sock, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert tls.recv(1024).startswith(b"HTTP/1.1 400")


def test_deterministic_helpers() -> None:
    """The documented rules tests rely on."""
    assert split_deltas("Hello! You said: a  b") == ["Hello!", " You", " said:", " a", "  b"]
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "e": {"enum": ["x", "y"]},
            "d": {"type": "integer", "default": 7},
            "b": {"type": ["null", "boolean"]},
        },
    }
    assert example_args(schema) == {"s": "example", "e": "x", "d": 7, "b": True}


# --------------------------------------------------------------------------------------------
# HTTP/2 (ALPN h2, opt-in with --http2 / http2=True)
# --------------------------------------------------------------------------------------------
from tests.support.fixtures import H2_PORT  # noqa: E402,F401  (fixture h2_fake is shared)


def curl_version(fake: FakeProviderHandle, *args: str) -> str:
    """The HTTP version curl used for a request (``%{http_version}``: "2", "1.1")."""
    proc = fake.ns.run(
        ["curl", "-sS", "--cacert", str(fake.ca_path), "-o", "/dev/null", "-w", "%{http_version}", *args],
        env=fake.env(),
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_curl_http2(h2_fake: FakeProviderHandle, fake_provider: FakeProviderHandle) -> None:
    """curl --http2 gets h2 from the --http2 fake, same answers; the default fake stays HTTP/1.1."""
    url = h2_fake.url("api.openai.com", "/v1/chat/completions")
    assert curl_version(h2_fake, "--http2", *auth(h2_fake), "-d", chat_body(), url) == "2"
    assert curl_version(h2_fake, "--http1.1", *auth(h2_fake), "-d", chat_body(), url) == "1.1"
    default = fake_provider.url("api.openai.com", "/v1/chat/completions")
    assert curl_version(fake_provider, "--http2", *auth(fake_provider), "-d", chat_body(), default) == "1.1"
    headers, body = curl(h2_fake, "--http2", *auth(h2_fake), "-d", chat_body(), url)
    assert headers[":status"] == "200" and headers["content-length"] == str(len(body))
    assert "transfer-encoding" not in headers and "connection" not in headers
    data = json.loads(body)
    assert data["choices"][0]["message"]["content"] == GREETING
    assert data["usage"]["prompt_tokens"] == PROMPT_TOKENS
    # streaming, gzip-compressed and paced: SSE over DATA frames
    headers, body = curl(
        h2_fake,
        "--http2",
        "--compressed",
        *auth(h2_fake),
        "-H",
        "x-fake-gzip: 1",
        "-H",
        "x-fake-stream-delay-ms: 5",
        "-d",
        chat_body(stream=True),
        url,
    )
    assert headers["content-encoding"] == "gzip" and headers["content-type"].startswith("text/event-stream")
    payloads = sse_data(body)
    assert payloads[-1] == "[DONE]"
    assert (
        "".join(json.loads(p)["choices"][0]["delta"].get("content") or "" for p in payloads[:-1]) == GREETING
    )
    # errors and Anthropic's named events
    headers, body = curl(h2_fake, "--http2", *auth(h2_fake), "-d", chat_body("error-429"), url)
    assert headers[":status"] == "429" and headers["retry-after"] == "1"
    assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"


def test_httpx_http2_in_namespace(h2_fake: FakeProviderHandle) -> None:
    """httpx with ``http2=True`` (through the real hostname and CA) negotiates h2."""
    script = (
        "import httpx, json, sys\n"
        "url = sys.argv[1]\n"
        "body = {'model': 'gpt-4o-mini', 'messages': [{'role': 'user', 'content': sys.argv[2]}]}\n"
        "with httpx.Client(http2=True) as c:\n"
        "    r = c.post(url, json=body, headers={'authorization': 'Bearer k'})\n"
        "    with c.stream('POST', url, json={**body, 'stream': True}, headers={'authorization': 'Bearer k'}) as s:\n"
        "        lines = [line for line in s.iter_lines() if line]\n"
        "        sv = s.http_version\n"
        "print(json.dumps({'v': r.http_version, 'sv': sv, 'text': r.json()['choices'][0]['message']['content'],"
        " 'last': lines[-1]}))\n"
    )
    url = h2_fake.url("api.openai.com", "/v1/chat/completions")
    proc = h2_fake.run([sys.executable, "-c", script, url, MESSAGE])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "v": "HTTP/2",
        "sv": "HTTP/2",
        "text": GREETING,
        "last": "data: [DONE]",
    }


def test_http2_in_process(tls_material: TlsMaterial) -> None:
    """Multiplexing, flow control both ways, and the HTTP/1.1 fallback of an --http2 fake."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("h2")
    ctx = ssl.create_default_context(cafile=str(tls_material.ca_path))
    auth_header = {"authorization": "Bearer k"}

    async def concurrent(base: str) -> list[tuple[str, float]]:
        async with httpx.AsyncClient(http2=True, verify=ctx, base_url=base) as client:

            async def one(delay: int) -> tuple[str, float]:
                body = {"model": "m", "messages": [{"role": "user", "content": f"d{delay}"}]}
                headers = {**auth_header, "x-fake-delay-ms": str(delay)}
                resp = await client.post("/v1/chat/completions", json=body, headers=headers)
                assert resp.http_version == "HTTP/2"
                return resp.json()["choices"][0]["message"]["content"], time.monotonic()

            return await asyncio.gather(*(one(d) for d in (600, 400, 200, 0)))

    with serve_in_thread(tls_material.cert_path, tls_material.key_path, http2=True) as srv:
        base = f"https://localhost:{srv.port}"
        t0 = time.monotonic()
        answers = asyncio.run(concurrent(base))
        assert [text for text, _ in answers] == [
            greeting for greeting in (f"Hello! You said: d{d}" for d in (600, 400, 200, 0))
        ]
        finished = [at for _, at in answers]
        assert finished[3] < finished[0]  # answered out of order on one connection
        assert time.monotonic() - t0 < 1.1  # in sequence they would take 1.2 s
        assert srv.app.stats.connections == 1
        with httpx.Client(http2=True, verify=ctx, base_url=base) as client:
            big = " ".join(["w"] * 60_000)  # 120 KB each way: more than the 64 KiB windows
            resp = client.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": big}]},
                headers={**auth_header, "x-fake-chunked": "1"},
            )
            assert resp.json()["choices"][0]["message"]["content"] == f"Hello! You said: {big}"
            assert "content-length" not in resp.headers
        with httpx.Client(http2=False, verify=ctx, base_url=base) as client:
            assert client.get("/_fake/health").http_version == "HTTP/1.1"


def test_http1_bytes_unchanged_by_http2_option(tls_material: TlsMaterial) -> None:
    """An HTTP/1.1 client gets the same bytes from an --http2 fake (date and ids masked)."""
    ctx = ssl.create_default_context(cafile=str(tls_material.ca_path))
    ctx.set_alpn_protocols(["http/1.1"])
    request = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer k\r\n"
        "Content-Type: application/json\r\nConnection: close\r\nContent-Length: {n}\r\n\r\n{body}"
    )
    body = chat_body(stream=True)
    answers = []
    for http2 in (False, True):
        with (
            serve_in_thread(tls_material.cert_path, tls_material.key_path, http2=http2) as srv,
            socket.create_connection(("127.0.0.1", srv.port)) as sock,
            ctx.wrap_socket(sock, server_hostname="api.openai.com") as tls,
        ):
            assert tls.selected_alpn_protocol() == "http/1.1"
            tls.sendall(request.format(n=len(body), body=body).encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        data = re.sub(rb"date: [^\r]+", b"date: X", data)
        data = re.sub(rb"(req_|chatcmpl-)[0-9A-Za-z]+", rb"\1X", data)
        answers.append(data)
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 200 OK\r\n")
