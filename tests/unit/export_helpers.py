"""Events for the exporter tests, made by the real decoder from real HTTP bytes.

One agent turn with a tool: a chat request offering `get_weather`, the answer calling
it, the next request carrying its result, the final answer; plus a process event.
Timestamps are set to known instants so span times can be asserted exactly.
"""

from __future__ import annotations

from typing import Any

from tests.unit.helpers_ai import events_of, exchange, json_response, new_builder, post

from oisp_sensor.schema.envelope import Clock, envelope

API_KEY = "sk-proj-" + "Q7xT2mK9pL4vN8rW3sY6zB1cD5fG0hJ2"
# 2026-11-22T10:00:00Z and offsets from it (microseconds)
BASE_TS = "2026-11-22T10:00:0"
BASE_NS = 1_795_341_600 * 1_000_000_000
TIMES_US = {
    "request1": 0,
    "response1": 1_250_000,
    "tool_call": 1_250_000,
    "request2": 2_000_000,
    "tool_result": 2_000_000,
    "response2": 3_500_000,
    "exec": 100,
}


def _stamp(us: int) -> str:
    seconds, micro = divmod(us, 1_000_000)
    return f"{BASE_TS}{seconds}.{micro:06d}Z"


def _tool_call_json() -> dict[str, Any]:
    return {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }


def agent_turn(secret: str = "") -> list[dict[str, Any]]:
    """The seven events of one tool-using turn, in emission order."""
    prompt = f"What is the weather in Paris? {secret}".strip()
    builder = new_builder()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    auth = (b"Authorization", f"Bearer {API_KEY}".encode())
    req1 = post(
        "api.openai.com",
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "temperature": 0.2,
            "messages": [{"role": "user", "content": prompt}],
            "tools": tools,
        },
        auth,
    )
    resp1 = json_response(
        {
            "id": "chatcmpl-1",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": None, "tool_calls": [_tool_call_json()]},
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
        }
    )
    history = [
        {"role": "user", "content": prompt},
        {"role": "assistant", "tool_calls": [_tool_call_json()]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    req2 = post("api.openai.com", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": history}, auth)
    resp2 = json_response(
        {
            "id": "chatcmpl-2",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": f"Sunny. {secret}"},
                }
            ],
            "usage": {"prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45},
        }
    )
    raw = events_of(exchange(req1, resp1), builder=builder) + events_of(
        exchange(req2, resp2), builder=builder
    )
    clock = Clock(offset_ns=BASE_NS)
    process = {"pid": 4242, "name": "agent", "exe": "/usr/bin/python3", "cmdline": ["python3", "agent.py"]}
    events = [
        envelope(
            e, clock, host={"hostname": "box"}, actor={"uid": 1000}, process=process, app={"id": "my-agent"}
        )
        for e in raw
    ]
    names = ["request1", "response1", "tool_call", "request2", "tool_result", "response2"]
    assert [e["event_type"] for e in events] == [
        "ai.request", "ai.response", "agent.tool_call", "ai.request", "agent.tool_result", "ai.response",
    ]  # fmt: skip
    for event, name in zip(events, names, strict=True):
        event["timestamp"] = _stamp(TIMES_US[name])
        event["event_id"] = f"01JTEST{name.upper():0<19}"[:26]
    # the links, rewritten to the new ids
    ids = {e["event_id"] for e in events}
    by_old = dict(zip([f"E{i}" for i in range(1, 7)], [e["event_id"] for e in events], strict=True))
    for event in events:
        data = event["data"]
        for key in ("related_event_id", "request_event_id"):
            if key in data:
                data[key] = by_old[data[key]]
                assert data[key] in ids
    exec_event = {
        "oisp_version": "0.1",
        "event_id": "01JTESTEXEC000000000000000",
        "event_type": "process.exec",
        "timestamp": _stamp(TIMES_US["exec"]),
        "host": {"hostname": "box"},
        "process": process,
        "data": {
            "pid": 4242,
            "ppid": 1,
            "exe": "/usr/bin/python3",
            "args": ["python3", "agent.py", *([secret] if secret else [])],
        },
    }
    return [exec_event, *events]


def numbered(n: int) -> list[dict[str, Any]]:
    """n small process events with a running number in data.n (for counting and order)."""
    return [
        {
            "oisp_version": "0.1",
            "event_id": f"01JNUM{i:020d}",
            "event_type": "process.exec",
            "timestamp": _stamp(i),
            "host": {"hostname": "box"},
            "process": {"pid": 1000 + i % 7, "name": "worker"},
            "data": {"n": i, "pid": 1000 + i % 7, "args": ["worker", str(i)]},
        }
        for i in range(n)
    ]
