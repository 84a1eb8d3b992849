"""agent.session and agent.plan_step: the AI events of one agent run, summed up.

Definitions (what a reader of the events can rely on):

* An **agent** is a process whose AI traffic shows an agent loop: it offers the model
  tools (`ai.request` with `tools`), or a model asks it to call one
  (`agent.tool_call`), or it sends a tool result back, or it calls an MCP tool. A
  process that only chats is not an agent and gets no session.
* An **agent session** is one run of such a process: it starts at the process's
  first AI event (earlier calls of the process count once it is identified as an
  agent) and ends when the process exits (`end_reason` "process_exit"), when it has
  had no AI or tool activity for `idle_timeout` ("idle_timeout"), or when the sensor
  stops ("sensor_shutdown"). Child processes that make AI calls while an ancestor's
  session is open (sub-agents, tool scripts) belong to that session.
  `agent.session` is emitted twice: `action` "start" (when the process is identified
  as an agent, stamped with the time of its first AI event) and "end", which carries
  the totals: model turns, requests, errors, tool calls and results, tools used,
  MCP servers, conversations, providers and models, token usage and cost.
* A **plan step** is one model turn inside a session: one `ai.response` to a chat,
  Responses-API or completion request. `agent.plan_step` says what the model decided
  (`action` "tool_calls" with the tools requested, "answer", or "error"), how many
  tool results the request that started the turn carried back, its reasoning tokens
  (reported by the provider, or estimated from streamed reasoning text), usage and
  cost. Steps are numbered from 1 within the session; turns a process took before it
  showed it is an agent are emitted as its first steps, right after the session start.

Sans-IO like the rest of `decode`: timestamps come from the events; `expire` and
`close_all` are given the time by the caller.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from oisp_sensor.decode.tokens import heuristic_tokens
from oisp_sensor.schema.events import (
    AGENT_PLAN_STEP,
    AGENT_SESSION,
    AGENT_TOOL_CALL,
    AGENT_TOOL_RESULT,
    AI_EMBEDDING,
    AI_REQUEST,
    AI_RESPONSE,
    AI_STREAMING_CHUNK,
    SensorEvent,
)

IdFactory = Callable[[int], str]
ParentOf = Callable[[int], int | None]

DEFAULT_IDLE_TIMEOUT_NS = 600 * 1_000_000_000
_MAX_SESSIONS = 4096
_MAX_CANDIDATES = 8192  # processes with AI calls not (yet) identified as agents
_MAX_REQUESTS = 16384  # requests awaiting their response
_MAX_LISTED = 32  # conversation ids, models, servers listed in a session summary
_MAX_TOOLS = 256  # distinct tool names counted per session
_MAX_HELD_STEPS = 32  # plan steps of a process kept until it shows it is an agent
_ANCESTOR_DEPTH = 8
_TURN_TYPES = frozenset({"chat", "responses", "completion"})
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens", "cached_tokens")


@dataclass(slots=True)
class SessionCounters:
    sessions_started: int = 0
    sessions_ended: int = 0
    plan_steps: int = 0
    candidates_evicted: int = 0
    sessions_evicted: int = 0
    held_steps_dropped: int = 0  # turns of a long chat before it turned into an agent loop


@dataclass(slots=True)
class _Activity:
    """What one agent run (or a process not yet known to be one) has done so far."""

    root_pid: int
    first_ts: int
    last_ts: int
    first: SensorEvent  # its first AI event: who it is (pid, uid, comm)
    session_id: str | None = None  # set once identified as an agent
    pids: set[int] = field(default_factory=set)  # every process that took part
    conversations: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    mcp_servers: list[str] = field(default_factory=list)
    tools_used: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    turns: int = 0
    errors: int = 0
    embeddings: int = 0
    tool_calls: int = 0
    mcp_tool_calls: int = 0
    tool_results: int = 0
    failed_tool_results: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    usage_estimated: bool = False
    cost_usd: float = 0.0
    cost_estimated: bool = False
    priced: bool = False
    held: list[SensorEvent] = field(default_factory=list)  # plan steps from before identification


@dataclass(slots=True)
class _Request:
    """A model request of an agent (or candidate) awaiting its response."""

    conversation_id: str | None
    results_in: int = 0  # tool results the request carried back
    reasoning_tokens: int = 0  # estimated from streamed reasoning text
    request_type: str = "chat"


@dataclass(slots=True)
class _Step:
    response: SensorEvent
    activity: _Activity
    request: _Request | None
    number: int  # the turn's place in the run
    tools: list[dict[str, Any]] = field(default_factory=list)


def _add(items: list[str], value: object) -> None:
    if len(items) < _MAX_LISTED and isinstance(value, str) and value and value not in items:
        items.append(value)


def _ms(delta_ns: int) -> int:
    return (delta_ns + 500_000) // 1_000_000 if delta_ns > 0 else 0


class AgentSessions:
    """Watches the AI and agent events of every process; emits sessions and plan steps."""

    def __init__(
        self,
        id_factory: IdFactory,
        *,
        parent_of: ParentOf | None = None,
        idle_timeout_ns: int = DEFAULT_IDLE_TIMEOUT_NS,
    ) -> None:
        self._new_id = id_factory
        self._parent_of = parent_of
        self._idle_ns = idle_timeout_ns
        self._by_pid: dict[int, _Activity] = {}  # every pid of a session or candidate
        self._candidates: OrderedDict[int, _Activity] = OrderedDict()  # root pid -> not yet an agent
        self._sessions: OrderedDict[int, _Activity] = OrderedDict()  # root pid -> open session
        self._requests: OrderedDict[str, _Request] = OrderedDict()
        self.counters = SessionCounters()

    # ---- input ----------------------------------------------------------------------------

    def observe(self, events: list[SensorEvent]) -> list[SensorEvent]:
        """`events` with the session and plan-step events they cause, in order."""
        if not events:
            return events
        out: list[SensorEvent] = []
        steps: list[_Step] = []
        for event in events:
            kind = event.event_type
            if steps and not (kind == AGENT_TOOL_CALL and self._answers(steps, event)):
                self._flush(steps, out)
            if kind in (AGENT_SESSION, AGENT_PLAN_STEP):
                out.append(event)
                continue
            activity = self._activity(event)
            activity.last_ts = max(activity.last_ts, event.ts_ns)
            data = event.data
            if kind == AI_REQUEST:
                self._on_request(activity, event)
                if data.get("tools") and activity.session_id is None:
                    out.extend(self._start(activity, "tools_offered"))
            elif kind == AI_RESPONSE:
                step = self._on_response(activity, event)
                if step is not None:
                    steps.append(step)
            elif kind == AGENT_TOOL_CALL:
                self._on_tool_call(activity, data, steps)
                if activity.session_id is None:
                    mcp = (data.get("tool") or {}).get("type") == "mcp"
                    out.extend(self._start(activity, "mcp_tool_call" if mcp else "tool_call"))
            elif kind == AGENT_TOOL_RESULT:
                self._on_tool_result(activity, data)
                if activity.session_id is None:
                    out.extend(self._start(activity, "tool_result"))
            elif kind == AI_STREAMING_CHUNK:
                if data.get("delta_type") == "reasoning":
                    request = self._requests.get(data.get("related_event_id") or "")
                    delta = data.get("delta")
                    if request is not None and isinstance(delta, str):
                        request.reasoning_tokens += heuristic_tokens(delta)
            elif kind == AI_EMBEDDING:
                activity.embeddings += 1
            out.append(event)
        self._flush(steps, out)
        return out

    @staticmethod
    def _answers(steps: list[_Step], event: SensorEvent) -> bool:
        """Whether a tool call belongs to a turn still being assembled."""
        related = event.data.get("related_event_id")
        return any(step.response.event_id == related for step in steps)

    def _flush(self, steps: list[_Step], out: list[SensorEvent]) -> None:
        """A turn's tool calls come right after its response: past them, the step is complete."""
        for step in steps:
            activity = step.activity
            if activity.session_id is None and len(activity.held) >= _MAX_HELD_STEPS:
                # A plain chat process: its turns are not kept, so not built either.
                self.counters.held_steps_dropped += 1
                continue
            event = self._plan_step(step)
            if activity.session_id is not None:
                out.append(event)
            else:
                activity.held.append(event)  # emitted if the process turns out to be an agent
        steps.clear()

    def process_exit(self, pid: int, ts_ns: int) -> list[SensorEvent]:
        """The end of an agent's session when its root process exits."""
        activity = self._by_pid.pop(pid, None)
        if activity is None:
            return []
        if activity.root_pid != pid:
            return []  # a child of the agent: the session goes on
        if self._candidates.pop(pid, None) is not None:
            self._forget(activity)
            return []
        self._sessions.pop(pid, None)
        return [self._end(activity, "process_exit", max(ts_ns, activity.last_ts))]

    def expire(self, now_ns: int) -> list[SensorEvent]:
        """Sessions (and candidates) idle for longer than the timeout end now."""
        limit = now_ns - self._idle_ns
        out: list[SensorEvent] = []
        for table, is_session in ((self._sessions, True), (self._candidates, False)):
            for root in [r for r, a in table.items() if a.last_ts < limit]:
                activity = table.pop(root)
                self._forget(activity)
                if is_session:
                    out.append(self._end(activity, "idle_timeout", activity.last_ts + self._idle_ns))
        return out

    def close_all(self, now_ns: int) -> list[SensorEvent]:
        """Sensor shutdown: every open session ends, with what it did so far."""
        out = [self._end(a, "sensor_shutdown", max(now_ns, a.last_ts)) for a in self._sessions.values()]
        self._sessions.clear()
        self._candidates.clear()
        self._by_pid.clear()
        self._requests.clear()
        return out

    # ---- bookkeeping ----------------------------------------------------------------------

    def _activity(self, event: SensorEvent) -> _Activity:
        pid = event.pid
        activity = self._by_pid.get(pid)
        if activity is not None:
            return activity
        activity = self._ancestor_session(pid)
        if activity is None:
            activity = _Activity(pid, event.ts_ns, event.ts_ns, event)
            candidates = self._candidates
            if len(candidates) >= _MAX_CANDIDATES:
                _, evicted = candidates.popitem(last=False)
                self._forget(evicted)
                self.counters.candidates_evicted += 1
            candidates[pid] = activity
        activity.pids.add(pid)
        self._by_pid[pid] = activity
        return activity

    def _ancestor_session(self, pid: int) -> _Activity | None:
        if self._parent_of is None:
            return None
        current = pid
        for _ in range(_ANCESTOR_DEPTH):
            parent = self._parent_of(current)
            if not parent or parent == current:
                return None
            session = self._sessions.get(parent)
            if session is None:
                found = self._by_pid.get(parent)
                session = found if found is not None and found.session_id is not None else None
            if session is not None:
                return session
            current = parent
        return None

    def _forget(self, activity: _Activity) -> None:
        for pid in activity.pids:
            if self._by_pid.get(pid) is activity:
                del self._by_pid[pid]

    def _start(self, activity: _Activity, trigger: str) -> list[SensorEvent]:
        sessions = self._sessions
        if len(sessions) >= _MAX_SESSIONS:
            _, evicted = sessions.popitem(last=False)
            self._forget(evicted)
            self.counters.sessions_evicted += 1
            # Never silently: an evicted session still reports what it did.
            ended = [self._end(evicted, "evicted", evicted.last_ts)]
        else:
            ended = []
        self._candidates.pop(activity.root_pid, None)
        sessions[activity.root_pid] = activity
        activity.session_id = "ses_" + self._new_id(activity.first_ts)
        self.counters.sessions_started += 1
        data: dict[str, Any] = {
            "session_id": activity.session_id,
            "action": "start",
            "trigger": trigger,
            "root_pid": activity.root_pid,
            "first_event_id": activity.first.event_id,
        }
        if activity.conversations:
            data["conversation_id"] = activity.conversations[0]
        if activity.providers:
            data["providers"] = list(activity.providers)
        if activity.models:
            data["models"] = list(activity.models)
        start = self._event(AGENT_SESSION, activity.first_ts, data, activity)
        # The turns it took before it showed it is an agent are steps of this session too.
        held, activity.held = activity.held, []
        for step in held:
            step.data["session_id"] = activity.session_id
        self.counters.plan_steps += len(held)
        return [*ended, start, *held]

    def _end(self, activity: _Activity, reason: str, ts_ns: int) -> SensorEvent:
        self.counters.sessions_ended += 1
        data: dict[str, Any] = {
            "session_id": activity.session_id,
            "action": "end",
            "end_reason": reason,
            "root_pid": activity.root_pid,
            "duration_ms": _ms(ts_ns - activity.first_ts),
            "turns": activity.turns,
            "ai_requests": activity.requests,
            "errors": activity.errors,
            "embeddings": activity.embeddings,
            "tool_calls": activity.tool_calls,
            "mcp_tool_calls": activity.mcp_tool_calls,
            "tool_results": activity.tool_results,
            "failed_tool_results": activity.failed_tool_results,
            "tools_used": dict(activity.tools_used),
            "conversation_count": len(activity.conversations),
            "conversation_ids": list(activity.conversations),
            "providers": list(activity.providers),
            "models": list(activity.models),
            "mcp_servers": list(activity.mcp_servers),
            "pids": sorted(activity.pids | {activity.root_pid}),
        }
        if activity.usage:
            usage: dict[str, Any] = dict(activity.usage)
            if activity.usage_estimated:
                usage["estimated"] = True
            data["usage"] = usage
        if activity.priced:
            cost: dict[str, Any] = {"usd": round(activity.cost_usd, 10)}
            if activity.cost_estimated:
                cost["estimated"] = True
            data["cost"] = cost
        return self._event(AGENT_SESSION, ts_ns, data, activity)

    # ---- per event --------------------------------------------------------------------

    def _on_request(self, activity: _Activity, event: SensorEvent) -> None:
        data = event.data
        activity.requests += 1
        _add(activity.providers, (data.get("provider") or {}).get("id"))
        _add(activity.models, (data.get("model") or {}).get("id"))
        conversation = data.get("conversation_id")
        _add(activity.conversations, conversation)
        request_type = data.get("request_type")
        if request_type in _TURN_TYPES:
            requests = self._requests
            if len(requests) >= _MAX_REQUESTS:
                requests.popitem(last=False)
            requests[event.event_id] = _Request(conversation, request_type=request_type)

    def _on_response(self, activity: _Activity, event: SensorEvent) -> _Step | None:
        data = event.data
        if data.get("success") is False:
            activity.errors += 1
        _add(activity.models, (data.get("model") or {}).get("id"))
        usage = data.get("usage")
        if isinstance(usage, dict):
            for key in _USAGE_KEYS:
                value = usage.get(key)
                if type(value) is int:
                    activity.usage[key] = activity.usage.get(key, 0) + value
            activity.usage_estimated = activity.usage_estimated or usage.get("estimated") is True
        cost = data.get("cost")
        if isinstance(cost, dict) and isinstance(cost.get("usd"), int | float):
            activity.priced = True
            activity.cost_usd += cost["usd"]
            activity.cost_estimated = activity.cost_estimated or cost.get("estimated") is True
        request = self._requests.pop(data.get("related_event_id") or "", None)
        if request is None:
            return None  # embeddings and other calls are not model turns
        activity.turns += 1
        return _Step(event, activity, request, activity.turns)

    def _on_tool_call(self, activity: _Activity, data: dict[str, Any], steps: list[_Step]) -> None:
        tool = data.get("tool") or {}
        name = tool.get("name")
        if tool.get("type") == "mcp":
            activity.mcp_tool_calls += 1
            server = (data.get("mcp") or {}).get("server") or {}
            _add(activity.mcp_servers, server.get("name") or server.get("url") or server.get("command"))
        else:
            activity.tool_calls += 1
            for step in steps:
                if step.response.event_id == data.get("related_event_id"):
                    step.tools.append({"name": name, "call_id": data.get("call_id")})
        if isinstance(name, str) and (name in activity.tools_used or len(activity.tools_used) < _MAX_TOOLS):
            activity.tools_used[name] += 1

    def _on_tool_result(self, activity: _Activity, data: dict[str, Any]) -> None:
        activity.tool_results += 1
        if data.get("success") is False:
            activity.failed_tool_results += 1
        request = self._requests.get(data.get("request_event_id") or "")
        if request is not None:
            request.results_in += 1

    def _plan_step(self, step: _Step) -> SensorEvent:
        activity = step.activity
        response = step.response.data
        if activity.session_id is not None:
            self.counters.plan_steps += 1
        data: dict[str, Any] = {"session_id": activity.session_id, "step": step.number}
        request = step.request
        if request is not None and request.conversation_id:
            data["conversation_id"] = request.conversation_id
        data["related_event_id"] = step.response.event_id
        data["request_event_id"] = response.get("related_event_id")
        if "provider" in response:
            data["provider"] = response["provider"]
        if "model" in response:
            data["model"] = response["model"]
        choices = response.get("choices")
        first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        if response.get("success") is False:
            data["action"] = "error"
        elif step.tools:
            data["action"] = "tool_calls"
        else:
            data["action"] = "answer"
        data["tools_requested"] = step.tools
        data["tool_results_in"] = request.results_in if request is not None else 0
        data["finish_reason"] = first.get("finish_reason")
        usage = response.get("usage")
        if isinstance(usage, dict) and type(usage.get("reasoning_tokens")) is int:
            data["reasoning_tokens"] = usage["reasoning_tokens"]
        elif request is not None and request.reasoning_tokens:
            data["reasoning_tokens"] = request.reasoning_tokens
            data["reasoning_tokens_estimated"] = True
        if isinstance(usage, dict):
            data["usage"] = usage
        if "cost" in response:
            data["cost"] = response["cost"]
        if "latency_ms" in response:
            data["latency_ms"] = response["latency_ms"]
        return self._event(AGENT_PLAN_STEP, step.response.ts_ns, data, activity, step.response)

    def _event(
        self,
        event_type: str,
        ts_ns: int,
        data: dict[str, Any],
        activity: _Activity,
        source: SensorEvent | None = None,
    ) -> SensorEvent:
        who = source or activity.first
        return SensorEvent(
            event_type=event_type,
            event_id=self._new_id(ts_ns),
            ts_ns=ts_ns,
            data=data,
            pid=who.pid,
            tid=who.tid,
            uid=who.uid,
            comm=who.comm,
            capture_method=who.capture_method,
            capture_point=who.capture_point,
        )
