"""The sensor's web server: one aiohttp application on the web port (7777 by default).

It carries the live WebSocket stream (/ws/events, /ws), Prometheus metrics (/metrics)
and the export health (/api/health); the dashboard and the rest of the HTTP API are
added to the same application with `add_get` / `add_static`. It runs in a thread of
its own with its own event loop, so nothing it does (a slow client, a scrape) can
block capture; other threads hand it work with `call_soon`.

Access: loopback only unless configured; a non-loopback address requires a token
(query `?token=` for browsers, which cannot set headers on a WebSocket, or
`Authorization: Bearer`; a request that gave it gets an HttpOnly same-site cookie that
then stands for it, so a page's own scripts and styles load). Browser pages from other origins are refused: a page the
user happens to visit must not be able to read their AI traffic through localhost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .base import ExporterError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_COOKIE = "oisp_token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class WebServer:
    def __init__(
        self, host: str, port: int, token: str = "", allowed_origins: list[str] | None = None
    ) -> None:
        if not token and not is_loopback(host):
            raise ExporterError(
                f"[export.websocket] host = {host!r} is not a loopback address: set "
                "[export.websocket] token so that only clients that know it can connect"
            )
        self.host = host
        self.port = port  # the bound port once started (port 0 picks a free one)
        self.token = token
        self.allowed_origins = {o.rstrip("/").lower() for o in allowed_origins or []}
        self.app = web.Application(middlewares=[self._guard])
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._on_shutdown: list[Callable[[], Awaitable[None]]] = []

    # -- routes (before start) --
    def add_get(self, path: str, handler: Handler) -> None:
        self.app.router.add_get(path, handler)

    def on_shutdown(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._on_shutdown.append(hook)

    # -- access --
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        by_cookie = False
        if self.token and not self._token_ok(request):
            # The dashboard page opened with ?token= loads its scripts and styles without
            # it: the cookie set then (same-site only) lets those through.
            by_cookie = self._cookie_ok(request)
            if not by_cookie:
                return web.json_response({"error": "a valid token is required"}, status=401)
        origin = request.headers.get("Origin")
        if origin and not self._origin_ok(origin):
            return web.json_response({"error": f"origin {origin} is not allowed"}, status=403)
        response = await handler(request)
        if self.token and not by_cookie and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict", path="/")
        return response

    def _token_ok(self, request: web.Request) -> bool:
        given = request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _cookie_ok(self, request: web.Request) -> bool:
        given = request.cookies.get(TOKEN_COOKIE, "")
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _origin_ok(self, origin: str) -> bool:
        if origin.rstrip("/").lower() in self.allowed_origins:
            return True
        host = urlsplit(origin).hostname or ""
        return is_loopback(host)

    # -- lifecycle --
    def start(self, timeout: float = 10.0) -> None:
        """Listen (in the server thread); raises ExporterError when the port cannot be had."""
        ready = threading.Event()
        failure: list[str] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except OSError as exc:
                failure.append(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}")
            except Exception as exc:
                failure.append(f"cannot start the web server on {self.host}:{self.port}: {exc}")
            ready.set()
            if failure:
                loop.close()
                return
            loop.run_forever()
            loop.run_until_complete(self._cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="oisp-web", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise ExporterError(f"the web server on {self.host}:{self.port} did not start in {timeout:.0f}s")
        if failure:
            self._thread.join(1.0)
            self._thread = None
            raise ExporterError(failure[0])

    async def _listen(self) -> None:
        # Access logs would print every scrape and connection: the sensor's logs are for problems.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server  # the asyncio server: the port actually bound (port 0 in tests)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        log.info("web server listening on http://%s:%d", self.host, self.port)

    async def _cleanup(self) -> None:
        for hook in self._on_shutdown:
            try:
                await asyncio.wait_for(hook(), 2.0)
            except Exception:
                log.debug("web shutdown hook failed", exc_info=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            # RuntimeError: the loop closed in between (shutting down)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None or self.loop is None:
            return
        self.call_soon(self.loop.stop)
        self._thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None


class SharedServer:
    """One WebServer for the exporters it carries: started by the first to open, stopped
    when the last closes."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self._users = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            if self._users == 0:
                self.server.start()
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self.server.stop()
