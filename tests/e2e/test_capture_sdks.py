"""Real SDKs beyond OpenAI's Python one, captured end to end: the Anthropic Python SDK, the npm
`openai` and `@anthropic-ai/sdk` SDKs on Node 20; streaming calls and tool-call round trips
(the model asks for a tool, the next request carries its result)."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import RunningSensor

pytestmark = pytest.mark.kernel

NODE = "tests/clients/node"

ANTHROPIC_PY = r"""
import anthropic, json, os, sys
client = anthropic.Anthropic(max_retries=0)
tool = {"name": "get_weather", "description": "Weather for a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
msgs = [{"role": "user", "content": "anthropic python tools"}]
first = client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=msgs, tools=[tool])
use = next(b for b in first.content if b.type == "tool_use")
msgs += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}]
second = client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=msgs, tools=[tool])
with client.messages.stream(model="claude-haiku-4-5", max_tokens=256,
                            messages=[{"role": "user", "content": "anthropic python stream"}]) as s:
    text = s.get_final_text()
print(json.dumps({"pid": os.getpid(), "tool_use_id": use.id, "second": second.content[0].text, "stream": text}))
"""


def _of(events: list[dict[str, Any]], pid: int, event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["process"]["pid"] == pid and e["event_type"] == event_type]


@pytest.fixture(scope="module")
def sdk_recording(
    fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sdks") / "events.jsonl"
    results: dict[str, Any] = {}
    with RunningSensor(out) as sensor:
        res = fake_provider.run([sys.executable, "-c", ANTHROPIC_PY], timeout=120)
        assert res.returncode == 0, res.stderr
        results["anthropic_py"] = json.loads(res.stdout.strip().splitlines()[-1])
        for name, script, args in (
            ("node_openai_stream", "openai_chat.mjs", ["--stream", "--message", "node sdk stream"]),
            ("node_openai_tools", "openai_chat.mjs", ["--tools", "--message", "node sdk tools"]),
            (
                "node_anthropic_stream",
                "anthropic_messages.mjs",
                ["--stream", "--message", "node anthropic stream"],
            ),
        ):
            res = fake_provider.run(["node", f"{NODE}/{script}", *args], timeout=120)
            assert res.returncode == 0, res.stderr + res.stdout
            results[name] = json.loads(res.stdout.strip().splitlines()[-1])
    results["events"] = sensor.events()
    results["raw"] = out.read_text()
    return results


def test_anthropic_python_tool_round_trip(
    sdk_recording: dict[str, Any], fake_provider: FakeProviderHandle
) -> None:
    events, pid = sdk_recording["events"], sdk_recording["anthropic_py"]["pid"]
    requests = _of(events, pid, "ai.request")
    assert [r["data"]["provider"]["id"] for r in requests] == ["anthropic"] * 3
    assert requests[0]["data"]["auth"]["key_prefix"].startswith("sk-ant-")
    calls = _of(events, pid, "agent.tool_call")
    assert len(calls) == 1
    assert calls[0]["data"]["tool"]["name"] == "get_weather"
    assert calls[0]["data"]["call_id"] == sdk_recording["anthropic_py"]["tool_use_id"]
    results = _of(events, pid, "agent.tool_result")
    assert len(results) == 1 and results[0]["data"]["call_id"] == calls[0]["data"]["call_id"]
    assert results[0]["data"]["related_event_id"] == calls[0]["event_id"]
    assert fake_provider.anthropic_api_key not in sdk_recording["raw"]


def test_anthropic_python_stream(sdk_recording: dict[str, Any]) -> None:
    events, pid = sdk_recording["events"], sdk_recording["anthropic_py"]["pid"]
    streamed = [r for r in _of(events, pid, "ai.response") if r["data"].get("streaming")]
    assert len(streamed) == 1
    assert streamed[0]["data"]["choices"][0]["message"]["content"] == sdk_recording["anthropic_py"]["stream"]
    assert streamed[0]["data"]["usage"]["completion_tokens"] > 0
    chunks = _of(events, pid, "ai.streaming_chunk")
    assert len(chunks) >= 3
    assert all(c["data"]["related_event_id"] for c in chunks)


def test_node_openai_sdk_stream_and_tools(sdk_recording: dict[str, Any]) -> None:
    events = sdk_recording["events"]
    pid = sdk_recording["node_openai_stream"]["pid"]
    (resp,) = _of(events, pid, "ai.response")
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: node sdk stream"
    assert _of(events, pid, "ai.streaming_chunk")
    pid = sdk_recording["node_openai_tools"]["pid"]
    assert len(_of(events, pid, "ai.request")) == 2
    calls, results = _of(events, pid, "agent.tool_call"), _of(events, pid, "agent.tool_result")
    assert len(calls) == 1 and len(results) == 1
    assert results[0]["data"]["call_id"] == calls[0]["data"]["call_id"]
    assert results[0]["data"]["duration_ms"] >= 0


def test_node_anthropic_sdk_stream(sdk_recording: dict[str, Any]) -> None:
    events, pid = sdk_recording["events"], sdk_recording["node_anthropic_stream"]["pid"]
    (resp,) = _of(events, pid, "ai.response")
    assert resp["data"]["provider"]["id"] == "anthropic"
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: node anthropic stream"
    assert resp["data"]["model"]["id"].startswith("claude")
