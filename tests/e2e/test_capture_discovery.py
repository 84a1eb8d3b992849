"""Capture finds OpenSSL copies it did not know at start: a private libssl copy loaded by a
process started after the sensor (LD_LIBRARY_PATH, as venvs and vendored apps do)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import RunningSensor, ai_events

pytestmark = pytest.mark.kernel

# Imports ssl late (after a pause), like an application that loads its HTTP client lazily.
LATE_CLIENT = """
import time, json, os
time.sleep(float(os.environ.get("DELAY", "1.0")))
import openai
c = openai.OpenAI(max_retries=0)
r = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "private libssl"}])
print(json.dumps({"pid": os.getpid(), "id": r.id}))
"""


def test_private_libssl_copy_loaded_after_start(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    private = tmp_path / "lib"
    private.mkdir()
    shutil.copy("/lib/x86_64-linux-gnu/libssl.so.3", private / "libssl.so.3")
    out = tmp_path / "events.jsonl"
    with RunningSensor(out) as sensor:
        res = fake_provider.run(
            [sys.executable, "-c", LATE_CLIENT],
            env={"LD_LIBRARY_PATH": str(private), "DELAY": "0.5"},
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        client = json.loads(res.stdout.strip().splitlines()[-1])
    # Only the private copy was mapped by the client: its events prove that copy was probed.
    events = ai_events(sensor.events(), client["pid"])
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"]
    assert events[1]["data"]["request_id"] == client["id"]


CGROUP_ROOT = Path("/sys/fs/cgroup/unified")


@pytest.mark.skipif(not (CGROUP_ROOT / "cgroup.procs").exists(), reason="no cgroup v2 hierarchy mounted")
def test_events_carry_the_container_id(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    """A client inside a container's cgroup (named as Docker names it) is attributed to it."""
    cid = "ab12" * 16
    group = CGROUP_ROOT / "system.slice" / f"docker-{cid}.scope"
    group.mkdir(parents=True, exist_ok=True)
    try:
        with RunningSensor(tmp_path / "events.jsonl") as sensor:
            # `ip netns exec` gives the command a sysfs of its own: move it from out here,
            # during the pause before it imports ssl.
            proc = fake_provider.popen([sys.executable, "-c", LATE_CLIENT], env={"DELAY": "1.0"})
            (group / "cgroup.procs").write_text(str(proc.pid))
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        client = json.loads(out.strip().splitlines()[-1])
    finally:
        group.rmdir()
    events = ai_events(sensor.events(), client["pid"])
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"]
    for event in events:
        assert event["process"]["container_id"] == cid
        assert event["process"]["container_runtime"] == "docker"


def test_client_in_its_own_mount_namespace_with_its_own_libssl(
    fake_provider: FakeProviderHandle, tmp_path: Path
) -> None:
    """Like a container: the client's mount namespace shows another file at the system
    libssl path. The kernel reports the library as the client opens it, found through
    /proc/PID/root (the path names another file out here) and probed before the SDK's
    first call, with no delay added in the client."""
    system_lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
    copy = tmp_path / "libssl.so.3"
    shutil.copy(system_lib, copy)
    script = f"mount --bind {copy} {system_lib} && exec {sys.executable} -c '{LATE_CLIENT}'"
    with RunningSensor(tmp_path / "events.jsonl") as sensor:
        proc = fake_provider.popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script], env={"DELAY": "0"}
        )
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    client = json.loads(out.strip().splitlines()[-1])
    events = ai_events(sensor.events(), client["pid"])
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"]
    assert events[1]["data"]["request_id"] == client["id"]
    assert events[1]["data"]["choices"][0]["message"]["content"] == "Hello! You said: private libssl"
