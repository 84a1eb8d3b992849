"""OISP event types and the event record that flows from decode to export.

Decoders produce `SensorEvent`s (type, capture timestamp, data, who made the call);
`schema.envelope` turns them into the published OISP v0.1 JSON shape with host, actor,
process, app, source and confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OISP_VERSION = "0.1"

AI_REQUEST = "ai.request"
AI_RESPONSE = "ai.response"
AI_STREAMING_CHUNK = "ai.streaming_chunk"
AI_EMBEDDING = "ai.embedding"
AGENT_TOOL_CALL = "agent.tool_call"
AGENT_TOOL_RESULT = "agent.tool_result"
AGENT_PLAN_STEP = "agent.plan_step"
AGENT_SESSION = "agent.session"
PROCESS_EXEC = "process.exec"
PROCESS_EXIT = "process.exit"
PROCESS_FORK = "process.fork"
FILE_OPEN = "file.open"
FILE_READ = "file.read"
FILE_WRITE = "file.write"
FILE_CLOSE = "file.close"
NETWORK_CONNECT = "network.connect"
NETWORK_DNS = "network.dns"

EVENT_TYPES: frozenset[str] = frozenset(
    {
        AI_REQUEST,
        AI_RESPONSE,
        AI_STREAMING_CHUNK,
        AI_EMBEDDING,
        AGENT_TOOL_CALL,
        AGENT_TOOL_RESULT,
        AGENT_PLAN_STEP,
        AGENT_SESSION,
        PROCESS_EXEC,
        PROCESS_EXIT,
        PROCESS_FORK,
        FILE_OPEN,
        FILE_READ,
        FILE_WRITE,
        FILE_CLOSE,
        NETWORK_CONNECT,
        NETWORK_DNS,
    }
)


@dataclass(slots=True)
class Confidence:
    """How an event was obtained: OISP `confidence` {level, completeness, reasons}."""

    level: str = "high"  # high | medium | low
    completeness: str = "full"  # full | partial | metadata_only
    reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SensorEvent:
    """One OISP event before its envelope is added.

    `ts_ns` is the capture's monotonic timestamp; `event_id` is a ULID made by the
    id factory the pipeline injects (so decoders stay free of clocks).
    """

    event_type: str
    event_id: str
    ts_ns: int
    data: dict[str, Any]
    pid: int
    tid: int = 0
    uid: int = -1
    comm: str = ""
    capture_method: str = "ebpf_uprobe"  # OISP source.capture_method
    capture_point: str = "ssl"  # OISP source.capture_point: ssl | socket | kernel
    confidence: Confidence = field(default_factory=Confidence)
