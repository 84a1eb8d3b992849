"""MCP (Model Context Protocol) JSON-RPC messages in, agent.tool_call / agent.tool_result out.

Transport-agnostic: the HTTP adapter (`mcp_http`) and the stdio line framer
(`StdioFramer`, below) both hand over decoded JSON-RPC 2.0 messages with their
direction, the MCP session they belong to and the endpoint (server URL or command).

What becomes an event:

* a client `tools/call` request -> `agent.tool_call` {tool {name, type "mcp"},
  arguments, call_id (the JSON-RPC id, as a string), mcp {server, transport,
  session_id, protocol_version}}; `related_event_id` is the model's own
  `agent.tool_call` that asked for this tool when the same process has one waiting
  (the agent executing the model's request through MCP);
* the server's answer to it -> `agent.tool_result` {success (false for a JSON-RPC
  error or `isError`), result (text content), result_length, content_types,
  duration_ms (request to answer), error, related_event_id = the tool_call event}.

Everything else (initialize, server/discover, tools/list, notifications, pings,
resources, prompts, server-to-client requests) is read for what identifies the server
(`serverInfo` of `initialize`, or the `io.modelcontextprotocol/serverInfo` `_meta` of
the stateless 2026 protocol) and counted. Malformed messages are counted and dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from oisp_sensor.decode.messages import ConnInfo
from oisp_sensor.schema.events import AGENT_TOOL_CALL, AGENT_TOOL_RESULT, Confidence, SensorEvent

IdFactory = Callable[[int], str]
# (pid, name) -> event id of the model's tool call this MCP call executes, or None.
ModelCallLink = Callable[[int, str], str | None]

# Who a session talks to: (client pid, server address, session id or path).
SessionKey = tuple[int, str, str]

CLIENT = "client"  # client -> server (requests, notifications, answers to server requests)
SERVER = "server"  # server -> client

_META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
_META_PROTOCOL = "io.modelcontextprotocol/protocolVersion"
_MAX_PENDING = 16384  # requests awaiting their answer
_MAX_SESSIONS = 4096
_MAX_LINE = 8 * 1024 * 1024  # a stdio line longer than this is not a JSON-RPC message we keep

# Method namespaces of MCP (and no other JSON-RPC protocol in common use): what makes a
# JSON-RPC body to an unknown host an MCP message.
_MCP_PREFIXES = (
    "tools/", "resources/", "prompts/", "notifications/", "completion/", "logging/",
    "sampling/", "roots/", "elicitation/", "tasks/", "server/",
)  # fmt: skip
_MCP_METHODS = frozenset({"initialize"})


def is_mcp_method(method: object) -> bool:
    """True for a method name only MCP uses (`ping` alone proves nothing)."""
    return isinstance(method, str) and (method in _MCP_METHODS or method.startswith(_MCP_PREFIXES))


@dataclass(slots=True)
class Endpoint:
    """The MCP server as the client reaches it."""

    transport: str  # streamable_http | sse | stdio
    url: str | None = None  # https://host/path for the HTTP transports
    command: str | None = None  # the server's command line for stdio


@dataclass(slots=True)
class McpCounters:
    messages: int = 0  # JSON-RPC messages read
    malformed: int = 0  # bodies/lines/events that were not JSON-RPC (dropped)
    tool_calls: int = 0
    tool_results: int = 0
    unanswered: int = 0  # tool calls whose answer was lost (reported as failed, incomplete)
    unmatched_responses: int = 0  # answers to requests never seen (capture began late)
    pending_evicted: int = 0
    other_methods: int = 0  # requests and notifications that are not tools/call


@dataclass(slots=True)
class _Session:
    server: dict[str, Any] = field(default_factory=dict)  # name, version
    protocol_version: str | None = None
    session_id: str | None = None
    url: str | None = None


@dataclass(slots=True)
class _Pending:
    method: str
    ts_ns: int
    tool: str | None = None
    event_id: str | None = None  # the agent.tool_call of a tools/call


def parse_jsonrpc(raw: bytes | str) -> list[dict[str, Any]] | None:
    """The JSON-RPC messages of one body, line or SSE event (a batch is a list); None if not JSON-RPC."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    items = obj if isinstance(obj, list) else [obj]
    messages = [m for m in items if isinstance(m, dict) and m.get("jsonrpc") == "2.0"]
    return messages if messages and len(messages) == len(items) else None


