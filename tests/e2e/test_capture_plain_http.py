"""Plain-HTTP AI traffic from socket reads and writes: curl and the real `ollama` Python
client against a local, TLS-less fake Ollama server (127.0.0.1:11434), decoded exactly
like TLS traffic, with provider `ollama`, and nothing captured for ports not asked for."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import RunningSensor, ai_events

pytestmark = pytest.mark.kernel

BASE = "http://127.0.0.1:11434"

OLLAMA_CLIENT = r"""
import json, os, ollama
client = ollama.Client(host="http://127.0.0.1:11434")
chat = client.chat(model="llama3.2", messages=[{"role": "user", "content": "plain hello"}])
parts = [c.message.content for c in client.chat(model="llama3.2", stream=True,
         messages=[{"role": "user", "content": "plain stream"}])]
gen = client.generate(model="llama3.2", prompt="plain generate")
emb = client.embed(model="nomic-embed-text", input=["one", "two"])
print(json.dumps({"pid": os.getpid(), "chat": chat.message.content, "stream": "".join(parts),
                  "generate": gen.response, "dims": len(emb.embeddings[0])}))
"""


@pytest.fixture(scope="module")
def plain_run(
    fake_provider: FakeProviderHandle,
    fake_ollama_plain: FakeProviderHandle,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("plain") / "events.jsonl"
    body = '{"model":"llama3.2","messages":[{"role":"user","content":"curl plain"}],"stream":false}'
    # Only the clients' namespace: other programs on a shared host make AI calls too.
    with RunningSensor(out, ["--netns", f"/run/netns/{fake_provider.ns.name}"]) as sensor:
        curl = fake_provider.popen(["curl", "-sS", "-X", "POST", f"{BASE}/api/chat", "-d", body])
        curl_out, _ = curl.communicate(timeout=60)
        assert curl.returncode == 0
        res = fake_provider.run([sys.executable, "-c", OLLAMA_CLIENT], timeout=120)
        assert res.returncode == 0, res.stderr
    import json

    return {
        "events": sensor.events(),
        "curl_pid": curl.pid,
        "curl_out": curl_out,
        "client": json.loads(res.stdout.strip().splitlines()[-1]),
    }


def _by_pid(events: list[dict[str, Any]], pid: int) -> list[dict[str, Any]]:
    return ai_events(events, pid)


def test_curl_plain_http_is_an_ollama_call(plain_run: dict[str, Any]) -> None:
    calls = [e for e in plain_run["events"] if e["event_type"] in ("ai.request", "ai.response")
             and e["process"]["name"] == "curl"]  # fmt: skip
    req = next(e for e in calls if e["event_type"] == "ai.request")
    resp = next(e for e in calls if e["event_type"] == "ai.response")
    assert req["data"]["provider"]["id"] == "ollama"
    assert req["data"]["model"]["id"] == "llama3.2"
    assert req["data"]["messages"][0]["content"] == "curl plain"
    assert req["source"]["capture_point"] == "socket"
    assert resp["data"]["related_event_id"] == req["event_id"]
    assert resp["data"]["status_code"] == 200
    assert "curl plain" in resp["data"]["choices"][0]["message"]["content"]
    assert resp["data"]["usage"]["total_tokens"] > 0


def test_ollama_client_chat_stream_generate_embed(plain_run: dict[str, Any]) -> None:
    pid = plain_run["client"]["pid"]
    events = [e for e in plain_run["events"] if e["process"]["pid"] == pid]
    requests = [e for e in events if e["event_type"] == "ai.request"]
    responses = [e for e in events if e["event_type"] == "ai.response"]
    assert len(requests) == 4 and len(responses) == 4
    assert {r["data"]["provider"]["id"] for r in requests} == {"ollama"}
    assert {r["data"].get("request_type") for r in requests} >= {"chat", "embedding"}
    contents = [r["data"]["choices"][0]["message"]["content"] for r in responses if r["data"].get("choices")]
    assert plain_run["client"]["chat"] in contents
    streamed = [r for r in responses if r["data"]["streaming"]]
    assert (
        streamed and streamed[0]["data"]["choices"][0]["message"]["content"] == plain_run["client"]["stream"]
    )
    chunks = [e for e in events if e["event_type"] == "ai.streaming_chunk"]
    assert len(chunks) >= 2
    embeddings = [e for e in events if e["event_type"] == "ai.embedding"]
    assert embeddings and embeddings[0]["data"]["input_count"] == 2
    assert embeddings[0]["data"]["dimensions"] == plain_run["client"]["dims"]
    assert all(r["data"].get("cost", {}).get("usd", 0) == 0 for r in responses)  # local: free


def test_network_connect_says_plain(plain_run: dict[str, Any]) -> None:
    pid = plain_run["client"]["pid"]
    connects = [e for e in plain_run["events"] if e["event_type"] == "network.connect"
                and e["process"]["pid"] == pid and e["data"]["remote"]["port"] == 11434]  # fmt: skip
    assert connects and connects[0]["data"]["tls"] is False


def test_ports_not_listed_are_not_captured(
    fake_provider: FakeProviderHandle, fake_ollama_plain: FakeProviderHandle, tmp_path: Path
) -> None:
    config = tmp_path / "ports.toml"
    config.write_text("[capture]\nhttp_ports = [1234]\n")
    body = '{"model":"llama3.2","messages":[{"role":"user","content":"unseen"}],"stream":false}'
    netns = ["--netns", f"/run/netns/{fake_provider.ns.name}"]  # other programs call AI APIs too
    with RunningSensor(tmp_path / "e.jsonl", ["--config", str(config), *netns]) as sensor:
        res = fake_provider.run(["curl", "-sS", "-X", "POST", f"{BASE}/api/chat", "-d", body])
        assert res.returncode == 0
    assert not [e for e in sensor.events() if e["event_type"] == "ai.request"]
    with RunningSensor(tmp_path / "off.jsonl", ["--no-plain-http", *netns]) as sensor:
        res = fake_provider.run(["curl", "-sS", "-X", "POST", f"{BASE}/api/chat", "-d", body])
        assert res.returncode == 0
    assert not [e for e in sensor.events() if e["event_type"] == "ai.request"]
