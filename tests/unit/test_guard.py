"""Self-protection (oisp_sensor.guard): levels, the order things are shed in, the bounded
raw-record queue, the event-rate bucket, and the metadata-only marking in the pipeline."""

from __future__ import annotations

import time

from oisp_sensor.config import SensorConfig
from oisp_sensor.enrich.filters import ProcessFilter
from oisp_sensor.guard import DROP, METADATA_ONLY, NORMAL, SHED_DETAIL, Guard, read_rss_bytes, summary_text
from oisp_sensor.pipeline import Pipeline


def _guard_at(level: int, **kwargs: float) -> Guard:
    guard = Guard(**kwargs)  # type: ignore[arg-type]
    guard.level = level
    return guard


def test_levels_shed_in_order() -> None:
    types = ["ai.request", "ai.response", "ai.streaming_chunk", "file.read", "file.open", "process.exec"]
    kept = {}
    for level in (NORMAL, SHED_DETAIL, METADATA_ONLY, DROP):
        guard = _guard_at(level, chunk_sample=10)
        kept[level] = {t: sum(guard.admit(t) for _ in range(100)) for t in types}
    assert kept[NORMAL] == dict.fromkeys(types, 100)
    assert kept[SHED_DETAIL] == {**kept[NORMAL], "ai.streaming_chunk": 10, "file.read": 0}
    assert kept[METADATA_ONLY] == {**kept[SHED_DETAIL], "ai.streaming_chunk": 0}
    assert kept[DROP] == {**kept[METADATA_ONLY], "file.open": 0, "process.exec": 0}


def test_refusals_are_counted() -> None:
    guard = _guard_at(DROP)
    for event_type in ("ai.streaming_chunk", "file.write", "network.connect", "ai.request"):
        guard.admit(event_type)
    stats = guard.stats()
    assert stats["streaming_chunks_skipped"] == 1
    assert stats["file_detail_skipped"] == 1
    assert stats["events_dropped"] == {"network.connect": 1}
    assert "1 chunks" in summary_text(stats) and "1 dropped" in summary_text(stats)


def test_memory_ceiling_sets_the_level_and_calm_brings_it_down() -> None:
    rss_mb = read_rss_bytes() / 1048576
    guard = Guard(max_memory_mb=rss_mb / 0.9, calm_checks=2)  # RSS at 90% of the ceiling
    assert guard.check() == METADATA_ONLY
    assert guard.stats()["reason"] == "memory"
    guard.max_memory = int(rss_mb * 1048576 * 10)  # ceiling raised: calm, one step per 2 checks
    assert [guard.check() for _ in range(4)] == [METADATA_ONLY, SHED_DETAIL, SHED_DETAIL, NORMAL]
    assert guard.check() == NORMAL


def test_cpu_ceiling_steps_up_then_throttles() -> None:
    guard = Guard(max_cpu_percent=1)
    levels = []
    for _ in range(5):
        end = time.process_time() + 0.05
        while time.process_time() < end:  # burn CPU: far over 1%
            pass
        levels.append(guard.check())
    assert levels[:3] == [SHED_DETAIL, METADATA_ONLY, DROP]
    assert guard.throttle > 0
    assert guard.pause_for(0.1) > 0


def test_queue_is_bounded_data_first() -> None:
    guard = Guard(queue_bytes=1000)
    data, control = b"\x01\x00" + b"d" * 98, b"\x03\x00" + b"c" * 98
    is_data = lambda b: b[0] == 1  # noqa: E731
    assert len(guard.enqueue([data] * 9, is_data)) == 9
    kept = guard.enqueue([data, data, control, control], is_data)
    # one data record still fits; control records may use up to twice the capacity
    assert kept == [data, control, control]
    assert guard.counters.records_dropped == 1
    guard.dequeued(kept)
    assert guard.queued_bytes == 900
    assert guard.enqueue([control] * 30, is_data).count(control) == 11  # 900 + 11*100 <= 2000
    assert guard.counters.records_dropped == 20


def test_event_rate_bucket_prefers_ai_events() -> None:
    guard = Guard(max_events_per_second=100)
    low = sum(guard.admit("process.exec") for _ in range(300))
    high = sum(guard.admit("ai.request") for _ in range(300))
    assert 45 <= low <= 55  # only the upper half of the bucket
    assert 45 <= high <= 55  # what the low-priority events left
    assert sum(guard.stats()["rate_limited"].values()) == 600 - low - high


def test_pipeline_applies_metadata_only(tmp_path: object) -> None:
    config = SensorConfig()
    pipeline = Pipeline(config, [])
    assert pipeline.tracker.body_limit == config.capture.max_body_mb * 1048576
    pipeline.guard.level = METADATA_ONLY
    pipeline.process_raw([])
    assert pipeline.tracker.body_limit == 0
    pipeline.guard.level = NORMAL
    pipeline.process_raw([])
    assert pipeline.tracker.body_limit == config.capture.max_body_mb * 1048576
    assert pipeline.stats()["guard"]["level_name"] == "normal"


def test_uid_filter_follows_records_without_uid() -> None:
    flt = ProcessFilter(uids=[1000])
    assert flt.allows(10, "python", 1000)
    assert flt.allows(10, "python")  # exit / file close records carry no uid
    assert not flt.allows(11, "python")


def test_process_cache_keeps_only_recent_exits() -> None:
    from oisp_sensor.enrich.process import ProcessCache, ProcessInfo

    cache = ProcessCache(capacity=1000, exited_capacity=10)
    for pid in range(100, 150):
        cache.put(ProcessInfo(pid=pid, name="sh"))
        cache.exited(pid, "sh")
    assert cache.evicted_exited == 40
    assert len(cache._entries) == 10
    cache.put(ProcessInfo(pid=140, name="reused"))  # a new process with an exited pid
    for pid in range(200, 215):
        cache.exited(pid, "x")
    assert cache._entries[140].name == "reused"
