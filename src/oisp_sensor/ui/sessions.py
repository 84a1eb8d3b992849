"""Agent sessions for the dashboard: the chain of model turns and tool calls of one agent run.

The sensor's agent.session events say when a run starts (with its root process and the
first AI event of the run) and ends (with its totals and every pid it covered); each
agent.plan_step names its session. Between the two, every AI and agent event of the
root process or of one of its descendants belongs to the run: that is how the model turns
and tool calls between plan steps are placed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

MAX_SESSIONS = 2000
MAX_STEPS = 5000  # steps kept per session (the totals cover every one)
_ANCESTOR_DEPTH = 8


class StepEvent(Protocol):
    seq: int
    env: dict[str, Any]
    etype: str
    pid: int
    session: str | None


class Session:
    __slots__ = (
        "app",
        "cost_usd",
        "end",
        "end_reason",
        "input_tokens",
        "output_tokens",
        "pid",
        "pids",
        "session_id",
        "start",
        "steps",
        "tool_calls",
        "turns",
    )

    def __init__(self, session_id: str, pid: int, start: str | None, app: dict[str, Any] | None) -> None:
        self.session_id = session_id
        self.pid = pid
        self.pids: set[int] = {pid}
        self.start = start
        self.end: str | None = None
        self.end_reason: str | None = None
        self.app = app
        self.turns = 0
        self.tool_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.steps: list[StepEvent] = []

    def as_dict(self) -> dict[str, Any]:
        app = self.app
        return {
            "session_id": self.session_id,
            "app": {"id": app.get("id"), "name": app.get("name")} if app else None,
            "pid": self.pid,
            "start": self.start,
            "end": self.end,
            "turns": self.turns,
            "tool_calls": self.tool_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "status": "active" if self.end is None else "ended",
            "end_reason": self.end_reason,
        }


STEP_KINDS = {
    "ai.request": "model_turn",
    "ai.response": "model_turn",
    "agent.tool_call": "tool_call",
    "agent.tool_result": "tool_result",
    "agent.plan_step": "plan_step",
    "agent.session": "session",
}


class Sessions:
    """Not thread-safe: the EventStore holds its lock."""

    def __init__(self, parent_of: Callable[[int], int]) -> None:
        self.by_id: OrderedDict[str, Session] = OrderedDict()
        self.open_by_pid: dict[int, Session] = {}
        self._parent_of = parent_of

    def get(self, session_id: str) -> Session | None:
        return self.by_id.get(session_id)

    def _find(self, pid: int) -> Session | None:
        """The open session of `pid` or of its nearest ancestor (then `pid` joins it)."""
        if not self.open_by_pid:
            return None
        session = self.open_by_pid.get(pid)
        if session is not None:
            return session
        current = pid
        for _ in range(_ANCESTOR_DEPTH):
            parent = self._parent_of(current)
            if parent <= 0 or parent == current:
                return None
            session = self.open_by_pid.get(parent)
            if session is not None:
                self.open_by_pid[pid] = session
                session.pids.add(pid)
                return session
            current = parent
        return None

    def observe(
        self, ev: StepEvent, data: dict[str, Any], earlier: Callable[[str], list[StepEvent]]
    ) -> Session | None:
        """Place one AI/agent event; `earlier(event_id)` gives the kept events from that id on
        (for a session that starts with events emitted before its start event)."""
        etype = ev.etype
        if etype == "agent.session":
            return self._session_event(ev, data, earlier)
        session: Session | None = None
        sid = data.get("session_id")
        if isinstance(sid, str):
            session = self.by_id.get(sid)
        if session is None:
            session = self._find(ev.pid)
        if session is None:
            return None
        self._attach(session, ev)
        if etype == "agent.plan_step" and session.end is None:
            session.turns += 1
            self._add_usage(session, data)
        elif etype == "agent.tool_call" and session.end is None:
            session.tool_calls += 1
        return session

    def _session_event(
        self, ev: StepEvent, data: dict[str, Any], earlier: Callable[[str], list[StepEvent]]
    ) -> Session | None:
        sid = data.get("session_id")
        if not isinstance(sid, str) or not sid:
            return None
        root = data.get("root_pid")
        root = root if isinstance(root, int) else ev.pid
        session = self.by_id.get(sid)
        if session is None:
            session = Session(sid, root, ev.env.get("timestamp"), ev.env.get("app"))
            self.by_id[sid] = session
            if len(self.by_id) > MAX_SESSIONS:
                _, old = self.by_id.popitem(last=False)
                self._close(old)
        action = data.get("action")
        if action == "start":
            self.open_by_pid[root] = session
            first = data.get("first_event_id")
            if isinstance(first, str):
                # Turns taken before the process showed it is an agent: steps of this run.
                for old in earlier(first):
                    if old.session is None and (old.pid in session.pids or self._descends(old.pid, session)):
                        old.session = sid
                        self._attach(session, old)
                        if old.etype == "agent.tool_call":
                            session.tool_calls += 1
            self._attach(session, ev)
        else:
            self._attach(session, ev)
            session.end = ev.env.get("timestamp")
            session.end_reason = data.get("end_reason") if isinstance(data.get("end_reason"), str) else None
            # The end event carries the run's totals: they are the truth.
            turns = data.get("turns")
            if isinstance(turns, int):
                session.turns = turns
            calls = data.get("tool_calls")
            if isinstance(calls, int):
                session.tool_calls = calls
            usage = data.get("usage")
            if isinstance(usage, dict):
                session.input_tokens = _int(usage.get("prompt_tokens"))
                session.output_tokens = _int(usage.get("completion_tokens"))
            cost = data.get("cost")
            if isinstance(cost, dict) and isinstance(cost.get("usd"), int | float):
                session.cost_usd = float(cost["usd"])
            pids = data.get("pids")
            if isinstance(pids, list):
                session.pids.update(p for p in pids if isinstance(p, int))
            self._close(session)
        return session

    def _descends(self, pid: int, session: Session) -> bool:
        current = pid
        for _ in range(_ANCESTOR_DEPTH):
            current = self._parent_of(current)
            if current <= 0:
                return False
            if current in session.pids:
                session.pids.add(pid)
                return True
        return False

    def drop_steps_before(self, seq: int) -> int:
        """Let go of steps the store no longer keeps (it calls this when it trims): a long
        agent run would otherwise hold up to MAX_STEPS evicted events per session alive.
        Steps are attached in seq order. Returns how many were dropped."""
        dropped = 0
        for session in self.by_id.values():
            steps = session.steps
            if steps and steps[0].seq < seq:
                keep = next((i for i, ev in enumerate(steps) if ev.seq >= seq), len(steps))
                del steps[:keep]
                dropped += keep
        return dropped

    def _close(self, session: Session) -> None:
        for pid in list(session.pids):
            if self.open_by_pid.get(pid) is session:
                del self.open_by_pid[pid]

    @staticmethod
    def _attach(session: Session, ev: StepEvent) -> None:
        ev.session = session.session_id
        if len(session.steps) < MAX_STEPS:
            session.steps.append(ev)
        session.pids.add(ev.pid)

    @staticmethod
    def _add_usage(session: Session, data: dict[str, Any]) -> None:
        usage = data.get("usage")
        if isinstance(usage, dict):
            session.input_tokens += _int(usage.get("prompt_tokens"))
            session.output_tokens += _int(usage.get("completion_tokens"))
        cost = data.get("cost")
        if isinstance(cost, dict) and isinstance(cost.get("usd"), int | float):
            session.cost_usd += float(cost["usd"])


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def step_summary(ev: StepEvent) -> str:
    """One line saying what a step is, for timelines."""
    data = ev.env.get("data")
    data = data if isinstance(data, dict) else {}
    etype = ev.etype
    model = (data.get("model") or {}).get("id") if isinstance(data.get("model"), dict) else None
    if etype == "ai.request":
        n = data.get("message_count")
        tools = data.get("tools")
        text = f"request to {model or '?'}"
        if isinstance(n, int):
            text += f", {n} message{'s' if n != 1 else ''}"
        if isinstance(tools, list) and tools:
            text += f", {len(tools)} tool{'s' if len(tools) != 1 else ''} offered"
        return text
    if etype == "ai.response":
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        status = data.get("status_code")
        text = f"response {status if status is not None else '(none)'} from {model or '?'}"
        if usage:
            text += (
                f", {usage.get('prompt_tokens', '?')} in / {usage.get('completion_tokens', '?')} out tokens"
            )
        if isinstance(data.get("latency_ms"), int | float):
            text += f", {data['latency_ms']} ms"
        return text
    if etype == "agent.tool_call":
        tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
        return f"tool call {tool.get('name') or '?'}"
    if etype == "agent.tool_result":
        tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
        ok = "ok" if data.get("success", True) else "failed"
        return f"tool result {tool.get('name') or '?'} ({ok}, {data.get('result_length', 0)} chars)"
    if etype == "agent.plan_step":
        action = data.get("action") or "?"
        text = f"step {data.get('step', '?')}: {action}"
        tools = data.get("tools_requested")
        if isinstance(tools, list) and tools:
            text += " " + ", ".join(str(t.get("name")) for t in tools if isinstance(t, dict))
        return text
    if etype == "agent.session":
        if data.get("action") == "start":
            return f"session start ({data.get('trigger') or '?'})"
        return f"session end ({data.get('end_reason') or '?'})"
    return etype
