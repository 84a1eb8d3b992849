"""Incremental call aggregates for the dashboard: totals, latency percentiles and time series.

Every AI call is counted, when it happens, in one *cell*: (1-minute time slot, provider,
model, app, pid). A query merges the cells of its window, so it costs the number of
cells, not the number of events, and covers every call seen in the window even when the
event store has long dropped the events themselves. Cells older than `retention_s` are
dropped. Windows start on a slot boundary: a window covers whole minutes, the current one
included.

Latencies are kept per cell as exact values (so percentiles are exact), at most
`_MAX_SAMPLES` per cell: beyond that a uniform reservoir sample is kept, which only
happens above 16 calls a second from one process to one model.
"""

from __future__ import annotations

import math
import random
from array import array
from typing import Any

SLOT_S = 60  # cell width: the finest `bucket_s` a query can have
BLOCK_S = 900  # cached summaries of 15 slots
_MAX_SAMPLES = 1000
CellKey = tuple[str, str, str, int]  # provider, model, app id, pid


class Agg:
    """Sums over calls, and their latencies (ms)."""

    __slots__ = (
        "cost_usd",
        "errors",
        "input_tokens",
        "latencies",
        "output_tokens",
        "requests",
        "seen",
        "streaming",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.streaming = 0
        self.latencies: array[float] = array("d")
        self.seen = 0  # latencies offered (for the reservoir)

    def add_latency(self, ms: float, rng: random.Random) -> None:
        self.seen += 1
        lat = self.latencies
        if len(lat) < _MAX_SAMPLES:
            lat.append(ms)
            return
        slot = rng.randrange(self.seen)
        if slot < _MAX_SAMPLES:
            lat[slot] = ms

    def merge(self, other: Agg) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.streaming += other.streaming
        self.latencies.extend(other.latencies)

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "latency_ms": {
                "p50": percentile(ordered, 50),
                "p95": percentile(ordered, 95),
                "p99": percentile(ordered, 99),
            },
            "streaming": self.streaming,
        }


