"""HTTP/2 over TLS (ALPN h2) captured end to end: curl --http2 and httpx http2=True calling
an HTTP/2 fake of the OpenAI API, plain and streamed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import RunningSensor, ai_events

pytestmark = pytest.mark.kernel

HTTPX_CLIENT = r"""
import httpx, json, os, sys
url, key, stream = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "h2 httpx " + sys.argv[3]}]}
if stream:
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
with httpx.Client(http2=True, headers={"authorization": "Bearer " + key}) as c:
    r = c.post(url, json=body)
    print(json.dumps({"pid": os.getpid(), "version": r.http_version, "status": r.status_code}))
"""


@pytest.fixture(scope="module")
def h2_recording(
    h2_fake: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("h2") / "events.jsonl"
    url = h2_fake.url("api.openai.com", "/v1/chat/completions")
    with RunningSensor(out) as sensor:
        for stream in ("0", "1"):
            res = h2_fake.run(
                [sys.executable, "-c", HTTPX_CLIENT, url, h2_fake.openai_api_key, stream], timeout=60
            )
            assert res.returncode == 0, res.stderr
            assert json.loads(res.stdout)["version"] == "HTTP/2"
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "h2 curl"}]}
        res = h2_fake.run(
            ["curl", "-sS", "--http2", "-H", f"Authorization: Bearer {h2_fake.openai_api_key}",
             "-H", "Content-Type: application/json", "-d", json.dumps(body), url],
            timeout=60,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
    return sensor.events()


def _call(events: list[dict[str, Any]], text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    reqs = [e for e in ai_events(events) if e["event_type"] == "ai.request"
            and e["data"]["messages"][0]["content"] == text]  # fmt: skip
    assert len(reqs) == 1, [e["data"].get("messages") for e in ai_events(events)]
    resp = [e for e in ai_events(events) if e["data"].get("related_event_id") == reqs[0]["event_id"]]
    assert len(resp) == 1
    return reqs[0], resp[0]


def test_httpx_http2_plain(h2_recording: list[dict[str, Any]]) -> None:
    req, resp = _call(h2_recording, "h2 httpx 0")
    assert req["data"]["provider"]["id"] == "openai"
    # The host comes from the :authority pseudo-header (the fake listens on 8443).
    assert req["data"]["provider"]["endpoint"].split("/v1/")[0] in (
        "https://api.openai.com",
        "https://api.openai.com:8443",
    )
    assert req["data"]["provider"]["endpoint"].endswith("/v1/chat/completions")
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: h2 httpx 0"
    assert resp["confidence"]["completeness"] == "full"


def test_httpx_http2_streamed(h2_recording: list[dict[str, Any]]) -> None:
    req, resp = _call(h2_recording, "h2 httpx 1")
    assert req["data"]["streaming"] is True
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: h2 httpx 1"
    assert resp["data"]["usage"]["total_tokens"] > 0


def test_curl_http2(h2_recording: list[dict[str, Any]], h2_fake: FakeProviderHandle, tmp_path: Path) -> None:
    req, resp = _call(h2_recording, "h2 curl")
    assert req["process"]["name"] == "curl"
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: h2 curl"
    blob = json.dumps(h2_recording)
    assert h2_fake.openai_api_key not in blob
