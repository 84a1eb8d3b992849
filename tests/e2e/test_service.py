"""Service mode: `oisp-sensor daemon start|status|reload|stop` as a user runs it, and a
config reload on SIGHUP while calls are in flight (every call exported once, none lost)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import SENSOR_CMD, RunningSensor

from oisp_sensor.config import load_config
from oisp_sensor.service import DEFAULT_OUTPUT, _alive, apply_daemon_defaults, running_pid

CURL = (
    "curl -sS --fail-with-body https://api.openai.com/v1/chat/completions "
    '-H "Authorization: Bearer $OPENAI_API_KEY" -H "Content-Type: application/json" '
    '-d "{\\"model\\":\\"gpt-4o-mini\\",\\"messages\\":[{\\"role\\":\\"user\\",\\"content\\":\\"$MSG\\"}]}"'
    " > /dev/null"
)


def _daemon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SENSOR_CMD, "daemon", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    # only complete lines: the file may be read while the sensor writes it
    return [orjson.loads(line) for line in path.read_bytes().split(b"\n")[:-1] if line.strip()]


def _asked(events: list[dict[str, Any]], prefix: str) -> list[str]:
    return [
        m["content"]
        for e in events
        if e["event_type"] == "ai.request"
        for m in e["data"]["messages"]
        if str(m.get("content", "")).startswith(prefix)
    ]


def test_daemon_defaults_only_fill_what_is_not_set(tmp_path: Path) -> None:
    config, _ = load_config(None, {}, environ={})
    apply_daemon_defaults(config)
    assert config.export.jsonl.path == DEFAULT_OUTPUT == "/var/lib/oisp-sensor/events.jsonl"
    assert config.export.jsonl.rotate_size_mb == 100
    toml = tmp_path / "c.toml"
    toml.write_text('[export.jsonl]\npath = "/tmp/mine.jsonl"\nrotate_size_mb = 0\n')
    config, _ = load_config(str(toml), {}, environ={})
    apply_daemon_defaults(config)
    assert config.export.jsonl.path == "/tmp/mine.jsonl" and config.export.jsonl.rotate_size_mb == 0


@pytest.mark.kernel
def test_daemon_start_status_reload_stop(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("capture needs root")
    pid_file, log_file = tmp_path / "run" / "oisp.pid", tmp_path / "log" / "sensor.log"
    out, status = tmp_path / "events.jsonl", tmp_path / "run" / "status.json"
    common = ["--pid-file", str(pid_file), "--status-file", str(status)]
    started = _daemon("start", *common, "--log-file", str(log_file), "--output", str(out))
    assert started.returncode == 0 and "started (pid" in started.stderr, started.stderr
    pid = running_pid(str(pid_file))
    try:
        assert pid is not None and os.path.exists(f"/proc/{pid}")
        again = _daemon("start", *common, "--log-file", str(log_file), "--output", str(out))
        assert again.returncode == 0 and f"already running (pid {pid})" in again.stderr
        # a second foreground daemon on the same pid file refuses (the lock, not the file)
        clash = _daemon("start", "--foreground", *common, "--output", str(tmp_path / "x.jsonl"))
        assert clash.returncode == 1 and "already running" in clash.stderr
        call = fake_provider.run(["sh", "-c", CURL], env={"MSG": "daemon call"})
        assert call.returncode == 0, call.stderr
        deadline = time.monotonic() + 30
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shown = _daemon("status", *common)
        assert shown.returncode == 0 and f"sensor pid {pid}" in shown.stdout, shown
        # logrotate: the log is moved away, `daemon reload` makes the sensor reopen it
        log_file.rename(log_file.with_suffix(".log.1"))
        assert _daemon("reload", *common).returncode == 0
        deadline = time.monotonic() + 30
        while (
            "reload" not in (log_file.read_text() if log_file.exists() else "")
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert "reload: no exporter or redaction change" in log_file.read_text()
        stopped = _daemon("stop", *common)
        assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stderr
    finally:
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert not pid_file.exists()
    gone = _daemon("status", *common)
    assert gone.returncode == 3 and "not running" in gone.stderr
    assert _daemon("stop", *common).returncode == 0  # stopping a stopped service is fine
    assert _asked(_lines(out), "daemon call") == ["daemon call"]
    assert "stopped:" in log_file.read_text()  # the summary, in the new log


@pytest.mark.kernel
def test_sighup_reload_swaps_exporters_without_losing_or_doubling(
    fake_provider: FakeProviderHandle, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("capture needs root")
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    config = tmp_path / "sensor.toml"
    config.write_text(f'[export.jsonl]\npath = "{first}"\n[redaction]\nmode = "safe"\n')
    sensor = RunningSensor(tmp_path / "unused.jsonl")
    sensor.args = [*SENSOR_CMD, "daemon", "start", "--foreground", "--config", str(config),
                   "--pid-file", str(tmp_path / "d.pid"), "--status-file", str(tmp_path / "s.json"),
                   # only the fake provider's namespace: other curls on this machine are not ours
                   "--netns", f"/run/netns/{fake_provider.ns.name}"]  # fmt: skip
    n = 16
    with sensor:
        loop = fake_provider.popen(
            [
                "sh",
                "-c",
                f'for i in $(seq 0 {n - 1}); do MSG="reload call $i"; {CURL} || exit 1; sleep 0.15; done',
            ]
        )
        deadline = time.monotonic() + 60
        while len(_asked(_lines(first), "reload call")) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        # reload 1: another file and another redaction mode, while the calls go on
        config.write_text(f'[export.jsonl]\npath = "{second}"\n[redaction]\nmode = "minimal"\n')
        assert sensor.proc is not None
        sensor.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "reloaded the config" not in sensor.stderr_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        # reload 2: a broken config is refused, the running one kept
        config.write_text("[export.jsonl\n")
        sensor.proc.send_signal(signal.SIGHUP)
        out, err = loop.communicate(timeout=90)
        assert loop.returncode == 0, err + out
        time.sleep(0.3)
    assert sensor.returncode == 0, sensor.stderr
    assert "reloaded the config (jsonl and redaction)" in sensor.stderr
    assert "reload failed, the running config is kept" in sensor.stderr
    a, b = _lines(first), _lines(second)
    before = _asked(a, "reload call")
    # minimal redaction keeps no content: the calls after the reload are counted by request
    b_requests = [e for e in b if e["event_type"] == "ai.request" and e["process"]["name"] == "curl"]
    assert before and b_requests, (len(before), len(b_requests))
    assert not any("content" in m for e in b_requests for m in e["data"]["messages"])  # minimal
    assert len(before) + len(b_requests) == n, (before, len(b_requests))
    assert before == [f"reload call {i}" for i in range(len(before))]  # in order, none twice
    ids = [e["event_id"] for e in a + b]
    assert len(ids) == len(set(ids))  # nothing doubled across the swap
    responses = sum(e["event_type"] == "ai.response" and e["process"]["name"] == "curl" for e in a + b)
    assert responses == n
    assert "0 lost" in sensor.stderr
