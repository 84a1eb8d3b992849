"""The numbers of `oisp-sensor report`: AI calls, tokens, cost, latency, errors and tool
calls, in total and per provider, model, app and process."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import fields as f

REPORT_VERSION = 1
PERCENTILES = (50, 90, 95, 99)
GROUPS = ("provider", "model", "app", "process")


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil without floats drifting
    return sorted_values[int(rank) - 1]


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0  # responses without a known price
    latencies: list[float] = field(default_factory=list)

    def add(self, req: dict[str, Any], resp: dict[str, Any] | None) -> None:
        self.requests += 1
        if resp is None:
            return
        if f.is_error(resp):
            self.errors += 1
        toks = f.tokens(resp)
        self.prompt_tokens += toks.get("prompt_tokens", 0)
        self.completion_tokens += toks.get("completion_tokens", 0)
        self.total_tokens += toks.get("total_tokens", 0)
        cost = f.cost_usd(resp)
        if cost is None:
            self.unpriced += 1
        else:
            self.cost_usd += cost
        ms = f.latency_ms(resp)
        if ms is not None:
            self.latencies.append(ms)

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": round(self.cost_usd, 9),
            "unpriced_responses": self.unpriced,
            "latency_ms": {
                **{f"p{p}": percentile(lat, p) for p in PERCENTILES},
                "max": lat[-1] if lat else 0.0,
                "count": len(lat),
            },
        }


def _key(group: str, req: dict[str, Any], resp: dict[str, Any] | None) -> str:
    if group == "provider":
        return f.provider_id(req) or "unknown"
    if group == "model":
        return f.model_id(req) or (f.model_id(resp) if resp else None) or "unknown"
    if group == "app":
        return f.app_id(req)
    return f.process_name(req)


def build_report(events: list[dict[str, Any]], source: str, malformed: int = 0) -> dict[str, Any]:
    """The report as plain data (what `--format json` prints and `--baseline` reads)."""
    total = Tally()
    groups: dict[str, dict[str, Tally]] = {g: {} for g in GROUPS}
    calls = f.ai_calls(events)
    incomplete = 0
    for req, resp in calls:
        total.add(req, resp)
        if resp is None:
            incomplete += 1
        for group in GROUPS:
            groups[group].setdefault(_key(group, req, resp), Tally()).add(req, resp)
    tools = Counter(
        str(name) if isinstance(name := (f.data(e).get("tool") or {}).get("name"), str) else "?"
        for e in events
        if e.get("event_type") == "agent.tool_call" and isinstance(f.data(e).get("tool") or {}, dict)
    )
    ttft = sorted(
        float(v)
        for _, resp in calls
        if resp is not None
        and isinstance(v := f.data(resp).get("time_to_first_token_ms"), int | float)
        and not isinstance(v, bool)
    )
    timestamps = sorted(str(e["timestamp"]) for e in events if isinstance(e.get("timestamp"), str))
    return {
        "oisp_report": REPORT_VERSION,
        "source": source,
        "events": len(events),
        "malformed_lines": malformed,
        "first_event": timestamps[0] if timestamps else None,
        "last_event": timestamps[-1] if timestamps else None,
        "event_types": dict(sorted(Counter(str(e.get("event_type")) for e in events).items())),
        "totals": {
            **total.as_dict(),
            "incomplete": incomplete,
            "streaming": sum(1 for req, _ in calls if f.data(req).get("streaming") is True),
            "tool_calls": sum(tools.values()),
            "time_to_first_token_ms": {f"p{p}": percentile(ttft, p) for p in (50, 95)} | {"count": len(ttft)},
        },
        "tools": dict(tools.most_common()),
        **{
            f"by_{group}": {
                key: tally.as_dict()
                for key, tally in sorted(groups[group].items(), key=lambda kv: (-kv[1].requests, kv[0]))
            }
            for group in GROUPS
        },
    }
