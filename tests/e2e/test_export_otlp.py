"""OTLP exporter against real receivers: an in-process OTLP gRPC server and an OTLP/HTTP
server (exact assertions on spans and log records), and the rotel collector."""

from __future__ import annotations

import calendar
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from tests.support.export_servers import Received, free_port, start_grpc_receiver
from tests.unit.export_helpers import agent_turn, numbered

from oisp_sensor.config import OtlpExport
from oisp_sensor.export.otlp import OtlpExporter

BASE_NS = calendar.timegm((2026, 11, 22, 10, 0, 0)) * 1_000_000_000


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    endpoint, received, server = start_grpc_receiver()
    yield endpoint, received
    server.stop(0)


def attrs(item: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in item.attributes}


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def _export(config: OtlpExport, events: list[dict[str, Any]]) -> OtlpExporter:
    exporter = OtlpExporter(config)
    exporter.start()
    exporter.submit_many(events)
    exporter.close(10)
    return exporter


def test_ai_calls_are_genai_spans_tools_execute_tool_and_the_rest_logs(
    grpc_receiver: tuple[str, Received],
) -> None:
    endpoint, received = grpc_receiver
    events = agent_turn()
    config = OtlpExport(
        enabled=True,
        endpoint=endpoint,
        headers={"x-tenant": "t1"},
        service_name="oisp-test",
        flush_interval_ms=50,
    )
    stats = _export(config, events).stats()
    assert stats.events_exported == len(events) and stats.events_dropped == 0, stats
    assert received.metadata[0]["x-tenant"] == "t1"
    resource = attrs(received.traces[0].resource_spans[0].resource)
    assert resource["service.name"] == "oisp-test"
    spans = {s.name: s for s in received.spans()}
    assert sorted(spans) == ["chat gpt-4o-mini", "execute_tool get_weather"] and len(received.spans()) == 3
    chats = [s for s in received.spans() if s.name == "chat gpt-4o-mini"]
    assert len(chats) == 2
    first, second = sorted(chats, key=lambda s: s.start_time_unix_nano)
    # capture timestamps as start and end, to the microsecond
    assert first.start_time_unix_nano == BASE_NS
    assert first.end_time_unix_nano == BASE_NS + 1_250_000_000
    assert second.start_time_unix_nano == BASE_NS + 2_000_000_000
    assert second.end_time_unix_nano == BASE_NS + 3_500_000_000
    a = attrs(first)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.response.id"] == "chatcmpl-1"
    assert a["gen_ai.usage.input_tokens"] == 20 and a["gen_ai.usage.output_tokens"] == 10
    assert a["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert a["gen_ai.request.temperature"] == pytest.approx(0.2)
    assert a["server.address"] == "api.openai.com" and a["server.port"] == 443
    assert a["oisp.event_id"] == events[1]["event_id"]
    assert a["gen_ai.conversation.id"].startswith("conv_")
    assert first.kind == 3  # SPAN_KIND_CLIENT
    assert attrs(second)["gen_ai.response.finish_reasons"] == ["stop"]
    # the tool run: same trace, child of the call that asked for it, from call to result
    tool = next(s for s in received.spans() if s.name == "execute_tool get_weather")
    t = attrs(tool)
    assert t["gen_ai.operation.name"] == "execute_tool"
    assert t["gen_ai.tool.name"] == "get_weather" and t["gen_ai.tool.call.id"] == "call_1"
    assert tool.trace_id == first.trace_id == second.trace_id  # one conversation, one trace
    assert tool.parent_span_id == first.span_id
    assert tool.start_time_unix_nano == BASE_NS + 1_250_000_000
    assert tool.end_time_unix_nano == BASE_NS + 2_000_000_000
    # everything else: a log record carrying the OISP event
    logs = received.log_records()
    assert len(logs) == 1
    record = logs[0]
    assert record.event_name == "process.exec"
    assert attrs(record)["event.name"] == "process.exec"
    body = _value(record.body)
    assert body["event_id"] == events[0]["event_id"] and body["data"]["args"] == ["python3", "agent.py"]
    assert record.time_unix_nano == BASE_NS + 100_000


def test_http_protocol_with_the_seeds_logs_url(tmp_path: Path) -> None:
    bodies: dict[str, list[bytes]] = {"/v1/traces": [], "/v1/logs": []}
    headers: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            bodies.setdefault(self.path, []).append(self.rfile.read(length))
            headers.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        config = OtlpExport(
            enabled=True,
            endpoint=f"http://127.0.0.1:{port}/v1/logs",  # as the Export seed writes it
            protocol="http",
            headers={"Authorization": "Bearer tkn"},
            compression="none",
            flush_interval_ms=20,
        )
        stats = _export(config, agent_turn()).stats()
    finally:
        server.shutdown()
    assert stats.events_exported == 7, stats
    traces = [trace_service_pb2.ExportTraceServiceRequest.FromString(b) for b in bodies["/v1/traces"]]
    logs = [logs_service_pb2.ExportLogsServiceRequest.FromString(b) for b in bodies["/v1/logs"]]
    names = sorted(
        s.name for r in traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans
    )
    assert names == ["chat gpt-4o-mini", "chat gpt-4o-mini", "execute_tool get_weather"]
    assert sum(len(sl.log_records) for r in logs for rl in r.resource_logs for sl in rl.scope_logs) == 1
    assert set(headers) == {"Bearer tkn"}


def test_otel_environment_variables_are_honoured(
    grpc_receiver: tuple[str, Received], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = grpc_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ai-model-tests")  # as the CI/CD seed sets it
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=ml")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci")
    config = OtlpExport.model_validate({"enabled": True, "flush_interval_ms": 20})
    stats = _export(config, numbered(5)).stats()
    assert stats.events_exported == 5, stats
    resource = attrs(received.logs[0].resource_logs[0].resource)
    assert resource["service.name"] == "ai-model-tests"
    assert resource["deployment.environment"] == "ci"
    assert received.metadata and all(m.get("x-team") == "ml" for m in received.metadata)


def test_batching_by_size_and_interval(grpc_receiver: tuple[str, Received]) -> None:
    endpoint, received = grpc_receiver
    config = OtlpExport(enabled=True, endpoint=endpoint, batch_size=100, flush_interval_ms=300)
    exporter = OtlpExporter(config)
    exporter.start()
    exporter.submit_many(numbered(250))
    deadline = time.monotonic() + 5
    while len(received.log_records()) < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    # two full batches went at once; the last 50 wait for the interval
    assert [len(r.resource_logs[0].scope_logs[0].log_records) for r in received.logs][:2] == [100, 100]
    assert len(received.log_records()) == 200
    time.sleep(0.6)
    assert len(received.log_records()) == 250
    exporter.close(5)
    assert exporter.stats().events_exported == 250


def test_unreachable_endpoint_is_counted_not_blocking() -> None:
    port = free_port()  # nothing listens there
    config = OtlpExport(
        enabled=True,
        endpoint=f"http://127.0.0.1:{port}",
        timeout_ms=800,
        flush_interval_ms=10,
        queue_size=1000,
    )
    exporter = OtlpExporter(config)
    exporter.start()
    started = time.monotonic()
    for chunk in range(10):
        exporter.submit_many(numbered(500)[chunk * 50 : chunk * 50 + 50])
    assert time.monotonic() - started < 0.2  # submit never waits for the destination
    time.sleep(1.5)
    stats = exporter.stats()
    assert stats.status == "degraded"
    assert stats.last_error and f"127.0.0.1:{port}" in stats.last_error and "\n" not in stats.last_error
    close_started = time.monotonic()
    exporter.close(2)
    assert time.monotonic() - close_started < 3.5
    final = exporter.stats()
    assert final.events_exported == 0
    assert final.events_dropped == 500  # every event counted


def _rotel_binary() -> str:
    import rotel

    return str(Path(rotel.__file__).parent / "rotel-agent")


def test_rotel_collector_receives_spans_and_logs(tmp_path: Path) -> None:
    grpc_port, http_port = free_port(), free_port()
    out = (tmp_path / "rotel.log").open("wb")
    proc = subprocess.Popen(
        [
            _rotel_binary(),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--exporter",
            "blackhole",
            "--debug-log",
            "traces",
            "--debug-log",
            "logs",
            "--debug-log-verbosity",
            "detailed",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "ROTEL_PID_FILE": str(tmp_path / "rotel.pid"),
            "ROTEL_LOG_FILE": str(tmp_path / "r.log"),
        },
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", grpc_port)) == 0:
                    break
            time.sleep(0.1)
        events = agent_turn()
        for protocol, port in (("grpc", grpc_port), ("http", http_port)):
            config = OtlpExport(
                enabled=True, endpoint=f"http://127.0.0.1:{port}", protocol=protocol, flush_interval_ms=20
            )
            stats = _export(config, events).stats()
            assert stats.events_exported == len(events) and stats.errors == 0, (protocol, stats)
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            text = (tmp_path / "rotel.log").read_text(errors="replace")
            if text.count("execute_tool get_weather") >= 2 and text.count("process.exec") >= 2:
                break
            time.sleep(0.2)
        assert text.count("execute_tool get_weather") >= 2, text[-3000:]
        assert "gen_ai.request.model" in text and "chat gpt-4o-mini" in text
        assert text.count("process.exec") >= 2
    finally:
        proc.terminate()
        proc.wait(10)
        out.close()
