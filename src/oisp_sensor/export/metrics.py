"""Prometheus metrics at /metrics on the web port.

Two sources: the events themselves (AI calls, tokens, cost, latency by provider, model
and app), counted by an exporter of their own so a scrape never touches the capture
path; and the sensor's health (kernel records and losses, events by type, every
exporter's queue and counters), read from the live stats at scrape time.

Models and apps come from traffic, so their label values are capped (`max_series`):
past the cap new combinations are counted under model="other", app="other" rather
than growing the scrape without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..config import MetricsExport
from ..guard import metric_families
from .base import QueuedExporter
from .web import SharedServer

StatsProvider = Callable[[], dict[str, Any]]

_LABELS = ("provider", "model", "app")
# AI call latencies run from tens of milliseconds (local models) to minutes (long streams).
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def _ids(event: dict[str, Any]) -> tuple[str, str, str]:
    data = event.get("data") or {}
    provider = (data.get("provider") or {}).get("id") or "unknown"
    model = (data.get("model") or {}).get("id") or "unknown"
    app = (event.get("app") or {}).get("id") or "unknown"
    return str(provider), str(model), str(app)


class AiMetrics:
    """Counters and histograms fed from events (thread-safe: prometheus_client locks)."""

    def __init__(self, registry: CollectorRegistry, max_series: int) -> None:
        self.max_series = max_series
        self._series: set[tuple[str, str, str]] = set()
        self.requests = Counter("oisp_ai_requests", "AI API requests seen", _LABELS, registry=registry)
        self.responses = Counter(
            "oisp_ai_responses", "AI API responses seen, by outcome", (*_LABELS, "outcome"), registry=registry
        )
        self.errors = Counter(
            "oisp_ai_errors", "AI API calls that failed, by error type", (*_LABELS, "error_type"),
            registry=registry,
        )  # fmt: skip
        self.tokens = Counter(
            "oisp_ai_tokens", "Tokens used, by direction (input/output)", (*_LABELS, "direction"),
            registry=registry,
        )  # fmt: skip
        self.cost = Counter("oisp_ai_cost_usd", "Cost of AI calls in US dollars", _LABELS, registry=registry)
        self.latency = Histogram(
            "oisp_ai_latency_seconds", "AI call latency, request start to response end", _LABELS,
            buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "oisp_ai_time_to_first_token_seconds", "Time to the first streamed token", _LABELS,
            buckets=_TTFT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.tool_calls = Counter(
            "oisp_agent_tool_calls", "Tool calls requested by models", ("provider", "app"), registry=registry
        )

    def _labels(self, event: dict[str, Any]) -> tuple[str, str, str]:
        key = _ids(event)
        if key in self._series:
            return key
        if len(self._series) < self.max_series:
            self._series.add(key)
            return key
        return key[0], "other", "other"

    def observe(self, event: dict[str, Any]) -> None:
        kind = event.get("event_type")
        if kind == "ai.request":
            self.requests.labels(*self._labels(event)).inc()
        elif kind == "ai.response":
            self._response(event)
        elif kind == "agent.tool_call":
            provider, _model, app = _ids(event)
            self.tool_calls.labels(provider, app).inc()

    def _response(self, event: dict[str, Any]) -> None:
        labels = self._labels(event)
        data = event.get("data") or {}
        ok = bool(data.get("success"))
        self.responses.labels(*labels, "success" if ok else "error").inc()
        if not ok:
            error = data.get("error") or {}
            etype = error.get("type") if isinstance(error, dict) else None
            if not etype:
                etype = f"http_{data['status_code']}" if data.get("status_code") else "no_response"
            self.errors.labels(*labels, str(etype)[:64]).inc()
        usage = data.get("usage") or {}
        for direction, key in (("input", "prompt_tokens"), ("output", "completion_tokens")):
            value = usage.get(key)
            if isinstance(value, int | float) and value > 0:
                self.tokens.labels(*labels, direction).inc(value)
        cost = (data.get("cost") or {}).get("usd")
        if isinstance(cost, int | float) and cost > 0:
            self.cost.labels(*labels).inc(cost)
        latency = data.get("latency_ms")
        if isinstance(latency, int | float) and ok:
            self.latency.labels(*labels).observe(latency / 1000)
        ttft = data.get("time_to_first_token_ms")
        if isinstance(ttft, int | float):
            self.ttft.labels(*labels).observe(ttft / 1000)


class SensorHealth:
    """A custom collector: the sensor's own counters, read from the live stats per scrape."""

    def __init__(self, provider: Callable[[], StatsProvider | None]) -> None:
        self._provider = provider

    def collect(self) -> Iterator[Metric]:
        get = self._provider()
        if get is None:
            return
        stats = get()
        kernel = stats.get("kernel") or {}
        yield _counter("oisp_kernel_records", "Records captured in the kernel", kernel.get("data_records", 0))
        yield _counter(
            "oisp_kernel_records_lost", "Records lost in the kernel (ring buffer full)",
            kernel.get("lost_records", 0) + kernel.get("ctl_lost", 0),
        )  # fmt: skip
        yield _counter("oisp_kernel_bytes_truncated", "Payload bytes cut off", kernel.get("trunc_bytes", 0))
        events = CounterMetricFamily("oisp_events", "Events emitted, by type", labels=["event_type"])
        for event_type, count in sorted((stats.get("events_by_type") or {}).items()):
            events.add_metric([event_type], count)
        yield events
        sensor = stats.get("sensor") or {}
        if "uptime_s" in sensor:
            yield GaugeMetricFamily("oisp_sensor_uptime_seconds", "Seconds since start", sensor["uptime_s"])
        yield from _exporter_metrics(stats.get("exporters") or {})
        yield from metric_families(stats.get("guard") or {})


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _exporter_metrics(exporters: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    families = {
        "queue_depth": GaugeMetricFamily("oisp_exporter_queue_depth", "Events waiting", labels=["exporter"]),
        "up": GaugeMetricFamily("oisp_exporter_up", "1 when the exporter is healthy", labels=["exporter"]),
    }
    counters = {
        key: CounterMetricFamily(f"oisp_exporter_{name}", doc, labels=["exporter"])
        for key, name, doc in (
            ("events_submitted", "events_submitted", "Events handed to the exporter"),
            ("events_exported", "events_sent", "Events delivered"),
            ("events_dropped", "events_dropped", "Events dropped (queue full, rejected, or at shutdown)"),
            ("events_retried", "events_retried", "Events sent again after a failed attempt"),
            ("errors", "errors", "Delivery errors"),
        )
    }
    for name, exp in sorted(exporters.items()):
        families["queue_depth"].add_metric([name], exp.get("queue_depth", 0))
        families["up"].add_metric([name], 1 if exp.get("status") == "ok" else 0)
        for key, family in counters.items():
            family.add_metric([name], exp.get(key, 0))
    yield from families.values()
    yield from counters.values()


class MetricsExporter(QueuedExporter):
    """Feeds AiMetrics from the event stream and serves the registry on the web server."""

    def __init__(self, config: MetricsExport, shared: SharedServer, name: str = "metrics") -> None:
        super().__init__(name, queue_size=config.queue_size, batch_size=1024)
        self.config = config
        self.shared = shared
        self.server = server = shared.server
        self.registry = CollectorRegistry(auto_describe=False)
        self.ai = AiMetrics(self.registry, config.max_series)
        self.stats_provider: StatsProvider | None = None  # set once the sensor exists
        self.registry.register(SensorHealth(lambda: self.stats_provider))
        server.add_get(config.path, self._serve)

    async def _serve(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def open(self) -> None:
        self.shared.acquire()

    def shutdown(self) -> None:
        self.shared.release()

    def deliver(self, batch: list[dict[str, Any]]) -> None:
        observe = self.ai.observe
        for event in batch:
            observe(event)
