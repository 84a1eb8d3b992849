"""Exporter throughput: sustained events per second each exporter delivers end to end.

Each exporter gets N realistic events (the decoder's agent-turn events, ~1.2 KB of JSON
each, renumbered), submitted in pipeline-sized batches of 256, and the clock stops when
the destination has them all (file flushed; Kafka delivery reports; OTLP export calls
answered; webhook 2xx answers). Destinations are real and on this host, in their own
processes: the file system, Tansu (Kafka), rotel (OTLP collector, blackhole exporter), an
aiohttp receiver (webhook, batched by 100).

Targets (issue 6): JSONL 50,000/s, Kafka 20,000/s, OTLP 5,000/s, webhook (batched) 5,000/s.
Run: `.venv/bin/python bench/bench_export.py [--events 50000] [--only jsonl,kafka,...]`.
"""

from __future__ import annotations

import argparse
import copy
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.export_servers import Broker, free_port  # noqa: E402
from tests.unit.export_helpers import agent_turn  # noqa: E402

from oisp_sensor.config import JsonlExport, KafkaExport, OtlpExport, WebhookExport  # noqa: E402
from oisp_sensor.export.base import QueuedExporter  # noqa: E402

RECEIVER = """
import sys
from aiohttp import web
count = 0
async def hook(request):
    global count
    await request.read()
    count += 1
    return web.Response(status=204)
app = web.Application()
app.router.add_post("/hook", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def events(n: int) -> list[dict[str, Any]]:
    """Agent turns, renumbered: each turn's events keep their links to each other."""
    turn = agent_turn()
    out: list[dict[str, Any]] = []
    while len(out) < n:
        prefix = f"01JB{len(out):010d}"
        for event in copy.deepcopy(turn):
            event["event_id"] = prefix + event["event_id"][14:]
            data = event["data"]
            for key in ("related_event_id", "request_event_id"):
                if key in data:
                    data[key] = prefix + data[key][14:]
            if "conversation_id" in data:
                data["conversation_id"] = f"conv_{prefix}"
            out.append(event)
    return out[: len(out) - len(out) % len(turn)] if len(out) > n else out  # whole turns only


def wait_port(port: int, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def measure(exporter: QueuedExporter, batch: list[dict[str, Any]]) -> tuple[float, Any]:
    exporter.start()
    started = time.perf_counter()
    for i in range(0, len(batch), 256):
        exporter.submit_many(batch[i : i + 256])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        s = exporter.stats()
        if s.events_exported + s.events_dropped >= len(batch) and s.queue_depth == 0:
            break
        time.sleep(0.002)
    exporter.flush(60)
    took = time.perf_counter() - started
    exporter.close(30)
    return took, exporter.stats()


def run(name: str, data: list[dict[str, Any]], work: Path) -> tuple[float, Any]:
    if name == "jsonl":
        from oisp_sensor.export.jsonl import JsonlExporter

        return measure(JsonlExporter(JsonlExport(path=str(work / "bench.jsonl"))), data)
    if name == "kafka":
        from oisp_sensor.export.kafka import KafkaExporter

        broker = Broker(free_port(), work / "tansu.log")
        broker.start()
        try:
            broker.create_topic("bench", 3)
            config = KafkaExport(enabled=True, brokers=broker.address, topic="bench", batch_size=1000,
                                 flush_interval_ms=5, compression="lz4")  # fmt: skip
            return measure(KafkaExporter(config), data)
        finally:
            broker.stop()
    if name == "otlp":
        import rotel

        from oisp_sensor.export.otlp import OtlpExporter

        port = free_port()
        binary = str(Path(rotel.__file__).parent / "rotel-agent")
        proc = subprocess.Popen(
            [binary, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{port}", "--otlp-http-endpoint",
             f"127.0.0.1:{free_port()}", "--exporter", "blackhole"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "ROTEL_PID_FILE": str(work / "rotel.pid"), "ROTEL_LOG_FILE": str(work / "r.log")},
        )  # fmt: skip
        try:
            wait_port(port)
            config = OtlpExport(
                enabled=True, endpoint=f"http://127.0.0.1:{port}", batch_size=512, flush_interval_ms=50
            )
            return measure(OtlpExporter(config), data)
        finally:
            proc.terminate()
            proc.wait(10)
    if name == "webhook":
        from oisp_sensor.export.webhook import WebhookExporter

        port = free_port()
        proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
        try:
            wait_port(port)
            config = WebhookExport(enabled=True, url=f"http://127.0.0.1:{port}/hook", batch_size=100,
                                   flush_interval_ms=50, hmac_secret="bench")  # fmt: skip
            return measure(WebhookExporter(config), data)
        finally:
            proc.terminate()
            proc.wait(10)
    raise SystemExit(f"unknown exporter {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--only", default="jsonl,kafka,otlp,webhook")
    args = parser.parse_args()
    targets = {"jsonl": 50_000, "kafka": 20_000, "otlp": 5_000, "webhook": 5_000}
    with tempfile.TemporaryDirectory() as tmp:
        print("| exporter | events | seconds | events/s | target | exported | dropped |")
        print("|---|---|---|---|---|---|---|")
        for name in args.only.split(","):
            data = events(args.events)
            took, stats = run(name, data, Path(tmp))
            rate = len(data) / took
            print(
                f"| {name} | {len(data):,} | {took:.2f} | {rate:,.0f} | {targets[name]:,} | "
                f"{stats.events_exported:,} | {stats.events_dropped:,} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
