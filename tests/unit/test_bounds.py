"""Tables the sensor keeps per process, per call or per string stay bounded under a steady
stream of new keys (the soak's finding, issue 9: ~8 short-lived processes a second)."""

from __future__ import annotations

from typing import Any

from oisp_sensor.decode.ai_events import AiEventBuilder
from oisp_sensor.decode.providers import ProviderRegistry
from oisp_sensor.enrich.filters import ProcessFilter
from oisp_sensor.redact.detectors import Scanner
from oisp_sensor.ui.proctree import ProcessTable
from oisp_sensor.ui.store import EventStore


def test_process_filter_forgets_exited_pids_and_caches_by_name_only() -> None:
    f = ProcessFilter(comms=["sh", "cat", "curl"], uids=[1000])
    for pid in range(10_000, 60_000):
        comm = ("sh", "cat", "rm")[pid % 3]
        kept = f.allows(pid, comm, 1000)
        assert kept is (comm != "rm")
        assert f.allows(pid, comm, -1) is kept  # a record without a uid takes the pid's
        assert f.allows(pid, comm, -1, exited=True) is kept
    assert f.tracked_pids() == 0
    assert len(f._comm_ok) == 3
    # A pid that exited and comes back is judged on its own uid again.
    assert not f.allows(10_000, "sh", -1)
    assert f.allows(10_000, "sh", 1000)


def test_process_filter_pid_table_has_a_ceiling_when_exits_are_lost() -> None:
    f = ProcessFilter(uids=[1000])
    for pid in range(200_000):
        f.allows(pid, "x", 1000)  # never an exit record
    assert f.tracked_pids() <= 65536


def _proc_event(etype: str, pid: int, seq: int, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_id": f"E{seq}",
        "event_type": etype,
        "timestamp": "2026-12-03T07:00:00.000000Z",
        "process": {"pid": pid, "ppid": 1, "name": "sh", "exe": "/bin/sh", "cmdline": ["sh", "-c", "x"]},
        "data": data or {},
    }


def test_dashboard_process_table_keeps_only_recent_exits() -> None:
    table = ProcessTable(max_processes=10_000, max_exited=100)
    seq = 0
    for pid in range(1000, 6000):
        for etype, data in (
            ("process.exec", {}),
            ("file.open", {"path": f"/tmp/f{pid}"}),
            ("process.exit", {"exit_code": 0}),
        ):
            seq += 1
            table.observe(seq, etype, pid, _proc_event(etype, pid, seq, data), data)
    live = 7
    table.observe(seq + 1, "process.exec", live, _proc_event("process.exec", live, seq + 1), {})
    assert len(table.procs) == 101 and live in table.procs
    assert sorted(table.procs)[1:] == list(range(5900, 6000))  # the latest exits
    assert table.forgotten == 4900
    # A pid reused after its exit is a new, live process: never forgotten for the old exit.
    table.observe(seq + 2, "process.exec", 5900, _proc_event("process.exec", 5900, seq + 2), {})
    for pid in range(7000, 7200):
        table.observe(seq + 3, "process.exit", pid, _proc_event("process.exit", pid, seq + 3), {})
    assert 5900 in table.procs and not table.procs[5900].exited


def test_dashboard_name_tables_are_bounded() -> None:
    store = EventStore(max_events=1000)
    for pid in range(20_000):
        data = {"provider": {"id": "openai", "name": "OpenAI"}, "model": {"id": f"m{pid}"}}
        store.add(_proc_event("ai.request", pid, pid, data))
    assert len(store._names["process"]) <= 4096
    assert store._names["process"][19_999] == "sh"  # the most recent stay
    assert store._names["provider"] == {"openai": "OpenAI"}


def test_conversation_cache_keeps_no_prompt_text() -> None:
    builder = AiEventBuilder(ProviderRegistry.default(), lambda ts: f"id{ts}")
    system = {"role": "system", "content": "You are a careful agent. " * 4000}  # 100 KB
    first = builder._conversation_id(42, "openai", [system, {"role": "user", "content": "task A"}], {})
    again = builder._conversation_id(
        42,
        "openai",
        [system, {"role": "user", "content": "task A"}, {"role": "assistant", "content": "ok"}],
        {},
    )
    other = builder._conversation_id(42, "openai", [system, {"role": "user", "content": "task B"}], {})
    assert first == again != other
    for key in builder._conversations:
        assert all(not isinstance(part, str) or len(part) < 64 for part in key)


def test_dashboard_session_steps_do_not_outlive_the_store() -> None:
    store = EventStore(max_events=200)
    start = _proc_event("agent.session", 42, 0, {"session_id": "ses_1", "action": "start", "root_pid": 42})
    store.add(start)
    for seq in range(1, 3000):
        store.add(_proc_event("ai.request", 42, seq, {"provider": {"id": "openai"}, "model": {"id": "m"}}))
    session = store._sessions.get("ses_1")
    assert session is not None and session.pids == {42}
    first_kept = store._events[0].seq
    assert 0 < len(session.steps) <= store.kept
    assert all(ev.seq >= first_kept for ev in session.steps)
    assert store.session("ses_1")["session"]["status"] == "active"


def test_redaction_cache_counts_entries_not_only_characters() -> None:
    scanner = Scanner(cache_chars=1_000_000)
    for i in range(100_000):
        scanner.scrub(f"soak plain {i}")  # short, unique: one prompt per call
    # Each entry is charged its characters plus its overhead: ~1,000,000 / (16 + 160).
    assert 0 < len(scanner.cache) <= 1_000_000 // 160
    assert scanner.cache_chars <= 1_000_000
    text = "a longer repeated system prompt " * 100
    assert scanner.scrub(text)[0] is text and text in scanner.cache
