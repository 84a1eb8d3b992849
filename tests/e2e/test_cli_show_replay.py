"""End to end: the real sensor records real clients calling the fake OpenAI (one recording for
the module); the dashboard of the live sensor shows the calls; `show` prints the file for
people; `replay` serves it through the same API as if live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import REPO, RunningSensor, dashboard_port

pytestmark = pytest.mark.kernel

PY_CLIENT = "tests/clients/py_openai_chat.py"


def api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def _until(fn: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@dataclass
class Recorded:
    path: Path
    events: list[dict[str, Any]]
    live_calls: list[dict[str, Any]]
    live_health: dict[str, Any]
    results: dict[str, Any]


@pytest.fixture(scope="module")
def recorded(fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """The real sensor with the dashboard on a free port while real clients call the fake provider."""
    out = tmp_path_factory.mktemp("ui") / "events.jsonl"
    # Only the clients' namespace: other programs on a shared host make AI calls too.
    netns = ["--netns", f"/run/netns/{fake_provider.ns.name}"]
    sensor = RunningSensor(out, ["--web", "--port", "0", *netns]).start()
    results: dict[str, Any] = {}
    try:
        port = dashboard_port(sensor.stderr_path)
        for name, args in (("plain", []), ("stream", ["--stream"])):
            res = fake_provider.run(
                [
                    ".venv/bin/python",
                    PY_CLIENT,
                    "--model",
                    "gpt-4o-mini",
                    "--message",
                    f"show me {name}",
                    *args,
                ],
                timeout=120,
            )
            assert res.returncode == 0, res.stderr + res.stdout
            results[name] = json.loads(res.stdout.strip().splitlines()[-1])
        # Other programs on the host may make AI calls meanwhile: ask for our clients' only.
        live = [
            _until(
                lambda pid=results[name]["pid"]: [
                    c for c in api(port, f"/api/calls?pid={pid}")["calls"] if c["success"] is not None
                ]
            )[-1]
            for name in ("plain", "stream")
        ]
        health = api(port, "/api/health")
    finally:
        code = sensor.stop(signal.SIGTERM)
    assert code == 0, sensor.stderr
    assert "Traceback" not in sensor.stderr
    return Recorded(out, sensor.events(), live, health, results)


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oisp_sensor", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_live_dashboard_shows_the_calls_with_provider_model_tokens(recorded: Recorded) -> None:
    responses = {
        e["data"]["related_event_id"]: e for e in recorded.events if e["event_type"] == "ai.response"
    }
    assert len(recorded.live_calls) == 2
    for row, name in zip(recorded.live_calls, ("plain", "stream"), strict=True):
        resp = responses[row["request_id"]]
        usage = resp["data"]["usage"]
        assert row["provider"] == "openai" and row["model"] == "gpt-4o-mini"
        assert row["process"]["pid"] == recorded.results[name]["pid"]
        assert (
            row["input_tokens"] == usage["prompt_tokens"]
            and row["output_tokens"] == usage["completion_tokens"]
        )
        assert row["status"] == 200 and row["success"] is True and row["streaming"] is (name == "stream")
        assert row["latency_ms"] == resp["data"]["latency_ms"]
    health = recorded.live_health
    assert health["sensor"]["mode"] == "live" and health["capture"]["probes"] > 0
    assert health["capture"]["records_lost"] == 0 and "dashboard" in health["exports"]


def test_show_prints_one_line_per_event_and_counts_bad_lines(recorded: Recorded, tmp_path: Path) -> None:
    res = _cli("show", "-i", str(recorded.path))
    assert res.returncode == 0 and res.stderr == ""
    lines = res.stdout.splitlines()
    assert len(lines) == len(recorded.events)
    answers = [line for line in lines if " ai.response " in line]
    assert len(answers) == 2
    for line in answers:
        assert "openai/gpt-4o-mini" in line and " 200 " in line and "tok" in line and " ms" in line
        assert "\x1b[" not in line  # no colours when not a terminal
    assert any('"show me plain"' in line for line in lines if " ai.request " in line)
    # --type and --format json
    res = _cli("show", "-i", str(recorded.path), "--type", "ai.request", "--format", "json")
    parsed = [json.loads(line) for line in res.stdout.splitlines()]
    assert [e["event_type"] for e in parsed] == ["ai.request", "ai.request"]
    # Broken lines: counted once at the end, not a traceback.
    broken = tmp_path / "broken.jsonl"
    raw = recorded.path.read_bytes()
    broken.write_bytes(b"not json\n" + raw + b'{"half": \n[1,2]\n')
    res = _cli("show", "-i", str(broken), "--type", "ai")
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert "3 lines of" in res.stderr and "(first: line 1)" in res.stderr
    missing = _cli("show", "-i", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_show_follow_tails_across_truncation_and_rotation(recorded: Recorded, tmp_path: Path) -> None:
    lines = recorded.path.read_bytes().splitlines(keepends=True)
    live = tmp_path / "live.jsonl"
    live.write_bytes(lines[0])
    proc = subprocess.Popen(
        [sys.executable, "-m", "oisp_sensor", "show", "-i", str(live), "--follow", "--format", "json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        got = [json.loads(proc.stdout.readline())["event_id"]]
        with live.open("ab") as f:  # appended, a line in two writes
            f.write(lines[1][:10])
            f.flush()
            time.sleep(0.5)
            f.write(lines[1][10:])
        got.append(json.loads(proc.stdout.readline())["event_id"])
        live.write_bytes(lines[2])  # truncated and rewritten
        got.append(json.loads(proc.stdout.readline())["event_id"])
        os.rename(live, tmp_path / "live.jsonl.1")  # rotated
        live.write_bytes(lines[3])
        got.append(json.loads(proc.stdout.readline())["event_id"])
        want = [json.loads(line)["event_id"] for line in lines[:4]]
        assert got == want
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_replay_serves_the_file_as_if_live(recorded: Recorded, tmp_path: Path) -> None:
    err = tmp_path / "replay.stderr"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oisp_sensor", "replay", "-i", str(recorded.path), "--port", "0", "--speed", "50"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        try:
            port = dashboard_port(err)
            _until(lambda: "serving until Ctrl-C" in err.read_text(), timeout=30)
            health = api(port, "/api/health")
            assert health["sensor"]["mode"] == "replay" and health["capture"] is None
            assert health["sensor"]["replay"]["events"] == len(recorded.events)
            assert health["sensor"]["replay"]["done"] is True
            calls = api(port, "/api/calls")["calls"]
            assert [(c["request_id"], c["input_tokens"], c["output_tokens"]) for c in calls] == [
                (c["request_id"], c["input_tokens"], c["output_tokens"]) for c in recorded.live_calls
            ]
            # Stats windows end at the last replayed event: the calls are in the last hour.
            stats = api(port, "/api/stats?window_s=3600&bucket_s=60")
            assert stats["totals"]["requests"] == 2 and stats["by_model"][0]["key"] == "gpt-4o-mini"
            ex = api(port, f"/api/exchanges/{calls[1]['request_id']}")
            assert ex["response"]["data"]["streaming"] is True and ex["chunks"]["count"] > 0
            assert any(
                p["pid"] == recorded.results["plain"]["pid"] for p in api(port, "/api/processes")["processes"]
            )
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(15)
    assert code == 0
    assert "Traceback" not in err.read_text()


def test_replay_of_a_missing_file_or_busy_port_is_one_line(recorded: Recorded, tmp_path: Path) -> None:
    res = _cli("replay", "-i", str(tmp_path / "none.jsonl"), "--port", "0")
    assert res.returncode == 1 and "no such file" in res.stderr and "Traceback" not in res.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        res = _cli("replay", "-i", str(recorded.path), "--port", str(busy.getsockname()[1]), "--instant")
    assert res.returncode == 1 and "address already in use" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = _cli("replay", "-i", str(recorded.path), "--host", "0.0.0.0", "--port", "0")
    assert res.returncode == 1 and "token" in res.stderr and "Traceback" not in res.stderr


def test_record_with_the_dashboard_port_busy_says_so_and_captures(
    fake_provider: FakeProviderHandle, tmp_path: Path
) -> None:
    import socket

    out = tmp_path / "busy.jsonl"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with RunningSensor(
            out, ["--web", "--port", str(port), "--netns", f"/run/netns/{fake_provider.ns.name}"]
        ) as sensor:
            res = fake_provider.run(
                [".venv/bin/python", PY_CLIENT, "--model", "gpt-4o-mini", "--message", "port busy"],
                timeout=120,
            )
            assert res.returncode == 0, res.stderr
            sensor.stop(signal.SIGTERM)
    assert sensor.returncode == 0
    assert f"dashboard off: cannot listen on 127.0.0.1:{port}" in sensor.stderr
    assert "capture goes on" in sensor.stderr and "Traceback" not in sensor.stderr
    assert [e["event_type"] for e in sensor.events() if e["event_type"].startswith("ai.")] == [
        "ai.request",
        "ai.response",
    ]
