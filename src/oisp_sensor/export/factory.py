"""Builds the enabled exporters from the config, and the web server they share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..config import SensorConfig
from ..ui.store import EventStore
from .base import Exporter
from .web import SharedServer, WebServer

StatsProvider = Callable[[], dict[str, Any]]


@dataclass
class Exports:
    exporters: list[Exporter] = field(default_factory=list)
    server: WebServer | None = None
    shared: SharedServer | None = None
    store: EventStore | None = None  # the dashboard's, when it is on
    _stats: StatsProvider | None = None

    def set_stats_provider(self, provider: StatsProvider) -> None:
        """The live stats (the Sensor's), for /metrics and /api/health."""
        self._stats = provider
        for exporter in self.exporters:
            if hasattr(exporter, "stats_provider"):
                exporter.stats_provider = provider  # type: ignore[attr-defined]

    def describe(self) -> str:
        parts = []
        for exporter in self.exporters:
            where = getattr(exporter, "path", "") or exporter.stats().details.get("url", "")
            where = where or exporter.stats().details.get("endpoint", "")
            parts.append(f"{exporter.name}:{where}" if where else exporter.name)
        return ", ".join(parts)

    def health_parts(self) -> dict[str, Any]:
        """Exporters, capture and sensor figures for /api/health (the dashboard's store adds
        its own)."""
        exports = self._exports_health()
        capture = sensor = None
        if self._stats is not None:
            stats = self._stats()
            kernel = stats.get("kernel") or {}
            summary = stats.get("capture") or {}
            capture = {
                **summary,
                "kernel": kernel,
                "records_lost": kernel.get("lost_records", 0) + kernel.get("ctl_lost", 0),
                "bytes_truncated": kernel.get("trunc_bytes", 0),
                "pipeline": stats.get("pipeline"),
            }
            sensor = stats.get("sensor")
        return {"exports": exports, "capture": capture, "sensor": sensor}

    async def _health(self, _request: web.Request) -> web.Response:
        """The Export seed's health endpoint: per-exporter status and last error (with the
        dashboard on, also capture health and the sensor: ui/store.py EventStore.health)."""
        if self.store is not None:
            body = await asyncio.get_running_loop().run_in_executor(None, self.store.health)
            return web.json_response(body)
        exports = self._exports_health()
        healthy = all(e["status"] in ("ok", "closed") for e in exports.values())
        return web.json_response({"status": "healthy" if healthy else "degraded", "exports": exports})

    def _exports_health(self) -> dict[str, Any]:
        exports = {}
        for exporter in self.exporters:
            s = exporter.stats()
            exports[s.name] = {
                "status": s.status,
                "events_exported": s.events_exported,
                "events_dropped": s.events_dropped,
                "queue_depth": s.queue_depth,
                "last_error": s.last_error,
            }
        return exports


def build_exporters(config: SensorConfig, dashboard: bool = False, tui: bool = False) -> Exports:
    """The exporters the config enables, not started. Raises ExporterError (one line).

    `dashboard`: also the web dashboard (ui/), with the live stream it needs; `tui`: the
    event store the terminal UI shows (the dashboard's, when it is on)."""
    from .jsonl import JsonlExporter

    export = config.export
    out = Exports()
    if export.jsonl.enabled:
        out.exporters.append(JsonlExporter(export.jsonl))
    if export.websocket.enabled or export.metrics.enabled or dashboard:
        ws = export.websocket
        out.server = WebServer(ws.host, ws.port, ws.token, ws.allowed_origins)
        shared = out.shared = SharedServer(out.server)
        out.server.add_get("/api/health", out._health)
        if dashboard:
            from ..ui.api import DashboardExporter

            out.store = EventStore(max_events=config.ui.max_events)
            out.store.set_health_source(out.health_parts)
            out.exporters.append(DashboardExporter(out.store, shared))
        if ws.enabled or dashboard:
            from .websocket import WebSocketExporter

            out.exporters.append(WebSocketExporter(ws, shared))
        if export.metrics.enabled:
            from .metrics import MetricsExporter

            out.exporters.append(MetricsExporter(export.metrics, shared))
    if tui and out.store is None:
        from ..ui.api import DashboardExporter

        out.store = EventStore(max_events=config.ui.max_events)
        out.store.set_health_source(out.health_parts)
        out.exporters.append(DashboardExporter(out.store, None, name="tui"))
    if export.otlp.enabled:
        from .otlp import OtlpExporter

        out.exporters.append(OtlpExporter(export.otlp))
    if export.kafka.enabled:
        from .kafka import KafkaExporter

        out.exporters.append(KafkaExporter(export.kafka))
    if export.webhook.enabled:
        from .webhook import WebhookExporter

        out.exporters.append(WebhookExporter(export.webhook))
    return out
