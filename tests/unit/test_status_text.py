"""`oisp-sensor status` shows each exporter's health in one line."""

from __future__ import annotations

from oisp_sensor.cli import _status_text


def test_status_lists_every_exporter_with_its_counts_and_last_error() -> None:
    stats = {
        "sensor": {"pid": 42, "version": "0.1.0", "uptime_s": 12},
        "kernel": {"data_records": 10, "lost_records": 1},
        "capture": {"probes": 4, "targets": [{}]},
        "events_by_type": {"ai.request": 3},
        "exporters": {
            "jsonl": {"status": "ok", "events_submitted": 5, "events_exported": 5, "events_dropped": 0,
                      "queue_depth": 0},
            "kafka": {"status": "degraded", "events_submitted": 5, "events_exported": 2, "events_retried": 3,
                      "events_dropped": 1, "errors": 2, "queue_depth": 2, "last_error": "broker down",
                      "details": {"brokers": "127.0.0.1:9092", "nested": {"x": 1}}},
        },
    }  # fmt: skip
    text = _status_text(stats, "/run/oisp-sensor/42.json")
    lines = text.splitlines()
    kafka = next(line for line in lines if line.startswith("  export kafka"))
    assert "degraded" in kafka and "retried 3" in kafka and "dropped 1" in kafka and "errors 2" in kafka
    assert "brokers 127.0.0.1:9092" in kafka and "nested" not in kafka
    assert kafka.endswith("last error: broker down")
    assert any(line.startswith("  export jsonl: ok, submitted 5, exported 5") for line in lines)