def _id_text(value: object) -> str | None:
    """A JSON-RPC id as the string used for call_id and matching (ids are str or int)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        return str(value)
    return None


def _result_text(result: dict[str, Any]) -> tuple[str, list[str]]:
    """Text of a tools/call result's content blocks, and the kinds of blocks it had."""
    texts: list[str] = []
    kinds: list[str] = []
    content = result.get("content")
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if isinstance(kind, str) and kind not in kinds:
            kinds.append(kind)
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "resource" and isinstance(block.get("resource"), dict):
            inner = block["resource"].get("text")
            if isinstance(inner, str):
                texts.append(inner)
    if not texts and "structuredContent" in result:
        texts.append(orjson.dumps(result["structuredContent"]).decode())
        kinds.append("structured")
    return "\n".join(texts), kinds


class McpTracker:
    """JSON-RPC traffic of MCP sessions -> agent events; bounded state per session."""

    def __init__(self, id_factory: IdFactory, link: ModelCallLink | None = None) -> None:
        self._new_id = id_factory
        self._link = link
        self._pending: OrderedDict[tuple[SessionKey, str], _Pending] = OrderedDict()
        self._sessions: OrderedDict[SessionKey, _Session] = OrderedDict()
        self.counters = McpCounters()

    # ---- input ----------------------------------------------------------------------------

    def messages(
        self,
        direction: str,
        conn: ConnInfo,
        key: SessionKey,
        endpoint: Endpoint,
        messages: list[dict[str, Any]],
        ts_ns: int,
    ) -> list[SensorEvent]:
        """Events for messages that travelled in `direction` (CLIENT or SERVER)."""
        events: list[SensorEvent] = []
        session = self._session(key)
        for message in messages:
            self.counters.messages += 1
            if "method" in message:
                if direction == CLIENT:
                    events.extend(self._client_request(conn, key, session, endpoint, message, ts_ns))
                else:
                    self.counters.other_methods += 1  # sampling, elicitation, notifications
            elif direction == SERVER and ("result" in message or "error" in message):
                events.extend(self._server_answer(conn, key, session, endpoint, message, ts_ns))
            elif direction == CLIENT and ("result" in message or "error" in message):
                self.counters.other_methods += 1  # the client answering a server request
            else:
                self.counters.malformed += 1
        return events

    def malformed(self) -> None:
        """Count a body, line or event that claimed to be MCP but was not JSON-RPC."""
        self.counters.malformed += 1

    def set_session_id(self, key: SessionKey, session_id: str, url: str | None = None) -> None:
        """The transport's own session id (Mcp-Session-Id header, SSE endpoint query), and
        the URL that names the server when it is not the one posted to (HTTP+SSE's /sse)."""
        session = self._session(key)
        session.session_id = session_id
        if url is not None:
            session.url = url

    def rekey(self, old: SessionKey, new: SessionKey, session_id: str) -> None:
        """The server assigned a session id in its answer to `initialize`: what was
        learned under the pre-session key (server name, protocol) carries over."""
        learned = self._sessions.get(old)
        session = self._session(new)
        session.session_id = session_id
        if learned is not None:
            session.server = session.server or learned.server
            session.protocol_version = session.protocol_version or learned.protocol_version

    def pending_ids(self, key: SessionKey) -> list[str]:
        """Ids of the requests of session `key` still waiting for their answer."""
        return [request_id for (k, request_id) in self._pending if k == key]

    def unanswered(
        self,
        conn: ConnInfo,
        key: SessionKey,
        endpoint: Endpoint,
        ids: list[str],
        ts_ns: int,
        reason: str,
    ) -> list[SensorEvent]:
        """Failed, incomplete tool results for tools/call requests whose answer will not come."""
        events: list[SensorEvent] = []
        for request_id in ids:
            pending = self._pending.pop((key, request_id), None)
            if pending is None or pending.event_id is None:
                continue
            self.counters.unanswered += 1
            data = self._result_data(key, endpoint, pending, request_id, ts_ns)
            data["success"] = False
            data["result_length"] = 0
            data["error"] = {"type": reason}
            events.append(self._event(AGENT_TOOL_RESULT, ts_ns, data, conn,
                                      Confidence("high", "partial", [reason])))  # fmt: skip
        return events

    # ---- requests and answers -------------------------------------------------------------

    def _client_request(
        self,
        conn: ConnInfo,
        key: SessionKey,
        session: _Session,
        endpoint: Endpoint,
        message: dict[str, Any],
        ts_ns: int,
    ) -> list[SensorEvent]:
        method = message.get("method")
        request_id = _id_text(message.get("id"))
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        meta = params.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get(_META_PROTOCOL), str):
            session.protocol_version = meta[_META_PROTOCOL]
        if method == "initialize" and isinstance(params.get("protocolVersion"), str):
            session.protocol_version = params["protocolVersion"]
        if method != "tools/call":
            self.counters.other_methods += 1
            if request_id is not None and isinstance(method, str):
                self._remember(key, request_id, _Pending(method, ts_ns))
            return []
        name = params.get("name")
        name = name if isinstance(name, str) else None
        arguments = params.get("arguments")
        data: dict[str, Any] = {
            "tool": {"name": name, "type": "mcp"},
            "arguments": arguments if arguments is not None else {},
            "call_id": request_id,
            "mcp": self._mcp_context(key, session, endpoint),
        }
        if name is not None and self._link is not None:
            model_call = self._link(conn.pid, name)
            if model_call is not None:
                data["related_event_id"] = model_call
        reasons = [] if request_id is not None else ["notification_without_id"]
        event = self._event(AGENT_TOOL_CALL, ts_ns, data, conn,
                            Confidence("high", "partial", reasons) if reasons else Confidence())  # fmt: skip
        self.counters.tool_calls += 1
        if request_id is not None:
            self._remember(key, request_id, _Pending("tools/call", ts_ns, name, event.event_id))
        return [event]

    def _server_answer(
        self,
        conn: ConnInfo,
        key: SessionKey,
        session: _Session,
        endpoint: Endpoint,
        message: dict[str, Any],
        ts_ns: int,
    ) -> list[SensorEvent]:
        result = message.get("result")
        result = result if isinstance(result, dict) else None
        if result is not None:
            self._learn_server(session, result)
        request_id = _id_text(message.get("id"))
        pending = self._pending.pop((key, request_id), None) if request_id is not None else None
        if pending is None:
            self.counters.unmatched_responses += 1
            return []
        if pending.method == "initialize" and result is not None:
            info = result.get("serverInfo")
            if isinstance(info, dict):
                session.server = _server_info(info)
            if isinstance(result.get("protocolVersion"), str):
                session.protocol_version = result["protocolVersion"]
        if pending.event_id is None:
            return []
        data = self._result_data(key, endpoint, pending, request_id, ts_ns)
        error = message.get("error")
        if isinstance(error, dict) or result is None:
            data["success"] = False
            data["result_length"] = 0
            data["error"] = _error(error)
        else:
            text, kinds = _result_text(result)
            data["success"] = result.get("isError") is not True
            data["result"] = text
            data["result_length"] = len(text)
            data["content_types"] = kinds
            if not data["success"]:
                data["error"] = {"type": "tool_error"}
        self.counters.tool_results += 1
        return [self._event(AGENT_TOOL_RESULT, ts_ns, data, conn)]

    # ---- helpers --------------------------------------------------------------------------

    def _result_data(
        self, key: SessionKey, endpoint: Endpoint, pending: _Pending, request_id: str | None, ts_ns: int
    ) -> dict[str, Any]:
        return {
            "tool": {"name": pending.tool, "type": "mcp"},
            "call_id": request_id,
            "duration_ms": _ms(ts_ns - pending.ts_ns),
            "related_event_id": pending.event_id,
            "mcp": self._mcp_context(key, self._session(key), endpoint),
        }

    @staticmethod
    def _mcp_context(key: SessionKey, session: _Session, endpoint: Endpoint) -> dict[str, Any]:
        server: dict[str, Any] = dict(session.server)
        url = session.url or endpoint.url
        if url is not None:
            server["url"] = url
        if endpoint.command is not None:
            server["command"] = endpoint.command
        out: dict[str, Any] = {"server": server, "transport": endpoint.transport}
        if session.session_id:
            out["session_id"] = session.session_id
        if session.protocol_version:
            out["protocol_version"] = session.protocol_version
        return out

    @staticmethod
    def _learn_server(session: _Session, result: dict[str, Any]) -> None:
        """The stateless protocol names the server in every result's `_meta`."""
        meta = result.get("_meta")
        info = meta.get(_META_SERVER_INFO) if isinstance(meta, dict) else None
        if isinstance(info, dict):
            session.server = _server_info(info)

    def _session(self, key: SessionKey) -> _Session:
        sessions = self._sessions
        session = sessions.get(key)
        if session is None:
            if len(sessions) >= _MAX_SESSIONS:
                sessions.popitem(last=False)
            session = sessions[key] = _Session()
        return session

    def _remember(self, key: SessionKey, request_id: str, pending: _Pending) -> None:
        table = self._pending
        if len(table) >= _MAX_PENDING:
            table.popitem(last=False)
            self.counters.pending_evicted += 1
        table[(key, request_id)] = pending

    def _event(
        self,
        event_type: str,
        ts_ns: int,
        data: dict[str, Any],
        conn: ConnInfo,
        confidence: Confidence | None = None,
    ) -> SensorEvent:
        return SensorEvent(
            event_type=event_type,
            event_id=self._new_id(ts_ns),
            ts_ns=ts_ns,
            data=data,
            pid=conn.pid,
            tid=conn.tid,
            uid=conn.uid,
            comm=conn.comm,
            capture_point=conn.capture_point,
            capture_method=conn.capture_method,
            confidence=confidence or Confidence(),
        )


