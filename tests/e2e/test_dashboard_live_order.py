"""The dashboard in headless Chromium when the live stream is ahead of the dashboard's store.

The WebSocket exporter and the store are fed by two exporter threads, so a busy machine can
deliver an event to the browser before the store has it. The page must still show it: a
response that reaches the page first must not leave its call pending for good (a CI run
caught exactly that). Here the exporters are fed by hand to force that order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.browser import chromium, open_page
from tests.unit.test_ui_store import call

from oisp_sensor.config import SensorConfig
from oisp_sensor.export.factory import Exports, build_exporters
from oisp_sensor.export.websocket import WebSocketExporter
from oisp_sensor.ui.api import DashboardExporter

STORE_LAG_S = 0.8


@pytest.fixture()
def exports() -> Iterator[Exports]:
    config = SensorConfig.model_validate({"export": {"jsonl": {"enabled": False}, "websocket": {"port": 0}}})
    exports = build_exporters(config, dashboard=True)
    for exporter in exports.exporters:
        exporter.start()
    yield exports
    for exporter in exports.exporters:
        exporter.close(2.0)


def _feed(exporter: Any, events: list[dict[str, Any]]) -> None:
    exporter.submit_many(events)
    assert exporter.flush(5.0)


def _status(page: Any, request_id: str) -> Any:
    return page.evaluate(
        "(id) => { const r = window.oispDashboard.views.timeline.model.byId.get(id); return r ? r.status : 'none'; }",
        request_id,
    )


def test_a_response_streamed_before_the_store_has_it_still_updates_the_call(exports: Exports) -> None:
    assert exports.server is not None
    stream = next(e for e in exports.exporters if isinstance(e, WebSocketExporter))
    store = next(e for e in exports.exporters if isinstance(e, DashboardExporter))
    req, resp = call(time.time())
    with chromium() as browser:
        page, log = open_page(browser, f"http://127.0.0.1:{exports.server.port}/")
        page.wait_for_function("() => document.querySelector('#live-text').textContent === 'live'")
        for exporter in (store, stream):
            _feed(exporter, [req])
        page.wait_for_function(
            "(id) => window.oispDashboard.views.timeline.model.byId.has(id)",
            arg=req["event_id"],
            timeout=10_000,
        )
        assert _status(page, req["event_id"]) is None  # pending
        page.click(f'.tl-row[data-id="{req["event_id"]}"]')
        page.wait_for_selector("#exchange .ex-head .st-pending")

        _feed(stream, [resp])  # the browser hears of the response...
        time.sleep(STORE_LAG_S)
        assert _status(page, req["event_id"]) is None
        _feed(store, [resp])  # ...before the store has it; nothing else happens afterwards
        page.wait_for_function(
            "(id) => window.oispDashboard.views.timeline.model.byId.get(id).status === 200",
            arg=req["event_id"],
            timeout=5_000,
        )
        page.wait_for_selector("#exchange .ex-head .st-ok", timeout=5_000)
        log.assert_clean()
