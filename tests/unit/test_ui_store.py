"""The dashboard's EventStore: pairing, filters and paging, aggregates, processes, sessions.

Events are the sensor's envelopes: built by hand where exact figures matter (latency
percentiles, windows), and by the real decoder + agent-session tracker where the shapes
of real events matter (tool calls and results, sessions and plan steps).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from tests.unit.export_helpers import agent_turn
from tests.unit.helpers_ai import events_of, exchange, json_response, new_builder, post

from oisp_sensor.decode.agent_sessions import AgentSessions
from oisp_sensor.schema.envelope import Clock, envelope
from oisp_sensor.ui.store import EventStore, QueryError, parse_timestamp

T0 = 1_795_341_600.0  # 2026-11-22T10:00:00Z
_ids = itertools.count(1)


def stamp(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def env(etype: str, t: float, data: dict[str, Any], pid: int = 100, **extra: Any) -> dict[str, Any]:
    return {
        "oisp_version": "0.1",
        "event_id": extra.pop("event_id", f"EV{next(_ids):08d}"),
        "event_type": etype,
        "timestamp": stamp(t),
        "host": {"hostname": "box"},
        "process": extra.pop(
            "process", {"pid": pid, "ppid": 1, "name": f"proc{pid}", "exe": "/usr/bin/python3"}
        ),
        "app": extra.pop("app", {"id": "my-app", "name": "My App"}),
        "data": data,
        **extra,
    }


def call(
    t: float,
    latency: float = 100,
    provider: str = "openai",
    model: str = "gpt-4o",
    pid: int = 100,
    ok: bool = True,
    tokens: tuple[int, int] = (10, 5),
    text: str = "hello",
    streaming: bool = False,
) -> list[dict[str, Any]]:
    """ai.request + ai.response."""
    req = env(
        "ai.request",
        t,
        {"provider": {"id": provider, "name": provider.title()}, "model": {"id": model}, "request_type": "chat",
         "streaming": streaming, "message_count": 1, "messages": [{"role": "user", "content": text}]},
        pid,
    )  # fmt: skip
    resp = env(
        "ai.response",
        t + latency / 1000,
        {"provider": {"id": provider}, "model": {"id": model}, "related_event_id": req["event_id"],
         "request_id": f"chatcmpl-{req['event_id']}", "status_code": 200 if ok else 500, "success": ok,
         "streaming": streaming, "usage": {"prompt_tokens": tokens[0], "completion_tokens": tokens[1]},
         "cost": {"usd": 0.001}, "latency_ms": latency, "time_to_first_token_ms": latency / 2},
        pid,
    )  # fmt: skip
    return [req, resp]


def replay_store(**kwargs: Any) -> EventStore:
    return EventStore(mode="replay", **kwargs)


# ---- pairing ---------------------------------------------------------------------------------


def test_request_and_response_make_one_row_and_a_pending_row_until_then() -> None:
    store = replay_store()
    req, resp = call(T0, latency=250, tokens=(30, 7))
    store.add(req)
    v1 = store.version
    body = store.calls()
    assert body["total"] == 1 and body["latest_seq"] == 1
    row = body["calls"][0]
    assert row["request_id"] == req["event_id"] and row["seq"] == 1
    assert row["success"] is None and row["status"] is None and row["latency_ms"] is None
    store.add(resp)
    assert store.version > v1
    # Polling with since_seq re-sends the row, now complete.
    again = store.calls(since_seq=1)
    assert [r["request_id"] for r in again["calls"]] == [req["event_id"]]
    row = again["calls"][0]
    assert row == {
        "seq": 1, "request_id": req["event_id"], "timestamp": req["timestamp"],
        "app": {"id": "my-app", "name": "My App"},
        "process": {"pid": 100, "name": "proc100", "exe": "/usr/bin/python3"},
        "provider": "openai", "model": "gpt-4o", "request_type": "chat", "streaming": False,
        "status": 200, "success": True, "input_tokens": 30, "output_tokens": 7, "cost_usd": 0.001,
        "latency_ms": 250, "ttft_ms": 125.0, "complete": True, "tool_calls": 0, "session_id": None,
    }  # fmt: skip
    assert store.calls(since_seq=2)["calls"] == []


def test_exchange_of_real_decoder_events_with_tool_call_and_result() -> None:
    events = agent_turn()
    store = replay_store()
    store.add_many(events)
    ai = [e for e in events if e["event_type"].startswith(("ai.", "agent."))]
    req1, resp1, tool_call, req2, tool_result, resp2 = ai
    ex = store.exchange(req1["event_id"])
    assert ex is not None
    assert ex["request"]["event_id"] == req1["event_id"] and ex["response"]["event_id"] == resp1["event_id"]
    assert [e["event_id"] for e in ex["tool_calls"]] == [tool_call["event_id"]]
    assert [e["event_id"] for e in ex["tool_results"]] == [tool_result["event_id"]]
    assert ex["chunks"] == {"count": 0, "first_ms": None, "last_ms": None} and ex["embedding"] is None
    assert ex["row"]["tool_calls"] == 1 and ex["row"]["input_tokens"] == 20
    # Also found by the response's event id and by the provider's request id.
    assert store.exchange(resp1["event_id"])["request_id"] == req1["event_id"]  # type: ignore[index]
    assert store.exchange("chatcmpl-1")["request_id"] == req1["event_id"]  # type: ignore[index]
    second = store.exchange(req2["event_id"])
    assert second is not None and second["response"]["event_id"] == resp2["event_id"]
    assert store.exchange("nope") is None
    # Every envelope comes back as exported, with its seq.
    got = store.event(tool_call["event_id"])
    assert got is not None and got["_seq"] > 0 and got["data"] == tool_call["data"]


def test_streaming_chunks_counted_with_first_and_last_times() -> None:
    store = replay_store()
    req, resp = call(T0, streaming=True)
    store.add(req)
    for i, ms in enumerate([40.0, 55.5, 90.0]):
        store.add(env("ai.streaming_chunk", T0 + ms / 1000,
                      {"related_event_id": req["event_id"], "chunk_index": i, "time_since_request_ms": ms}))  # fmt: skip
    store.add(resp)
    ex = store.exchange(req["event_id"])
    assert ex is not None and ex["chunks"] == {"count": 3, "first_ms": 40.0, "last_ms": 90.0}
    assert store.calls()["calls"][0]["streaming"] is True


def test_response_without_its_request_is_a_row_of_its_own() -> None:
    store = replay_store()
    _req, resp = call(T0)
    store.add(resp)
    row = store.calls()["calls"][0]
    assert row["request_id"] == resp["event_id"] and row["success"] is True and row["provider"] == "openai"
    assert store.stats(window_s=60, bucket_s=60)["totals"]["requests"] == 1


# ---- filters and paging ----------------------------------------------------------------------


@pytest.fixture
def mixed() -> EventStore:
    store = replay_store()
    for i in range(30):
        store.add_many(
            call(
                T0 + i,
                provider="openai" if i % 3 else "anthropic",
                model=f"m{i % 2}",
                pid=100 + i % 5,
                ok=i % 10 != 0,
                text=f"question number {i}",
            )
        )
        store.add(env("file.open", T0 + i, {"path": f"/tmp/f{i}"}, pid=100 + i % 5))
    return store


def test_call_filters(mixed: EventStore) -> None:
    assert mixed.calls()["total"] == 30
    assert mixed.calls(provider="anthropic")["total"] == 10
    assert mixed.calls(model="m1", provider="openai")["total"] == 10
    assert mixed.calls(pid=103)["total"] == 6
    assert mixed.calls(status="error")["total"] == 3
    assert mixed.calls(status="ok")["total"] == 27
    assert mixed.calls(app="my-app")["total"] == 30 and mixed.calls(app="other")["total"] == 0
    found = mixed.calls(q="QUESTION NUMBER 17")
    assert found["total"] == 1 and found["calls"][0]["process"]["pid"] == 102


def test_call_paging_newest_first_pages_in_ascending_order(mixed: EventStore) -> None:
    page = mixed.calls(limit=4)
    seqs = [r["seq"] for r in page["calls"]]
    assert seqs == sorted(seqs) and len(seqs) == 4 and page["total"] == 30
    older = mixed.calls(limit=4, before_seq=seqs[0])
    assert [r["seq"] for r in older["calls"]] == sorted(r["seq"] for r in older["calls"])
    assert max(r["seq"] for r in older["calls"]) < seqs[0]
    # All pages together: every call once.
    seen, before = [], None
    while True:
        part = mixed.calls(limit=7, before_seq=before)["calls"]
        if not part:
            break
        seen = part + seen
        before = part[0]["seq"]
    assert len(seen) == 30 and len({r["request_id"] for r in seen}) == 30


def test_event_filters_and_paging(mixed: EventStore) -> None:
    assert mixed.events(limit=1)["total"] == 90
    assert mixed.events(type="file.open")["total"] == 30
    assert mixed.events(type="file")["total"] == 30 and mixed.events(type="file.*")["total"] == 30
    assert mixed.events(type="ai.request,ai.response")["total"] == 60
    assert mixed.events(type="ai", pid=100)["total"] == 12
    assert mixed.events(provider="anthropic", type="ai.response")["total"] == 10
    assert mixed.events(status="error")["total"] == 3
    assert mixed.events(q="/tmp/f29")["total"] == 1
    tail = mixed.events(since_seq=85)
    assert [e["_seq"] for e in tail["events"]] == [86, 87, 88, 89, 90] and tail["latest_seq"] == 90
    page = mixed.events(limit=3, before_seq=10)
    assert [e["_seq"] for e in page["events"]] == [7, 8, 9]


def test_bad_parameters_raise_query_errors(mixed: EventStore) -> None:
    with pytest.raises(QueryError):
        mixed.calls(limit=0)
    with pytest.raises(QueryError):
        mixed.calls(status="maybe")
    with pytest.raises(QueryError):
        mixed.stats(window_s=0)
    with pytest.raises(QueryError):
        mixed.stats(window_s=3600, bucket_s=1)  # 3600 buckets > 2000
    assert len(mixed.calls(limit=10**9)["calls"]) == 30  # capped, not refused


# ---- aggregates ----------------------------------------------------------------------------------


def test_latency_percentiles_per_provider_model_and_series() -> None:
    store = replay_store()
    # 100 calls to openai at 1..100 ms, one a second; 10 to anthropic at 1000 ms.
    for i in range(100):
        store.add_many(call(T0 + i, latency=i + 1, provider="openai", model="gpt-4o", tokens=(2, 1)))
    for i in range(10):
        store.add_many(call(T0 + 100 + i, latency=1000, provider="anthropic", model="claude", ok=i != 0))
    stats = store.stats(window_s=3600, bucket_s=60)
    totals = stats["totals"]
    assert totals["requests"] == 110 and totals["errors"] == 1
    assert totals["input_tokens"] == 100 * 2 + 10 * 10 and totals["output_tokens"] == 100 + 50
    assert totals["cost_usd"] == pytest.approx(0.11)
    by_provider = {g["key"]: g for g in stats["by_provider"]}
    assert by_provider["openai"]["latency_ms"] == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert (
        by_provider["anthropic"]["latency_ms"]["p50"] == 1000.0 and by_provider["openai"]["name"] == "Openai"
    )
    assert [g["key"] for g in stats["by_model"]] == ["gpt-4o", "claude"]
    assert stats["by_process"][0]["key"] == 100 and stats["by_app"][0]["key"] == "my-app"
    # Minute buckets: calls at T0+0..59 in the first, T0+60..109 in the second.
    nonzero = [p for p in stats["series"] if p["requests"]]
    assert [p["t"] for p in nonzero] == [T0, T0 + 60]
    assert [p["requests"] for p in nonzero] == [60, 50]
    assert nonzero[0]["latency_p50"] == 30.0 and nonzero[1]["latency_p95"] == 1000.0
    # Filtered: only what matches, in every part.
    only = store.stats(window_s=3600, bucket_s=60, provider="anthropic")
    assert only["totals"]["requests"] == 10 and [g["key"] for g in only["by_provider"]] == ["anthropic"]
    assert store.stats(window_s=3600, bucket_s=60, pid=999)["totals"]["requests"] == 0
    # The window ends at the last event in a replay; it starts on a whole minute: a 30 s
    # window holds the last minute's calls, not the first minute's.
    recent = store.stats(window_s=30, bucket_s=60)
    assert recent["totals"]["requests"] == 50


def test_bounded_store_keeps_the_last_events_but_counts_every_call() -> None:
    store = replay_store(max_events=100)
    for i in range(500):
        store.add_many(call(T0 + i * 0.1, latency=10))
    assert store.kept <= 100 + max(16, 100 // 8)
    assert store.events(limit=5000)["total"] == store.kept
    calls = store.calls(limit=5000)
    assert 0 < calls["total"] <= 57 and calls["latest_seq"] == 1000
    assert store.stats(window_s=3600)["totals"]["requests"] == 500
    assert store.health()["sensor"]["events"] == 1000
    assert store.exchange("EV00000001") is None  # long gone


def test_malformed_input_is_counted_not_raised() -> None:
    store = replay_store()
    store.add_many([{"no": "type"}, {"event_type": "ai.request", "data": "not a dict"}, 42])  # type: ignore[list-item]
    store.add(env("ai.response", T0, {"related_event_id": 5, "usage": "x", "latency_ms": "slow"}))
    store.add(env("process.exit", T0, {"exit_code": None}, timestamp="yesterday"))
    health = store.health()
    assert health["sensor"]["events_rejected"] == 3 and health["sensor"]["events"] == 2
    assert store.calls()["total"] == 1 and store.processes()["roots"] == [100]


def test_timestamps() -> None:
    assert parse_timestamp("2026-11-22T10:00:00.250000Z") == T0 + 0.25
    assert parse_timestamp("2026-11-22T10:00:00.250000Z") == T0 + 0.25  # cached second
    assert parse_timestamp("2026-11-22T10:00:00Z") == T0
    assert parse_timestamp("2026-11-22T11:00:00+01:00") == T0
    assert parse_timestamp("nonsense") is None and parse_timestamp(None) is None


# ---- processes -----------------------------------------------------------------------------------


def test_process_tree_with_ai_file_and_network_activity() -> None:
    store = replay_store()
    parent = {"pid": 10, "ppid": 1, "name": "bash", "exe": "/bin/bash", "cmdline": ["bash"], "cwd": "/home/u"}
    agent = {"pid": 11, "ppid": 10, "name": "python3", "exe": "/usr/bin/python3",
             "cmdline": ["python3", "agent.py"], "cwd": "/home/u", "start_time": "2026-11-22T10:00:00Z"}  # fmt: skip
    store.add(env("process.exec", T0, {"pid": 10}, process=parent))
    store.add(env("process.fork", T0 + 1, {"pid": 11, "ppid": 10},
                  process={"pid": 11, "ppid": 0, "name": "bash", "exe": "", "cmdline": []}))  # fmt: skip
    store.add(env("process.exec", T0 + 2, {"pid": 11}, process=agent))
    store.add(env("network.connect", T0 + 3,
                  {"remote": {"ip": "10.0.0.1", "port": 443, "hostname": "api.openai.com"}, "protocol": "tcp"},
                  process=agent))  # fmt: skip
    store.add(env("network.dns", T0 + 3, {"query": "api.openai.com", "answers": ["10.0.0.1"]}, process=agent))
    store.add_many(call(T0 + 4, pid=11, tokens=(100, 20)))
    store.add(env("file.write", T0 + 5, {"path": "/home/u/out.txt", "size": 42}, process=agent))
    store.add(env("process.exit", T0 + 6, {"pid": 11, "exit_code": 3}, process=agent))
    body = store.processes()
    procs = {p["pid"]: p for p in body["processes"]}
    assert body["roots"] == [10] and procs[10]["children"] == [11]
    p = procs[11]
    assert p["ppid"] == 10 and p["name"] == "python3" and p["cmdline"] == ["python3", "agent.py"]
    assert p["exited"] is True and p["exit_code"] == 3
    assert p["ai_calls"] == 1 and p["input_tokens"] == 100 and p["output_tokens"] == 20
    assert p["files"] == [{"path": "/home/u/out.txt", "op": "write", "bytes": 42, "timestamp": stamp(T0 + 5)}]
    assert [n["hostname"] for n in p["network"]] == ["api.openai.com", "api.openai.com"]
    assert p["network"][0]["port"] == 443 and p["network"][1]["protocol"] == "dns"
    # The pid reused by a new process: a fresh entry.
    store.add(env("process.exec", T0 + 9, {"pid": 11}, process={**agent, "name": "ls", "cmdline": ["ls"],
                                                                "start_time": "2026-11-22T10:00:09Z"}))  # fmt: skip
    again = {p["pid"]: p for p in store.processes()["processes"]}[11]
    assert again["name"] == "ls" and again["exited"] is False and again["ai_calls"] == 0


# ---- agent sessions ----------------------------------------------------------------------------


AGENT_PID = 100  # the decoder test helpers' connection pid


def _agent_run() -> list[dict[str, Any]]:
    """A real tool-using turn through the real decoder and agent-session tracker."""
    builder = new_builder()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    call_json = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    req1 = post("api.openai.com", "/v1/chat/completions",
                {"model": "gpt-4o", "messages": [{"role": "user", "content": "weather?"}], "tools": tools})  # fmt: skip
    resp1 = json_response({"id": "r1", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls",
                           "message": {"role": "assistant", "content": None, "tool_calls": [call_json]}}],
                           "usage": {"prompt_tokens": 20, "completion_tokens": 10}})  # fmt: skip
    history = [{"role": "user", "content": "weather?"}, {"role": "assistant", "tool_calls": [call_json]},
               {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]  # fmt: skip
    req2 = post(
        "api.openai.com", "/v1/chat/completions", {"model": "gpt-4o", "messages": history, "tools": tools}
    )
    resp2 = json_response({"id": "r2", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "Sunny."}}],
                           "usage": {"prompt_tokens": 40, "completion_tokens": 5}})  # fmt: skip
    raw = events_of(exchange(req1, resp1), builder=builder) + events_of(
        exchange(req2, resp2), builder=builder
    )
    counter = itertools.count(1)
    sessions = AgentSessions(lambda ts: f"S{next(counter):025d}")
    raw = sessions.observe(raw)
    raw += sessions.close_all(max(e.ts_ns for e in raw) + 1)
    clock = Clock(offset_ns=int(T0 * 1e9))
    assert {e.pid for e in raw} == {AGENT_PID}
    process = {"pid": AGENT_PID, "ppid": 1, "name": "agent", "exe": "/usr/bin/python3"}
    return [envelope(e, clock, host={}, actor={}, process=process, app={"id": "my-agent", "name": "Agent"})
            for e in raw]  # fmt: skip


def test_agent_session_with_turns_tool_calls_and_totals() -> None:
    events = _agent_run()
    kinds = [e["event_type"] for e in events]
    assert kinds.count("agent.session") == 2 and kinds.count("agent.plan_step") == 2
    store = replay_store()
    store.add_many(events)
    sessions = store.sessions()["sessions"]
    assert len(sessions) == 1
    s = sessions[0]
    assert (
        s["session_id"].startswith("ses_")
        and s["pid"] == AGENT_PID
        and s["app"] == {"id": "my-agent", "name": "Agent"}
    )
    assert s["status"] == "ended" and s["turns"] == 2 and s["tool_calls"] == 1
    assert s["input_tokens"] == 60 and s["output_tokens"] == 15
    detail = store.session(s["session_id"])
    assert detail is not None
    steps = [(st["kind"], st["event"]["event_type"]) for st in detail["steps"]]
    assert steps[0] == ("session", "agent.session")  # the start (stamped at the first AI event)
    assert ("tool_call", "agent.tool_call") in steps and ("tool_result", "agent.tool_result") in steps
    assert [k for k, _ in steps].count("plan_step") == 2 and [k for k, _ in steps].count("model_turn") == 4
    assert steps[-1] == ("session", "agent.session")
    assert any(st["summary"] == "tool call get_weather" for st in detail["steps"])
    # The calls of the session say so, and the session filter finds them.
    assert {r["session_id"] for r in store.calls()["calls"]} == {s["session_id"]}
    assert store.calls(session=s["session_id"])["total"] == 2
    assert store.events(session=s["session_id"], type="agent.tool_call")["total"] == 1
    assert store.session("ses_unknown") is None


def test_listeners_and_health_source() -> None:
    store = replay_store()
    seen: list[int] = []
    store.listen(seen.append)
    store.set_health_source(lambda: {"exports": {"jsonl": {"status": "degraded"}}, "capture": {"probes": 3}})
    store.add_many(call(T0))
    assert seen == [store.version]
    health = store.health()
    assert health["status"] == "degraded" and health["capture"] == {"probes": 3}
    assert health["sensor"]["mode"] == "replay" and health["sensor"]["events"] == 2
