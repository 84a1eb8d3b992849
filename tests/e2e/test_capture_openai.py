"""End to end: the real sensor, as root, captures real clients calling a local HTTPS fake
of the OpenAI API reached by its real hostname (inside a network namespace).

One sensor records every scenario of this module; it is stopped with SIGTERM (as the
CI/CD seed does) before any assertion, so the assertions also prove that the file is
complete once the sensor has exited, with no sleep.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.netns import NetNs
from tests.support.sensor import REPO, RunningSensor, ai_events

pytestmark = pytest.mark.kernel

PY_CLIENT = "tests/clients/py_openai_chat.py"
NODE_FETCH = "tests/clients/node/fetch_chat.mjs"
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@dataclass
class Recording:
    sensor: RunningSensor
    events: list[dict[str, Any]]
    raw: bytes
    results: dict[str, Any] = field(default_factory=dict)

    def for_pid(
        self, pid: int, types: tuple[str, ...] = ("ai.request", "ai.response")
    ) -> list[dict[str, Any]]:
        return ai_events(self.events, pid, types)

    def with_message(self, text: str) -> list[dict[str, Any]]:
        """The ai.request whose user message is `text`, and its response."""
        reqs = [
            e
            for e in self.events
            if e["event_type"] == "ai.request"
            and any(m.get("content") == text for m in e["data"].get("messages", []))
        ]
        assert len(reqs) == 1, f"expected one request with message {text!r}, got {len(reqs)}"
        resp = [
            e
            for e in self.events
            if e["event_type"] == "ai.response" and e["data"]["related_event_id"] == reqs[0]["event_id"]
        ]
        return reqs + resp


def _python(fake: FakeProviderHandle, *args: str) -> dict[str, Any]:
    res = fake.run([".venv/bin/python", PY_CLIENT, *args], timeout=120)
    assert res.returncode == 0, res.stderr + res.stdout
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def recording(fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    out = tmp_path_factory.mktemp("capture") / "events.jsonl"
    # Only the clients' namespace: other programs on a shared host make AI calls too.
    sensor = RunningSensor(out, ["--netns", f"/run/netns/{fake_provider.ns.name}"]).start()
    results: dict[str, Any] = {}
    try:
        results["plain"] = _python(fake_provider, "--model", "gpt-4o-mini", "--message", "Say hello plain")
        results["stream"] = _python(
            fake_provider, "--model", "gpt-4o-mini", "--message", "Say hello streamed", "--stream"
        )
        results["keepalive"] = _python(
            fake_provider, "--model", "gpt-4o", "--message", "keep alive", "--n-requests", "5"
        )
        results["gzip"] = _python(
            fake_provider,
            "--model",
            "gpt-4o-mini",
            "--message",
            "compressed please",
            "--header",
            "x-fake-gzip:1",
        )
        curl = fake_provider.run(
            [
                "curl", "-sS", "--fail-with-body", "https://api.openai.com/v1/chat/completions",
                "-H", f"Authorization: Bearer {fake_provider.openai_api_key}",
                "-H", "Content-Type: application/json",
                "-d", json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi from curl"}]}),
            ],
            timeout=60,
        )  # fmt: skip
        assert curl.returncode == 0, curl.stderr
        results["curl"] = json.loads(curl.stdout)
        node = fake_provider.run(["node", NODE_FETCH, "--message", "hi from node fetch"], timeout=60)
        assert node.returncode == 0, node.stderr + node.stdout
        results["node"] = json.loads(node.stdout.strip().splitlines()[-1])
        node_stream = fake_provider.run(
            ["node", NODE_FETCH, "--message", "node streamed", "--stream"], timeout=60
        )
        assert node_stream.returncode == 0, node_stream.stderr + node_stream.stdout
    finally:
        code = sensor.stop(signal.SIGTERM)
    assert code == 0, sensor.stderr
    return Recording(sensor, sensor.events(), out.read_bytes(), results)


def _check_envelope(event: dict[str, Any]) -> None:
    assert event["oisp_version"] == "0.1"
    assert ULID_RE.match(event["event_id"])
    assert TS_RE.match(event["timestamp"])
    assert (
        event["host"]["os"] == "linux" and event["host"]["hostname"] and len(event["host"]["device_id"]) == 32
    )
    assert event["actor"]["uid"] == 0 and event["actor"]["username"] == "root"
    assert event["source"]["collector"] == "oisp-sensor" and event["source"]["capture_point"] == "ssl"
    assert event["confidence"]["level"] in ("high", "medium", "low")


def test_sensor_reported_attach_and_summary(recording: Recording) -> None:
    err = recording.sensor.stderr
    assert "capture attached" in err
    assert "stopped:" in err and " 0 lost" in err
    assert "Traceback" not in err


def test_jsonl_is_compact_for_the_seed_greps(recording: Recording) -> None:
    assert b'"event_type":"ai.request"' in recording.raw
    assert b'"event_type":"ai.response"' in recording.raw


def test_full_api_key_appears_nowhere(recording: Recording, fake_provider: FakeProviderHandle) -> None:
    for key in fake_provider.api_keys:
        assert key.encode() not in recording.raw
    assert fake_provider.openai_api_key[8:30].encode() not in recording.raw


def test_python_sdk_plain_call(recording: Recording, fake_provider: FakeProviderHandle) -> None:
    pid = recording.results["plain"]["pid"]
    events = recording.for_pid(pid)
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"]
    req, resp = events
    for e in events:
        _check_envelope(e)
        assert e["process"]["pid"] == pid
        assert e["process"]["name"].startswith("python")
        assert e["process"]["exe"].endswith(("python3", "python3.11", "python"))
        assert any("py_openai_chat.py" in arg for arg in e["process"]["cmdline"])
        assert e["process"]["cwd"]
        assert e["process"]["ppid"] > 0
        assert TS_RE.match(e["process"]["start_time"]) and e["process"]["start_time"] <= e["timestamp"]
    data = req["data"]
    assert data["provider"] == {
        "id": "openai",
        "name": "OpenAI",
        "endpoint": "https://api.openai.com/v1/chat/completions",
    }
    assert data["model"] == {"id": "gpt-4o-mini", "family": "gpt-4"}
    assert data["request_type"] == "chat"
    assert data["streaming"] is False
    assert data["message_count"] == 1
    assert data["messages"][0]["role"] == "user"
    assert data["messages"][0]["content"] == "Say hello plain"
    assert data["auth"] == {"type": "bearer", "key_prefix": "sk-proj-"}
    r = resp["data"]
    assert r["related_event_id"] == req["event_id"]
    assert r["provider"]["id"] == "openai"
    assert r["model"]["id"] == "gpt-4o-mini"
    assert r["request_id"] == recording.results["plain"]["results"][0]["id"]
    assert r["status_code"] == 200 and r["success"] is True
    assert r["choices"][0]["index"] == 0
    assert r["choices"][0]["finish_reason"] == "stop"
    assert r["choices"][0]["message"]["role"] == "assistant"
    assert r["choices"][0]["message"]["content"] == "Hello! You said: Say hello plain"
    assert r["choices"][0]["message"]["content_length"] == len("Hello! You said: Say hello plain")
    # Fake provider token rules: prompt = words + messages, completion = words of the reply.
    # (the fake reports *_tokens_details, like OpenAI: kept as cached/reasoning tokens)
    assert r["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 6,
        "total_tokens": 10,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert isinstance(r["latency_ms"], int) and 0 <= r["latency_ms"] < 10_000
    assert resp["timestamp"] >= req["timestamp"]


def test_python_sdk_streaming_call(recording: Recording) -> None:
    req, resp = recording.for_pid(recording.results["stream"]["pid"])
    assert req["data"]["streaming"] is True
    assert req["data"]["messages"][0]["content"] == "Say hello streamed"
    r = resp["data"]
    assert r["streaming"] is True
    assert r["choices"][0]["message"]["content"] == "Hello! You said: Say hello streamed"
    assert r["choices"][0]["finish_reason"] == "stop"
    usage = {k: r["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    assert usage == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
    assert r["chunk_count"] >= 6
    assert 0 <= r["time_to_first_token_ms"] <= r["latency_ms"]


def test_keepalive_requests_pair_in_order(recording: Recording) -> None:
    events = recording.for_pid(recording.results["keepalive"]["pid"])
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"] * 5
    for req, resp in zip(events[::2], events[1::2], strict=True):
        assert resp["data"]["related_event_id"] == req["event_id"]
        assert resp["data"]["model"]["id"] == "gpt-4o"
    ids = [r["id"] for r in recording.results["keepalive"]["results"]]
    assert [e["data"]["request_id"] for e in events[1::2]] == ids


def test_gzip_response_is_decoded(recording: Recording) -> None:
    _req, resp = recording.for_pid(recording.results["gzip"]["pid"])
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: compressed please"


def test_curl_call(recording: Recording) -> None:
    req, resp = recording.with_message("hi from curl")
    assert req["process"]["name"] == "curl"
    assert req["process"]["exe"] == "/usr/bin/curl"
    assert "hi from curl" in " ".join(req["process"]["cmdline"])
    assert req["data"]["auth"]["key_prefix"] == "sk-proj-"
    assert resp["data"].get("request_id") == recording.results["curl"]["id"], json.dumps(resp)[:3000]
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: hi from curl"


def test_node_fetch_call(recording: Recording) -> None:
    req, resp = recording.with_message("hi from node fetch")
    assert req["process"]["name"] == "node"
    assert req["process"]["exe"].endswith("node")
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: hi from node fetch"
    assert resp["data"]["usage"]["total_tokens"] > 0


def test_node_fetch_streaming_call(recording: Recording) -> None:
    req, resp = recording.with_message("node streamed")
    assert req["data"]["streaming"] is True
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: node streamed"


def test_server_side_is_not_a_second_call(recording: Recording) -> None:
    """The fake provider (a local server) reads the same bytes: one exchange, one report."""
    requests = [e for e in recording.events if e["event_type"] == "ai.request"]
    responses = [e for e in recording.events if e["event_type"] == "ai.response"]
    # plain 1 + stream 1 + keepalive 5 + gzip 1 + curl 1 + node 2
    assert len(requests) == 11
    assert len(responses) == 11
    assert all("fake_provider" not in " ".join(e["process"]["cmdline"]) for e in requests)


def test_sensor_skips_its_own_process(recording: Recording) -> None:
    sensor_pid = recording.sensor.proc.pid if recording.sensor.proc else -1
    assert all(e["process"]["pid"] != sensor_pid for e in recording.events)


def _run_sensor(
    fake: FakeProviderHandle, args: list[str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`oisp-sensor ...` in the root namespace, with the client environment (CA, keys)."""
    return subprocess.run(
        [sys.executable, "-m", "oisp_sensor", *args],
        env=NetNs._env(fake.env()),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_wraps_a_command(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    inner = fake_provider.ns.argv([".venv/bin/python", PY_CLIENT, "--message", "via run"])
    res = _run_sensor(fake_provider, ["run", "--no-ui", "--output", str(out), "--", *inner])
    assert res.returncode == 0, res.stderr
    assert "capture attached" in res.stderr and "Traceback" not in res.stderr
    events = ai_events([json.loads(line) for line in out.read_text().splitlines()])
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"]
    assert events[1]["data"]["choices"][0]["message"]["content"] == "Hello! You said: via run"
    # The command's exit code is the sensor's.
    failing = _run_sensor(fake_provider, ["run", "--no-ui", "--output", str(out), "--", "sh", "-c", "exit 7"])
    assert failing.returncode == 7, failing.stderr


def test_process_name_filter(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    """--comm curl: the curl call is recorded, the Python SDK call is not."""
    out = tmp_path / "f.jsonl"
    with RunningSensor(out, ["--comm", "curl", "--netns", f"/run/netns/{fake_provider.ns.name}"]) as sensor:
        _python(fake_provider, "--message", "filtered out")
        res = fake_provider.run(
            ["curl", "-sS", "https://api.openai.com/v1/chat/completions",
             "-H", f"Authorization: Bearer {fake_provider.openai_api_key}", "-H", "Content-Type: application/json",
             "-d", json.dumps({"model": "m", "messages": [{"role": "user", "content": "kept"}]})],
            timeout=60,
        )  # fmt: skip
        assert res.returncode == 0
    events = ai_events(sensor.events())
    assert [e["process"]["name"] for e in events] == ["curl", "curl"]
    assert all(e["process"]["name"] == "curl" for e in sensor.events())


def test_redaction_modes_end_to_end(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    """`[export.jsonl] redaction = "minimal"` overrides the global mode; `full` is warned about."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[redaction]\nmode = "safe"\n[export.jsonl]\nredaction = "minimal"\n')
    secret_mail = "jane.doe@example.com"
    with RunningSensor(
        tmp_path / "min.jsonl", ["--config", str(cfg), "--netns", f"/run/netns/{fake_provider.ns.name}"]
    ) as sensor:
        _python(fake_provider, "--message", f"mail {secret_mail} please")
    raw = (tmp_path / "min.jsonl").read_text()
    assert secret_mail not in raw
    (req, resp) = ai_events(sensor.events())
    assert "content" not in req["data"]["messages"][0]  # no content at all, lengths and hashes only
    assert req["data"]["messages"][0]["content_length"] == len(f"mail {secret_mail} please")
    assert resp["data"]["choices"][0]["message"]["content_hash"].startswith("sha256:")
    with RunningSensor(
        tmp_path / "full.jsonl", ["--redaction", "full", "--netns", f"/run/netns/{fake_provider.ns.name}"]
    ) as sensor:
        _python(fake_provider, "--message", f"mail {secret_mail} please")
    assert "warning: redaction mode is `full`" in sensor.stderr
    assert secret_mail in (tmp_path / "full.jsonl").read_text()
    assert fake_provider.openai_api_key not in (tmp_path / "full.jsonl").read_text()
