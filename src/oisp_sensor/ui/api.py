"""The dashboard's HTTP API and page, on the sensor's web server (export/web.py).

The EventStore is fed like any destination, through the one exporter interface
(`DashboardExporter`, a QueuedExporter): capture never waits for the dashboard, and the
store holds what the pipeline handed to exporters, redacted. Queries run in a worker
thread, so a large one never stalls the WebSocket stream served by the same event loop.

Routes (JSON bodies, errors as {"error": ...} with a 4xx status):
  GET /api/calls /api/events /api/events/{event_id} /api/exchanges/{request_id}
      /api/stats /api/processes /api/sessions /api/sessions/{session_id}
  GET /api/health (registered by export/factory.py; answered by the store when there is one)
  GET / and /static/<file>: the page (src/oisp_sensor/ui/static/).

Every route above but /api/health takes `after=EVENT_ID`: answer once that event is in the
store (waiting at most `AFTER_WAIT_S`). The page uses it because the WebSocket stream and
the store are fed by two exporter threads: an event can reach the browser before the store
has it, and a query made on that event alone would miss it, leaving, for example, a call
shown as pending for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ..export.base import QueuedExporter
from ..export.web import SharedServer, WebServer
from .store import EventStore, QueryError

STATIC_DIR = Path(__file__).resolve().parent / "static"

_INT_PARAMS = frozenset({"limit", "before_seq", "since_seq", "pid", "window_s", "bucket_s"})
_CALL_PARAMS = frozenset(
    {"provider", "model", "app", "pid", "q", "status", "session", "limit", "before_seq", "since_seq"}
)
_EVENT_PARAMS = _CALL_PARAMS | {"type"}
_STATS_PARAMS = frozenset({"window_s", "bucket_s", "provider", "model", "app", "pid"})
_ALWAYS = frozenset({"token", "_", "after"})  # the access token; "_" for cache-busting; see above
AFTER_WAIT_S = 5.0


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _error(message: str, status: int = 400) -> web.Response:
    return json_response({"error": message}, status)


def parse_query(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    """The query parameters as keyword arguments; QueryError names the bad one."""
    out: dict[str, Any] = {}
    for name, value in request.query.items():
        if name in _ALWAYS:
            continue
        if name not in allowed:
            raise QueryError(f"unknown parameter {name!r} (allowed: {', '.join(sorted(allowed))})")
        if name in out:
            raise QueryError(f"parameter {name!r} given twice")
        if name in _INT_PARAMS:
            if value == "":
                continue
            try:
                number = int(value)
            except ValueError:
                raise QueryError(f"{name} must be an integer, got {value[:40]!r}") from None
            if number < 0 or number > 2**53:
                raise QueryError(f"{name} is out of range: {number}")
            out[name] = number
        else:
            if len(value) > 1000:
                raise QueryError(f"{name} is too long (at most 1000 characters)")
            if value:
                out[name] = value
    return out


class StoreWatch:
    """Lets API requests (in the web server's event loop) wait for an event to reach the
    store, which is fed in an exporter thread."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        store.listen(self._changed)

    def _changed(self, _version: int) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # the loop closed while the sensor stops
                loop.call_soon_threadsafe(_wake, fut)

    async def until_stored(self, event_id: str, timeout: float | None = None) -> bool:
        """True once the store has `event_id`; False after `timeout` (AFTER_WAIT_S by
        default: the event was dropped on the way to the store, evicted, or never existed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (AFTER_WAIT_S if timeout is None else timeout)
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            entry = (loop, fut)
            with self._lock:
                self._waiters.add(entry)
            try:
                # Checked after registering, so an event stored in between is not missed.
                if self.store.has_event(event_id):
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(fut, remaining)
                except TimeoutError:
                    return self.store.has_event(event_id)
            finally:
                with self._lock:
                    self._waiters.discard(entry)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class DashboardApi:
    """The routes over one EventStore."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.watch = StoreWatch(store)

    async def _after(self, request: web.Request) -> None:
        """Wait for the event named by `after`, if any; QueryError for one no event id has."""
        event_id = request.query.get("after")
        if not event_id:
            return
        if len(event_id) > 100:
            raise QueryError("after must be an event id (at most 100 characters)")
        await self.watch.until_stored(event_id)

    def install(self, server: WebServer) -> None:
        add = server.add_get
        add("/api/calls", self._query(self.store.calls, _CALL_PARAMS))
        add("/api/events", self._query(self.store.events, _EVENT_PARAMS))
        add("/api/events/{event_id}", self._one(self.store.event, "event_id", "event"))
        add("/api/exchanges/{request_id}", self._one(self.store.exchange, "request_id", "exchange"))
        add("/api/stats", self._query(self.store.stats, _STATS_PARAMS))
        add("/api/processes", self._query(lambda: self.store.processes(), frozenset()))
        add("/api/sessions", self._query(lambda: self.store.sessions(), frozenset()))
        add("/api/sessions/{session_id}", self._one(self.store.session, "session_id", "session"))
        add("/", self._index)
        add("/index.html", self._index)
        add("/static/{path:.+}", self._static)

    def _query(self, method: Callable[..., dict[str, Any]], allowed: frozenset[str]) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                kwargs = parse_query(request, allowed)
                await self._after(request)
                body = await asyncio.get_running_loop().run_in_executor(None, lambda: method(**kwargs))
            except QueryError as exc:
                return _error(str(exc))
            return json_response(body)

        return handler

    def _one(self, method: Callable[[str], dict[str, Any] | None], key: str, what: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                parse_query(request, frozenset())
                await self._after(request)
            except QueryError as exc:
                return _error(str(exc))
            ident = request.match_info[key]
            body = await asyncio.get_running_loop().run_in_executor(None, method, ident)
            if body is None:
                return _error(f"no {what} {ident[:100]!r} (unknown, or no longer kept)", 404)
            return json_response(body)

        return handler

    async def health(self, _request: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(None, self.store.health)
        return json_response(body)

    async def _index(self, _request: web.Request) -> web.StreamResponse:
        page = STATIC_DIR / "index.html"
        if not page.is_file():
            return web.Response(
                status=404,
                text=(
                    "The dashboard page is not installed in this build "
                    f"({page} is missing). The API works: /api/health, /api/calls, /api/stats.\n"
                ),
                content_type="text/plain",
            )
        return web.FileResponse(page, headers={"Cache-Control": "no-cache"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["path"]
        base = STATIC_DIR.resolve()
        try:
            path = (base / name).resolve()
        except (OSError, ValueError):
            return _error("bad path", 404)
        # Only files inside ui/static: no "..", no symlink out of it.
        if base not in path.parents or not path.is_file():
            return _error(f"no such file: /static/{name[:100]}", 404)
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


class DashboardExporter(QueuedExporter):
    """Feeds the EventStore; serves the dashboard on the shared web server."""

    def __init__(
        self,
        store: EventStore,
        shared: SharedServer | None,
        queue_size: int = 100_000,
        name: str = "dashboard",
    ) -> None:
        """`shared` None: the store only (the terminal UI without the web dashboard)."""
        super().__init__(name, queue_size=queue_size, batch_size=2048)
        self.store = store
        self.shared = shared
        self.server = shared.server if shared is not None else None
        if self.server is not None:
            DashboardApi(store).install(self.server)

    def open(self) -> None:
        if self.shared is not None:
            self.shared.acquire()

    def shutdown(self) -> None:
        if self.shared is not None:
            self.shared.release()

    def deliver(self, batch: list[dict[str, Any]]) -> None:
        self.store.add_many(batch)

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"events_kept": self.store.kept}
        if self.server is not None:
            out["url"] = f"http://{self.server.host}:{self.server.port}/"
        return out
