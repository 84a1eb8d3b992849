"""Wire-level helpers for the AI format tests: raw HTTP bytes -> tracker -> AiEventBuilder.

Every format test builds its exchanges as the bytes a client writes and reads, feeds
them through the real ConnectionTracker and AiEventBuilder, and compares the events.
`assert_split_invariant` re-runs one exchange cut at every byte boundary (and byte by
byte) and checks the events never change.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from tests.unit.helpers_decode import R, Step, W, chunked, http_request, http_response, run, split_variants

from oisp_sensor.decode.ai_events import AiEventBuilder
from oisp_sensor.decode.pricing import Pricing
from oisp_sensor.decode.providers import ProviderRegistry
from oisp_sensor.schema.events import SensorEvent

REFERENCE_TIME = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # prices as of this date


def new_builder(**kwargs: Any) -> AiEventBuilder:
    """A builder with counter ids (E1, E2, ...) and prices fixed at REFERENCE_TIME."""
    counter = itertools.count(1)
    registry = ProviderRegistry.default()
    local = frozenset(p.id for p in registry if p.default_ports)
    kwargs.setdefault("pricing", Pricing(reference_time=REFERENCE_TIME, local_providers=local))
    return AiEventBuilder(registry, lambda ts: f"E{next(counter)}", **kwargs)


def post(host: str, target: str, body: object, *headers: tuple[bytes, bytes]) -> bytes:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return http_request(
        b"POST",
        target.encode(),
        [(b"Host", host.encode()), (b"Content-Type", b"application/json"), *headers],
        raw,
    )


def json_response(
    body: object, status: int = 200, reason: bytes = b"OK", *headers: tuple[bytes, bytes]
) -> bytes:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return http_response(status, [(b"Content-Type", b"application/json"), *headers], raw, reason=reason)


def streamed_response(
    pieces: Iterable[bytes], content_type: bytes = b"text/event-stream", *headers: tuple[bytes, bytes]
) -> bytes:
    """A chunked response, one HTTP chunk per piece (how servers flush stream events)."""
    return http_response(
        200, [(b"Content-Type", content_type), (b"Transfer-Encoding", b"chunked"), *headers], chunked(*pieces)
    )


def sse(data: object, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


def exchange(request: bytes, response: bytes) -> list[Step]:
    return [Step(W, request), Step(R, response)]


def events_of(
    steps: Sequence[Step], pieces: dict[int, list[bytes]] | None = None, builder: AiEventBuilder | None = None
) -> list[SensorEvent]:
    outputs, _ = run(steps, pieces)
    b = builder or new_builder()
    events: list[SensorEvent] = []
    for output in outputs:
        events.extend(b.process(output))
    return events


def conversation(*exchanges: list[Step], builder: AiEventBuilder | None = None) -> list[SensorEvent]:
    """Several exchanges in order on one keep-alive connection, through one builder."""
    steps = [step for ex in exchanges for step in ex]
    return events_of(steps, builder=builder)


def by_type(events: Sequence[SensorEvent], event_type: str) -> list[SensorEvent]:
    return [e for e in events if e.event_type == event_type]


def one(events: Sequence[SensorEvent], event_type: str) -> SensorEvent:
    found = by_type(events, event_type)
    assert len(found) == 1, [e.event_type for e in events]
    return found[0]


def timeless(events: Sequence[SensorEvent]) -> list[tuple[str, str, dict[str, Any]]]:
    """Events without what depends on how records were cut (timestamps, ms figures)."""
    out = []
    for e in events:
        data = {
            k: v for k, v in e.data.items() if not k.endswith("_ms") and k != "time_to_first_token_source"
        }
        out.append((e.event_type, e.event_id, data))
    return out


def assert_split_invariant(steps: Sequence[Step]) -> list[SensorEvent]:
    """Events are the same however the bytes are cut into records; returns the uncut ones."""
    whole = events_of(steps)
    expected = timeless(whole)
    for name, pieces in split_variants(steps):
        assert timeless(events_of(steps, pieces)) == expected, name
    return whole
