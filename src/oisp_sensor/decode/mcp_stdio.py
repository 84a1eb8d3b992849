"""MCP's stdio transport: JSON-RPC lines on the pipes between an agent and the MCP
server it started, seen from the server process.

The kernel captures a process's stdin reads and stdout writes once it has seen JSON-RPC
on them (capture/ SYS_STDIO): what the server reads are its client's messages, what it
writes are its answers. Both directions are in one process, so they pair without
guessing; the events belong to the client (the server's parent, the agent), as every AI
event belongs to the side that made the call. Sans-IO: the process lookup comes in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from oisp_sensor.capture.records import DataRecord, Direction
from oisp_sensor.decode.mcp import CLIENT, SERVER, Endpoint, McpTracker, SessionKey, StdioFramer
from oisp_sensor.decode.messages import ConnInfo, Role
from oisp_sensor.enrich.process import ProcessInfo
from oisp_sensor.schema.events import SensorEvent

_MAX_SERVERS = 4096


@dataclass(slots=True)
class _Server:
    conn: ConnInfo  # the client's (the agent's) identity: events are attributed to it
    key: SessionKey
    endpoint: Endpoint
    framers: dict[Direction, StdioFramer] = field(default_factory=dict)
    offsets: dict[Direction, int] = field(default_factory=dict)
    # Both ends of a stdio session speak JSON-RPC on pipes, and the kernel may capture
    # both. A session opens with the client's request (initialize, server/discover): read
    # by the server, written by the client. Only the server's view is decoded.
    role: str = ""  # "" until the first request, then "server" or "client" (ignored)


class McpStdio:
    def __init__(self, tracker: McpTracker, process_of: Callable[[int], ProcessInfo]) -> None:
        self.tracker = tracker
        self.process_of = process_of
        self._servers: dict[int, _Server] = {}
        self.gaps = 0  # bytes lost between two records of one direction (counted, resynced)
        self.clients = 0  # processes found to be the client end of a stdio session (ignored)

    def _server(self, record: DataRecord) -> _Server:
        server = self._servers.get(record.pid)
        if server is None:
            me = self.process_of(record.pid)
            client_pid = me.ppid or record.pid
            client = self.process_of(client_pid)
            conn = ConnInfo(
                key=(client_pid, record.conn_id),
                pid=client_pid,
                tid=client_pid,
                uid=client.uid,
                comm=client.name,
                role=Role.CLIENT,
                first_ts_ns=record.ts_ns,
                capture_point="stdio",
            )
            command = " ".join(me.cmdline) or me.exe or record.comm
            server = _Server(
                conn, (client_pid, f"stdio:{record.pid}", ""), Endpoint("stdio", command=command)
            )
            if len(self._servers) >= _MAX_SERVERS:
                self._servers.pop(next(iter(self._servers)))
            self._servers[record.pid] = server
        return server

    def feed(self, record: DataRecord) -> list[SensorEvent]:
        server = self._server(record)
        framer = server.framers.get(record.direction)
        expected = server.offsets.get(record.direction)
        if framer is None or (expected is not None and record.stream_offset != expected):
            if framer is not None:  # bytes lost: the line in progress cannot be trusted
                self.gaps += record.stream_offset - (expected or 0)
            framer = server.framers[record.direction] = StdioFramer()
        server.offsets[record.direction] = record.stream_offset + len(record.data)
        lines, bad = framer.feed(record.data)
        if server.role == "client":
            return []
        for _ in range(bad):
            self.tracker.malformed()
        # The server reads its client's messages and writes its own.
        direction = CLIENT if record.direction == Direction.READ else SERVER
        events: list[SensorEvent] = []
        for messages in lines:
            if not server.role:
                if not any("method" in m and "id" in m for m in messages):
                    continue  # before the first request the role cannot be told
                server.role = "server" if direction == CLIENT else "client"
                if server.role == "client":
                    self.clients += 1
                    return []
            events.extend(
                self.tracker.messages(
                    direction, server.conn, server.key, server.endpoint, messages, record.ts_ns
                )
            )
        return events

    def process_exit(self, pid: int, ts_ns: int) -> list[SensorEvent]:
        """The server exited: tool calls it never answered are reported as failed."""
        server = self._servers.pop(pid, None)
        if server is None:
            return []
        ids = self.tracker.pending_ids(server.key)
        return self.tracker.unanswered(server.conn, server.key, server.endpoint, ids, ts_ns, "server_exited")
