"""Webhook exporter: events as JSON over HTTP(S), batched or one request per event.

Batched body (the Export seed's request format):
    {"events": [...], "sensor_id": "...", "batch_id": "..."}
Single (`batch = false`): the event object itself.

Every request carries X-OISP-Batch-Id (the same on retries, so receivers can ignore a
batch they already have) and, with `hmac_secret`, a signature receivers can check:
    X-OISP-Timestamp: <unix seconds>
    X-OISP-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
The timestamp is part of what is signed so an old request cannot be replayed as new.

Connection errors, timeouts, 429 and 5xx are retried `retry_count` times with
exponential backoff (with jitter; Retry-After honoured up to the maximum backoff);
other 4xx answers are final. A batch that fails every attempt is counted as dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
import urllib3

from ..config import WebhookExport
from .base import ExporterError, QueuedExporter

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookExporter(QueuedExporter):
    def __init__(self, config: WebhookExport, name: str = "webhook") -> None:
        super().__init__(
            name,
            queue_size=config.queue_size,
            batch_size=config.batch_size,
            linger_s=config.flush_interval_ms / 1000,
        )
        self.config = config
        self.sensor_id = config.sensor_id or socket.gethostname()
        self._headers = self._base_headers()
        self._http: urllib3.PoolManager | None = None
        # Logs and stats name the destination without its path: webhook URLs often
        # carry their secret there (Slack, n8n).
        parts = urlsplit(config.url)
        self.target = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self._timeout = urllib3.Timeout(
            connect=min(10.0, config.timeout_ms / 1000), read=config.timeout_ms / 1000
        )

    def _base_headers(self) -> dict[str, str]:
        config = self.config
        headers = {"Content-Type": "application/json", "User-Agent": "oisp-sensor"}
        headers.update(config.headers)
        if config.bearer_token:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        elif config.basic_username:
            raw = f"{config.basic_username}:{config.basic_password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        elif config.api_key:
            headers[config.api_key_header] = config.api_key
        return headers

    def open(self) -> None:
        config = self.config
        kwargs: dict[str, Any] = {"maxsize": 2, "retries": False}
        if config.url.startswith("https://"):
            if not config.tls_verify:
                kwargs["cert_reqs"] = "CERT_NONE"
            elif config.tls_ca_path:
                kwargs["ca_certs"] = config.tls_ca_path
        try:
            self._http = urllib3.PoolManager(**kwargs)
        except (OSError, ValueError) as exc:
            raise ExporterError(f"[export.webhook]: {exc}") from None
        if not config.tls_verify:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def deliver(self, batch: list[dict[str, Any]]) -> int | None:
        if self.config.batch:
            batch_id = uuid.uuid4().hex
            body = orjson.dumps({"events": batch, "sensor_id": self.sensor_id, "batch_id": batch_id})
            self._send(body, batch_id, len(batch))
            return None
        sent = 0
        for event in batch:
            try:
                self._send(orjson.dumps(event), str(event.get("event_id") or uuid.uuid4().hex), 1)
                sent += 1
            except ExporterError as exc:
                self.count_failed(1, str(exc))
        return sent

    def _send(self, body: bytes, batch_id: str, count: int) -> None:
        """One request, retried; raises ExporterError (one line) when every attempt failed."""
        config = self.config
        attempts = config.retry_count + 1
        reason = ""
        for attempt in range(attempts):
            if attempt:
                self.count_retried(count)
            retry_after = self._attempt(body, batch_id)
            if retry_after is None:
                return
            reason, wait = retry_after
            if attempt + 1 == attempts or self.abort.is_set():
                break
            backoff = min(config.retry_max_backoff_ms, config.retry_backoff_ms * 2**attempt) / 1000
            backoff *= random.uniform(0.8, 1.2)  # jitter: many sensors must not retry in step
            if wait is not None:
                backoff = min(max(backoff, wait), config.retry_max_backoff_ms / 1000)
            if self.abort.wait(min(backoff, self.remaining(backoff))):
                break
        raise ExporterError(f"{config.method} {self.target} failed after {attempt + 1} attempt(s): {reason}")

    def _attempt(self, body: bytes, batch_id: str) -> tuple[str, float | None] | None:
        """None on success, else (reason, Retry-After seconds) for a retry; raises when final
        (4xx other than 408/425/429: retrying would not help)."""
        config = self.config
        headers = dict(self._headers)
        headers["X-OISP-Batch-Id"] = batch_id
        if config.hmac_secret:
            stamp = str(int(time.time()))
            headers["X-OISP-Timestamp"] = stamp
            headers["X-OISP-Signature"] = signature(config.hmac_secret, stamp, body)
        assert self._http is not None
        try:
            response = self._http.request(
                config.method, config.url, body=body, headers=headers, timeout=self._timeout, redirect=False
            )
        except urllib3.exceptions.HTTPError as exc:
            return _network_reason(exc), None
        status = response.status
        if 200 <= status < 300:
            return None
        reason = f"HTTP {status}"
        if status in _RETRY_STATUS:
            after = response.headers.get("Retry-After", "")
            return reason, float(after) if after.strip().isdigit() else None
        raise ExporterError(f"{config.method} {self.target} rejected the events: {reason} (not retried)")

    def shutdown(self) -> None:
        if self._http is not None:
            self._http.clear()

    def details(self) -> dict[str, Any]:
        return {"url": self.target, "batch": self.config.batch}


def _network_reason(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    # NewConnectionError is a subclass of the timeout errors in urllib3: tested first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "connection refused" if "refused" in str(exc).lower() else "cannot connect"
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "connection closed by the server"
    return " ".join(str(exc).split())[:200]
