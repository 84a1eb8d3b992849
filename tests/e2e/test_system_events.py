"""Process and network events from the real kernel: a process tree that forks and execs,
exit codes and signals, and outgoing TCP connections (established and refused)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.fixtures import REPO_ROOT, FakeProviderHandle
from tests.support.sensor import RunningSensor

pytestmark = pytest.mark.kernel

TREE = r"""
import os, sys, json, socket, time
pid = os.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-c", "exit 3"])
_, status = os.waitpid(pid, 0)
child2 = os.fork()
if child2 == 0:
    time.sleep(5)
    os._exit(0)
os.kill(child2, 9)
os.waitpid(child2, 0)
s = socket.socket()
try:
    s.connect(("127.0.0.1", 9))  # nothing listens: refused
except OSError:
    pass
s2 = socket.create_connection(("api.openai.com", 443))
local = s2.getsockname()
s2.close()
import ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s3 = socket.create_connection(("127.0.0.1", 443))  # no name resolved: only the SNI names it
try:
    ctx.wrap_socket(s3, server_hostname="sni-only.example").close()
except OSError:
    pass
print(json.dumps({"pid": os.getpid(), "child": pid, "child2": child2, "local_port": local[1]}))
"""


def _of(events: list[dict[str, Any]], event_type: str, pid: int) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["event_type"] == event_type and e["data"].get("pid", e["process"]["pid"]) == pid
    ]


@pytest.fixture(scope="module")
def tree(fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("system") / "events.jsonl"
    with RunningSensor(out) as sensor:
        res = fake_provider.run([sys.executable, "-c", TREE, "tree-marker"], timeout=60)
        assert res.returncode == 0, res.stderr
    return {
        "ids": json.loads(res.stdout.strip().splitlines()[-1]),
        "events": sensor.events(),
        "sensor": sensor,
    }


def test_exec_of_the_script_has_args_and_cwd(tree: dict[str, Any]) -> None:
    pid = tree["ids"]["pid"]
    # `ip netns exec NAME python ...` execs twice in one pid: first `ip`, then python.
    execs = _of(tree["events"], "process.exec", pid)
    assert execs[0]["data"]["argv0"] == "ip"
    execs = execs[1:]
    assert len(execs) == 1
    data = execs[0]["data"]
    assert data["exe"] == str(Path(sys.executable).resolve()) or data["exe"].endswith("python3.11")
    assert data["args"][-1] == "tree-marker" and data["args"][0] == "-c"
    assert data["cwd"] and data["ppid"] > 0
    assert execs[0]["source"]["capture_point"] == "kernel"
    assert execs[0]["process"]["pid"] == pid


def test_fork_exec_and_exit_code_of_the_child(tree: dict[str, Any]) -> None:
    pid, child = tree["ids"]["pid"], tree["ids"]["child"]
    forks = _of(tree["events"], "process.fork", child)
    assert len(forks) == 1 and forks[0]["data"]["ppid"] == pid
    execs = _of(tree["events"], "process.exec", child)
    assert len(execs) == 1
    assert execs[0]["data"]["exe"] in ("/bin/sh", "/usr/bin/dash", "/bin/dash")
    assert execs[0]["data"]["args"] == ["-c", "exit 3"]
    # Gone within milliseconds, yet its cwd is known: the kernel builds it at exec.
    assert execs[0]["data"]["cwd"] == str(REPO_ROOT)
    assert "cwd_unknown" not in execs[0]["confidence"]["reasons"]
    exits = _of(tree["events"], "process.exit", child)
    assert len(exits) == 1 and exits[0]["data"]["exit_code"] == 3
    assert exits[0]["data"]["runtime_ms"] >= 0
    # Order: fork, exec, exit.
    order = [
        e["event_id"]
        for e in tree["events"]
        if e["data"].get("pid") == child and e["event_type"].startswith("process.")
    ]
    assert order == [forks[0]["event_id"], execs[0]["event_id"], exits[0]["event_id"]]


def test_killed_child_reports_the_signal(tree: dict[str, Any]) -> None:
    exits = _of(tree["events"], "process.exit", tree["ids"]["child2"])
    assert len(exits) == 1
    assert exits[0]["data"]["signal"] == 9 and exits[0]["data"]["exit_code"] == 137


def test_network_connect_established_and_refused(tree: dict[str, Any]) -> None:
    pid = tree["ids"]["pid"]
    connects = [
        e for e in tree["events"] if e["event_type"] == "network.connect" and e["process"]["pid"] == pid
    ]
    ok = [
        e
        for e in connects
        if e["data"]["remote"]["port"] == 443 and e["data"]["local"]["port"] == tree["ids"]["local_port"]
    ]
    refused = [e for e in connects if e["data"]["remote"]["port"] == 9]
    assert len(ok) == 1 and len(refused) == 1 and len(connects) == 3
    assert ok[0]["data"]["success"] is True and ok[0]["data"]["tls"] is True
    assert ok[0]["data"]["remote"]["ip"] == "127.0.0.1"
    assert ok[0]["data"]["local"]["port"] == tree["ids"]["local_port"]
    assert ok[0]["data"]["protocol"] == "tcp"
    assert refused[0]["data"]["success"] is False


def test_dns_resolution_and_connect_hostname(tree: dict[str, Any]) -> None:
    pid = tree["ids"]["pid"]
    dns = [e for e in tree["events"] if e["event_type"] == "network.dns" and e["process"]["pid"] == pid]
    assert [e["data"]["query"] for e in dns] == ["api.openai.com", "127.0.0.1"]  # the SNI probe's address
    assert dns[0]["data"]["answers"] == ["127.0.0.1"]  # the namespace's hosts file
    assert dns[0]["data"]["success"] is True
    connect = [e for e in tree["events"] if e["event_type"] == "network.connect" and e["process"]["pid"] == pid
               and e["data"]["remote"]["port"] == 443]  # fmt: skip
    named = {e["data"]["remote"].get("hostname"): e["data"]["remote"] for e in connect}
    # Connected without sending: named by the DNS answer it got.
    assert named["api.openai.com"]["hostname_source"] == "dns"
    assert dns[0]["timestamp"] <= min(e["timestamp"] for e in connect)


def test_connect_hostname_from_the_tls_server_name(tree: dict[str, Any]) -> None:
    """A connection to a bare address is named by the SNI of its ClientHello, which the
    kernel copies from the connection's first send."""
    pid = tree["ids"]["pid"]
    connect = [e for e in tree["events"] if e["event_type"] == "network.connect" and e["process"]["pid"] == pid
               and e["data"]["remote"].get("hostname") == "sni-only.example"]  # fmt: skip
    assert len(connect) == 1
    assert connect[0]["data"]["remote"]["hostname_source"] == "sni"
    assert connect[0]["data"]["tls"] is True and connect[0]["data"]["success"] is True


