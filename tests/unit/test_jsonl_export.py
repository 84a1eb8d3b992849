"""JSONL exporter: compact lines, flush per batch, rotation between lines, mode 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from oisp_sensor.config import JsonlExport
from oisp_sensor.export.base import ExporterError
from oisp_sensor.export.jsonl import JsonlExporter


def _event(i: int) -> dict[str, object]:
    return {"event_type": "ai.request", "event_id": f"id{i}", "data": {"n": i, "text": "x" * 100}}


def test_compact_lines_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    exp = JsonlExporter(JsonlExport(path=str(path)))
    exp.start()
    for i in range(10):
        exp.submit(_event(i))
    assert exp.flush(5)
    text = path.read_text()
    assert text.count('"event_type":"ai.request"') == 10  # the CI seeds grep for exactly this
    exp.close(5)
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line)["data"]["n"] for line in lines] == list(range(10))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert exp.stats().events_exported == 10
    assert exp.stats().events_dropped == 0


def test_rotation_never_splits_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    exp = JsonlExporter(JsonlExport(path=str(path), rotate_size_mb=0.002, rotate_count=3))
    exp.start()
    for i in range(200):
        exp.submit(_event(i))
    exp.close(5)
    files = [path] + [Path(f"{path}.{n}") for n in (1, 2, 3)]
    assert all(f.exists() for f in files)
    assert not Path(f"{path}.4").exists()
    seen = []
    for f in files:
        for line in f.read_bytes().splitlines():
            seen.append(orjson.loads(line)["data"]["n"])  # every line parses whole
        assert f.stat().st_size <= 2100
    assert sorted(seen) == sorted(set(seen))
    assert max(seen) == 199  # the newest events are kept, the oldest rotated away


def test_unwritable_path_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    exp = JsonlExporter(JsonlExport(path=str(blocker / "events.jsonl")))
    with pytest.raises(ExporterError) as info:
        exp.start()
    assert "\n" not in str(info.value)


def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    exp = JsonlExporter(JsonlExport(path=str(tmp_path / "e.jsonl"), queue_size=5))
    # Not started: nothing drains the queue, so the sixth event on must be dropped.
    for i in range(8):
        exp.submit(_event(i))
    assert exp.stats().events_dropped == 3
    assert exp.stats().status == "degraded"


def test_truncate_mode(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("old\n")
    exp = JsonlExporter(JsonlExport(path=str(path), append=False))
    exp.start()
    exp.submit(_event(1))
    exp.close(5)
    assert "old" not in path.read_text()
