"""Every exporter at once, fed by the real Pipeline: per-exporter redaction (no secret of
the leak corpus leaves through any exporter in safe mode; an exporter's own `redaction`
override applies to it alone), and faults in some destinations that leave the others'
output complete while shutdown stays bounded."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.fixtures.redaction.corpus import Sample, secret_samples
from tests.support.export_servers import Broker, Receiver, WsClient, consume, free_port, start_grpc_receiver

from oisp_sensor.config import SensorConfig
from oisp_sensor.export.factory import Exports, build_exporters
from oisp_sensor.pipeline import Pipeline, close_exporters
from oisp_sensor.schema.events import SensorEvent

SAMPLES = secret_samples()


def _leaks(blob: bytes, samples: list[Sample]) -> list[str]:
    text = blob.decode("utf-8", errors="replace")
    return [
        f"{s.name}: {f[:30]!r}"
        for s in samples
        for f in s.fragments()
        if f in text or f.replace("/", "\\/") in text
    ]


def _ai_events(n: int) -> Iterator[SensorEvent]:
    """An ai.request carrying each sample in its prompt, and a response echoing it."""
    pid = os.getpid()
    for i, sample in enumerate(SAMPLES[:n]):
        request_id = f"01JFAN{i:020d}"
        yield SensorEvent(
            "ai.request",
            request_id,
            1_000_000 + i,
            {
                "provider": {
                    "id": "openai",
                    "name": "OpenAI",
                    "endpoint": "https://api.openai.com/v1/chat/completions",
                },
                "model": {"id": "gpt-4o-mini"},
                "request_type": "chat",
                "messages": [{"role": "user", "content": f"Please check this: {sample.text} thanks"}],
            },
            pid=pid,
            comm="agent",
        )
        yield SensorEvent(
            "ai.response",
            f"01JFAR{i:020d}",
            2_000_000 + i,
            {
                "provider": {"id": "openai", "name": "OpenAI"},
                "model": {"id": "gpt-4o-mini"},
                "related_event_id": request_id,
                "success": True,
                "status_code": 200,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": f"You said {sample.text}"},
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
            pid=pid,
            comm="agent",
        )


class Destinations:
    """All the real servers; started by the fixture, read back after the run."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.broker = Broker(free_port(), tmp_path / "tansu.log")
        self.broker.start()
        self.broker.create_topic("oisp-events")
        self.otlp_endpoint, self.otlp, self.grpc = start_grpc_receiver()
        self.webhook = Receiver()
        self.ws_messages: list[str] = []

    def config(self, **overrides: dict[str, Any]) -> SensorConfig:
        export: dict[str, Any] = {
            "jsonl": {"enabled": True, "path": str(self.tmp_path / "events.jsonl")},
            "websocket": {"enabled": True, "port": 0},
            "metrics": {"enabled": True},
            "otlp": {"enabled": True, "endpoint": self.otlp_endpoint, "flush_interval_ms": 20},
            "kafka": {"enabled": True, "brokers": self.broker.address, "flush_interval_ms": 5},
            "webhook": {"enabled": True, "url": self.webhook.url, "batch_size": 50, "flush_interval_ms": 20},
        }
        for name, values in overrides.items():
            export[name].update(values)
        return SensorConfig.model_validate({"export": export})

    def close(self) -> None:
        self.webhook.close()
        self.grpc.stop(0)
        self.broker.stop()


@pytest.fixture
def destinations(tmp_path: Path) -> Iterator[Destinations]:
    d = Destinations(tmp_path)
    yield d
    d.close()


