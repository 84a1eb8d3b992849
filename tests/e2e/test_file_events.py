"""File events from the real kernel: an agent-like script calls the fake provider, then
writes and reads files and runs tools (a shell redirection, cat, cp). Its file activity
and its tools' is on record, attributed to the right processes; an unrelated process's
is not (default scope), unless every process is asked for; --no-file turns them off."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import RunningSensor

pytestmark = pytest.mark.kernel

AGENT = r"""
import json, os, ssl, subprocess, sys, time, urllib.request
work = sys.argv[1]
body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "plan"}]}).encode()
req = urllib.request.Request("https://api.openai.com/v1/chat/completions", data=body,
                             headers={"content-type": "application/json",
                                      "authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
urllib.request.urlopen(req, context=ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])).read()
# A model's answer takes far longer than the sensor's reaction to the request (one poll
# interval, 50 ms); the fake answers at once, so wait like a real agent would.
time.sleep(0.5)
with open(os.path.join(work, "agent.txt"), "w") as f:
    f.write("x" * 1000)
with open(os.path.join(work, "agent.txt")) as f:
    f.read()
tool = subprocess.Popen(["sh", "-c", "echo tool > tool.txt; cat agent.txt > copy.txt; cp copy.txt copy2.txt"],
                        cwd=work)
tool.wait()
print(json.dumps({"pid": os.getpid(), "tool": tool.pid}))
"""

UNRELATED = "import sys; open(sys.argv[1], 'w').write('u' * 10)"


def _files(events: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"].startswith("file.") and e["data"]["path"] == str(path)]


def _run_agent(fake_provider: FakeProviderHandle, work: Path) -> dict[str, int]:
    res = fake_provider.run([sys.executable, "-c", AGENT, str(work)], timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def agent_run(fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("files")
    work = base / "work"
    work.mkdir()
    with RunningSensor(base / "events.jsonl") as sensor:
        ids = _run_agent(fake_provider, work)
        subprocess.run([sys.executable, "-c", UNRELATED, str(work / "unrelated.txt")], check=True)
    return {"ids": ids, "events": sensor.events(), "work": work}


def test_agent_files_are_attributed_to_the_agent(agent_run: dict[str, Any]) -> None:
    events, work, pid = agent_run["events"], agent_run["work"], agent_run["ids"]["pid"]
    assert any(e["event_type"] == "ai.request" and e["process"]["pid"] == pid for e in events)
    touched = _files(events, work / "agent.txt")
    # The agent wrote and read it; the only other reader is its tool's cat, a descendant.
    assert {e["process"]["name"] for e in touched if e["process"]["pid"] != pid} == {"cat"}
    agent_file = [e for e in touched if e["process"]["pid"] == pid]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for e in agent_file:
        by_type.setdefault(e["event_type"], []).append(e)
    opens = by_type["file.open"]
    assert opens[0]["data"]["flags"][:3] == ["O_WRONLY", "O_CREAT", "O_TRUNC"]
    assert by_type["file.write"][0]["data"]["size"] == 1000
    assert by_type["file.read"][0]["data"]["size"] == 1000
    closes = by_type["file.close"]
    assert sum(c["data"]["bytes_written"] for c in closes) == 1000
    assert all(e["data"]["related_process_pid"] == pid for e in agent_file)


def test_tools_run_by_the_agent_are_followed(agent_run: dict[str, Any]) -> None:
    events, work, tool = agent_run["events"], agent_run["work"], agent_run["ids"]["tool"]
    # The shell's `echo tool > tool.txt`: open in the shell, the write through its dup.
    writes = [e for e in _files(events, work / "tool.txt") if e["event_type"] == "file.write"]
    assert writes and writes[0]["process"]["pid"] == tool and writes[0]["data"]["size"] == 5
    # `cat agent.txt > copy.txt`: cat reads agent.txt and writes copy.txt, which it got open.
    copy = _files(events, work / "copy.txt")
    cat_writes = [e for e in copy if e["event_type"] == "file.write" and e["process"]["name"] == "cat"]
    assert cat_writes and cat_writes[0]["data"]["size"] == 1000
    assert any(e["event_type"] == "file.open" and e["data"].get("inherited") for e in copy)
    assert all(e["process"]["ppid"] == tool for e in cat_writes)
    # cp copy.txt copy2.txt (copy_file_range)
    cp = [e for e in _files(events, work / "copy2.txt") if e["event_type"] == "file.write"]
    assert cp and cp[0]["process"]["name"] == "cp" and cp[0]["data"]["size"] == 1000


def test_unrelated_processes_files_are_not_recorded(agent_run: dict[str, Any]) -> None:
    assert _files(agent_run["events"], agent_run["work"] / "unrelated.txt") == []
    # ... nor the libraries and interpreter files every process opens
    assert not any(
        e["event_type"] == "file.open" and e["data"]["path"].startswith(("/usr/lib/", "/proc/"))
        for e in agent_run["events"]
    )


def test_all_files_scope_and_no_file(tmp_path: Path) -> None:
    target = tmp_path / "unrelated.txt"
    with RunningSensor(tmp_path / "all.jsonl", ["--all-files"]) as sensor:
        subprocess.run([sys.executable, "-c", UNRELATED, str(target)], check=True)
    writes = [e for e in _files(sensor.events(), target) if e["event_type"] == "file.write"]
    assert writes and writes[0]["data"]["size"] == 10
    with RunningSensor(tmp_path / "none.jsonl", ["--all-files", "--no-file"]) as sensor:
        subprocess.run([sys.executable, "-c", UNRELATED, str(target)], check=True)
    assert not any(e["event_type"].startswith("file.") for e in sensor.events())


def test_path_globs_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "oisp.toml"
    config.write_text(
        f'[capture]\nfile_scope = "all"\nfile_include = ["{tmp_path}/*"]\nfile_exclude = ["*.skip"]\n'
    )
    with RunningSensor(tmp_path / "globs.jsonl", ["--config", str(config)]) as sensor:
        for name in ("keep.txt", "drop.skip"):
            subprocess.run([sys.executable, "-c", UNRELATED, str(tmp_path / name)], check=True)
    paths = {e["data"]["path"] for e in sensor.events() if e["event_type"].startswith("file.")}
    assert str(tmp_path / "keep.txt") in paths
    assert str(tmp_path / "drop.skip") not in paths
    assert all(p.startswith(str(tmp_path)) for p in paths)
