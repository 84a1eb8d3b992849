"""The dashboard's HTTP API and page on a real web server (port 0), fed through the exporters
as the pipeline feeds them: JSON bodies, 400/404 errors, static files, the token."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tests.unit.test_ui_store import T0, call, env

from oisp_sensor.config import SensorConfig
from oisp_sensor.export.factory import Exports, build_exporters
from oisp_sensor.ui import api as ui_api


def _start(token: str = "") -> Exports:
    config = SensorConfig.model_validate(
        {"export": {"jsonl": {"enabled": False}, "websocket": {"port": 0, "token": token}}}
    )
    exports = build_exporters(config, dashboard=True)
    for exporter in exports.exporters:
        exporter.start()
    return exports


def _feed(exports: Exports, events: list[dict[str, Any]]) -> None:
    for exporter in exports.exporters:
        exporter.submit_many(events)
        assert exporter.flush(5.0)


@pytest.fixture(scope="module")
def server() -> Iterator[Exports]:
    exports = _start()
    events: list[dict[str, Any]] = []
    for i in range(20):
        events += call(
            T0 + i, latency=10 * (i + 1), provider="openai" if i % 2 else "anthropic", pid=200 + i % 3
        )
    events.append(env("file.open", T0 + 30, {"path": "/etc/hosts"}, pid=200))
    _feed(exports, events)
    yield exports
    for exporter in exports.exporters:
        exporter.close(2.0)


def get(exports: Exports, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    assert exports.server is not None
    req = urllib.request.Request(f"http://127.0.0.1:{exports.server.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
            status, hdrs = resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        body, status, hdrs = exc.read(), exc.code, exc.headers
    ctype = hdrs.get("Content-Type", "")
    return status, (json.loads(body) if "json" in ctype else body.decode()), hdrs


def test_calls_events_and_exchange(server: Exports) -> None:
    status, body, headers = get(server, "/api/calls?provider=openai&limit=3")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert body["total"] == 10 and len(body["calls"]) == 3 and body["latest_seq"] == 41
    row = body["calls"][-1]
    assert row["provider"] == "openai" and row["latency_ms"] == 200 and row["input_tokens"] == 10
    status, ex, _ = get(server, f"/api/exchanges/{row['request_id']}")
    assert status == 200 and ex["request"]["event_id"] == row["request_id"]
    assert ex["response"]["data"]["related_event_id"] == row["request_id"]
    status, one, _ = get(server, f"/api/events/{row['request_id']}")
    assert status == 200 and one["event_type"] == "ai.request" and one["_seq"] == row["seq"]
    status, evs, _ = get(server, "/api/events?type=file&pid=200")
    assert status == 200 and evs["total"] == 1 and evs["events"][0]["data"]["path"] == "/etc/hosts"
    status, polled, _ = get(server, "/api/events?since_seq=39")
    assert [e["_seq"] for e in polled["events"]] == [40, 41]


def test_stats_processes_sessions_health(server: Exports) -> None:
    # Live mode: the window ends now, and these calls are from 2026-11-22: none in the last hour.
    status, stats, _ = get(server, "/api/stats?window_s=3600&bucket_s=60")
    assert status == 200 and len(stats["series"]) in (60, 61)
    assert set(stats) >= {"totals", "by_provider", "by_model", "by_app", "by_process", "series"}
    status, procs, _ = get(server, "/api/processes")
    assert status == 200 and sorted(p["pid"] for p in procs["processes"]) == [200, 201, 202]
    assert {p["pid"]: p["ai_calls"] for p in procs["processes"]} == {200: 7, 201: 7, 202: 6}
    status, sessions, _ = get(server, "/api/sessions")
    assert status == 200 and sessions == {"sessions": []}
    status, health, _ = get(server, "/api/health")
    assert status == 200 and health["status"] == "healthy"
    assert set(health["exports"]) == {"dashboard", "websocket"}
    assert health["sensor"]["mode"] == "live" and health["sensor"]["events"] == 41
    assert health["capture"] is None  # no capture behind this server


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/calls?limit=abc", "limit must be an integer"),
        ("/api/calls?limit=0", "limit must be at least 1"),
        ("/api/calls?pid=-4", "pid is out of range"),
        ("/api/calls?status=maybe", "status must be"),
        ("/api/calls?provder=openai", "unknown parameter 'provder'"),
        ("/api/calls?limit=1&limit=2", "given twice"),
        ("/api/events?before_seq=1.5", "before_seq must be an integer"),
        ("/api/stats?window_s=0", "window_s must be between"),
        ("/api/stats?window_s=86400&bucket_s=10", "too many buckets"),
        ("/api/stats?type=ai.request", "unknown parameter 'type'"),
        ("/api/processes?x=1", "unknown parameter"),
        ("/api/calls?after=" + "A" * 101, "after must be an event id"),
        ("/api/exchanges/X?after=" + "A" * 101, "after must be an event id"),
    ],
)
def test_bad_parameters_are_400_json(server: Exports, path: str, message: str) -> None:
    status, body, _ = get(server, path)
    assert status == 400 and message in body["error"], body


@pytest.mark.parametrize("path", ["/api/events/NOPE", "/api/exchanges/NOPE", "/api/sessions/ses_nope"])
def test_unknown_ids_are_404_json(server: Exports, path: str) -> None:
    status, body, _ = get(server, path)
    assert status == 404 and body["error"].startswith("no ") and path.rsplit("/", 1)[1] in body["error"]


def test_page_and_static_files(server: Exports) -> None:
    index = ui_api.STATIC_DIR / "index.html"
    status, body, headers = get(server, "/")
    if index.is_file():
        assert status == 200 and headers["Content-Type"].startswith("text/html") and body == index.read_text()
    else:
        assert status == 404 and "not installed" in body
    some = sorted(p for p in ui_api.STATIC_DIR.iterdir() if p.is_file())
    if some:
        status, body, _ = get(server, f"/static/{some[0].name}")
        assert status == 200 and body == some[0].read_text()
    for bad in ("/static/..%2fstore.py", "/static/%2e%2e/store.py", "/static/nothing.js"):
        status, _, _ = get(server, bad)
        assert status == 404, bad


def test_missing_page_says_so(server: Exports, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(ui_api, "STATIC_DIR", tmp_path)
    status, body, _ = get(server, "/")
    assert status == 404 and "dashboard page is not installed" in body


def test_token_guards_page_api_static_and_sets_a_same_site_cookie() -> None:
    exports = _start(token="s3cret")
    try:
        _feed(exports, call(T0))
        for path in ("/", "/api/calls", "/api/health", "/static/app.js", "/ws/events"):
            status, body, _ = get(exports, path)
            assert status == 401 and body == {"error": "a valid token is required"}, path
        assert get(exports, "/api/calls?token=wrong")[0] == 401
        status, body, headers = get(exports, "/api/calls?token=s3cret")
        assert status == 200 and body["total"] == 1
        cookie = headers["Set-Cookie"]
        assert "oisp_token=s3cret" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # What the page loads without the token in its URL passes with the cookie.
        status, body, _ = get(exports, "/api/health", {"Cookie": "oisp_token=s3cret"})
        assert status == 200 and body["sensor"]["events"] == 2
        assert get(exports, "/api/health", {"Cookie": "oisp_token=nope"})[0] == 401
        assert get(exports, "/api/health", {"Authorization": "Bearer s3cret"})[0] == 200
        # Other sites' pages are refused even with the cookie.
        status, _, _ = get(
            exports, "/api/calls", {"Cookie": "oisp_token=s3cret", "Origin": "https://evil.example"}
        )
        assert status == 403
    finally:
        for exporter in exports.exporters:
            exporter.close(2.0)


def test_queries_do_not_block_the_stream_thread(server: Exports) -> None:
    """Many requests at once all answer (queries run in worker threads)."""
    import concurrent.futures

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: get(server, "/api/calls?q=hello")[0], range(40)))
    assert results == [200] * 40 and time.monotonic() - start < 10


def test_after_waits_until_the_store_has_the_event_the_stream_announced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The WebSocket and the store are fed by separate exporter threads: the page, told of a
    response by the stream, asks for changes `after` it, and the answer must include it even
    when the store takes it later (else the call stays pending on the page for good)."""
    monkeypatch.setattr(ui_api, "AFTER_WAIT_S", 3.0)
    exports = _start()
    try:
        request, response = call(T0)
        _feed(exports, [request])
        dashboard = next(e for e in exports.exporters if isinstance(e, ui_api.DashboardExporter))
        _s, first, _h = get(exports, "/api/calls?since_seq=0")
        assert first["calls"][0]["status"] is None
        since = first["latest_seq"]

        def late() -> None:
            time.sleep(0.4)
            dashboard.submit_many([response])

        feeder = threading.Thread(target=late)
        started = time.monotonic()
        feeder.start()
        status, body, _h = get(exports, f"/api/calls?since_seq={since}&after={response['event_id']}")
        waited = time.monotonic() - started
        feeder.join()
        assert status == 200 and 0.35 < waited < 2.5, waited
        assert [r["request_id"] for r in body["calls"]] == [request["event_id"]]
        assert body["calls"][0]["status"] == 200
        # an event already stored: no wait; one that never comes: answered after the bound
        started = time.monotonic()
        status, _b, _h = get(exports, f"/api/exchanges/{request['event_id']}?after={response['event_id']}")
        assert status == 200 and time.monotonic() - started < 0.3
        monkeypatch.setattr(ui_api, "AFTER_WAIT_S", 0.3)
        started = time.monotonic()
        status, body, _h = get(exports, f"/api/calls?since_seq={body['latest_seq']}&after=NEVER")
        assert status == 200 and body["calls"] == [] and 0.25 < time.monotonic() - started < 2
    finally:
        for exporter in exports.exporters:
            exporter.close(2.0)
