"""OpenTelemetry (OTLP) exporter: spans and log records over gRPC or HTTP/protobuf.

The official SDK builds the telemetry (see otlp_map) and the official OTLP exporters
send it; batching and the bounded queue are this package's (QueuedExporter), so every
event is counted as sent or dropped, which the SDK's own batch processor would not do.

Configuration keys left unset fall back to the standard environment variables, as the
OTLP exporters define them: OTEL_EXPORTER_OTLP_ENDPOINT (and the _TRACES_ / _LOGS_
variants), _PROTOCOL, _HEADERS, _COMPRESSION, _CERTIFICATE, _TIMEOUT, and
OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES for the resource.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource

from .. import __version__
from ..config import OtlpExport
from .base import ExporterError, QueuedExporter
from .otlp_map import Converted, OtlpMapper

log = logging.getLogger(__name__)

_SIGNAL_PATHS = ("/v1/traces", "/v1/logs")


class _LastError(logging.Handler):
    """Keeps the OTLP exporters' own error messages (from our worker thread only) so the
    stats say why an export failed, and keeps them off the console: the sensor reports
    each problem once, in one line, itself."""

    def __init__(self, thread_name: str) -> None:
        super().__init__(logging.WARNING)
        self.thread_name = thread_name
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName == self.thread_name:
            try:
                self.message = " ".join(record.getMessage().split())[:300]
            except Exception:
                self.message = str(record.msg)[:300]


def _protocol(config: OtlpExport) -> str:
    if "protocol" in config.model_fields_set:
        value = config.protocol
    else:
        value = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", config.protocol)
    return "grpc" if value == "grpc" else "http"


def _http_base(endpoint: str) -> str:
    """The seed writes the HTTP endpoint as ".../v1/logs": both signals' base URL."""
    trimmed = endpoint.rstrip("/")
    for suffix in _SIGNAL_PATHS:
        if trimmed.endswith(suffix):
            return trimmed[: -len(suffix)]
    return trimmed


def build_resource(config: OtlpExport) -> Resource:
    attributes: dict[str, Any] = {
        "service.version": __version__,
        "host.name": socket.gethostname(),
        "telemetry.distro.name": "oisp-sensor",
    }
    # Resource.create reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; attributes given
    # here win over them, so service.name is given only when the config names it.
    if "service_name" in config.model_fields_set or not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = config.service_name
    return Resource.create(attributes)


