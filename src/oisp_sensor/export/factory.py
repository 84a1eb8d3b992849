"""Builds the enabled exporters from the config, and the web server they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..config import SensorConfig
from .base import Exporter
from .web import SharedServer, WebServer

StatsProvider = Callable[[], dict[str, Any]]


@dataclass
class Exports:
    exporters: list[Exporter] = field(default_factory=list)
    server: WebServer | None = None
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

    async def _health(self, _request: web.Request) -> web.Response:
        """The Export seed's health endpoint: per-exporter status and last error."""
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
        healthy = all(e["status"] in ("ok", "closed") for e in exports.values())
        return web.json_response({"status": "healthy" if healthy else "degraded", "exports": exports})


def build_exporters(config: SensorConfig) -> Exports:
    """The exporters the config enables, not started. Raises ExporterError (one line)."""
    from .jsonl import JsonlExporter

    export = config.export
    out = Exports()
    if export.jsonl.enabled:
        out.exporters.append(JsonlExporter(export.jsonl))
    if export.websocket.enabled or export.metrics.enabled:
        ws = export.websocket
        out.server = WebServer(ws.host, ws.port, ws.token, ws.allowed_origins)
        shared = SharedServer(out.server)
        out.server.add_get("/api/health", out._health)
        if ws.enabled:
            from .websocket import WebSocketExporter

            out.exporters.append(WebSocketExporter(ws, shared))
        if export.metrics.enabled:
            from .metrics import MetricsExporter

            out.exporters.append(MetricsExporter(export.metrics, shared))
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
