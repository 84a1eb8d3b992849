"""Safe mode holds a stream's tail back; the chunk that finishes the stream releases all of it."""

from __future__ import annotations

from typing import Any

from oisp_sensor.redact import Redactor


def chunk(index: int, delta: str, delta_type: str = "text", finish: str | None = None) -> dict[str, Any]:
    return {
        "event_type": "ai.streaming_chunk",
        "data": {"related_event_id": "R1", "chunk_index": index, "delta": delta, "delta_type": delta_type,
                 "finish_reason": finish},
    }  # fmt: skip


def test_empty_finishing_chunk_releases_the_held_text_with_its_type() -> None:
    redactor = Redactor()
    words = ["Hello!", " You", " said:", " stream", " me"]
    events = [chunk(i, w) for i, w in enumerate(words)] + [chunk(len(words), "", "none", "stop")]
    out = [redactor.apply(e, "safe")["data"] for e in events]
    assert "".join(d["delta"] for d in out) == "Hello! You said: stream me"
    assert out[-1]["delta_type"] == "text" and out[-1]["delta"]
    assert "".join(d["delta"] for d in out if d["delta_type"] == "text") == "Hello! You said: stream me"


def test_finishing_chunk_with_its_own_text_keeps_its_type() -> None:
    redactor = Redactor()
    events = [chunk(0, "Hi"), chunk(1, " there", "text", "stop")]
    out = [redactor.apply(e, "safe")["data"] for e in events]
    assert [d["delta"] for d in out] == ["", "Hi there"]
    assert out[-1]["delta_type"] == "text"
