"""Self-protection under a flood: many processes making HTTPS AI calls as fast as they can,
against a sensor with low memory, CPU and event-rate ceilings. The sensor must shed work in
its defined order and count it (status file, /metrics, shutdown summary), keep its memory
under the ceiling, exit cleanly, and leave valid JSONL behind."""

from __future__ import annotations

import contextlib
import re
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.export_servers import free_port
from tests.support.fixtures import FakeProviderHandle
from tests.support.flood import flood, start_servers, stop_servers
from tests.support.sensor import RunningSensor

pytestmark = pytest.mark.kernel

BASE_PORT = 9543
MAX_MEMORY_MB = 150  # the sensor settles at about 140 MB here (tokenizers loaded): shedding
TOLERANCE_MB = 40  # RSS is measured once a second; bursts in between are allowed this much
MAX_EPS = 400


@pytest.fixture(scope="module")
def flood_ports(
    fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[int]]:
    servers = start_servers(fake_provider, tmp_path_factory.mktemp("flood"), 2, BASE_PORT)
    yield [s.port for s in servers]
    stop_servers(servers)


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_flood_with_low_ceilings(
    fake_provider: FakeProviderHandle, flood_ports: list[int], tmp_path: Path
) -> None:
    status = tmp_path / "status.json"
    port = free_port()
    args = [
        "--status-file", str(status),
        "--max-memory-mb", str(MAX_MEMORY_MB),
        "--max-cpu-percent", "25",
        "--max-events-per-second", str(MAX_EPS),
    ]  # fmt: skip
    env = {
        "OISP_LIMITS__QUEUE_MB": "2",
        "OISP_EXPORT__METRICS__ENABLED": "true",
        "OISP_EXPORT__WEBSOCKET__PORT": str(port),
    }
    started = time.monotonic()
    with RunningSensor(tmp_path / "events.jsonl", args, env=env) as sensor:
        assert sensor.proc is not None
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(flood, fake_provider, flood_ports, clients=12, seconds=8, stream_every=5)
            live: dict[str, Any] = {"level": 0}
            metrics = ""
            while not running.done():  # the live view while the flood goes on
                time.sleep(0.25)
                with contextlib.suppress(OSError, orjson.JSONDecodeError):
                    guard = orjson.loads(status.read_bytes())["guard"]
                    if guard["level"] >= live["level"]:
                        live = guard
                        metrics = _metrics(port)
            result = running.result()
    elapsed = time.monotonic() - started
    assert sensor.returncode == 0, sensor.stderr
    assert "Traceback" not in sensor.stderr
    assert result.errors == 0 and result.requests > 1000, result.clients

    # Degraded, in order, visibly: the live status and /metrics show it.
    assert live["level"] >= 2 and live["level_changes"] >= 1, live
    assert live["peak_rss_bytes"] <= (MAX_MEMORY_MB + TOLERANCE_MB) * 1048576, live
    assert live["metadata_only_events"] > 0, live
    level = re.search(r"^oisp_sensor_degradation_level (\S+)$", metrics, re.M)
    assert level and float(level[1]) >= 1, metrics
    assert re.search(r'^oisp_sensor_shed_total\{kind="metadata_only_events"\} [1-9]', metrics, re.M), metrics
    assert "oisp_sensor_rss_bytes" in metrics

    # The shutdown summary counts what was shed.
    summary = sensor.stderr.strip().splitlines()[-1]
    assert "self-protection:" in summary, summary
    shed = re.search(
        r"shed: (\d+) chunks, \d+ file read/write, (\d+) metadata-only, \d+ dropped, (\d+) rate-limited",
        summary,
    )
    assert shed and int(shed[2]) > 0 and int(shed[3]) > 0, summary

    # Valid JSONL; AI calls beyond what was kept are missing, never invented or malformed.
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    events = [orjson.loads(line) for line in lines]
    assert all(e["event_type"] and e["event_id"] for e in events)
    ours = [e for e in events if e["process"]["pid"] in result.pids]
    requests = [e for e in ours if e["event_type"] == "ai.request"]
    assert 0 < len(requests) <= result.requests
    metadata_only = [e for e in requests if e["confidence"]["completeness"] == "metadata_only"]
    assert metadata_only, "no ai.request marked metadata_only"
    assert all("sensor_overload" in e["confidence"]["reasons"] for e in metadata_only)
    assert all(e["data"]["provider"]["id"] == "openai" for e in metadata_only)
    # The event-rate ceiling holds over the whole run (plus the bucket's first second).
    assert len(events) <= MAX_EPS * (elapsed + 1), (len(events), elapsed)
