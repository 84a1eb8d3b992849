"""The command line as a user meets it: check, status, and every user mistake ends in one
line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.sensor import REPO, RunningSensor


def sensor_cli(*args: str, user: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "oisp_sensor", *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/tmp", env=env)


def assert_one_line_error(res: subprocess.CompletedProcess[str], needle: str) -> None:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert needle in lines[0], lines[0]


@pytest.mark.kernel
def test_check_is_ready_and_lists_openssl() -> None:
    res = sensor_cli("check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "verdict: READY" in res.stdout
    assert "bpf-load" in res.stdout and "libssl.so" in res.stdout
    assert "/usr/bin/node" in res.stdout  # Node's static OpenSSL is found by its exports


def test_check_not_root_fails_with_reason() -> None:
    res = sensor_cli("check", user="65534")
    assert res.returncode == 1
    assert "verdict: NOT READY" in res.stdout
    assert "privileges" in res.stdout and "sudo" in res.stdout
    assert "Traceback" not in res.stderr


def test_record_not_root(tmp_path: Path) -> None:
    res = sensor_cli("record", "--output", "/tmp/oisp-notroot.jsonl", "--no-ui", user="65534")
    assert_one_line_error(res, "needs root")


@pytest.mark.kernel
def test_record_unwritable_output() -> None:
    res = sensor_cli("record", "--output", "/proc/oisp/events.jsonl", "--no-ui")
    assert_one_line_error(res, "/proc/oisp")


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[export.jsonl]\nrotate_count = 'many'\n")
    res = sensor_cli("record", "--config", str(cfg), "--no-ui")
    assert_one_line_error(res, "export.jsonl.rotate_count")
    assert res.returncode == 2
    cfg.write_text("[capture]\nssl_pathz = []\n")
    assert_one_line_error(sensor_cli("record", "--config", str(cfg)), "capture.ssl_pathz: unknown key")


def test_missing_config_file() -> None:
    assert_one_line_error(sensor_cli("record", "--config", "/nonexistent.toml"), "not found")


def test_run_without_command() -> None:
    assert_one_line_error(sensor_cli("run", "--output", "/tmp/x.jsonl"), "needs a command")


def test_decode_raw_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"not a capture")
    assert_one_line_error(sensor_cli("decode-raw", str(bad), "-o", str(tmp_path / "o.jsonl")), "bad magic")


def test_status_without_sensor(tmp_path: Path) -> None:
    res = sensor_cli("status", "--status-file", str(tmp_path / "none.json"))
    assert_one_line_error(res, "no running sensor")


@pytest.mark.kernel
def test_status_of_a_running_sensor(tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    with RunningSensor(tmp_path / "e.jsonl", ["--status-file", str(status_file)]) as sensor:
        for _ in range(50):
            if status_file.exists():
                break
            subprocess.run(["sleep", "0.1"])
        res = sensor_cli("status", "--status-file", str(status_file))
        assert res.returncode == 0, res.stderr
        assert f"sensor pid {sensor.proc.pid if sensor.proc else 0}" in res.stdout
        assert "probes:" in res.stdout and "lost 0 records" in res.stdout
        raw = json.loads(sensor_cli("status", "--json", "--status-file", str(status_file)).stdout)
        assert raw["kernel"]["lost_records"] == 0
        assert raw["capture"]["probes"] >= 9
    assert sensor.returncode == 0
    assert not status_file.exists()  # removed at a clean exit


@pytest.mark.kernel
def test_unreachable_kafka_is_one_line_and_not_fatal(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    cfg.write_text(f'[export.kafka]\nenabled = true\nbrokers = "127.0.0.1:{port}"\ntopic = "oisp-events"\n')
    sensor = RunningSensor(tmp_path / "e.jsonl", ["--config", str(cfg)])
    with sensor:
        time.sleep(1.5)
    assert sensor.returncode == 0
    assert f"kafka exporter: cannot reach brokers 127.0.0.1:{port}" in sensor.stderr
    assert "Traceback" not in sensor.stderr
