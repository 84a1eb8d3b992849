"""WebSocket stream and Prometheus metrics on the web port, with real clients: the seed's
JavaScript snippet under Node 20, an aiohttp client, and a scrape parsed by the official
Prometheus parser."""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, WSServerHandshakeError
from prometheus_client.parser import text_string_to_metric_families
from tests.unit.export_helpers import agent_turn, numbered

from oisp_sensor.config import SensorConfig
from oisp_sensor.export.base import ExporterError
from oisp_sensor.export.factory import Exports, build_exporters

NODE_CLIENT = Path(__file__).resolve().parents[1] / "clients" / "node" / "ws_events.mjs"


def _web(**websocket: Any) -> Exports:
    config = SensorConfig.model_validate(
        {
            "export": {
                "jsonl": {"enabled": False},
                "websocket": {"enabled": True, "port": 0, **websocket},
                "metrics": {"enabled": True},
            }
        }
    )
    exports = build_exporters(config)
    for exporter in exports.exporters:
        exporter.start()
    return exports


@pytest.fixture
def web() -> Iterator[Exports]:
    exports = _web()
    yield exports
    for exporter in exports.exporters:
        exporter.close(5)


def _wait_clients(exports: Exports, n: int) -> None:
    ws = exports.exporters[0]
    deadline = time.monotonic() + 10
    while ws.stats().details["clients"] < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ws.stats().details["clients"] == n


