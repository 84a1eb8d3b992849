"""Webhook exporter against a real aiohttp server started by the test: batched and single
delivery, authentication, HMAC signature checked by the receiver, retries with backoff,
final rejections, and a receiver that hangs."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from tests.support.export_servers import Receiver
from tests.unit.export_helpers import agent_turn, numbered

from oisp_sensor.config import WebhookExport
from oisp_sensor.export.webhook import WebhookExporter

SECRET = "whsec-test-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def verify(request: dict[str, Any], secret: str) -> bool:
    """What a receiver does: recompute the signature over timestamp + body."""
    headers = request["headers"]
    stamp = headers["X-OISP-Timestamp"]
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + request["body"], hashlib.sha256).hexdigest()
    return (
        hmac.compare_digest(headers["X-OISP-Signature"], f"sha256={expected}")
        and abs(time.time() - int(stamp)) < 300
    )


def run(config: WebhookExport, events: list[dict[str, Any]], close_timeout: float = 10) -> WebhookExporter:
    exporter = WebhookExporter(config)
    exporter.start()
    exporter.submit_many(events)
    exporter.close(close_timeout)
    return exporter


def test_batched_delivery_signed_with_bearer_auth(receiver: Receiver) -> None:
    events = agent_turn() + numbered(13)
    config = WebhookExport(
        enabled=True, url=receiver.url, batch_size=10, flush_interval_ms=50, bearer_token="tok-1",
        hmac_secret=SECRET, sensor_id="sensor-7", headers={"X-Env": "ci"},
    )  # fmt: skip
    stats = run(config, events).stats()
    assert stats.events_exported == 20 and stats.events_dropped == 0, stats
    assert [len(orjson.loads(r["body"])["events"]) for r in receiver.requests] == [10, 10]
    for request in receiver.requests:
        assert request["method"] == "POST" and request["path"] == "/hook/secret-path-token"
        assert request["headers"]["Authorization"] == "Bearer tok-1"
        assert request["headers"]["X-Env"] == "ci"
        assert request["headers"]["Content-Type"] == "application/json"
        assert verify(request, SECRET)
        assert not verify(request, "another-secret")
        body = orjson.loads(request["body"])
        assert body["sensor_id"] == "sensor-7"
        assert body["batch_id"] == request["headers"]["X-OISP-Batch-Id"]
    got = [e["event_id"] for r in receiver.requests for e in orjson.loads(r["body"])["events"]]
    assert got == [e["event_id"] for e in events]  # all of them, in order
    # a tampered body no longer verifies
    tampered = dict(receiver.requests[0], body=receiver.requests[0]["body"].replace(b"box", b"b0x"))
    assert not verify(tampered, SECRET)


def test_single_delivery_with_basic_auth_and_put(receiver: Receiver) -> None:
    events = numbered(3)
    config = WebhookExport(
        enabled=True, url=receiver.url, batch=False, method="PUT", basic_username="u", basic_password="p w",
        flush_interval_ms=0,
    )  # fmt: skip
    assert run(config, events).stats().events_exported == 3
    assert [orjson.loads(r["body"])["data"]["n"] for r in receiver.requests] == [0, 1, 2]
    assert all(r["method"] == "PUT" for r in receiver.requests)
    assert receiver.requests[0]["headers"]["Authorization"] == "Basic dTpwIHc="


def test_api_key_header(receiver: Receiver) -> None:
    config = WebhookExport(enabled=True, url=receiver.url, api_key="k-123", api_key_header="X-Api-Token")
    assert run(config, numbered(2)).stats().events_exported == 2
    assert receiver.requests[0]["headers"]["X-Api-Token"] == "k-123"
    assert "Authorization" not in receiver.requests[0]["headers"]


def test_500_then_200_is_retried_with_backoff(receiver: Receiver) -> None:
    receiver.answer = lambda n: 500 if n < 2 else 200
    config = WebhookExport(
        enabled=True, url=receiver.url, batch_size=5, flush_interval_ms=0, retry_count=3, retry_backoff_ms=100,
        hmac_secret=SECRET,
    )  # fmt: skip
    stats = run(config, numbered(5)).stats()
    assert stats.events_exported == 5 and stats.events_dropped == 0, stats
    assert stats.events_retried == 10  # two retries of a batch of five
    assert len(receiver.requests) == 3
    assert len({r["headers"]["X-OISP-Batch-Id"] for r in receiver.requests}) == 1  # same batch id
    assert all(verify(r, SECRET) for r in receiver.requests)  # re-signed on each attempt


def test_backoff_doubles(receiver: Receiver) -> None:
    stamps: list[float] = []

    def answer(n: int) -> int:
        stamps.append(time.monotonic())
        return 503 if n < 3 else 200

    receiver.answer = answer
    config = WebhookExport(
        enabled=True, url=receiver.url, flush_interval_ms=0, retry_count=3, retry_backoff_ms=200
    )
    assert run(config, numbered(1)).stats().events_exported == 1
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert 0.15 < gaps[0] < 0.35 and 0.3 < gaps[1] < 0.6 and 0.6 < gaps[2] < 1.1, gaps


def test_every_attempt_failing_is_counted_and_reported(receiver: Receiver) -> None:
    receiver.answer = lambda _n: 502
    config = WebhookExport(
        enabled=True, url=receiver.url, flush_interval_ms=0, retry_count=2, retry_backoff_ms=10
    )
    stats = run(config, numbered(4)).stats()
    assert stats.events_exported == 0 and stats.events_dropped == 4
    assert stats.last_error is not None
    assert "HTTP 502" in stats.last_error and "3 attempt" in stats.last_error
    assert "secret-path-token" not in stats.last_error  # the URL's secret path stays out of logs


def test_4xx_is_final(receiver: Receiver) -> None:
    receiver.answer = lambda _n: 401
    config = WebhookExport(enabled=True, url=receiver.url, flush_interval_ms=0, retry_count=3)
    stats = run(config, numbered(2)).stats()
    assert len(receiver.requests) == 1 and stats.events_dropped == 2
    assert "HTTP 401" in (stats.last_error or "")


def test_hanging_receiver_times_out_and_shutdown_is_bounded(receiver: Receiver) -> None:
    receiver.answer = lambda n: "hang" if n == 0 else 200
    config = WebhookExport(
        enabled=True, url=receiver.url, batch_size=2, flush_interval_ms=0, timeout_ms=500, retry_count=1,
        retry_backoff_ms=50,
    )  # fmt: skip
    exporter = WebhookExporter(config)
    exporter.start()
    exporter.submit_many(numbered(2))
    assert exporter.flush(5)
    stats = exporter.stats()
    assert stats.events_exported == 2 and stats.events_retried == 2  # timed out once, then delivered
    # now the receiver hangs for good: close() still returns within its deadline
    receiver.answer = lambda _n: "hang"
    config2 = WebhookExport(
        enabled=True, url=receiver.url, flush_interval_ms=0, timeout_ms=20000, retry_count=5
    )
    stuck = WebhookExporter(config2)
    stuck.start()
    stuck.submit_many(numbered(3))
    time.sleep(0.3)
    started = time.monotonic()
    stuck.close(1.0)
    assert time.monotonic() - started < 2.0
    final = stuck.stats()
    assert final.events_exported == 0 and final.events_dropped == 3


def test_unreachable_url_is_one_line() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = WebhookExport(
        enabled=True,
        url=f"http://127.0.0.1:{port}/x",
        flush_interval_ms=0,
        retry_count=1,
        retry_backoff_ms=10,
    )
    stats = run(config, numbered(2)).stats()
    assert stats.events_dropped == 2
    assert stats.last_error == f"POST http://127.0.0.1:{port} failed after 2 attempt(s): connection refused"
