"""MCP over stdio from the server's pipes: requests read, answers written, events for the
client (the server's parent); the client end of a session is recognised and ignored;
lines split across records, lost bytes and a server that dies mid-call."""

from __future__ import annotations

import itertools

import orjson

from oisp_sensor.capture.records import DataRecord, Direction, Source
from oisp_sensor.decode.mcp import McpTracker
from oisp_sensor.decode.mcp_stdio import McpStdio
from oisp_sensor.enrich.process import ProcessInfo

SERVER, AGENT = 200, 100


def _process(pid: int) -> ProcessInfo:
    if pid == SERVER:
        return ProcessInfo(pid=SERVER, ppid=AGENT, name="python3", cmdline=["python3", "weather.py", "stdio"])
    return ProcessInfo(pid=pid, ppid=1, name="agent", uid=1000)


class _Pipes:
    def __init__(self, pid: int = SERVER) -> None:
        self.pid = pid
        self.offsets = {Direction.READ: 0, Direction.WRITE: 0}
        self.ts = itertools.count(1_000_000, 1_000_000)

    def record(self, direction: Direction, data: bytes, skip: int = 0) -> DataRecord:
        self.offsets[direction] += skip
        rec = DataRecord(pid=self.pid, tid=self.pid, uid=0, ts_ns=next(self.ts), conn_id=(3 << 62) | self.pid,
                         direction=direction, stream_offset=self.offsets[direction], data=data,
                         comm="python3", source=Source.STDIO)  # fmt: skip
        self.offsets[direction] += len(data)
        return rec


def _line(message: dict[str, object]) -> bytes:
    return orjson.dumps(message) + b"\n"


INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
INIT_OK = {"jsonrpc": "2.0", "id": 0, "result": {"serverInfo": {"name": "weather", "version": "1"}}}
CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "get_weather", "arguments": {"city": "x"}},
}
CALL_OK = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "sunny"}]}}


def _stdio() -> McpStdio:
    ids = itertools.count()
    return McpStdio(McpTracker(lambda ts: f"id{next(ids)}"), _process)


def test_server_view_gives_the_agents_tool_call_and_result() -> None:
    stdio, pipes = _stdio(), _Pipes()
    events = []
    call = _line(CALL)
    for rec in (
        pipes.record(Direction.READ, _line(INIT)),
        pipes.record(Direction.WRITE, _line(INIT_OK)),
        pipes.record(Direction.READ, call[:20]),  # a line split across two pipe reads
        pipes.record(Direction.READ, call[20:]),
        pipes.record(Direction.WRITE, _line(CALL_OK)),
    ):
        events += stdio.feed(rec)
    assert [e.event_type for e in events] == ["agent.tool_call", "agent.tool_result"]
    tool_call, result = events
    assert tool_call.pid == AGENT and tool_call.comm == "agent"
    assert tool_call.data["arguments"] == {"city": "x"}
    assert tool_call.data["mcp"]["transport"] == "stdio"
    assert tool_call.data["mcp"]["server"]["name"] == "weather"
    assert tool_call.data["mcp"]["server"]["command"] == "python3 weather.py stdio"
    assert tool_call.capture_point == "stdio" and tool_call.capture_method == "ebpf_tracepoint"
    assert result.data["success"] is True and result.data["result"] == "sunny"
    assert result.data["related_event_id"] == tool_call.event_id


def test_the_client_end_is_ignored() -> None:
    stdio, pipes = _stdio(), _Pipes(pid=AGENT)
    events = stdio.feed(pipes.record(Direction.WRITE, _line(INIT)))
    events += stdio.feed(pipes.record(Direction.READ, _line(INIT_OK)))
    events += stdio.feed(pipes.record(Direction.WRITE, _line(CALL)))
    assert events == [] and stdio.clients == 1


def test_lost_bytes_resync_at_the_next_line_and_exit_fails_pending_calls() -> None:
    stdio, pipes = _stdio(), _Pipes()
    stdio.feed(pipes.record(Direction.READ, _line(INIT)))
    stdio.feed(pipes.record(Direction.READ, b'{"jsonrpc":"2.0","id":7,"meth'))
    # 100 bytes lost, then a whole line: the cut line is dropped, the next one decoded.
    events = stdio.feed(pipes.record(Direction.READ, _line(CALL), skip=100))
    assert [e.event_type for e in events] == ["agent.tool_call"]
    assert stdio.gaps == 100
    stdio.feed(pipes.record(Direction.READ, b"not json at all\n"))
    assert stdio.tracker.counters.malformed == 1
    failed = stdio.process_exit(SERVER, 99_000_000)
    assert [e.event_type for e in failed] == ["agent.tool_result"]
    assert failed[0].data["success"] is False and failed[0].data["error"] == {"type": "server_exited"}
    assert stdio.process_exit(SERVER, 99_000_001) == []
