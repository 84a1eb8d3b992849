"""What happens at the limits of capture: calls larger than the kernel copies, a ring buffer
that overflows. Nothing is lost silently: the kernel counts it, the sensor reports it,
and the events say they are incomplete."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import RunningSensor, ai_events

pytestmark = pytest.mark.kernel

# Client and server ends of TLS over memory BIOs in one process: exact control over the
# size of each SSL_write, no network.
MEMORY_TLS = r"""
import ssl, sys
ca, cert, key, size, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain(cert, key)
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.load_verify_locations(ca)
ci, co, si, so = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
c = cctx.wrap_bio(ci, co, server_hostname="api.openai.com")
s = sctx.wrap_bio(si, so, server_side=True)
def pump():
    d = co.read()
    if d: si.write(d)
    d = so.read()
    if d: ci.write(d)
for _ in range(10):
    for end in (c, s):
        try: end.do_handshake()
        except ssl.SSLWantReadError: pass
    pump()
payload = b"x" * size
for _ in range(count):
    c.write(payload)
    pump()
    got = 0
    while got < size:
        got += len(s.read(size))
"""


def _memory_tls(fake: FakeProviderHandle, size: int, count: int) -> None:
    tls = fake.tls
    res = fake.run(
        [sys.executable, "-c", MEMORY_TLS, str(tls.ca_path), str(tls.cert_path), str(tls.key_path), str(size),
         str(count)],
        timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr


def _summary(stderr: str) -> dict[str, int]:
    match = re.search(r"kernel: (\d+) records, (\d+) lost, (\d+) bytes truncated", stderr)
    assert match, stderr
    return {"records": int(match[1]), "lost": int(match[2]), "truncated": int(match[3])}


def test_call_larger_than_copied_is_counted(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    size = 3 * 1024 * 1024
    with RunningSensor(tmp_path / "e.jsonl") as sensor:
        _memory_tls(fake_provider, size, 1)
    summary = _summary(sensor.stderr)
    # 1 MiB of each 3 MiB call is copied (64 chunks of 16 KiB); the rest is counted, for the
    # client's write and the server's read alike (a read returns at most one TLS record, so
    # reads are not truncated: only the write is).
    assert summary["truncated"] == size - 1024 * 1024
    assert summary["lost"] == 0


def test_ring_buffer_overflow_is_counted(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    env = {
        "OISP_CAPTURE__RING_BUFFER_MB_PER_CPU": "1",
        "OISP_CAPTURE__WAKEUP_KB": "65536",
        "OISP_CAPTURE__POLL_INTERVAL_MS": "5000",
    }
    status = tmp_path / "status.json"
    with RunningSensor(tmp_path / "e.jsonl", ["--status-file", str(status)], env=env) as sensor:
        _memory_tls(fake_provider, 1024 * 1024, 20)  # 20 MiB written, 20 MiB read: far over 2 MiB
    summary = _summary(sensor.stderr)
    assert summary["lost"] > 0
    assert summary["records"] > 0
    assert "Traceback" not in sensor.stderr


def test_huge_request_body_still_gives_events(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    """A 3 MB prompt: the body is cut at 1 MiB in the kernel; the exchange is still reported,
    marked partial, and the response decoded normally."""
    script = (
        "import json, os, openai\n"
        "c = openai.OpenAI(max_retries=0)\n"
        "r = c.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'word ' * 600000}])\n"
        "print(json.dumps({'pid': os.getpid(), 'id': r.id}))\n"
    )
    with RunningSensor(tmp_path / "e.jsonl") as sensor:
        res = fake_provider.run([sys.executable, "-c", script], timeout=120)
        assert res.returncode == 0, res.stderr
    client = json.loads(res.stdout.strip().splitlines()[-1])
    events = ai_events(sensor.events(), client["pid"])
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"]
    req, resp = events
    assert req["data"]["model"]["id"] == "gpt-4o-mini"
    assert req["confidence"]["completeness"] == "partial"
    assert resp["data"]["request_id"] == client["id"]
    assert resp["data"]["usage"]["prompt_tokens"] == 600001
    assert _summary(sensor.stderr)["truncated"] > 0