def test_switches_turn_them_off(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    with RunningSensor(tmp_path / "e.jsonl", ["--no-process", "--no-network"]) as sensor:
        res = fake_provider.run([sys.executable, "-c", TREE], timeout=60)
        assert res.returncode == 0, res.stderr
    types = {e["event_type"] for e in sensor.events()}
    assert not any(t.startswith(("process.", "network.")) for t in types)


def test_script_exe_is_its_interpreter_and_env_is_opt_in(tmp_path: Path) -> None:
    """A #! script runs its interpreter (as /proc/PID/exe says); the environment appears
    only when asked for, with its credentials redacted."""
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    secret = "sk-proj-" + "Q" * 40
    env = {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": secret, "MARKER": "env-marker"}
    with RunningSensor(
        tmp_path / "on.jsonl", env={**os.environ, "OISP_CAPTURE__PROCESS_ENV": "true"}
    ) as sensor:
        subprocess.run([str(script), "arg1"], env=env, cwd=tmp_path, check=True)
    execs = [e for e in sensor.events() if e["event_type"] == "process.exec" and "arg1" in e["data"]["args"]]
    assert execs, "no exec event for the script"
    data = execs[0]["data"]
    assert data["exe"] in ("/usr/bin/dash", "/bin/dash", "/bin/sh")
    assert data["cwd"] == str(tmp_path)
    assert data["env"]["MARKER"] == "env-marker"
    assert data["env"]["OPENAI_API_KEY"] != secret and secret not in json.dumps(sensor.events())
    with RunningSensor(tmp_path / "off.jsonl") as sensor:
        subprocess.run([str(script), "arg1"], env=env, cwd=tmp_path, check=True)
    execs = [e for e in sensor.events() if e["event_type"] == "process.exec" and "arg1" in e["data"]["args"]]
    assert execs and "env" not in execs[0]["data"]
