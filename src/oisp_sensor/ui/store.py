"""EventStore: what the dashboard and the terminal UI show, kept in memory.

Fed with exported (so already redacted) envelopes, live from the pipeline through the
dashboard exporter, or from a recorded file (`replay`). It keeps:

* the last `max_events` events, each with a sequence number (`seq`, from 1, never
  reused), for the paged and filtered event list;
* one *exchange* per AI call: its ai.request paired with its ai.response (by the
  response's `related_event_id`), the streaming chunks, tool calls and results and the
  embedding summary. An exchange is named by the event id of its ai.request (the
  `request_id` of the API); the response's event id and the provider's request id
  (`data.request_id`) find it too;
* incremental aggregates (`stats.CallStats`), the process tree (`proctree`) and the agent
  sessions (`sessions`), which cover every event seen, not only the ones kept.

Every query method returns exactly the JSON body of the matching HTTP endpoint
(see /work/notes/ui_contract.md and the README), as plain dicts. All methods are
thread-safe: one lock, held for microseconds by `add` and for milliseconds by a query.
"""

from __future__ import annotations

import contextlib
import threading
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, TypeVar

import orjson

from .. import __version__
from ..gcpolicy import checkpoint as gc_checkpoint
from .proctree import ProcessTable
from .sessions import STEP_KINDS, Sessions, step_summary
from .stats import Agg, CallStats

MAX_LIMIT = 5000
DEFAULT_LIMIT = 200

HealthSource = Callable[[], dict[str, Any]]


class Ev:
    """One kept event: the envelope and what the filters look at."""

    __slots__ = ("app", "env", "etype", "model", "pid", "provider", "seq", "session", "text", "ts")

    def __init__(
        self,
        seq: int,
        env: dict[str, Any],
        etype: str,
        pid: int,
        provider: str | None,
        model: str | None,
        app: str | None,
        ts: float,
        text: str,
    ) -> None:
        self.seq = seq
        self.env = env
        self.etype = etype
        self.pid = pid
        self.provider = provider
        self.model = model
        self.app = app
        self.ts = ts
        self.session: str | None = None
        self.text = text  # lower-cased JSON for ?q= (see `search_text`)

    def search_text(self) -> str:
        return self.text

    def out(self) -> dict[str, Any]:
        return {**self.env, "_seq": self.seq}


class Exchange:
    """One AI call: request, response and what hangs off them."""

    __slots__ = (
        "app",
        "cell",
        "chunk_first",
        "chunk_last",
        "chunks",
        "embedding",
        "id",
        "model",
        "pid",
        "provider",
        "req",
        "resp",
        "seq",
        "slot",
        "tool_calls",
        "tool_results",
        "upd",
    )

    def __init__(self, ex_id: str, first: Ev) -> None:
        self.id = ex_id
        self.seq = first.seq  # of the request (or of the response when no request was seen)
        self.upd = first.seq  # last seq that changed this exchange
        self.req: Ev | None = None
        self.resp: Ev | None = None
        self.chunks = 0
        self.chunk_first: float | None = None
        self.chunk_last: float | None = None
        self.tool_calls: list[Ev] = []
        self.tool_results: list[Ev] = []
        self.embedding: Ev | None = None
        self.provider = first.provider or ""
        self.model = first.model or ""
        self.app = first.app or ""
        self.pid = first.pid
        self.cell: Agg | None = None
        self.slot = 0

    @property
    def session(self) -> str | None:
        for ev in (self.req, self.resp):
            if ev is not None and ev.session is not None:
                return ev.session
        return None

    @property
    def success(self) -> bool | None:
        if self.resp is None:
            return None
        return self.resp.env["data"].get("success") is True

    def row(self) -> dict[str, Any]:
        first = self.req or self.resp
        assert first is not None
        env = first.env
        req = self.req.env["data"] if self.req is not None else {}
        resp = self.resp.env["data"] if self.resp is not None else {}
        usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
        cost = resp.get("cost") if isinstance(resp.get("cost"), dict) else {}
        proc = env.get("process") if isinstance(env.get("process"), dict) else {}
        app = env.get("app") if isinstance(env.get("app"), dict) else None
        status = resp.get("status_code")
        streaming = req.get("streaming") if "streaming" in req else resp.get("streaming")
        complete = False
        if self.resp is not None:
            conf = self.resp.env.get("confidence")
            complete = not isinstance(conf, dict) or conf.get("completeness", "full") == "full"
        return {
            "seq": self.seq,
            "request_id": self.id,
            "timestamp": env.get("timestamp"),
            "app": {"id": app.get("id"), "name": app.get("name")} if app else None,
            "process": {"pid": proc.get("pid"), "name": proc.get("name"), "exe": proc.get("exe")},
            "provider": self.provider or None,
            "model": self.model or None,
            "request_type": req.get("request_type"),
            "streaming": streaming is True,
            "status": status if isinstance(status, int) else None,
            "success": self.success,
            "input_tokens": _num(usage.get("prompt_tokens")),
            "output_tokens": _num(usage.get("completion_tokens")),
            "cost_usd": _num(cost.get("usd")),
            "latency_ms": _num(resp.get("latency_ms")),
            "ttft_ms": _num(resp.get("time_to_first_token_ms")),
            "complete": complete,
            "tool_calls": len(self.tool_calls),
            "session_id": self.session,
        }

    def matches_text(self, needle: str) -> bool:
        return any(ev is not None and needle in ev.search_text() for ev in (self.req, self.resp))


