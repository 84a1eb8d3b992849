"""MCP over HTTPS, captured end to end: a real MCP server and client (the `mcp` package).

An agent asks the model (OpenAI SDK, fake provider) for a tool, runs it on an MCP server,
and sends the result back to the model. Three transports: the stateless 2026 protocol
(`server/discover`, JSON answers), the handshake-era Streamable HTTP session
(`initialize`, `Mcp-Session-Id`, SSE answers) and the HTTP+SSE transport (answers on the
GET /sse stream). The sensor must report each MCP tool call and result, name the server,
link the MCP call to the model's tool call it executes, and sum the run up as a session.

Over stdio the agent starts the server itself and the sensor reads the JSON-RPC lines on
the server's stdin/stdout pipes (the kernel recognises a JSON-RPC speaker by its first
message); the events still belong to the agent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.fixtures import REPO_ROOT, FakeProviderHandle
from tests.support.sensor import RunningSensor

pytestmark = pytest.mark.kernel

MCP_DIR = REPO_ROOT / "tests" / "clients" / "mcp"
PORTS = {"streamable": 9443, "sse": 9444}
MODES = {  # client mode -> (server transport, URL path)
    "auto": ("streamable", "/mcp"),
    "legacy": ("streamable", "/mcp"),
    "sse": ("sse", "/sse"),
    "stdio": ("stdio", ""),
}


def _wait_listening(fake_provider: FakeProviderHandle, port: int, proc: subprocess.Popen[Any]) -> None:
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1).close()"
    deadline = time.monotonic() + 30
    while fake_provider.run([sys.executable, "-c", probe], timeout=10).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, f"MCP server on {port} did not start"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def mcp_servers(fake_provider: FakeProviderHandle) -> Iterator[None]:
    """The weather MCP server on both transports, over TLS, in the fake provider's namespace."""
    tls = fake_provider.tls
    procs = {
        transport: fake_provider.popen(
            [
                sys.executable,
                str(MCP_DIR / "weather_server.py"),
                str(port),
                str(tls.cert_path),
                str(tls.key_path),
                transport,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for transport, port in PORTS.items()
    }
    for transport, proc in procs.items():
        _wait_listening(fake_provider, PORTS[transport], proc)
    yield
    for proc in procs.values():
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def recording(
    fake_provider: FakeProviderHandle, mcp_servers: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("mcp") / "events.jsonl"
    results: dict[str, Any] = {}
    with RunningSensor(out) as sensor:
        for mode, (transport, path) in MODES.items():
            url = f"https://localhost:{PORTS[transport]}{path}" if transport in PORTS else "-"
            res = fake_provider.run(
                [sys.executable, str(MCP_DIR / "agent.py"), url, mode, str(fake_provider.ca_path)],
                timeout=120,
            )
            assert res.returncode == 0, f"{mode}: {res.stderr[-3000:]}"
            results[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    results["events"] = sensor.events()
    return results


def _of(events: list[dict[str, Any]], pid: int, event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["process"]["pid"] == pid and e["event_type"] == event_type]


@pytest.mark.parametrize("mode", list(MODES))
def test_mcp_tool_calls_and_results(recording: dict[str, Any], mode: str) -> None:
    agent, events = recording[mode], recording["events"]
    pid = agent["pid"]
    assert agent["weather"] == "sunny in example" and agent["failed"] is True
    calls = [c for c in _of(events, pid, "agent.tool_call") if c["data"]["tool"]["type"] == "mcp"]
    assert [c["data"]["tool"]["name"] for c in calls] == ["get_weather", "fail"]
    weather, fail = calls
    assert weather["data"]["arguments"] == {"city": "example"}
    server = weather["data"]["mcp"]["server"]
    transport, path = MODES[mode]
    assert server["name"] == "weather-e2e"
    if transport == "stdio":
        assert server["command"].endswith("weather_server.py stdio")
        assert weather["data"]["mcp"]["transport"] == "stdio"
        assert weather["source"]["capture_point"] == "stdio"
    else:
        assert server["url"] == f"https://localhost:{PORTS[transport]}{path}"
        assert weather["data"]["mcp"]["transport"] == ("sse" if mode == "sse" else "streamable_http")
    if mode in ("legacy", "sse"):  # the handshake-era HTTP transports have sessions
        assert weather["data"]["mcp"]["session_id"]
    results = {r["data"]["related_event_id"]: r for r in _of(events, pid, "agent.tool_result")}
    ok, failed = results[weather["event_id"]]["data"], results[fail["event_id"]]["data"]
    assert ok["success"] is True and ok["result"] == "sunny in example"
    assert ok["result_length"] == len("sunny in example") and ok["duration_ms"] >= 0
    assert ok["call_id"] == weather["data"]["call_id"]
    assert failed["success"] is False and failed["tool"]["name"] == "fail"


@pytest.mark.parametrize("mode", list(MODES))
def test_mcp_call_executes_the_model_tool_call(recording: dict[str, Any], mode: str) -> None:
    agent, events = recording[mode], recording["events"]
    pid = agent["pid"]
    (model_call,) = [
        c for c in _of(events, pid, "agent.tool_call") if c["data"]["tool"]["type"] == "function"
    ]
    assert model_call["data"]["call_id"] == agent["call_id"]
    (mcp_weather,) = [c for c in _of(events, pid, "agent.tool_call") if c["data"]["tool"]["name"] == "get_weather"
                      and c["data"]["tool"]["type"] == "mcp"]  # fmt: skip
    assert mcp_weather["data"]["related_event_id"] == model_call["event_id"]
    # ...and the model got the MCP result back: the model-side tool result.
    model_results = [r for r in _of(events, pid, "agent.tool_result") if r["data"].get("request_event_id")]
    assert [r["data"]["call_id"] for r in model_results] == [agent["call_id"]]


@pytest.mark.parametrize("mode", list(MODES))
def test_agent_run_is_one_session(recording: dict[str, Any], mode: str) -> None:
    agent, events = recording[mode], recording["events"]
    start, end = _of(events, agent["pid"], "agent.session")
    assert start["data"]["action"] == "start" and end["data"]["action"] == "end"
    assert end["data"]["session_id"] == start["data"]["session_id"]
    assert end["data"]["end_reason"] == "process_exit"
    assert end["data"]["turns"] == 2 and end["data"]["tool_calls"] == 1
    assert end["data"]["mcp_tool_calls"] == 2
    assert end["data"]["mcp_servers"] == ["weather-e2e"]
    assert end["data"]["tools_used"] == {"get_weather": 2, "fail": 1}
    steps = _of(events, agent["pid"], "agent.plan_step")
    assert [(s["data"]["step"], s["data"]["action"]) for s in steps] == [(1, "tool_calls"), (2, "answer")]
