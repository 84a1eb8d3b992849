"""MCP over HTTP: which exchanges are MCP, and their JSON-RPC messages for `mcp.McpTracker`.

Two transports share the shapes recognised here:

* Streamable HTTP: the client POSTs JSON-RPC to one endpoint (`/mcp`), the server
  answers with `application/json` or a `text/event-stream` of JSON-RPC messages;
  `Mcp-Session-Id` ties a session's requests together, and an optional GET on the
  same endpoint opens a stream for server-initiated messages.
* HTTP+SSE (the 2024 transport): a GET (`/sse`) opens the stream whose first event,
  `endpoint`, names the POST URL (`/messages?session_id=...`); POSTs are answered
  `202 Accepted` and the JSON-RPC answers come on the GET stream, so requests and
  answers are matched by session, not by exchange.

A non-AI exchange is MCP when its request carries an `Mcp-*` header, or its body is
JSON-RPC 2.0 with a method only MCP uses, or it is a GET event stream on an `/sse`
path. The body is only parsed after a cheap byte check, since most non-AI traffic
(package downloads, telemetry) passes through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from oisp_sensor.decode.mcp import (
    CLIENT,
    SERVER,
    Endpoint,
    McpTracker,
    SessionKey,
    is_mcp_method,
    parse_jsonrpc,
)
from oisp_sensor.decode.messages import ConnInfo, ExchangeDone, HttpRequest, SseEvent, StreamEvent
from oisp_sensor.decode.sse import split_sse_body
from oisp_sensor.schema.events import SensorEvent

# Headers the AI event builder collects in its single pass and hands over.
MCP_HEADERS = frozenset({"mcp-session-id", "mcp-protocol-version", "mcp-method", "accept"})
_SESSION_PARAMS = ("session_id", "sessionId", "sessionid")


@dataclass(slots=True)
class McpExchange:
    """One HTTP exchange of an MCP session, while it is in flight."""

    key: SessionKey
    endpoint: Endpoint
    host: str
    request_ids: list[str] = field(default_factory=list)  # ids of requests this POST carried
    next_index: int = 0  # the StreamEvent index expected next
    broken: bool = False  # a StreamEvent was missed: read the kept events at the end instead


def _session_from_query(query: str) -> str | None:
    values = parse_qs(query)
    for name in _SESSION_PARAMS:
        if values.get(name):
            return values[name][0]
    return None


class McpHttp:
    """Recognises MCP exchanges and feeds their messages to the tracker."""

    def __init__(self, tracker: McpTracker) -> None:
        self.tracker = tracker

    # ---- request --------------------------------------------------------------------------

    def request(
        self, conn: ConnInfo, request: HttpRequest, headers: dict[str, str], host: str
    ) -> tuple[list[SensorEvent], McpExchange | None]:
        """Events of an MCP request, and its exchange; (no events, None) when it is not MCP."""
        marked = "mcp-session-id" in headers or "mcp-protocol-version" in headers or "mcp-method" in headers
        path, _, query = request.target.partition("?")
        messages: list[dict[str, Any]] | None = None
        if request.method == "POST":
            body = request.body
            if body[:1] in (b"{", b"[") and b'"jsonrpc"' in body[:256]:
                messages = parse_jsonrpc(body)
            if messages is None:
                if not marked:
                    return [], None
                self.tracker.malformed()  # MCP headers, but the body is not JSON-RPC
            elif not marked and not any(is_mcp_method(m.get("method")) for m in messages):
                return [], None  # another JSON-RPC protocol (an Ethereum node, a language server)
        elif request.method == "GET":
            # The stream of server messages: Streamable HTTP's GET, or HTTP+SSE's /sse.
            if "text/event-stream" not in headers.get("accept", ""):
                return [], None
            if not marked and not path.rstrip("/").endswith("/sse"):
                return [], None
        else:
            return [], None  # DELETE ends a session: nothing to report
        exchange = self._exchange(conn, headers, host, path, query, request.method)
        if not messages:
            return [], exchange
        for message in messages:
            request_id = message.get("id")
            if "method" in message and isinstance(request_id, int | str) and not isinstance(request_id, bool):
                exchange.request_ids.append(str(request_id))
        events = self.tracker.messages(CLIENT, conn, exchange.key, exchange.endpoint, messages,
                                       request.start_ts_ns)  # fmt: skip
        return events, exchange

    def _exchange(
        self, conn: ConnInfo, headers: dict[str, str], host: str, path: str, query: str, method: str
    ) -> McpExchange:
        session_id = headers.get("mcp-session-id") or _session_from_query(query)
        scheme = "http" if conn.capture_point == "socket" else "https"
        transport = "sse" if session_id and not headers.get("mcp-session-id") else "streamable_http"
        if method == "GET" and path.rstrip("/").endswith("/sse"):
            transport = "sse"
        # HTTP+SSE: GET /sse and POST /messages share the session id, not the path.
        key: SessionKey = (conn.pid, host, session_id or path)
        endpoint = Endpoint(transport, url=f"{scheme}://{host}{path}")
        if session_id:
            self.tracker.set_session_id(key, session_id)
        return McpExchange(key, endpoint, host)

    # ---- response -------------------------------------------------------------------------

    def stream_event(self, item: StreamEvent, exchange: McpExchange) -> list[SensorEvent]:
        if exchange.broken:
            return []
        if item.index != exchange.next_index:
            exchange.broken = True  # read the kept events at ExchangeDone instead
            return []
        exchange.next_index += 1
        return self._sse_event(item.conn, exchange, item.event, item.event.ts_ns)

    def done(self, done: ExchangeDone, exchange: McpExchange) -> list[SensorEvent]:
        response = done.response
        conn = done.conn
        if response is None:
            return self._lost(conn, exchange, done.request.end_ts_ns, "response_missing")
        assigned = response.header("mcp-session-id")
        pid, host, scope = exchange.key
        if assigned and scope != assigned:
            self.tracker.rekey(exchange.key, (pid, host, assigned), assigned)
        events: list[SensorEvent] = []
        if response.is_event_stream:
            # Events not handed over as StreamEvents (missed, or held back): what the
            # tracker kept, from the first one not read yet.
            kept = response.sse_events or (split_sse_body(response.body) if exchange.next_index == 0 else [])
            for event in kept[exchange.next_index :]:
                events.extend(self._sse_event(conn, exchange, event, event.ts_ns or response.end_ts_ns))
        elif 200 <= response.status < 300 and response.body.strip():
            messages = parse_jsonrpc(response.body)
            if messages is None:
                self.tracker.malformed()
            else:
                events.extend(self.tracker.messages(SERVER, conn, exchange.key, exchange.endpoint, messages,
                                                    response.end_ts_ns))  # fmt: skip
        if response.status >= 400:
            events.extend(self._lost(conn, exchange, response.end_ts_ns, f"http_{response.status}"))
        elif not response.complete or response.truncated:
            events.extend(self._lost(conn, exchange, response.end_ts_ns, "response_incomplete"))
        elif response.status != 202:
            # Answered without the reply to a request it carried (only HTTP+SSE answers elsewhere).
            events.extend(self._lost(conn, exchange, response.end_ts_ns, "no_result"))
        return events

    def _sse_event(
        self, conn: ConnInfo, exchange: McpExchange, event: SseEvent, ts_ns: int
    ) -> list[SensorEvent]:
        if event.event == "endpoint":
            # HTTP+SSE: where to POST, with the session id the POSTs will carry.
            session_id = _session_from_query(urlsplit(event.data.strip()).query)
            if session_id:
                pid, host, _ = exchange.key
                exchange.key = (pid, host, session_id)
                exchange.endpoint.transport = "sse"
                self.tracker.set_session_id(exchange.key, session_id, exchange.endpoint.url)
            return []
        if not event.data.strip():
            return []  # keep-alive or priming event
        messages = parse_jsonrpc(event.data)
        if messages is None:
            self.tracker.malformed()
            return []
        return self.tracker.messages(SERVER, conn, exchange.key, exchange.endpoint, messages, ts_ns)

    def _lost(self, conn: ConnInfo, exchange: McpExchange, ts_ns: int, reason: str) -> list[SensorEvent]:
        if not exchange.request_ids:
            return []
        return self.tracker.unanswered(
            conn, exchange.key, exchange.endpoint, exchange.request_ids, ts_ns, reason
        )
