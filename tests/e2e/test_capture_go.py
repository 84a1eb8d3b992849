"""Go's crypto/tls captured end to end: a Go program (standard library net/http, built with
Debian's Go toolchain, CGO_ENABLED=0 so no OpenSSL anywhere) calls the fake OpenAI API over
HTTP/1.1 and HTTP/2, plain and streamed; the sensor finds the executable at exec, probes
its crypto/tls.(*Conn) Write/Read/Close (RET instructions, never uretprobes) and reports the
calls. Also: Go programs keep working under the probes (many calls, GC pressure, calls at
every stack depth, probes attached and detached mid-run), a stripped Go binary is reported
as not probeable (not a crash), and `oisp-sensor check` lists both kinds.

A Go executable is only known once it runs: the sensor probes it when it sees the exec,
about 20-40 ms later here. The first run of a new binary therefore waits (1 s) before
its first call (-delay); later runs of the same file are probed from their first
instruction (uprobes belong to the file).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.goclient import GoBuildError, build_go_client, go_toolchain
from tests.support.sensor import RunningSensor, ai_events

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(go_toolchain() is None, reason="golang-go not installed (make deps installs it)"),
]

FIRST_RUN_DELAY = "1s"


@pytest.fixture(scope="module")
def go_client() -> Path:
    try:
        return build_go_client()
    except GoBuildError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def go_client_stripped() -> Path:
    try:
        return build_go_client(stripped=True)
    except GoBuildError as exc:
        pytest.fail(str(exc))


def _run(fake: FakeProviderHandle, client: Path, *args: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Run the client inside the namespace; its JSON lines (one per call)."""
    res = fake.run([str(client), "-url", fake.url("api.openai.com", "/v1/chat/completions"), *args],
                   timeout=timeout)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def _pair(events: list[dict[str, Any]], text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    reqs = [e for e in ai_events(events) if e["event_type"] == "ai.request"
            and e["data"]["messages"][0]["content"] == text]  # fmt: skip
    assert len(reqs) == 1, [e["data"].get("messages") for e in ai_events(events, types=("ai.request",))]
    resps = [e for e in ai_events(events) if e["data"].get("related_event_id") == reqs[0]["event_id"]]
    assert len(resps) == 1
    return reqs[0], resps[0]


@pytest.fixture(scope="module")
def recording(
    fake_provider: FakeProviderHandle,
    h2_fake: FakeProviderHandle,
    go_client: Path,
    go_client_stripped: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """One sensor run: HTTP/1.1 and HTTP/2, plain and streamed, and a stripped binary."""
    out = tmp_path_factory.mktemp("go") / "events.jsonl"
    outputs: dict[str, list[dict[str, Any]]] = {}
    with RunningSensor(out) as sensor:
        outputs["h1"] = _run(fake_provider, go_client, "-content", "go h1 plain", "-delay", FIRST_RUN_DELAY)
        outputs["h1s"] = _run(fake_provider, go_client, "-content", "go h1 stream", "-stream")
        outputs["h2"] = _run(h2_fake, go_client, "-content", "go h2 plain")
        outputs["h2s"] = _run(h2_fake, go_client, "-content", "go h2 stream", "-stream")
        outputs["stripped"] = _run(
            fake_provider, go_client_stripped, "-content", "go stripped", "-delay", FIRST_RUN_DELAY
        )
    assert sensor.returncode == 0, sensor.stderr
    return {"events": sensor.events(), "outputs": outputs, "stderr": sensor.stderr}


def test_http1_chat(recording: dict[str, Any], go_client: Path) -> None:
    (out,) = recording["outputs"]["h1"]
    assert out["proto"] == "HTTP/1.1" and out["content"] == "Hello! You said: go h1 plain"
    req, resp = _pair(recording["events"], "go h1 plain")
    for event in (req, resp):
        assert event["process"]["exe"] == str(go_client)
        assert event["process"]["pid"] == out["pid"]
        assert event["confidence"]["completeness"] == "full"
    assert req["data"]["provider"]["id"] == "openai"
    assert req["data"]["model"]["id"] == "gpt-4o-mini"
    assert req["data"]["streaming"] is False
    assert req["data"]["http"]["user_agent"].startswith("Go-http-client/1.1")
    assert req["data"]["auth"]["key_prefix"] == "sk-proj-"
    assert resp["data"]["status_code"] == 200
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: go h1 plain"
    # The fake's deterministic counts: words + messages in, 3 + words out.
    assert resp["data"]["usage"]["prompt_tokens"] == 4
    assert resp["data"]["usage"]["completion_tokens"] == 6
    assert resp["data"]["usage"]["total_tokens"] == 10


def test_http1_streamed(recording: dict[str, Any]) -> None:
    (out,) = recording["outputs"]["h1s"]
    assert out["content"] == "Hello! You said: go h1 stream"
    req, resp = _pair(recording["events"], "go h1 stream")
    assert req["data"]["streaming"] is True
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: go h1 stream"
    assert resp["data"]["usage"]["total_tokens"] == 10
    chunks = [e for e in recording["events"] if e["event_type"] == "ai.streaming_chunk"
              and e["process"]["pid"] == out["pid"]]  # fmt: skip
    assert chunks and all(c["data"]["related_event_id"] == req["event_id"] for c in chunks)
    # Safe redaction may hold delta text back; the lengths say every delta was seen.
    assert sum(c["data"]["delta_length"] for c in chunks) == len("Hello! You said: go h1 stream")


def test_http2_plain_and_streamed(recording: dict[str, Any], go_client: Path) -> None:
    for key, text in (("h2", "go h2 plain"), ("h2s", "go h2 stream")):
        (out,) = recording["outputs"][key]
        assert out["proto"] == "HTTP/2.0", out  # ALPN picked h2: Go's bundled HTTP/2 client
        req, resp = _pair(recording["events"], text)
        assert req["process"]["exe"] == str(go_client)
        assert req["data"]["model"]["id"] == "gpt-4o-mini"
        assert req["data"]["streaming"] is (key == "h2s")
        assert resp["data"]["choices"][0]["message"]["content"] == f"Hello! You said: {text}"
        assert resp["data"]["usage"]["total_tokens"] == 10
        assert resp["confidence"]["completeness"] == "full"


def test_stripped_binary_is_reported_not_probed(recording: dict[str, Any], go_client_stripped: Path) -> None:
    (out,) = recording["outputs"]["stripped"]
    assert out["content"] == "Hello! You said: go stripped"  # the program itself is unaffected
    assert [e for e in ai_events(recording["events"]) if e["process"]["pid"] == out["pid"]] == []
    stderr = recording["stderr"]
    assert re.search(rf"cannot probe {re.escape(str(go_client_stripped))}: stripped Go binary", stderr), (
        stderr
    )
    assert "Traceback" not in stderr


def test_named_binary_is_probed_before_it_runs(
    fake_provider: FakeProviderHandle, go_client: Path, tmp_path: Path
) -> None:
    """`--ssl-path` probes the file at start: the very first call of its first run is seen."""
    with RunningSensor(tmp_path / "e.jsonl", extra_args=["--ssl-path", str(go_client)]) as sensor:
        (out,) = _run(fake_provider, go_client, "-content", "go from the start")
    req, resp = _pair(sensor.events(), "go from the start")
    assert req["process"]["pid"] == out["pid"]
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: go from the start"


def test_go_programs_keep_running_under_the_probes(
    fake_provider: FakeProviderHandle, go_client: Path, tmp_path: Path
) -> None:
    """Hundreds of calls with probes attached: 4 goroutines at once and a garbage collection
    every few allocations (GOGC=1: goroutine stacks are shrunk and moved), then raw calls on
    one tls.Conn from goroutines at every recursion depth, so Write and Read also start
    with a full stack (runtime.morestack: the function runs its prologue twice). Every
    call must succeed and be reported exactly once (without the kernel side's check of the
    stack-growth branch, about one raw request in 25 is reported twice)."""
    n_http, n_raw = 200, 300
    with RunningSensor(tmp_path / "e.jsonl") as sensor:
        http_out = _run(fake_provider, go_client, "-content", "stress", "-n", str(n_http), "-parallel", "4",
                        "-delay", FIRST_RUN_DELAY)  # fmt: skip
        res = fake_provider.run(
            [str(go_client), "-raw", "-content", "deep", "-n", str(n_raw), "-max-depth", "300"],
            # Small fixed initial stacks, so that the depth sweep crosses stack boundaries.
            env={"GOGC": "1", "GODEBUG": "adaptivestackstart=0"},
            timeout=300,
        )
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        raw_out = [json.loads(line) for line in res.stdout.splitlines()]
    assert sensor.returncode == 0, sensor.stderr
    assert len(http_out) == n_http and all(o["status"] == 200 for o in http_out)
    assert len(raw_out) == n_raw and all(
        o["content"] == f"Hello! You said: deep {i}" for i, o in enumerate(raw_out)
    )

    events = sensor.events()
    for prefix, n, pid in (("stress", n_http, http_out[0]["pid"]), ("deep", n_raw, raw_out[0]["pid"])):
        calls = ai_events(events, pid=pid)
        reqs = [e for e in calls if e["event_type"] == "ai.request"]
        texts = sorted(e["data"]["messages"][0]["content"] for e in reqs)
        assert texts == sorted(f"{prefix} {i}" for i in range(n)), prefix
        answers = {e["data"]["related_event_id"]: e for e in calls if e["event_type"] == "ai.response"}
        for req in reqs:
            resp = answers[req["event_id"]]
            assert resp["data"]["choices"][0]["message"]["content"] == (
                "Hello! You said: " + req["data"]["messages"][0]["content"]
            )
            assert resp["confidence"]["completeness"] == "full"


def test_probes_come_and_go_under_a_running_go_program(
    fake_provider: FakeProviderHandle, go_client: Path, tmp_path: Path
) -> None:
    """The sensor attaches and detaches twice while a Go program is in the middle of its
    calls (goroutines blocked in Read, Writes in flight): the program never notices."""
    out_path = tmp_path / "client.out"
    with open(out_path, "w") as out_file:  # a file, not a pipe: nobody reads while we wait
        proc = fake_provider.popen(
            [str(go_client), "-url", fake_provider.url("api.openai.com", "/v1/chat/completions"),
             "-content", "churn", "-duration", "120s", "-pause", "2ms", "-parallel", "2"],
            stdout=out_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        recorded = []
        for round_ in range(2):
            # The program is already running: the sensor finds it by its scan at start.
            with RunningSensor(tmp_path / f"e{round_}.jsonl") as sensor:
                time.sleep(1.0)
            recorded.append(sensor.events())
            assert proc.poll() is None, out_path.read_text()[-2000:]  # still running, not crashed
        proc.send_signal(signal.SIGTERM)  # the client stops calling and exits 0
        assert proc.wait(timeout=60) == 0, out_path.read_text()[-2000:]
    outputs = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert len(outputs) > 100 and all(o["status"] == 200 and not o.get("error") for o in outputs)
    for events in recorded:
        calls = ai_events(events, pid=outputs[0]["pid"], types=("ai.response",))
        assert len(calls) >= 10
        # Joining mid-connection, the first exchange of a connection may be seen only in
        # part: it must then say so. Every exchange seen whole is exact.
        whole = [c for c in calls if c["confidence"]["completeness"] == "full"]
        assert len(whole) >= len(calls) - 4, [c["confidence"] for c in calls if c not in whole]
        for c in whole:
            assert c["data"]["choices"][0]["message"]["content"].startswith("Hello! You said: churn"), c


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def test_check_lists_go_binaries(
    fake_provider: FakeProviderHandle, go_client: Path, go_client_stripped: Path
) -> None:
    """`oisp-sensor check` names the running Go programs: probeable, or why not."""
    procs = [
        fake_provider.popen(
            [str(client), "-content", "check", "-delay", "30s"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for client in (go_client, go_client_stripped)
    ]
    try:
        deadline = time.monotonic() + 30
        while not all(_exe(proc.pid) in (str(go_client), str(go_client_stripped)) for proc in procs):
            assert time.monotonic() < deadline, "the Go programs did not start"
            time.sleep(0.05)
        res = subprocess.run(
            [sys.executable, "-m", "oisp_sensor", "check"], capture_output=True, text=True, timeout=120
        )
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
    lines = res.stdout.splitlines()
    probed = [line for line in lines if "Go crypto/tls go1." in line and line.endswith(")")
              and f" in {go_client} (" in line]  # fmt: skip
    assert len(probed) == 1 and probed[0].startswith("[ok  ] tls:executable"), res.stdout
    assert "Write, Read, Close;" in probed[0]
    stripped = [line for line in lines if f" in {go_client_stripped}:" in line]
    assert len(stripped) == 1 and stripped[0].startswith("[warn]"), res.stdout
    assert "NOT probeable: stripped Go binary" in stripped[0]
    assert re.search(r"tls-targets .*Go crypto/tls: \d+.*found but not probeable", res.stdout), res.stdout
