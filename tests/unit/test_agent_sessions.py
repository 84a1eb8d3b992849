"""agent.session and agent.plan_step from the events of real decoded exchanges."""

from __future__ import annotations

import itertools
from typing import Any

from tests.unit.helpers_ai import by_type, conversation, exchange, json_response, new_builder, post

from oisp_sensor.decode.agent_sessions import AgentSessions
from oisp_sensor.schema.events import SensorEvent

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
USER = {"role": "user", "content": "weather in Paris?"}
AUTH = (b"Authorization", b"Bearer sk-proj-abc")
SECOND = 1_000_000_000


def chat_answer(message: dict[str, Any], finish: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": finish, "message": message}], "usage": usage}  # fmt: skip


CALLED = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}  # fmt: skip
USAGE_1 = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30,
           "completion_tokens_details": {"reasoning_tokens": 4}}  # fmt: skip
USAGE_2 = {"prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45}


def agent_loop_events() -> list[SensorEvent]:
    """Two turns of one agent: the model asks for a tool, then answers with its result."""
    history = [USER, CALLED, {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    return conversation(
        exchange(post("api.openai.com", "/v1/chat/completions",
                      {"model": "gpt-4o-mini", "messages": [USER], "tools": TOOLS}, AUTH),
                 json_response(chat_answer(CALLED, "tool_calls", USAGE_1))),
        exchange(post("api.openai.com", "/v1/chat/completions",
                      {"model": "gpt-4o-mini", "messages": history, "tools": TOOLS}, AUTH),
                 json_response(chat_answer({"role": "assistant", "content": "Sunny."}, "stop", USAGE_2))),
    )  # fmt: skip


def plain_chat_events() -> list[SensorEvent]:
    return conversation(
        exchange(post("api.openai.com", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [USER]}, AUTH),
                 json_response(chat_answer({"role": "assistant", "content": "Hi"}, "stop", USAGE_2))),
    )  # fmt: skip


def sessions(**kwargs: Any) -> AgentSessions:
    counter = itertools.count(1)
    return AgentSessions(lambda ts: f"S{next(counter)}", **kwargs)


def test_agent_loop_session_and_plan_steps() -> None:
    tracker = sessions()
    events = agent_loop_events()
    out = tracker.observe(events)
    kinds = [e.event_type for e in out]
    assert kinds == [
        "agent.session", "ai.request", "ai.response", "agent.tool_call", "agent.plan_step",
        "ai.request", "agent.tool_result", "ai.response", "agent.plan_step",
    ]  # fmt: skip
    start = out[0]
    assert start.data["action"] == "start" and start.data["trigger"] == "tools_offered"
    assert start.ts_ns == events[0].ts_ns  # stamped with the agent's first AI event
    session_id = start.data["session_id"]
    first, second = by_type(out, "agent.plan_step")
    assert first.data["session_id"] == session_id and first.data["step"] == 1
    assert first.data["action"] == "tool_calls"
    assert first.data["tools_requested"] == [{"name": "get_weather", "call_id": "call_1"}]
    assert first.data["tool_results_in"] == 0
    assert first.data["reasoning_tokens"] == 4
    assert first.data["related_event_id"] == out[2].event_id
    assert second.data["step"] == 2 and second.data["action"] == "answer"
    assert second.data["tool_results_in"] == 1 and second.data["tools_requested"] == []
    assert second.data["conversation_id"] == first.data["conversation_id"]
    assert "reasoning_tokens" not in second.data

    (end,) = tracker.process_exit(events[0].pid, events[-1].ts_ns + SECOND)
    data = end.data
    assert data["action"] == "end" and data["end_reason"] == "process_exit"
    assert data["session_id"] == session_id
    assert (data["turns"], data["ai_requests"], data["tool_calls"], data["tool_results"]) == (2, 2, 1, 1)
    assert data["tools_used"] == {"get_weather": 1}
    assert data["usage"] == {"prompt_tokens": 60, "completion_tokens": 15, "total_tokens": 75,
                             "reasoning_tokens": 4}  # fmt: skip
    assert data["cost"]["usd"] > 0
    assert data["providers"] == ["openai"] and data["models"] == ["gpt-4o-mini"]
    assert data["conversation_count"] == 1
    assert data["duration_ms"] >= 1000
    assert tracker.process_exit(events[0].pid, 0) == []  # ended once


def test_plain_chat_is_not_an_agent() -> None:
    tracker = sessions()
    events = plain_chat_events()
    assert tracker.observe(events) == events
    assert tracker.process_exit(events[0].pid, events[-1].ts_ns) == []
    assert tracker.close_all(events[-1].ts_ns) == []


def test_idle_timeout_and_shutdown_end_sessions() -> None:
    tracker = sessions(idle_timeout_ns=60 * SECOND)
    events = tracker.observe(agent_loop_events())
    last = max(e.ts_ns for e in events)
    assert tracker.expire(last + 59 * SECOND) == []
    (end,) = tracker.expire(last + 61 * SECOND)
    assert end.data["end_reason"] == "idle_timeout"
    assert end.ts_ns == last + 60 * SECOND
    # The next AI call of the process starts a new session.
    again = tracker.observe(agent_loop_events())
    (start,) = [e for e in again if e.event_type == "agent.session"]
    assert start.data["session_id"] != end.data["session_id"]
    (closing,) = tracker.close_all(last + 100 * SECOND)
    assert closing.data["end_reason"] == "sensor_shutdown"
    assert closing.data["session_id"] == start.data["session_id"]


def test_child_process_joins_its_agent_parent_session() -> None:
    tracker = sessions(parent_of={555: 100}.get)
    agent = tracker.observe(agent_loop_events())
    child_events = plain_chat_events()
    for event in child_events:
        event.pid = event.tid = 555
    joined = tracker.observe(child_events)  # no session of its own: its turn is a step of the agent's
    assert [e.event_type for e in joined] == ["ai.request", "ai.response", "agent.plan_step"]
    assert joined[-1].data["step"] == 3 and joined[-1].pid == 555
    assert tracker.process_exit(555, child_events[-1].ts_ns) == []  # the agent goes on
    (end,) = tracker.process_exit(100, child_events[-1].ts_ns)
    assert end.data["ai_requests"] == 3 and end.data["pids"] == [100, 555]
    assert end.data["session_id"] == agent[0].data["session_id"]


def test_mcp_tool_call_identifies_an_agent() -> None:
    builder = new_builder()
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "lookup", "arguments": {}}}
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "ok"}]}}
    events = conversation(
        exchange(post("mcp.example.com", "/mcp", call), json_response(answer)), builder=builder
    )
    tracker = sessions()
    out = tracker.observe(events)
    assert [e.event_type for e in out] == ["agent.session", "agent.tool_call", "agent.tool_result"]
    assert out[0].data["trigger"] == "mcp_tool_call"
    (end,) = tracker.close_all(events[-1].ts_ns)
    assert end.data["mcp_tool_calls"] == 1 and end.data["tool_calls"] == 0
    assert end.data["mcp_servers"] == ["https://mcp.example.com/mcp"]
    assert end.data["tools_used"] == {"lookup": 1}
    assert "usage" not in end.data and "cost" not in end.data


def test_turns_before_identification_become_the_first_steps() -> None:
    tracker = sessions()
    chat = plain_chat_events()
    assert tracker.observe(chat) == chat  # not an agent (yet)
    out = tracker.observe(agent_loop_events())
    assert [e.event_type for e in out[:3]] == ["agent.session", "agent.plan_step", "ai.request"]
    start, held = out[0], out[1]
    assert start.ts_ns == chat[0].ts_ns  # the run began with the plain chat
    assert held.data["session_id"] == start.data["session_id"]
    assert held.data["step"] == 1 and held.data["action"] == "answer"
    assert held.data["related_event_id"] == chat[1].event_id
    steps = [e.data["step"] for e in out if e.event_type == "agent.plan_step"]
    assert steps == [1, 2, 3]
    assert tracker.counters.plan_steps == 3