def search_text(env: object) -> str:
    """What ?q= searches: the event's type, process, app and data as lower-case JSON (the
    host, actor and source blocks are the same on every event and would match anything)."""
    if not isinstance(env, dict):
        return ""
    try:
        return (
            orjson.dumps((env.get("event_type"), env.get("process"), env.get("app"), env.get("data")))
            .decode()
            .lower()
        )
    except TypeError:  # not JSON-serialisable (never from the pipeline)
        return ""


def _num(value: object) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


_second_cache: dict[str, float] = {}
# Live, one entry a second: a larger table would only grow for a day before its first clear.
_MAX_SECONDS = 4096
# Display names kept per kind (pids, models, apps, providers seen in calls): pids never
# repeat on a busy host, and model names come from request bodies.
_MAX_NAMES = 4096


def parse_timestamp(text: object) -> float | None:
    """RFC 3339 (the envelope's `timestamp`) as epoch seconds; None when it is not one."""
    if not isinstance(text, str) or len(text) < 19:
        return None
    head = text[:19]
    base = _second_cache.get(head)
    if base is not None:
        # The sensor's own form, 2026-01-15T10:30:00.123456Z: no datetime needed.
        if len(text) == 27 and text[26] == "Z" and text[19] == ".":
            micros = text[20:26]
            if micros.isdigit():
                return base + int(micros) * 1e-6
        elif len(text) == 20 and text[19] == "Z":
            return base
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if text.endswith("Z"):
        if len(_second_cache) >= _MAX_SECONDS:
            _second_cache.clear()
        _second_cache[head] = parsed.replace(microsecond=0).timestamp()
    return parsed.timestamp()


class QueryError(ValueError):
    """A bad query parameter; str() is the message for the user (HTTP 400)."""


