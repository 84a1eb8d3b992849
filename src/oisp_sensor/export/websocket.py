"""WebSocket exporter: every event, as one compact JSON text message, to every client.

Clients connect to ws://HOST:PORT/ws/events (the Export seed) or /ws (the Event Schema
seed). Each client has a buffer of its own (`client_buffer` messages beyond the batch
being sent); a client that does not read fast enough to keep it from filling is
disconnected (close code 1013, "try again later")
and counted, so one slow browser tab never holds back capture or the other clients.
Messages are text frames because browsers hand binary frames over as Blobs, and the
seed's snippet calls `JSON.parse(event.data)`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from ..config import WebSocketExport
from .base import QueuedExporter
from .web import SharedServer

log = logging.getLogger(__name__)

PATHS = ("/ws/events", "/ws")


class _Client:
    __slots__ = ("queue", "remote", "sender", "ws")

    def __init__(self, ws: web.WebSocketResponse, size: int, remote: str) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()  # bounded by StreamHub.broadcast
        self.remote = remote
        self.sender: asyncio.Task[None] | None = None


class StreamHub:
    """The connected clients; lives in the web server's event loop."""

    def __init__(self, client_buffer: int, max_clients: int) -> None:
        self.client_buffer = client_buffer
        self.max_clients = max_clients
        self.clients: set[_Client] = set()
        self.connected_total = 0
        self.dropped_slow = 0
        self.refused = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if len(self.clients) >= self.max_clients:
            self.refused += 1
            return web.json_response({"error": "too many clients"}, status=503)
        # Client messages are not used: a small limit keeps a misbehaving client cheap.
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024)
        await ws.prepare(request)
        client = _Client(ws, self.client_buffer, request.remote or "?")
        self.clients.add(client)
        self.connected_total += 1
        client.sender = asyncio.get_running_loop().create_task(self._send(client))
        try:
            async for msg in ws:  # keeps ping/pong and the closing handshake going
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.clients.discard(client)
            client.sender.cancel()
        return ws

    async def _send(self, client: _Client) -> None:
        ws = client.ws
        try:
            while True:
                message = await client.queue.get()
                await ws.send_frame(message, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            pass  # the client went away; `handle` removes it

    def broadcast(self, messages: list[bytes]) -> None:
        for client in list(self.clients):
            queue = client.queue
            # Still holding more than its buffer from earlier batches: the client does not
            # read (its socket is full, so the sender waits). A whole batch is always
            # accepted otherwise, so a burst alone never drops a reading client.
            if queue.qsize() > self.client_buffer:
                self._drop(client)
                continue
            for message in messages:
                queue.put_nowait(message)

    def _drop(self, client: _Client) -> None:
        self.clients.discard(client)
        self.dropped_slow += 1
        log.warning("websocket client %s is too slow to keep up; disconnected", client.remote)
        if client.sender is not None:
            client.sender.cancel()
        asyncio.get_running_loop().create_task(
            client.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow: events were dropped")
        )

    async def close_all(self) -> None:
        for client in list(self.clients):
            await client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"sensor stopping")


class WebSocketExporter(QueuedExporter):
    def __init__(self, config: WebSocketExport, shared: SharedServer, name: str = "websocket") -> None:
        super().__init__(name, queue_size=config.queue_size, batch_size=1024)
        self.config = config
        self.shared = shared
        self.server = server = shared.server
        self.hub = StreamHub(config.client_buffer, config.max_clients)
        for path in PATHS:
            server.add_get(path, self.hub.handle)
        server.on_shutdown(self.hub.close_all)

    def open(self) -> None:
        self.shared.acquire()  # listens now: a port in use is an error at start

    def shutdown(self) -> None:
        self.shared.release()

    def deliver(self, batch: list[dict[str, Any]]) -> None:
        # Serialised here, in this exporter's thread, once for every client.
        messages = [orjson.dumps(event) for event in batch]
        self.server.call_soon(self.hub.broadcast, messages)

    def details(self) -> dict[str, Any]:
        hub = self.hub
        return {
            "clients": len(hub.clients),
            "clients_connected_total": hub.connected_total,
            "clients_dropped_slow": hub.dropped_slow,
            "clients_refused": hub.refused,
            "url": f"ws://{self.server.host}:{self.server.port}{PATHS[0]}",
        }