def percentile(ordered: list[float] | array[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values (None when there are none): a value that
    was actually measured, never an interpolation between two calls."""
    n = len(ordered)
    if not n:
        return None
    rank = max(1, math.ceil(p / 100 * n))
    return round(ordered[rank - 1], 3)


class Summary:
    """The merged cells of a slot or a block: totals and the four groupings."""

    __slots__ = ("dims", "total")

    def __init__(self) -> None:
        self.total = Agg()
        self.dims: tuple[dict[Any, Agg], ...] = ({}, {}, {}, {})

    def add_cell(self, key: CellKey, agg: Agg) -> None:
        self.total.merge(agg)
        for group, part in zip(self.dims, key, strict=True):
            _merge_into(group, part, agg)

    def finish(self) -> Summary:
        """Sorted latencies: merged summaries are then sorted runs, which sort fast."""
        for agg in (self.total, *(a for group in self.dims for a in group.values())):
            agg.latencies = array("d", sorted(agg.latencies))
        return self

    def add(self, other: Summary) -> None:
        self.total.merge(other.total)
        for mine, theirs in zip(self.dims, other.dims, strict=True):
            for part, agg in theirs.items():
                _merge_into(mine, part, agg)


def _merge_into(group: dict[Any, Agg], part: Any, agg: Agg) -> None:
    target = group.get(part)
    if target is None:
        target = group[part] = Agg()
    target.merge(agg)


class CallStats:
    """The cells, by time slot. Not thread-safe: the EventStore holds its lock.

    Unfiltered queries (the dashboard's default view, polled every few seconds) merge
    cached summaries: one per slot and one per 5-minute block, rebuilt only when a call
    in them changed. Filtered queries merge the matching cells of every slot.
    """

    def __init__(self, retention_s: int = 86_400) -> None:
        self.retention_s = retention_s
        self.slots: dict[int, dict[CellKey, Agg]] = {}
        self._slot_cache: dict[int, Summary] = {}
        self._block_cache: dict[int, Summary] = {}
        self._rng = random.Random(7)  # reproducible sampling

    def cell(self, ts: float, key: CellKey) -> tuple[int, Agg]:
        """The slot and the cell a call made at `ts` counts in (the caller then calls
        `changed(slot)` after updating it)."""
        slot = int(ts // SLOT_S) * SLOT_S
        cells = self.slots.get(slot)
        if cells is None:
            cells = self.slots[slot] = {}
            if len(self.slots) % 64 == 0:
                self._expire(slot)
        agg = cells.get(key)
        if agg is None:
            agg = cells[key] = Agg()
        return slot, agg

    def changed(self, slot: int) -> None:
        cache = self._slot_cache
        if cache:
            cache.pop(slot, None)
            self._block_cache.pop(slot // BLOCK_S * BLOCK_S, None)

    def add_latency(self, agg: Agg, ms: float) -> None:
        agg.add_latency(ms, self._rng)

    def _expire(self, newest: int) -> None:
        limit = newest - self.retention_s
        for slot in [s for s in self.slots if s < limit]:
            del self.slots[slot]
            self._slot_cache.pop(slot, None)
        for block in [b for b in self._block_cache if b < limit]:
            del self._block_cache[block]

    def _slot_summary(self, slot: int) -> Summary | None:
        found = self._slot_cache.get(slot)
        if found is None:
            cells = self.slots.get(slot)
            if not cells:
                return None
            found = Summary()
            for key, agg in cells.items():
                found.add_cell(key, agg)
            self._slot_cache[slot] = found.finish()
        return found

    def _block_summary(self, block: int) -> Summary:
        found = self._block_cache.get(block)
        if found is None:
            found = Summary()
            for slot in range(block, block + BLOCK_S, SLOT_S):
                part = self._slot_summary(slot)
                if part is not None:
                    found.add(part)
            self._block_cache[block] = found.finish()
        return found

    def query(
        self,
        now: float,
        window_s: int,
        bucket_s: int,
        provider: str | None = None,
        model: str | None = None,
        app: str | None = None,
        pid: int | None = None,
        names: dict[str, dict[Any, str]] | None = None,
    ) -> dict[str, Any]:
        """The /api/stats body for the `window_s` seconds up to `now`."""
        bucket_s = max(SLOT_S, (bucket_s + SLOT_S - 1) // SLOT_S * SLOT_S)
        first_bucket = int((now - window_s) // bucket_s) * bucket_s
        last_bucket = int(now // bucket_s) * bucket_s
        start_slot = int((now - window_s) // SLOT_S) * SLOT_S
        end_slot = int(now // SLOT_S) * SLOT_S
        series: dict[int, Agg] = {t: Agg() for t in range(first_bucket, last_bucket + 1, bucket_s)}
        if provider is None and model is None and app is None and pid is None:
            summary = self._unfiltered(start_slot, end_slot, bucket_s, series)
        else:
            summary = self._filtered(start_slot, end_slot, bucket_s, series, (provider, model, app, pid))
        names = names or {}
        out: dict[str, Any] = {"totals": summary.total.as_dict(), "window_s": window_s, "bucket_s": bucket_s}
        for label, group in zip(("provider", "model", "app", "process"), summary.dims, strict=True):
            out[f"by_{label}"] = _ranked(group, names.get(label, {}))
        out["series"] = [_point(t, agg) for t, agg in series.items()]
        return out

    def _unfiltered(self, start_slot: int, end_slot: int, bucket_s: int, series: dict[int, Agg]) -> Summary:
        out = Summary()
        slot = start_slot
        while slot <= end_slot:
            if slot % BLOCK_S == 0:
                out.add(self._block_summary(slot))
                slot += BLOCK_S
            else:
                part = self._slot_summary(slot)
                if part is not None:
                    out.add(part)
                slot += SLOT_S
        for slot in range(start_slot, end_slot + 1, SLOT_S):
            if slot in self.slots:
                part = self._slot_summary(slot)
                bucket = series.get(slot // bucket_s * bucket_s)
                if part is not None and bucket is not None:
                    bucket.merge(part.total)
        return out

    def _filtered(
        self,
        start_slot: int,
        end_slot: int,
        bucket_s: int,
        series: dict[int, Agg],
        want: tuple[str | None, str | None, str | None, int | None],
    ) -> Summary:
        provider, model, app, pid = want
        out = Summary()
        for slot in range(start_slot, end_slot + 1, SLOT_S):
            cells = self.slots.get(slot)
            if not cells:
                continue
            bucket = series.get(slot // bucket_s * bucket_s)
            for key, agg in cells.items():
                if (
                    (provider is not None and key[0] != provider)
                    or (model is not None and key[1] != model)
                    or (app is not None and key[2] != app)
                    or (pid is not None and key[3] != pid)
                ):
                    continue
                out.add_cell(key, agg)
                if bucket is not None:
                    bucket.merge(agg)
        return out


def _ranked(group: dict[Any, Agg], names: dict[Any, str]) -> list[dict[str, Any]]:
    rows = []
    for key, agg in group.items():
        row = agg.as_dict()
        row["key"] = key
        if key in names:
            row["name"] = names[key]
        rows.append(row)
    rows.sort(key=lambda r: (-r["requests"], str(r["key"])))
    return rows


def _point(t: int, agg: Agg) -> dict[str, Any]:
    ordered = sorted(agg.latencies)
    return {
        "t": t,
        "requests": agg.requests,
        "errors": agg.errors,
        "input_tokens": agg.input_tokens,
        "output_tokens": agg.output_tokens,
        "cost_usd": round(agg.cost_usd, 10),
        "latency_p50": percentile(ordered, 50),
        "latency_p95": percentile(ordered, 95),
    }