def _run_pipeline(
    config: SensorConfig, events: list[SensorEvent], close_timeout: float = 15
) -> tuple[Exports, WsClient, float]:
    exports = build_exporters(config)
    pipeline = Pipeline(config, exports.exporters)
    for exporter in exports.exporters:
        exporter.start()
    assert exports.server is not None
    listener = WsClient(f"http://127.0.0.1:{exports.server.port}/ws/events")
    assert listener.connected.wait(10), listener.error
    ws = next(e for e in exports.exporters if e.name == "websocket")
    deadline = time.monotonic() + 5
    while ws.stats().details["clients"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    for event in events:
        pipeline.emit(event)
    pipeline.dispatch()
    for exporter in exports.exporters:
        exporter.flush(5)
    time.sleep(0.3)  # the last WebSocket frames in flight
    started = time.monotonic()
    close_exporters(exports.exporters, close_timeout)
    listener.stop.set()
    listener.thread.join(5)
    return exports, listener, time.monotonic() - started


def _outputs(d: Destinations, listener: WsClient, kafka_count: int) -> dict[str, bytes]:
    spans_and_logs = b"".join(r.SerializeToString() for r in [*d.otlp.traces, *d.otlp.logs])
    return {
        "jsonl": (d.tmp_path / "events.jsonl").read_bytes(),
        "websocket": "\n".join(listener.messages).encode(),
        "otlp": spans_and_logs,
        "kafka": b"\n".join(
            m.value() for m in consume(d.broker.address, "oisp-events", kafka_count, timeout=15)
        ),
        "webhook": b"\n".join(r["body"] for r in d.webhook.requests),
    }


def test_no_secret_leaves_through_any_exporter_in_safe_mode(destinations: Destinations) -> None:
    events = list(_ai_events(len(SAMPLES)))
    # jsonl alone is set to full: the override is per exporter
    config = destinations.config(jsonl={"redaction": "full"})
    exports, listener, _ = _run_pipeline(config, events)
    for exporter in exports.exporters:
        stats = exporter.stats()
        assert stats.events_dropped == 0 and stats.errors == 0, stats
        assert stats.events_exported == len(events), stats
    outputs = _outputs(destinations, listener, len(events))
    safe_samples = SAMPLES
    for name in ("websocket", "otlp", "kafka", "webhook"):
        assert outputs[name], name
        assert _leaks(outputs[name], safe_samples) == [], name
    # the control: the full-mode file has the corpus in it, so the check above can fail
    personal = [s for s in SAMPLES if s.kinds[0] in ("email", "phone")]
    assert personal and all(s.secret in outputs["jsonl"].decode() for s in personal)
    assert b'"event_type":"ai.request"' in outputs["jsonl"]
    # what went out in safe mode says it was redacted
    for name in ("websocket", "kafka", "webhook"):
        assert b"[REDACTED:" in outputs[name], name


def test_minimal_mode_sends_no_content_and_no_secret_through_any_exporter(destinations: Destinations) -> None:
    events = list(_ai_events(len(SAMPLES)))
    config = destinations.config()
    config.redaction.mode = "minimal"
    _, listener, _ = _run_pipeline(config, events)
    outputs = _outputs(destinations, listener, len(events))
    for name in ("jsonl", "websocket", "otlp", "kafka", "webhook"):
        assert outputs[name], name
        assert _leaks(outputs[name], SAMPLES) == [], name
    # no content at all: lengths and hashes only
    first = orjson.loads(outputs["jsonl"].splitlines()[0])
    message = first["data"]["messages"][0]
    assert "content" not in message and message["content_length"] > 0 and message["content_hash"]


def test_dead_and_hanging_destinations_do_not_hurt_the_others(destinations: Destinations) -> None:
    destinations.broker.stop()  # Kafka down for the whole run
    destinations.webhook.answer = lambda _n: "hang"
    config = destinations.config(
        kafka={"delivery_timeout_ms": 60000},
        webhook={"timeout_ms": 60000, "retry_count": 5},
    )
    events = list(_ai_events(40))
    exports, listener, took = _run_pipeline(config, events, close_timeout=3)
    assert took < 5  # bounded, in parallel: not 3 s per dead destination
    by_name = {e.name: e.stats() for e in exports.exporters}
    for name in ("jsonl", "websocket", "metrics", "otlp"):
        assert by_name[name].events_exported == len(events), by_name[name]
    assert len((destinations.tmp_path / "events.jsonl").read_bytes().splitlines()) == len(events)
    assert len(listener.messages) == len(events)
    for name in ("kafka", "webhook"):
        stats = by_name[name]
        assert stats.events_exported + stats.events_dropped == len(events), stats  # counted, not lost
        assert stats.events_dropped > 0 and stats.status == "closed"
