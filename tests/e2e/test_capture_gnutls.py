"""GnuTLS clients are captured too: gnutls-cli (a real GnuTLS program) calling the fake
OpenAI API with a hand-written HTTP/1.1 request."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import RunningSensor, ai_events

pytestmark = pytest.mark.kernel


@pytest.mark.skipif(
    shutil.which("gnutls-cli") is None, reason="gnutls-bin not installed (make deps installs it)"
)
def test_gnutls_cli_chat_call(fake_provider: FakeProviderHandle, tmp_path: Path) -> None:
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello from gnutls"}]}
    )
    request = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
        f"Authorization: Bearer {fake_provider.openai_api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    )
    req_file = tmp_path / "req.txt"
    req_file.write_text(request)
    script = f"(cat {req_file}; sleep 1) | gnutls-cli --x509cafile {fake_provider.ca_path} api.openai.com"
    with RunningSensor(tmp_path / "e.jsonl") as sensor:
        res = fake_provider.run(["sh", "-c", script], timeout=60)
    assert "Hello! You said: hello from gnutls" in res.stdout, res.stdout + res.stderr
    events = [e for e in ai_events(sensor.events()) if e["process"]["name"] == "gnutls-cli"]
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"]
    req, resp = events
    assert req["data"]["provider"]["id"] == "openai"
    assert req["data"]["messages"][0]["content"] == "hello from gnutls"
    assert resp["data"]["choices"][0]["message"]["content"] == "Hello! You said: hello from gnutls"
    assert fake_provider.openai_api_key not in (tmp_path / "e.jsonl").read_text()
