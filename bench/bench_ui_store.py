"""Dashboard store: cost of adding an event, and of each query on a full store.

    .venv/bin/python bench/bench_ui_store.py [--events 100000]

Events have the shapes the sensor exports (envelope with host, actor, process, app,
source, confidence; requests with messages, responses with usage and cost, streamed
chunks, tool calls, process and file events), over 40 processes, 3 providers, 6 models,
spread over the last hour. Each query is run 5 times on the full store; the median is
reported (the first `q` search also builds the search text of every event, reported
apart).
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from oisp_sensor.ui.store import EventStore

MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4"),
          ("anthropic", "claude-haiku-4"), ("google", "gemini-2.0-flash"), ("openai", "o3-mini")]  # fmt: skip
HOST = {"hostname": "bench", "os": "linux", "os_version": "12", "kernel": "6.1.0", "arch": "x86_64"}


def _ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_events(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    procs = [
        {"pid": 5000 + i, "ppid": 4000 + i % 5, "name": f"agent{i}", "exe": "/usr/bin/python3.11",
         "cmdline": ["python3", f"agent{i}.py", "--task", "refactor the module"], "cwd": "/home/dev/project"}
        for i in range(40)
    ]  # fmt: skip
    apps = [{"id": f"app{i}", "name": f"App {i}", "tier": "profiled", "category": "agent"} for i in range(4)]
    out: list[dict[str, Any]] = []
    start = time.time() - 3600
    i = 0
    while len(out) < n:
        i += 1
        t = start + 3600 * len(out) / n
        proc = procs[i % len(procs)]
        app = apps[i % len(apps)]
        provider, model = MODELS[i % len(MODELS)]
        base = {"oisp_version": "0.1", "host": HOST, "actor": {"uid": 1000, "username": "dev", "gid": 1000},
                "process": proc, "app": app,
                "source": {"collector": "oisp-sensor", "collector_version": "0.1.0",
                           "capture_method": "ebpf_uprobe", "capture_point": "ssl"}}  # fmt: skip
        rid = f"01REQ{i:021d}"
        streaming = i % 3 == 0
        request = {**base, "event_id": rid, "event_type": "ai.request", "timestamp": _ts(t),
                   "confidence": {"level": "high", "completeness": "full", "reasons": []},
                   "data": {"provider": {"id": provider, "name": provider.title()}, "model": {"id": model},
                            "request_type": "chat", "streaming": streaming, "message_count": 2,
                            "messages": [{"role": "system", "content": "You are a careful coding agent."},
                                         {"role": "user", "content": f"Task {i}: fix the failing test in module {i % 97}"}]}}  # fmt: skip
        out.append(request)
        latency = rng.lognormvariate(6.5, 0.6)
        if streaming:
            for k in range(4):
                out.append({**base, "event_id": f"01CHK{i:017d}{k:04d}", "event_type": "ai.streaming_chunk",
                            "timestamp": _ts(t + latency * (k + 1) / 5000),
                            "confidence": {"level": "high", "completeness": "full", "reasons": []},
                            "data": {"provider": {"id": provider}, "model": {"id": model}, "related_event_id": rid,
                                     "chunk_index": k, "delta": "some text ", "delta_length": 10,
                                     "time_since_request_ms": latency * (k + 1) / 5}})  # fmt: skip
        ok = i % 25 != 0
        out.append({**base, "event_id": f"01RSP{i:021d}", "event_type": "ai.response", "timestamp": _ts(t + latency / 1000),
                    "confidence": {"level": "high", "completeness": "full", "reasons": []},
                    "data": {"provider": {"id": provider}, "model": {"id": model}, "related_event_id": rid,
                             "request_id": f"chatcmpl-{i}", "status_code": 200 if ok else 429, "success": ok,
                             "streaming": streaming,
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": f"Done with task {i}."}}],
                             "usage": {"prompt_tokens": 300 + i % 50, "completion_tokens": 40 + i % 30},
                             "cost": {"usd": 0.0004}, "latency_ms": round(latency),
                             "time_to_first_token_ms": round(latency / 5)}})  # fmt: skip
        if i % 7 == 0:
            out.append({**base, "event_id": f"01TCL{i:021d}", "event_type": "agent.tool_call", "timestamp": _ts(t + latency / 1000),
                        "confidence": {"level": "high", "completeness": "full", "reasons": []},
                        "data": {"tool": {"name": "run_tests"}, "arguments": {"path": "tests/"}, "call_id": f"c{i}",
                                 "related_event_id": f"01RSP{i:021d}", "request_event_id": rid}})  # fmt: skip
        if i % 5 == 0:
            out.append({**base, "event_id": f"01FIL{i:021d}", "event_type": "file.open", "timestamp": _ts(t),
                        "confidence": {"level": "high", "completeness": "full", "reasons": []},
                        "data": {"path": f"/home/dev/project/mod{i % 97}.py", "flags": ["O_RDONLY"], "fd": 5}})  # fmt: skip
    # Each process gets a copy of its context, as events parsed from a file would.
    return [copy.copy(e) for e in out[:n]]


def timed(fn: Callable[[], Any], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    events = make_events(args.events)
    store = EventStore(max_events=args.events)
    t0 = time.perf_counter()
    for k in range(0, len(events), 1024):
        store.add_many(events[k : k + 1024])
    add_us = (time.perf_counter() - t0) / len(events) * 1e6
    calls = store.calls(limit=1)["total"]
    print(f"events: {len(events)} ({calls} AI calls); add: {add_us:.2f} us/event (batches of 1024)")
    # Wrapping around: the store full, every add also evicts.
    more = make_events(20_000, seed=2)
    t0 = time.perf_counter()
    for k in range(0, len(more), 1024):
        store.add_many(more[k : k + 1024])
    print(f"add while full (evicting): {(time.perf_counter() - t0) / len(more) * 1e6:.2f} us/event")
    t0 = time.perf_counter()
    store.events(q="task 4242", limit=50)
    print(
        f"first text search (builds search text of every event): {(time.perf_counter() - t0) * 1000:.1f} ms"
    )
    mid = store.latest_seq - 50_000
    some = store.calls(limit=1)["calls"][0]["request_id"]
    queries: list[tuple[str, Callable[[], Any]]] = [
        ("calls latest 200", lambda: store.calls()),
        ("calls provider=anthropic", lambda: store.calls(provider="anthropic")),
        ("calls status=error model=gpt-4o", lambda: store.calls(status="error", model="gpt-4o")),
        ("calls q=task 4242", lambda: store.calls(q="task 4242")),
        ("calls before_seq (page back)", lambda: store.calls(before_seq=mid)),
        ("calls since_seq (poll, 500 new)", lambda: store.calls(since_seq=store.latest_seq - 500)),
        ("events latest 200", lambda: store.events()),
        ("events type=ai.response", lambda: store.events(type="ai.response")),
        ("events pid=5007 type=file", lambda: store.events(pid=5007, type="file")),
        ("events q=failing test", lambda: store.events(q="failing test")),
        ("exchange", lambda: store.exchange(some)),
        ("stats 1h / 60s", lambda: store.stats(window_s=3600, bucket_s=60)),
        (
            "stats 1h / 10s provider=openai",
            lambda: store.stats(window_s=3600, bucket_s=10, provider="openai"),
        ),
        ("stats 24h / 600s", lambda: store.stats(window_s=86400, bucket_s=600)),
        ("processes", lambda: store.processes()),
        ("sessions", lambda: store.sessions()),
        ("health", lambda: store.health()),
    ]
    for name, fn in queries:
        print(f"  {name:36s} {timed(fn):8.2f} ms")


if __name__ == "__main__":
    main()