class OtlpExporter(QueuedExporter):
    tick_interval_s = 5.0  # ends spans whose other half never came

    def __init__(self, config: OtlpExport, name: str = "otlp") -> None:
        super().__init__(
            name,
            queue_size=config.queue_size,
            batch_size=config.batch_size,
            linger_s=config.flush_interval_ms / 1000,
        )
        self.config = config
        self.protocol = _protocol(config)
        self.mapper = OtlpMapper(build_resource(config))
        self.endpoint = ""
        self._spans: Any = None
        self._logs: Any = None
        self._errors = _LastError(f"oisp-export-{name}")
        self._lock = threading.Lock()  # the mapper is used by the worker, and by close()
        self._sending_at_shutdown = 0

    # -- setup --
    def open(self) -> None:
        config = self.config
        explicit = config.model_fields_set
        cert = config.tls_cert_path
        if cert and not os.access(cert, os.R_OK):
            raise ExporterError(f"[export.otlp] tls_cert_path {cert}: cannot read the file")
        timeout = config.timeout_ms / 1000
        headers = dict(config.headers) if "headers" in explicit else None
        compress = config.compression == "gzip" if "compression" in explicit else None
        endpoint = config.endpoint if "endpoint" in explicit else None
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ExporterError(
                f"[export.otlp] endpoint {endpoint!r}: give a URL, e.g. http://localhost:4317"
            )
        try:
            if self.protocol == "grpc":
                self._grpc(endpoint, headers, compress, cert, timeout)
            else:
                self._http(endpoint, headers, compress, cert, timeout)
        except ExporterError:
            raise
        except Exception as exc:  # the SDK validates its arguments (and environment) here
            raise ExporterError(f"[export.otlp]: {' '.join(str(exc).split())}") from None
        otel_log = logging.getLogger("opentelemetry.exporter")
        otel_log.addHandler(self._errors)
        otel_log.propagate = False  # reported by this exporter, in one line
        log.info("otlp exporter: %s to %s", self.protocol, self.endpoint)

    def _grpc(
        self,
        endpoint: str | None,
        headers: dict[str, str] | None,
        gzip: bool | None,
        cert: str,
        timeout: float,
    ) -> None:
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        credentials = None
        if cert:
            with open(cert, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        compression = (
            None if gzip is None else (grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression)
        )
        common: dict[str, Any] = {"headers": headers, "timeout": timeout, "compression": compression}
        if credentials is not None:
            common["credentials"] = credentials
            common["insecure"] = False
        self._spans = OTLPSpanExporter(endpoint=endpoint, **common)
        self._logs = OTLPLogExporter(endpoint=endpoint, **common)
        self.endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317")

    def _http(
        self,
        endpoint: str | None,
        headers: dict[str, str] | None,
        gzip: bool | None,
        cert: str,
        timeout: float,
    ) -> None:
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        compression = None if gzip is None else (Compression.Gzip if gzip else Compression.NoCompression)
        common: dict[str, Any] = {"headers": headers, "timeout": timeout, "compression": compression}
        if cert:
            common["certificate_file"] = cert
        base = _http_base(endpoint) if endpoint is not None else None
        self._spans = OTLPSpanExporter(endpoint=f"{base}/v1/traces" if base else None, **common)
        self._logs = OTLPLogExporter(endpoint=f"{base}/v1/logs" if base else None, **common)
        self.endpoint = base or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")

    # -- delivery --
    def deliver(self, batch: list[dict[str, Any]]) -> int:
        with self._lock:
            converted = self.mapper.convert(batch)
        return self._send(converted)

    def tick(self) -> None:
        with self._lock:
            converted = self.mapper.expire()
        sent = self._send(converted)
        if sent:
            self.count_exported(sent)

    def _send(self, converted: Converted) -> int:
        """Export spans and logs, `batch_size` at a time (what expires at once can be
        large); returns the events delivered and counts the rest as dropped."""
        from opentelemetry.sdk._logs.export import LogRecordExportResult
        from opentelemetry.sdk.trace.export import SpanExportResult

        step = self.config.batch_size
        sent = 0
        spans, counts = converted.spans, converted.span_counts
        for i in range(0, len(spans), step):
            n = sum(counts[i : i + step])
            if self._spans.export(spans[i : i + step]) == SpanExportResult.SUCCESS:
                sent += n
            else:
                self.count_failed(n, self._failure("spans"))
        logs = converted.logs
        for i in range(0, len(logs), step):
            part = logs[i : i + step]
            if self._logs.export(part) == LogRecordExportResult.SUCCESS:
                sent += len(part)
            else:
                self.count_failed(len(part), self._failure("log records"))
        return sent

    def _failure(self, what: str) -> str:
        detail = self._errors.message or "no answer"
        self._errors.message = None
        return f"cannot export {what} to {self.endpoint} ({self.protocol}): {detail}"

    def shutdown(self) -> None:
        try:
            with self._lock:
                converted = self.mapper.expire(everything=True)  # calls still open end here
            if self.remaining() > 0.5:
                self._sending_at_shutdown = converted.span_events
                sent = self._send(converted)
                self._sending_at_shutdown = 0
                if sent:
                    self.count_exported(sent)
            else:
                self.count_failed(converted.span_events, "shutdown deadline passed")
        finally:
            for exporter in (self._spans, self._logs):
                if exporter is not None:
                    exporter.shutdown()
            logging.getLogger("opentelemetry.exporter").removeHandler(self._errors)

    def undelivered_on_abandon(self, inflight: int) -> int:
        return inflight + self._sending_at_shutdown

    def details(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "protocol": self.protocol, "waiting_for_pair": self.mapper.held}
