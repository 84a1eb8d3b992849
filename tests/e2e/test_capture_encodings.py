"""Compressed answers from the real kernel: gzip, deflate, br and zstd, whole bodies and
SSE streams compressed incrementally (a flush per event), decoded to the same events as
plain ones. The client (curl without --compressed) never decompresses: the sensor does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import RunningSensor, ai_events

pytestmark = pytest.mark.kernel

ENCODINGS = ("gzip", "deflate", "br", "zstd")


def _curl(fake: FakeProviderHandle, encoding: str, stream: bool) -> list[str]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"enc {encoding} {stream}"}]}
    if stream:
        body["stream"] = True
    return [
        "curl", "-sS", "--cacert", str(fake.ca_path), fake.url(path="/v1/chat/completions"),
        "-H", f"Authorization: Bearer {fake.openai_api_key}", "-H", "Content-Type: application/json",
        "-H", f"x-fake-encoding: {encoding}", "-H", "x-fake-stream-delay-ms: 20" if stream else "x-none: 1",
        "-o", "/dev/null", "-w", "%{http_code}", "-d", json.dumps(body),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def recording(fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("enc") / "events.jsonl"
    pids: dict[tuple[str, bool], int] = {}
    with RunningSensor(out) as sensor:
        for encoding in ENCODINGS:
            for stream in (False, True):
                proc = fake_provider.popen(_curl(fake_provider, encoding, stream))
                code, _ = proc.communicate(timeout=60)
                assert proc.returncode == 0 and code.strip() == "200", code
                pids[(encoding, stream)] = proc.pid
    return {"events": sensor.events(), "pids": pids}


def _curl_pid_events(recording: dict[str, Any], encoding: str, stream: bool) -> list[dict[str, Any]]:
    # `ip netns exec` execs curl in the pid popen() started: the pid is curl's.
    return ai_events(recording["events"], recording["pids"][(encoding, stream)],
                     types=("ai.request", "ai.response", "ai.streaming_chunk"))  # fmt: skip


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_whole_body(recording: dict[str, Any], encoding: str) -> None:
    events = _curl_pid_events(recording, encoding, False)
    resp = next(e for e in events if e["event_type"] == "ai.response")
    assert resp["data"]["choices"][0]["message"]["content"] == f"Hello! You said: enc {encoding} False"
    assert resp["data"]["usage"]["total_tokens"] > 0
    assert resp["confidence"]["completeness"] == "full"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_compressed_sse_stream(recording: dict[str, Any], encoding: str) -> None:
    events = _curl_pid_events(recording, encoding, True)
    resp = next(e for e in events if e["event_type"] == "ai.response")
    assert resp["data"]["streaming"] is True
    assert resp["data"]["choices"][0]["message"]["content"] == f"Hello! You said: enc {encoding} True"
    chunks = [e for e in events if e["event_type"] == "ai.streaming_chunk"]
    assert len(chunks) >= 3
    assert resp["data"]["time_to_first_token_ms"] <= resp["data"]["latency_ms"]