def _server_info(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in ("name", "version", "title") if isinstance(info.get(k), str) and info[k]}


def _error(error: object) -> dict[str, Any]:
    """OISP error {code, message} of a JSON-RPC error object."""
    if not isinstance(error, dict):
        return {"type": "no_result"}
    out: dict[str, Any] = {"type": "jsonrpc_error"}
    if isinstance(error.get("code"), int):
        out["code"] = error["code"]
    if isinstance(error.get("message"), str):
        out["message"] = error["message"]
    return out


def _ms(delta_ns: int) -> int:
    return (delta_ns + 500_000) // 1_000_000 if delta_ns > 0 else 0


class StdioFramer:
    """Newline-delimited JSON-RPC on a pipe: bytes in, complete messages out.

    MCP's stdio transport writes one JSON-RPC message per line, so a message is
    complete at its newline whatever the pipe writes cut it into. A line longer than
    `_MAX_LINE` is dropped whole (counted by the caller as malformed) rather than kept
    growing without bound.
    """

    __slots__ = ("_buf", "_skipping")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> tuple[list[list[dict[str, Any]]], int]:
        """(messages of each complete line, lines that were not JSON-RPC)."""
        out: list[list[dict[str, Any]]] = []
        bad = 0
        buf = self._buf
        buf += data
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buf[start:end]).strip()
            start = end + 1
            if self._skipping:
                self._skipping = False
                continue
            if not line:
                continue
            messages = parse_jsonrpc(line)
            if messages is None:
                bad += 1
            else:
                out.append(messages)
        del buf[:start]
        if len(buf) > _MAX_LINE:
            buf.clear()
            self._skipping = True
            bad += 1
        return out, bad
