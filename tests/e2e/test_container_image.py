"""End to end: the container image, built by deploy/build-image.sh, captures a host program.

The sensor runs as the DaemonSet runs it (privileged, the host's PID namespace and network,
BTF, bpffs and debugfs mounted from the host) with `record --no-ui -o /out/events.jsonl`;
a real OpenAI SDK client on the host calls the fake provider (in its network namespace);
the events file must hold the call's ai.request/ai.response with the host's name, the
node name from NODE_NAME and the host process's context (pid, exe, cmdline).

Not in `make test`: building the image takes ~3 minutes here (the image is reused while its
sources are unchanged). Run it with `make image-test`. Skipped when podman is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import REPO, ai_events

from oisp_sensor.enrich.host import device_id

pytestmark = [
    pytest.mark.image,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        shutil.which("podman") is None,
        reason="podman is not installed (apt-get install podman): the image cannot be built",
    ),
]

IMAGE = "localhost/oisp-sensor:test"
NODE_NAME = "image-test-node"
PY_CLIENT = "tests/clients/py_openai_chat.py"


def _build_args() -> list[str]:
    # No container registry reachable (this development machine): a base made locally with
    # mmdebstrap, when it is installed; otherwise Debian's official image.
    if os.environ.get("OISP_IMAGE_BASE"):
        return ["--base", os.environ["OISP_IMAGE_BASE"]]
    return ["--mmdebstrap-base"] if shutil.which("mmdebstrap") else []


def _run_opts() -> list[str]:
    """Runtime options for this host (OISP_PODMAN_RUN_OPTS replaces them).

    crun 1.8 refuses cgroup v1+v2 hybrid hosts (this VM), runc does not; and a root without
    CAP_SYS_RESOURCE cannot raise rlimits to podman's defaults (1M files), so ask for the
    limits this process has.
    """
    if "OISP_PODMAN_RUN_OPTS" in os.environ:
        return os.environ["OISP_PODMAN_RUN_OPTS"].split()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opts = ["--ulimit", f"nofile={soft}:{hard}", "--ulimit", "nproc=16384:16384"]
    if shutil.which("runc"):
        opts = ["--runtime", "runc", *opts]
    return opts


@pytest.fixture(scope="module")
def image() -> str:
    if os.geteuid() != 0:
        pytest.skip("the sensor container must run as root (privileged, eBPF)")
    res = subprocess.run(
        [str(REPO / "deploy" / "build-image.sh"), "--reuse", "--tag", IMAGE, *_build_args()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert res.returncode == 0, f"image build failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    return IMAGE


class Container:
    """`podman run -d` of the image with the DaemonSet's privileges and host mounts."""

    def __init__(self, image: str, out_dir: Path) -> None:
        self.name = f"oisp-image-test-{uuid.uuid4().hex[:8]}"
        self.out_dir = out_dir
        mounts = ["/sys/kernel/btf:/sys/kernel/btf:ro", "/sys/fs/bpf:/sys/fs/bpf"]
        mounts += [f"{d}:{d}" for d in ("/sys/kernel/debug", "/sys/kernel/tracing") if os.path.isdir(d)]
        # the host's machine id: host.device_id as a sensor on the host would report it
        # (without it, the image has none and the id is derived from the hostname)
        if os.path.isfile("/etc/machine-id"):
            mounts.append("/etc/machine-id:/etc/machine-id:ro")
        mounts.append(f"{out_dir}:/out")
        self.cmd = [
            "podman", "run", "-d", "--name", self.name, *_run_opts(),
            "--privileged", "--pid=host", "--network=host", "-e", f"NODE_NAME={NODE_NAME}",
            *[arg for m in mounts for arg in ("-v", m)],
            image, "record", "--no-ui", "-o", "/out/events.jsonl",
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> None:
        res = subprocess.run(self.cmd, capture_output=True, text=True, timeout=120, check=False)
        assert res.returncode == 0, f"podman run failed: {res.stderr}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logs = self.logs()
            if "capture attached" in logs:
                return
            if self.state() != "running":
                pytest.fail(f"the sensor container exited before attaching:\n{logs}")
            time.sleep(0.2)
        pytest.fail(f"the sensor in the container did not attach within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        res = subprocess.run(["podman", "logs", self.name], capture_output=True, text=True, timeout=30)
        return res.stdout + res.stderr

    def state(self) -> str:
        res = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.Status}}", self.name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return res.stdout.strip()

    def stop(self) -> int:
        """SIGTERM (what the kubelet sends), then the sensor's exit code."""
        subprocess.run(["podman", "stop", "-t", "60", self.name], capture_output=True, timeout=120)
        res = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.ExitCode}}", self.name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return int(res.stdout.strip() or -1)

    def remove(self) -> None:
        subprocess.run(["podman", "rm", "-f", self.name], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def recorded(
    image: str, fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    out_dir = tmp_path_factory.mktemp("image_out")
    container = Container(image, out_dir)
    try:
        container.start()
        res = fake_provider.run(
            [".venv/bin/python", PY_CLIENT, "--model", "gpt-4o-mini", "--message", "hello from the host"],
            timeout=120,
        )
        assert res.returncode == 0, res.stderr + res.stdout
        client = json.loads(res.stdout.strip().splitlines()[-1])
        code = container.stop()
        logs = container.logs()
        out = out_dir / "events.jsonl"
        events = [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]
        yield {"code": code, "logs": logs, "client": client, "events": events}
    finally:
        container.remove()


def test_sensor_in_container_exits_cleanly(recorded: dict[str, Any]) -> None:
    assert recorded["code"] == 0, recorded["logs"]
    assert "Traceback" not in recorded["logs"]
    assert "stopped:" in recorded["logs"]


def test_host_call_captured_with_host_and_process_context(recorded: dict[str, Any]) -> None:
    pid = recorded["client"]["pid"]
    events = ai_events(recorded["events"], pid)
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"], recorded["logs"]
    req, resp = events
    assert req["data"]["messages"][0]["content"] == "hello from the host"
    assert req["data"]["provider"]["id"] == "openai"
    assert resp["data"]["related_event_id"] == req["event_id"]
    assert resp["data"]["status_code"] == 200
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: hello from the host"
    for e in events:
        # hostNetwork: the host's name, not the container's; node name from the downward API
        assert e["host"]["hostname"] == socket.gethostname()
        assert e["host"]["node_name"] == NODE_NAME
        assert e["host"]["device_id"] == device_id()
        # hostPID: the host process, seen through the host's /proc
        proc = e["process"]
        assert proc["pid"] == pid and proc["ppid"] > 0
        venv_python = REPO / ".venv" / "bin" / "python"
        assert proc["exe"] in (str(venv_python), os.path.realpath(venv_python))
        assert any(PY_CLIENT in arg for arg in proc["cmdline"])
        assert proc["cwd"] == str(REPO)