class EventStore:
    def __init__(
        self,
        max_events: int = 100_000,
        mode: str = "live",
        retention_s: int = 86_400,
        max_processes: int = 10_000,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.max_events = max_events
        self.mode = mode  # "live" | "replay"
        self.started_at = time.time()
        self.version = 0
        self._lock = threading.RLock()
        self._events: list[Ev] = []  # ascending seq, contiguous
        self._by_id: dict[str, Ev] = {}
        self._seq = 0
        self._exchanges: dict[str, Exchange] = {}
        self._calls: list[Exchange] = []  # ascending seq
        self._alias: dict[str, str] = {}  # response event id / provider request id -> exchange id
        self._tool_call_ex: dict[str, str] = {}  # tool-call event id -> exchange id
        self._updates: list[tuple[int, Exchange]] = []  # (seq, exchange) of later changes
        self._stats = CallStats(retention_s)
        self._procs = ProcessTable(max_processes)
        self._sessions = Sessions(self._procs.parent_of)
        self._latest_ts = 0.0
        self._names: dict[str, OrderedDict[Any, str]] = {
            k: OrderedDict() for k in ("provider", "model", "app", "process")
        }
        self.counts: dict[str, int] = {"events": 0, "rejected": 0, "evicted": 0}
        self.by_type: dict[str, int] = {}
        self._health_source: HealthSource | None = None
        self._listeners: list[Callable[[int], None]] = []

    # ---- input ------------------------------------------------------------------------

    def add(self, event: dict[str, Any]) -> None:
        self.add_many((event,))

    def add_many(self, events: Iterable[dict[str, Any]]) -> None:
        # The search texts are made before taking the lock: queries do not wait for them.
        batch = [(event, search_text(event)) for event in events]
        with self._lock:
            added = 0
            for event, text in batch:
                if self._add(event, text):
                    added += 1
            if added:
                self.version += 1
                if len(self._events) > self.max_events + max(16, self.max_events // 8):
                    self._trim()
        if added:
            gc_checkpoint.note(added)  # a million kept objects must not stall capture in GC
            for listener in list(self._listeners):
                with contextlib.suppress(Exception):  # a UI's callback must never break capture
                    listener(self.version)

    def _add(self, env: dict[str, Any], text: str) -> bool:
        if not isinstance(env, dict):
            self.counts["rejected"] += 1
            return False
        etype = env.get("event_type")
        data = env.get("data")
        if not isinstance(etype, str) or not isinstance(data, dict):
            self.counts["rejected"] += 1
            return False
        proc = env.get("process")
        pid = proc.get("pid") if isinstance(proc, dict) else None
        pid = pid if isinstance(pid, int) else 0
        provider = data.get("provider")
        provider = provider.get("id") if isinstance(provider, dict) else None
        model = data.get("model")
        model = model.get("id") if isinstance(model, dict) else None
        app = env.get("app")
        app_id = app.get("id") if isinstance(app, dict) else None
        ts = parse_timestamp(env.get("timestamp"))
        if ts is None:
            ts = time.time()
        elif ts > self._latest_ts:
            self._latest_ts = ts
        self._seq += 1
        seq = self._seq
        ev = Ev(seq, env, etype, pid, provider if isinstance(provider, str) else None,
                model if isinstance(model, str) else None, app_id if isinstance(app_id, str) else None, ts, text)  # fmt: skip
        self._events.append(ev)
        event_id = env.get("event_id")
        if isinstance(event_id, str):
            self._by_id[event_id] = ev
        self.counts["events"] += 1
        self.by_type[etype] = self.by_type.get(etype, 0) + 1
        info = self._procs.observe(seq, etype, pid, env, data)
        if etype.startswith("ai.") or etype.startswith("agent."):
            self._exchange_event(ev, data, info)
            if etype != "ai.streaming_chunk" and etype != "ai.embedding":
                self._sessions.observe(ev, data, self._events_from)
        return True

    def _events_from(self, event_id: str) -> list[Ev]:
        first = self._by_id.get(event_id)
        if first is None:
            return []
        start = first.seq - self._events[0].seq
        return [ev for ev in self._events[start:] if ev.etype in STEP_KINDS]

    def _exchange_event(self, ev: Ev, data: dict[str, Any], info: Any) -> None:
        etype = ev.etype
        if etype == "ai.request":
            ex_id = ev.env.get("event_id")
            if not isinstance(ex_id, str) or ex_id in self._exchanges:
                return
            ex = Exchange(ex_id, ev)
            ex.req = ev
            self._exchanges[ex_id] = ex
            self._calls.append(ex)
            self._count_request(ex, ev, data, info)
            return
        related = data.get("related_event_id")
        if etype == "ai.response":
            ex_id = related if isinstance(related, str) else None
            ex = self._exchanges.get(ex_id) if ex_id else None
            if ex is None:
                # The request was not seen (sensor started mid-call) or is long gone.
                ex_id = ev.env.get("event_id")
                if not isinstance(ex_id, str) or ex_id in self._exchanges:
                    return
                ex = Exchange(ex_id, ev)
                self._exchanges[ex_id] = ex
                self._calls.append(ex)
                self._count_request(ex, ev, data, info)
            elif ex.resp is not None:
                return  # a duplicate
            ex.resp = ev
            if not ex.model and ev.model:
                ex.model = ev.model
            own = ev.env.get("event_id")
            if isinstance(own, str):
                self._alias[own] = ex.id
            rid = data.get("request_id")
            if isinstance(rid, str):
                self._alias[rid] = ex.id
            self._count_response(ex, data, info)
            self._touched(ex, ev.seq)
            return
        if etype == "ai.streaming_chunk":
            ex = self._exchanges.get(related) if isinstance(related, str) else None
            if ex is None:
                return
            ex.chunks += 1
            ms = data.get("time_since_request_ms")
            if isinstance(ms, int | float):
                if ex.chunk_first is None or ms < ex.chunk_first:
                    ex.chunk_first = float(ms)
                if ex.chunk_last is None or ms > ex.chunk_last:
                    ex.chunk_last = float(ms)
            self._touched(ex, ev.seq)
            return
        if etype == "ai.embedding":
            ex = self._exchanges.get(related) if isinstance(related, str) else None
            if ex is not None:
                ex.embedding = ev
                self._touched(ex, ev.seq)
            return
        if etype == "agent.tool_call":
            rid = data.get("request_event_id")
            ex = self._exchanges.get(rid) if isinstance(rid, str) else None
            if ex is None:
                return
            ex.tool_calls.append(ev)
            own = ev.env.get("event_id")
            if isinstance(own, str):
                self._tool_call_ex[own] = ex.id
            self._touched(ex, ev.seq)
            return
        if etype == "agent.tool_result":
            call_ex = self._tool_call_ex.get(related) if isinstance(related, str) else None
            ex = self._exchanges.get(call_ex) if call_ex else None
            if ex is not None:
                ex.tool_results.append(ev)
                self._touched(ex, ev.seq)

    def _touched(self, ex: Exchange, seq: int) -> None:
        ex.upd = seq
        self._updates.append((seq, ex))

    def _count_request(self, ex: Exchange, ev: Ev, data: dict[str, Any], info: Any) -> None:
        key = (ex.provider, ex.model, ex.app, ex.pid)
        slot, cell = self._stats.cell(ev.ts, key)
        ex.cell, ex.slot = cell, slot
        cell.requests += 1
        if data.get("streaming") is True:
            cell.streaming += 1
        self._stats.changed(slot)
        if info is not None:
            info.ai_calls += 1
        names = self._names
        env = ev.env
        app = env.get("app")
        if ex.app and isinstance(app, dict) and isinstance(app.get("name"), str):
            _remember(names["app"], ex.app, app["name"])
        proc = env.get("process")
        if isinstance(proc, dict) and isinstance(proc.get("name"), str):
            _remember(names["process"], ex.pid, proc["name"])
        provider = data.get("provider")
        if ex.provider and isinstance(provider, dict) and isinstance(provider.get("name"), str):
            _remember(names["provider"], ex.provider, provider["name"])

    def _count_response(self, ex: Exchange, data: dict[str, Any], info: Any) -> None:
        cell = ex.cell
        if cell is None:
            return
        if data.get("success") is not True:
            cell.errors += 1
        usage = data.get("usage")
        tokens_in = tokens_out = 0
        if isinstance(usage, dict):
            tokens_in = _count(usage.get("prompt_tokens"))
            tokens_out = _count(usage.get("completion_tokens"))
        cell.input_tokens += tokens_in
        cell.output_tokens += tokens_out
        cost = data.get("cost")
        usd = cost.get("usd") if isinstance(cost, dict) else None
        usd = float(usd) if isinstance(usd, int | float) and not isinstance(usd, bool) else 0.0
        cell.cost_usd += usd
        latency = data.get("latency_ms")
        if isinstance(latency, int | float) and not isinstance(latency, bool):
            self._stats.add_latency(cell, float(latency))
        self._stats.changed(ex.slot)
        if info is not None:
            info.input_tokens += tokens_in
            info.output_tokens += tokens_out
            info.cost_usd += usd

    def _trim(self) -> None:
        """Forget the oldest events (and the exchanges they start) beyond `max_events`."""
        events = self._events
        drop = len(events) - self.max_events
        if drop <= 0:
            return
        by_id = self._by_id
        for ev in events[:drop]:
            event_id = ev.env.get("event_id")
            if isinstance(event_id, str) and by_id.get(event_id) is ev:
                del by_id[event_id]
        del events[:drop]
        self.counts["evicted"] += drop
        first_seq = events[0].seq
        calls = self._calls
        n = 0
        while n < len(calls) and calls[n].seq < first_seq:
            n += 1
        if n:
            alias, tool_ex = self._alias, self._tool_call_ex
            for ex in calls[:n]:
                self._exchanges.pop(ex.id, None)
                for ev in (ex.resp,):
                    if ev is not None:
                        alias.pop(ev.env.get("event_id"), None)
                        alias.pop(ev.env["data"].get("request_id"), None)
                for call in ex.tool_calls:
                    tool_ex.pop(call.env.get("event_id"), None)
            del calls[:n]
        updates = self._updates
        k = 0
        while k < len(updates) and updates[k][0] < first_seq:
            k += 1
        del updates[:k]
        self._sessions.drop_steps_before(first_seq)

    # ---- hooks --------------------------------------------------------------------------

    def set_health_source(self, source: HealthSource | None) -> None:
        """What the sensor reports about capture and exporters, for `health()`."""
        self._health_source = source

    def listen(self, callback: Callable[[int], None]) -> None:
        """`callback(version)` after every change, in the thread that added the events."""
        self._listeners.append(callback)

    # ---- queries --------------------------------------------------------------------------

    @property
    def latest_seq(self) -> int:
        return self._seq

    @property
    def kept(self) -> int:
        return len(self._events)

    def now(self) -> float:
        """The end of stats windows: the wall clock live, the latest event time in a replay."""
        if self.mode == "replay":
            return self._latest_ts or time.time()
        return time.time()

    def calls(
        self,
        provider: str | None = None,
        model: str | None = None,
        app: str | None = None,
        pid: int | None = None,
        q: str | None = None,
        status: str | None = None,
        session: str | None = None,
        limit: int = DEFAULT_LIMIT,
        before_seq: int | None = None,
        since_seq: int | None = None,
    ) -> dict[str, Any]:
        limit = _limit(limit)
        _check_status(status)
        needle = q.lower() if q else None
        with self._lock:
            sel = _narrow(self._calls, pid, provider, model, app, session)
            if status:
                want = status == "ok"
                sel = [ex for ex in sel if ex.resp is not None and ex.success is want]
            if needle:
                sel = [ex for ex in sel if ex.matches_text(needle)]
            if since_seq is not None:
                picked = self._changed_since(sel, since_seq)[-limit:]
            else:
                picked = _page(sel, limit, before_seq)
            return {"calls": [ex.row() for ex in picked], "total": len(sel), "latest_seq": self._seq}

    def _changed_since(self, sel: list[Exchange], since_seq: int) -> list[Exchange]:
        """Exchanges (of `sel`) whose request, response or anything else came after `since_seq`."""
        new = sel[bisect_right(sel, since_seq, key=_seq_of) :]
        updates = self._updates
        start = bisect_right(updates, since_seq, key=_first)
        changed = {id(ex): ex for _s, ex in updates[start:] if ex.seq <= since_seq}
        if not changed:
            return new
        if len(sel) == len(self._calls):
            older = [ex for ex in changed.values() if ex.id in self._exchanges]
        else:
            chosen = {id(ex) for ex in sel}
            older = [ex for key, ex in changed.items() if key in chosen]
        older.sort(key=_seq_of)
        return older + new

    def events(
        self,
        type: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        app: str | None = None,
        pid: int | None = None,
        session: str | None = None,
        q: str | None = None,
        status: str | None = None,
        limit: int = DEFAULT_LIMIT,
        before_seq: int | None = None,
        since_seq: int | None = None,
    ) -> dict[str, Any]:
        limit = _limit(limit)
        _check_status(status)
        type_ok = _type_matcher(type)
        needle = q.lower() if q else None
        with self._lock:
            sel = _narrow(self._events, pid, provider, model, app, session)
            if type_ok is not None:
                types = {t for t in self.by_type if type_ok(t)}
                sel = [ev for ev in sel if ev.etype in types]
            if status:
                want = status == "ok"
                sel = [ev for ev in sel if ev.env["data"].get("success") is want]
            if needle:
                sel = [ev for ev in sel if needle in ev.text]
            if since_seq is not None:
                picked = sel[bisect_right(sel, since_seq, key=_seq_of) :][-limit:]
            else:
                picked = _page(sel, limit, before_seq)
            return {"events": [ev.out() for ev in picked], "total": len(sel), "latest_seq": self._seq}

    def has_event(self, event_id: str) -> bool:
        return event_id in self._by_id  # one dict lookup: atomic, no lock needed

    def event(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            ev = self._by_id.get(event_id)
            return ev.out() if ev is not None else None

    def exchange(self, request_id: str) -> dict[str, Any] | None:
        """The exchange named by its request's event id (or its response's event id, or the
        provider's request id); None when unknown."""
        with self._lock:
            ex = self._exchanges.get(request_id)
            if ex is None:
                alias = self._alias.get(request_id)
                ex = self._exchanges.get(alias) if alias else None
            if ex is None:
                return None
            return {
                "request_id": ex.id,
                "row": ex.row(),
                "request": ex.req.out() if ex.req is not None else None,
                "response": ex.resp.out() if ex.resp is not None else None,
                "chunks": {"count": ex.chunks, "first_ms": ex.chunk_first, "last_ms": ex.chunk_last},
                "tool_calls": [ev.out() for ev in ex.tool_calls],
                "tool_results": [ev.out() for ev in ex.tool_results],
                "embedding": ex.embedding.out() if ex.embedding is not None else None,
            }

    def stats(
        self,
        window_s: int = 3600,
        bucket_s: int = 60,
        provider: str | None = None,
        model: str | None = None,
        app: str | None = None,
        pid: int | None = None,
        **_ignored: Any,
    ) -> dict[str, Any]:
        if window_s <= 0 or window_s > self._stats.retention_s:
            raise QueryError(f"window_s must be between 1 and {self._stats.retention_s}")
        if bucket_s <= 0:
            raise QueryError("bucket_s must be positive")
        if window_s // bucket_s > 2000:
            raise QueryError("too many buckets: at most 2000 (window_s / bucket_s)")
        with self._lock:
            out = self._stats.query(
                self.now(), window_s, bucket_s, provider or None, model or None, app or None, pid, self._names
            )
            out["now"] = self.now()
            return out

    def processes(self) -> dict[str, Any]:
        with self._lock:
            return self._procs.as_dict()

    def sessions(self) -> dict[str, Any]:
        with self._lock:
            items = [s.as_dict() for s in self._sessions.by_id.values()]
        items.sort(key=lambda s: s["start"] or "", reverse=True)
        return {"sessions": items}

    def session(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._sessions.get(session_id)
            if found is None:
                return None
            steps = [
                {
                    "seq": ev.seq,
                    "timestamp": ev.env.get("timestamp"),
                    "kind": STEP_KINDS.get(ev.etype, ev.etype),
                    "summary": step_summary(ev),
                    "event": ev.out(),
                }
                for ev in sorted(found.steps, key=lambda e: e.seq)
            ]
            return {"session": found.as_dict(), "steps": steps}

    def health(self) -> dict[str, Any]:
        """The /api/health body: exporters and capture from the health source (the sensor)."""
        source = self._health_source
        extra: dict[str, Any] = {}
        if source is not None:
            try:
                extra = source() or {}
            except Exception as exc:  # health must answer even when the source is broken
                extra = {"error": str(exc)[:200]}
        exports = extra.get("exports") or {}
        capture = extra.get("capture")
        healthy = all(e.get("status") in ("ok", "closed") for e in exports.values() if isinstance(e, dict))
        if isinstance(capture, dict) and capture.get("status") == "degraded":
            healthy = False
        with self._lock:
            sensor = {
                "version": __version__,
                "uptime_s": round(time.time() - self.started_at, 3),
                "events": self.counts["events"],
                "events_kept": len(self._events),
                "events_rejected": self.counts["rejected"],
                "latest_seq": self._seq,
                "events_by_type": dict(self.by_type),
                "mode": self.mode,
            }
        sensor.update(extra.get("sensor") or {})
        sensor["mode"] = self.mode
        return {
            "status": "healthy" if healthy else "degraded",
            "exports": exports,
            "capture": capture,
            "sensor": sensor,
        }


def _remember(table: OrderedDict[Any, str], key: Any, name: str) -> None:
    """Keeps the most recently used names (a ranking row without a name shows its key)."""
    table[key] = name
    table.move_to_end(key)
    if len(table) > _MAX_NAMES:
        table.popitem(last=False)


def _seq_of(item: Ev | Exchange) -> int:
    return item.seq


def _first(pair: tuple[int, Exchange]) -> int:
    return pair[0]


_Row = TypeVar("_Row", Ev, Exchange)


def _narrow(
    rows: list[_Row], pid: int | None, provider: str | None, model: str | None, app: str | None,
    session: str | None,
) -> list[_Row]:  # fmt: skip
    """The rows (events or calls) with the given pid, provider, model, app and session: one
    pass per filter given, most selective first, each a comprehension over the last."""
    for attr, value in (
        ("pid", pid),
        ("provider", provider),
        ("model", model),
        ("app", app),
        ("session", session),
    ):
        if value is not None and value != "":
            get = attrgetter(attr)
            rows = [row for row in rows if get(row) == value]
    return rows


def _page(rows: list[_Row], limit: int, before_seq: int | None) -> list[_Row]:
    """The last `limit` rows, or the last `limit` before `before_seq` (rows sorted by seq)."""
    end = len(rows) if before_seq is None else bisect_left(rows, before_seq, key=_seq_of)
    return rows[max(0, end - limit) : end]


def _check_status(status: str | None) -> None:
    if status not in (None, "", "ok", "error"):
        raise QueryError("status must be 'ok' or 'error'")


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _limit(limit: int) -> int:
    if limit < 1:
        raise QueryError("limit must be at least 1")
    return min(limit, MAX_LIMIT)


def _type_matcher(spec: str | None) -> Callable[[str], bool] | None:
    """?type=ai.request,ai.response (exact), ai.* or ai (a whole family)."""
    if not spec:
        return None
    exact: set[str] = set()
    prefixes: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if part.endswith(".*"):
            prefixes.append(part[:-1])
        elif "." not in part:
            prefixes.append(part + ".")
        else:
            exact.add(part)
    if not exact and not prefixes:
        return None
    pre = tuple(prefixes)
    return lambda etype: etype in exact or (bool(pre) and etype.startswith(pre))