def test_seed_javascript_snippet_under_node(web: Exports) -> None:
    assert web.server is not None
    port = web.server.port
    events = agent_turn()
    procs = [
        subprocess.Popen(
            ["node", str(NODE_CLIENT), f"ws://localhost:{port}{path}", str(len(events))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in ("/ws/events", "/ws")  # both seeds' paths
    ]
    _wait_clients(web, 2)
    for exporter in web.exporters:
        exporter.submit_many(events)
    for proc in procs:
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        lines = [line for line in out.splitlines() if line.startswith("Event:")]
        assert lines == [f"Event: {e['event_type']} {e['event_id']}" for e in events]


def test_messages_are_compact_json_text_frames(web: Exports) -> None:
    assert web.server is not None
    url = f"http://127.0.0.1:{web.server.port}/ws/events"
    events = numbered(50)

    async def client() -> list[Any]:
        async with ClientSession() as session, session.ws_connect(url) as ws:
            _wait_clients(web, 1)
            web.exporters[0].submit_many(events)
            return [await ws.receive(timeout=5) for _ in events]

    messages = asyncio.run(client())
    assert all(m.type.name == "TEXT" for m in messages)
    assert [orjson.loads(m.data)["data"]["n"] for m in messages] == list(range(50))
    assert '"event_type":"process.exec"' in messages[0].data


def test_slow_client_is_dropped_and_others_keep_up() -> None:
    exports = _web(client_buffer=1000)
    try:
        assert exports.server is not None
        url = f"http://127.0.0.1:{exports.server.port}/ws"
        events = numbered(5000)
        for event in events:  # 20 MB in all: more than the sockets' buffers can hide
            event["data"]["pad"] = "x" * 4000

        async def clients() -> tuple[int, Any]:
            async with ClientSession() as session:
                slow = await session.ws_connect(url, max_msg_size=0)  # reads only at the end
                fast = await session.ws_connect(url, max_msg_size=0)
                await asyncio.to_thread(_wait_clients, exports, 2)

                async def read_fast() -> int:
                    got = 0
                    while got < 5000:
                        msg = await fast.receive(timeout=20)
                        assert msg.type.name == "TEXT", (got, msg)
                        assert orjson.loads(msg.data)["data"]["n"] == got
                        got += 1
                    return got

                reader = asyncio.create_task(read_fast())

                def submit() -> float:
                    slowest = 0.0
                    for i in range(0, 5000, 100):  # 10,000 events/s, 40 MB/s
                        started = time.monotonic()
                        exports.exporters[0].submit_many(events[i : i + 100])
                        slowest = max(slowest, time.monotonic() - started)
                        time.sleep(0.01)
                    return slowest

                assert await asyncio.to_thread(submit) < 0.05  # submit never waits for clients
                got = await reader
                closed = None
                for _ in range(6000):  # the slow one gets what was buffered, then the close
                    msg = await slow.receive(timeout=10)
                    if msg.type.name in ("CLOSE", "CLOSED", "CLOSING"):
                        closed = msg
                        break
                await fast.close()
                return got, closed

        got, closed = asyncio.run(clients())
        assert got == 5000
        assert closed is not None and closed.data == 1013  # try again later
        details = exports.exporters[0].stats().details
        assert details["clients_dropped_slow"] == 1
    finally:
        for exporter in exports.exporters:
            exporter.close(5)


def test_token_required_off_loopback_and_checked() -> None:
    with pytest.raises(ExporterError, match="token"):
        _web(host="0.0.0.0")  # refused before anything listens
    exports = _web(token="s3cret")  # a token on loopback is enforced too
    try:
        assert exports.server is not None
        base = f"http://127.0.0.1:{exports.server.port}"

        async def attempts() -> list[Any]:
            out: list[Any] = []
            async with ClientSession() as session:
                for suffix, headers in (
                    ("/ws/events", {}),
                    ("/ws/events?token=wrong", {}),
                    ("/ws/events?token=s3cret", {}),
                    ("/ws/events", {"Authorization": "Bearer s3cret"}),
                    ("/ws/events?token=s3cret", {"Origin": "https://evil.example"}),
                    ("/ws/events?token=s3cret", {"Origin": "http://localhost:7777"}),
                ):
                    try:
                        ws = await session.ws_connect(base + suffix, headers=headers)
                        out.append("open")
                        await ws.close()
                    except WSServerHandshakeError as exc:
                        out.append(exc.status)
            return out

        assert asyncio.run(attempts()) == [401, 401, "open", "open", 403, "open"]
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/metrics", timeout=5)
        assert info.value.code == 401
        req = urllib.request.Request(f"{base}/metrics", headers={"Authorization": "Bearer s3cret"})
        assert urllib.request.urlopen(req, timeout=5).status == 200
    finally:
        for exporter in exports.exporters:
            exporter.close(5)


def test_port_in_use_is_one_line() -> None:
    first = _web()
    try:
        assert first.server is not None
        config = SensorConfig.model_validate(
            {
                "export": {
                    "jsonl": {"enabled": False},
                    "websocket": {"enabled": True, "port": first.server.port},
                }
            }
        )
        second = build_exporters(config)
        with pytest.raises(ExporterError) as info:
            second.exporters[0].start()
        assert f"cannot listen on 127.0.0.1:{first.server.port}" in str(info.value)
        assert "\n" not in str(info.value)
    finally:
        for exporter in first.exporters:
            exporter.close(5)


def test_prometheus_metrics_and_health(web: Exports) -> None:
    assert web.server is not None
    web.set_stats_provider(
        lambda: {
            "kernel": {"data_records": 120, "lost_records": 2, "ctl_lost": 1, "trunc_bytes": 0},
            "events_by_type": {"ai.request": 2, "ai.response": 2},
            "sensor": {"uptime_s": 12.5},
            "exporters": {e.name: e.stats().as_dict() for e in web.exporters},
        }
    )
    events = agent_turn()
    # a failed call too
    failed = orjson.loads(orjson.dumps(events[2]))
    failed["data"].update(success=False, status_code=429, error={"type": "rate_limit_error"})
    failed["data"].pop("usage")
    for exporter in web.exporters:
        exporter.submit_many([*events, failed])
        assert exporter.flush(5)
    text = urllib.request.urlopen(f"http://127.0.0.1:{web.server.port}/metrics", timeout=5).read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    base = (("app", "my-agent"), ("model", "gpt-4o-mini"), ("provider", "openai"))
    resp = (("app", "my-agent"), ("model", "gpt-4o-mini-2024-07-18"), ("provider", "openai"))
    assert samples[("oisp_ai_requests_total", base)] == 2
    assert (
        samples[
            ("oisp_ai_responses_total", (*resp[:1], ("model", resp[1][1]), ("outcome", "success"), resp[2]))
        ]
        == 2
    )
    assert samples[("oisp_ai_tokens_total", (resp[0], ("direction", "input"), *resp[1:]))] == 60
    assert samples[("oisp_ai_tokens_total", (resp[0], ("direction", "output"), *resp[1:]))] == 15
    assert samples[("oisp_ai_errors_total", (resp[0], ("error_type", "rate_limit_error"), *resp[1:]))] == 1
    assert samples[("oisp_ai_latency_seconds_count", resp)] == 2
    assert samples[("oisp_ai_cost_usd_total", resp)] > 0
    assert samples[("oisp_agent_tool_calls_total", (("app", "my-agent"), ("provider", "openai")))] == 1
    assert samples[("oisp_kernel_records_total", ())] == 120
    assert samples[("oisp_kernel_records_lost_total", ())] == 3
    assert samples[("oisp_events_total", (("event_type", "ai.request"),))] == 2
    assert samples[("oisp_exporter_events_sent_total", (("exporter", "metrics"),))] == 8
    assert samples[("oisp_exporter_queue_depth", (("exporter", "websocket"),))] == 0
    assert samples[("oisp_exporter_up", (("exporter", "websocket"),))] == 1
    health = orjson.loads(urllib.request.urlopen(f"http://127.0.0.1:{web.server.port}/api/health").read())
    assert health["status"] == "healthy"
    assert health["exports"]["websocket"]["events_exported"] == 8
