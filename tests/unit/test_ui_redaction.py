"""The dashboard and the terminal UI never show more than the live stream may carry."""

from __future__ import annotations

import orjson

from oisp_sensor.config import SensorConfig
from oisp_sensor.export.factory import build_exporters
from oisp_sensor.pipeline import Pipeline, close_exporters
from oisp_sensor.schema.events import SensorEvent

SECRET_EMAIL = "dana.whitfield@example.org"


def _request() -> SensorEvent:
    return SensorEvent(
        "ai.request",
        "01JFAR00000000000000000001",
        1_000_000,
        {
            "provider": {"id": "openai", "name": "OpenAI"},
            "model": {"id": "gpt-4o-mini"},
            "messages": [{"role": "user", "content": f"mail {SECRET_EMAIL} the plan"}],
        },
        pid=4242,
        comm="agent",
    )


def _store_text(mode: str, live_override: str | None, tui: bool = False) -> str:
    config = SensorConfig.model_validate(
        {
            "redaction": {"mode": mode},
            "export": {"websocket": {"port": 0, "redaction": live_override}},
        }
    )
    exports = build_exporters(config, dashboard=not tui, tui=tui)
    pipeline = Pipeline(config, exports.exporters)
    for exporter in exports.exporters:
        exporter.start()
    try:
        pipeline.emit(_request())
        pipeline.dispatch()
        for exporter in exports.exporters:
            exporter.flush(5)
        assert exports.store is not None
        body = exports.store.events(limit=100)
        assert len(body["events"]) == 1
        return orjson.dumps(body).decode()
    finally:
        close_exporters(exports.exporters, 5)


def test_live_stream_override_applies_to_the_dashboard() -> None:
    text = _store_text("full", "minimal")
    assert SECRET_EMAIL not in text and "mail" not in text


def test_terminal_ui_gets_the_same() -> None:
    text = _store_text("full", "safe", tui=True)
    assert SECRET_EMAIL not in text and "[REDACTED:" in text


def test_control_full_mode_shows_content() -> None:
    assert SECRET_EMAIL in _store_text("full", None)
