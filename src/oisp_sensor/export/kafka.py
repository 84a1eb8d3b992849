"""Kafka exporter (confluent-kafka, i.e. librdkafka): one compact JSON message per event.

librdkafka batches (`batch_size` -> batch.num.messages, `flush_interval_ms` ->
linger.ms), compresses, retries and reconnects by itself; this exporter feeds it from
its own bounded queue and counts every message from its delivery report: sent, or
dropped with the broker's reason once `delivery_timeout_ms` has passed. A broker that
is down at start is not fatal: messages wait (bounded) until it is reachable.

The message key keeps related events in one partition, and so in order: by default an
AI conversation's (else the AI call's, else the process's) events; `key` selects
process, host or none instead.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import orjson

from ..config import KafkaExport
from .base import ExporterError, QueuedExporter

log = logging.getLogger(__name__)

# librdkafka errors that say the cluster cannot be reached (not a per-message problem).
_UNREACHABLE = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT")


def message_key(event: dict[str, Any], mode: str) -> bytes | None:
    if mode == "none":
        return None
    host = event.get("host") or {}
    hostname = str(host.get("hostname") or host.get("device_id") or "")
    if mode == "host":
        return hostname.encode()
    pid = (event.get("process") or {}).get("pid")
    if mode == "conversation":
        data = event.get("data") or {}
        conv = data.get("conversation_id") or data.get("request_event_id")
        if not conv and str(event.get("event_type", "")).startswith("ai."):
            conv = (
                data.get("related_event_id")
                if event.get("event_type") != "ai.request"
                else event.get("event_id")
            )
        if conv:
            return str(conv).encode()
    return f"{hostname}/{pid}".encode()


class _DebugLog:
    def log(self, _level: int, fmt: str, *args: Any) -> None:
        log.debug("librdkafka: " + fmt, *args)


def producer_config(config: KafkaExport, on_error: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(config.brokers),
        "client.id": config.client_id,
        "acks": config.acks,
        "compression.type": config.compression,
        "linger.ms": config.flush_interval_ms,
        "batch.num.messages": config.batch_size,
        "message.timeout.ms": config.delivery_timeout_ms,
        "security.protocol": config.security_protocol,
        # Bounded in librdkafka too; this exporter's queue holds the rest.
        "queue.buffering.max.messages": 200_000,
        "error_cb": on_error,
        # librdkafka logs through Python logging, at debug level: its connection errors
        # reach the user once, in one line, through error_cb.
        "logger": _DebugLog(),
    }
    if config.sasl_mechanism:
        conf["sasl.mechanism"] = config.sasl_mechanism
    if config.sasl_username:
        conf["sasl.username"] = config.sasl_username
        conf["sasl.password"] = config.sasl_password
    for key, path in (
        ("ssl.ca.location", config.tls_ca_path),
        ("ssl.certificate.location", config.tls_cert_path),
        ("ssl.key.location", config.tls_key_path),
    ):
        if path:
            if not os.access(path, os.R_OK):
                raise ExporterError(f"[export.kafka] {path}: cannot read the file")
            conf[key] = path
    conf.update(config.options)
    return conf


class KafkaExporter(QueuedExporter):
    tick_interval_s = 0.5  # serve delivery reports while idle

    def __init__(self, config: KafkaExport, name: str = "kafka") -> None:
        # Batches from the queue are large: librdkafka does the real batching.
        super().__init__(name, queue_size=config.queue_size, batch_size=max(1000, config.batch_size))
        self.config = config
        self._producer: Any = None
        self._reachable = True
        self._unproduced = 0  # events of the batch in flight not yet handed to librdkafka
        self._outstanding = 0  # handed to librdkafka, delivery report not yet served

    def open(self) -> None:
        from confluent_kafka import KafkaException, Producer

        if not self.config.brokers:
            raise ExporterError("[export.kafka] brokers is empty")
        try:
            self._producer = Producer(producer_config(self.config, self._on_error))
        except KafkaException as exc:
            raise ExporterError(f"[export.kafka]: {exc.args[0].str() if exc.args else exc}") from None
        except (ValueError, TypeError) as exc:
            raise ExporterError(f"[export.kafka]: {exc}") from None

    # -- librdkafka callbacks (called from poll/flush in the worker or close thread) --
    def _on_error(self, err: Any) -> None:
        name = err.name()
        if name in _UNREACHABLE:
            self._reachable = False
            with self._cond:
                self.note_error(f"cannot reach brokers {','.join(self.config.brokers)}: {err.str()}")
        elif err.fatal():
            with self._cond:
                self.note_error(f"fatal: {err.str()}")
        else:
            log.debug("kafka: %s", err.str())

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        with self._cond:  # re-entrant: the counters below take it too
            self._outstanding -= 1
            if err is None:
                self._reachable = True
                self.count_exported(1)
            else:
                self.count_failed(1, f"message not delivered to {self.config.topic}: {err.str()}")

    # -- delivery --
    def deliver(self, batch: list[dict[str, Any]]) -> int:
        from confluent_kafka import KafkaException

        producer = self._producer
        topic, mode, report = self.config.topic, self.config.key, self._on_delivery
        dumps = orjson.dumps
        with self._cond:
            self._unproduced = len(batch)
        for event in batch:
            value = dumps(event)
            key = message_key(event, mode)
            while True:
                try:
                    with self._cond:  # exact accounting if shutdown gives up on this batch
                        producer.produce(topic, value, key, on_delivery=report)
                        self._outstanding += 1
                        self._unproduced -= 1
                    break
                except BufferError:
                    # librdkafka's own queue is full (broker slow or down): wait for it,
                    # but not past shutdown; what is left is counted by close().
                    if self.abort.is_set():
                        raise ExporterError("shutting down with the broker's queue full") from None
                    producer.poll(0.1)
                except KafkaException as exc:
                    with self._cond:
                        self._unproduced -= 1
                        self.count_failed(1, f"cannot produce to {topic}: {exc.args[0].str()}")
                    break
        producer.poll(0)
        return 0  # counted by the delivery reports

    def tick(self) -> None:
        self._producer.poll(0)

    def drain(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while len(self._producer) and time.monotonic() < end:
            self._producer.flush(min(0.2, max(0.0, end - time.monotonic())))
        return len(self._producer) == 0

    def shutdown(self) -> None:
        producer = self._producer
        if producer is None:
            return
        # Purge a little before the deadline so the purged messages are still counted here.
        producer.flush(max(0.0, self.remaining() - 0.3))
        if len(producer):
            # Still undelivered at the deadline: purged, so their delivery reports count them.
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.poll(0)
            producer.flush(0)

    def undelivered_on_abandon(self, inflight: int) -> int:
        # Called with the lock held, after which delivery reports are no longer counted.
        return self._unproduced + self._outstanding

    def details(self) -> dict[str, Any]:
        pending = len(self._producer) if self._producer is not None else 0
        return {"in_client": pending, "brokers": ",".join(self.config.brokers), "topic": self.config.topic}
