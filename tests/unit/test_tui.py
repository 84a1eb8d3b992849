"""The terminal UI, driven by Textual's headless pilot over a real EventStore.

The events are made the way the sensor makes them: HTTP bytes through the real
connection tracker and AI decoder, the real agent-session tracker, the real redactor
and the real envelope; only the process events and the network latencies (the test
connection answers in nanoseconds) are written by hand. Screenshots (SVG) go to
tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from tests.unit.helpers_ai import (
    events_of,
    exchange,
    json_response,
    new_builder,
    post,
    sse,
    streamed_response,
)
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from oisp_sensor.decode.agent_sessions import AgentSessions
from oisp_sensor.redact import Redactor
from oisp_sensor.schema.envelope import Clock, envelope
from oisp_sensor.ui.store import EventStore
from oisp_sensor.ui.tui import TuiUnavailable, _logs_held, run_tui
from oisp_sensor.ui.tui import filters as flt
from oisp_sensor.ui.tui import format as fmt
from oisp_sensor.ui.tui.app import SensorTui
from oisp_sensor.ui.tui.screens import ExchangeScreen, SessionScreen

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
T0_NS = 1_795_341_600 * 1_000_000_000  # 2026-11-22T10:00:00Z
SIZE = (150, 45)
SECRET = "sk-proj-" + "Zq8Xw2Vn5Rt7Yp3Lk9Jh4Gf6" * 2

BASH = {"pid": 10, "ppid": 1, "name": "bash", "exe": "/bin/bash", "cmdline": ["bash"], "cwd": "/home/u"}
AGENT_PID = 100  # the decoder test helpers' connection pid: the agent session's pid too
AGENT = {"pid": AGENT_PID, "ppid": 10, "name": "python3", "exe": "/usr/bin/python3",
         "cmdline": ["python3", "agent.py"], "cwd": "/home/u"}  # fmt: skip
CLAUDE = {"pid": 12, "ppid": 10, "name": "node", "exe": "/usr/bin/node", "cmdline": ["node", "chat.js"],
          "cwd": "/home/u"}  # fmt: skip
APP_AGENT = {"id": "weather-agent", "name": "Weather Agent"}
APP_CHAT = {"id": "chat-cli", "name": "Chat CLI"}


# ---- events ----------------------------------------------------------------------------------


class Maker:
    """Envelopes for a sequence of calls, one second apart, ids unique across them."""

    def __init__(self, redaction: str = "safe") -> None:
        self.builder = new_builder()
        self.redactor = Redactor(redaction)
        self.second = 0

    def wrap(self, raw: list[Any], process: dict[str, Any], app: dict[str, Any], latency_ms: float) -> list[dict[str, Any]]:  # fmt: skip
        clock = Clock(offset_ns=T0_NS + self.second * 1_000_000_000)
        self.second += 2
        out = []
        for event in raw:
            env = envelope(
                event, clock, host={"hostname": "box"}, actor={"uid": 1000}, process=process, app=app
            )
            if env["event_type"] == "ai.response":
                env["data"]["latency_ms"] = latency_ms  # what a real network takes
            out.append(self.redactor.apply(env))  # as exported: redacted
        return out

    def openai(self, prompt: str, answer: str, process: dict[str, Any] = CLAUDE, app: dict[str, Any] = APP_CHAT,
               status: int = 200, latency_ms: float = 420.0) -> list[dict[str, Any]]:  # fmt: skip
        req = post("api.openai.com", "/v1/chat/completions",
                   {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]})  # fmt: skip
        if status == 200:
            resp = json_response({"id": f"chatcmpl-{self.second}", "model": "gpt-4o", "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 7}})  # fmt: skip
        else:
            resp = json_response({"error": {"message": answer, "type": "rate_limit_error"}}, status,
                                 b"Too Many Requests")  # fmt: skip
        return self.wrap(events_of(exchange(req, resp), builder=self.builder), process, app, latency_ms)

    def anthropic(self, prompt: str, answer: str) -> list[dict[str, Any]]:
        req = post("api.anthropic.com", "/v1/messages",
                   {"model": "claude-3-5-haiku-20241022", "max_tokens": 100,
                    "messages": [{"role": "user", "content": prompt}]},
                   (b"x-api-key", b"sk-ant-api03-xyz"), (b"anthropic-version", b"2023-06-01"))  # fmt: skip
        resp = json_response({"id": "msg_01", "type": "message", "role": "assistant",
                              "model": "claude-3-5-haiku-20241022", "content": [{"type": "text", "text": answer}],
                              "stop_reason": "end_turn", "usage": {"input_tokens": 1500, "output_tokens": 300}})  # fmt: skip
        return self.wrap(events_of(exchange(req, resp), builder=self.builder), CLAUDE, APP_CHAT, 1250.0)

    def streaming(self, prompt: str) -> list[dict[str, Any]]:
        req = post("api.openai.com", "/v1/chat/completions",
                   {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": prompt}]})  # fmt: skip
        pieces = [sse({"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": w}}]})
                  for w in ("Once ", "upon ", "a time")]  # fmt: skip
        pieces.append(sse("[DONE]"))
        return self.wrap(events_of(exchange(req, streamed_response(pieces)), builder=self.builder),
                         CLAUDE, APP_CHAT, 900.0)  # fmt: skip

    def agent_run(self) -> list[dict[str, Any]]:
        """A tool-using agent turn, with its agent.session / plan_step events."""
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
        call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}  # fmt: skip
        req1 = post("api.openai.com", "/v1/chat/completions",
                    {"model": "gpt-4o", "tools": tools,
                     "messages": [{"role": "user", "content": "What is the weather in Paris? [bold]x[/]"}]})  # fmt: skip
        resp1 = json_response({"id": "r1", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls",
                               "message": {"role": "assistant", "content": None, "tool_calls": [call]}}],
                               "usage": {"prompt_tokens": 20, "completion_tokens": 10}})  # fmt: skip
        history = [{"role": "user", "content": "What is the weather in Paris? [bold]x[/]"},
                   {"role": "assistant", "tool_calls": [call]},
                   {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}]  # fmt: skip
        req2 = post(
            "api.openai.com", "/v1/chat/completions", {"model": "gpt-4o", "messages": history, "tools": tools}
        )
        resp2 = json_response({"id": "r2", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "It is sunny in Paris."}}],
                               "usage": {"prompt_tokens": 40, "completion_tokens": 5}})  # fmt: skip
        raw = events_of(exchange(req1, resp1), builder=self.builder)
        raw += events_of(exchange(req2, resp2), builder=self.builder)
        counter = itertools.count(1)
        sessions = AgentSessions(lambda ts: f"S{next(counter):025d}")
        raw = sessions.observe(raw)
        raw += sessions.close_all(max(e.ts_ns for e in raw) + 1)
        return self.wrap(raw, AGENT, APP_AGENT, 730.0)


def process_events() -> list[dict[str, Any]]:
    def proc(etype: str, second: int, data: dict[str, Any], process: dict[str, Any]) -> dict[str, Any]:
        return {"oisp_version": "0.1", "event_id": f"01JPROC{etype[8:12].upper()}{process['pid']:015d}",
                "event_type": etype, "timestamp": f"2026-11-22T09:59:{second:02d}.000000Z",
                "host": {"hostname": "box"}, "process": process, "data": data}  # fmt: skip

    return [
        proc("process.exec", 50, {"pid": 10, "ppid": 1}, BASH),
        proc("process.exec", 51, {"pid": AGENT_PID, "ppid": 10}, AGENT),
        proc("process.exec", 52, {"pid": 12, "ppid": 10}, CLAUDE),
        proc(
            "network.connect",
            53,
            {"remote": {"ip": "10.0.0.1", "port": 443, "hostname": "api.openai.com"}, "protocol": "tcp"},
            AGENT,
        ),
    ]


def dataset() -> list[dict[str, Any]]:
    m = Maker()
    return [
        *process_events(),
        *m.agent_run(),  # 2 calls (openai gpt-4o, pid 100), one tool call
        *m.anthropic("Summarise this file", "It is a config file."),  # pid 12
        *m.openai(f"my key is {SECRET}", "noted"),  # pid 12, secret redacted
        *m.openai("again", "slow down", status=429),  # pid 12, an error
        *m.streaming("Tell me a story"),  # pid 12, streaming gpt-4o-mini
    ]


def make_store(events: list[dict[str, Any]] | None = None) -> EventStore:
    store = EventStore(mode="replay")
    store.add_many(dataset() if events is None else events)
    return store


# ---- driving the app ---------------------------------------------------------------------------


def drive(
    store: EventStore, script: Callable[[SensorTui, Pilot[None]], Awaitable[None]], **kwargs: Any
) -> None:
    async def main() -> None:
        app = SensorTui(store, poll_s=0.05, **kwargs)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await script(app, pilot)

    asyncio.run(main())


async def settle(pilot: Pilot[None]) -> None:
    """Let the messages a key or an action posted run, and the screen redraw."""
    await pilot.pause()
    await pilot.pause()


async def until(pilot: Pilot[None], ready: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for what a poll of the store brings (polls are timers: a loaded machine delays them)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not ready():
        assert loop.time() < end, "the UI did not catch up with the store"
        await pilot.pause(0.05)
    await pilot.pause()


def text_of(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else str(content)


def squash(text: str) -> str:
    return " ".join(text.split())


def cell_text(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def rows(table: DataTable[Any]) -> list[list[str]]:
    return [[cell_text(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def shot(app: SensorTui, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = Path(app.save_screenshot(f"{name}.svg", path=str(ARTIFACTS)))
    assert path.stat().st_size > 5000
    return path


# ---- tests --------------------------------------------------------------------------------------


def test_timeline_shows_every_call_with_its_figures() -> None:
    async def script(app: SensorTui, pilot: Pilot[None]) -> None:
        table = app.timeline
        got = rows(table)
        assert len(got) == 6
        columns = [label for _key, label in fmt.TIMELINE_COLUMNS]
        by = [dict(zip(columns, r, strict=True)) for r in got]
        assert [r["Provider"] for r in by] == ["openai", "openai", "anthropic", "openai", "openai", "openai"]
        first, claude, error, stream = by[0], by[2], by[4], by[5]
        assert first["App"] == "Weather Agent" and first["Process"] == "python3:100"
        assert first["Model"] == "gpt-4o +1 tool" and first["In"] == "20" and first["Out"] == "10"
        assert first["Latency"] == "730 ms" and first["Status"] == "200 ok"
        assert (
            claude["Model"] == "claude-3-5-haiku-20241022"
            and claude["In"] == "1500"
            and claude["Out"] == "300"
        )
        assert claude["Cost"].startswith("$0.00") and claude["Latency"] == "1.25 s"
        assert error["Status"] == "429 error" and stream["Model"] == "gpt-4o-mini (stream)"
        assert first["Time"] == fmt.clock("2026-11-22T10:00:00.000001Z")[:8] + first["Time"][8:]
        # The newest call is selected, so new ones are followed.
        assert table.cursor_row == 5
        status = text_of(app.query_one("#status", Static))
        assert "6 AI calls" in status and f"{app.store.counts['events']} events" in status
        svg = shot(app, "tui_timeline").read_text()
        assert "claude-3-5-haiku" in svg and "Timeline" in svg and "Quit" in svg  # keys in the footer

    drive(make_store(), script)


def test_enter_opens_the_exchange_with_messages_tools_and_timings() -> None:
    async def script(app: SensorTui, pilot: Pilot[None]) -> None:
        app.timeline.move_cursor(row=0)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExchangeScreen)
        text = text_of(screen.query_one("#exchange", Static))
        assert "openai · gpt-4o" in text and "Weather Agent" in text and "python3:100" in text
        # Captured text is shown as typed: "[bold]" is not console markup.
        assert "user: What is the weather in Paris? [bold]x[/]" in text
        flat = squash(text)
        assert "tools offered get_weather" in flat and "agent session ses_" in flat
        assert 'tool call get_weather {"city":"Paris"}' in flat and "finish reason tool_calls" in flat
        assert "latency 730 ms" in flat
        assert "Tool calls" in text and "result: ok" in text
        shot(app, "tui_exchange")
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ExchangeScreen) and app.focused is app.timeline
        # The streaming call: chunks and timings.
        app.timeline.move_cursor(row=5)
        await pilot.press("enter")
        await settle(pilot)
        text = text_of(app.screen.query_one("#exchange", Static))
        assert "stream chunks" in text and "(streaming)" in text
        await pilot.press("t")  # a view key goes back to the views from anywhere
        await settle(pilot)
        assert not isinstance(app.screen, ExchangeScreen)

    drive(make_store(), script)


def test_only_redacted_content_reaches_the_screen() -> None:
    async def safe(app: SensorTui, pilot: Pilot[None]) -> None:
        app.timeline.move_cursor(row=3)
        await pilot.press("enter")
        await settle(pilot)
        text = text_of(app.screen.query_one("#exchange", Static))
        assert "my key is [REDACTED:api_key]" in text and SECRET not in text
        assert SECRET not in app.export_screenshot()

    drive(make_store(), safe)

    m = Maker(redaction="minimal")
    events = m.openai(f"my key is {SECRET}", "noted")

    async def minimal(app: SensorTui, pilot: Pilot[None]) -> None:
        await pilot.press("enter")
        await settle(pilot)
        text = text_of(app.screen.query_one("#exchange", Static))
        assert "user: (" in text and "chars, content not kept)" in text
        assert "my key" not in text and SECRET not in text

    drive(make_store(events), minimal)


def test_stats_show_totals_per_provider_and_model() -> None:
    async def script(app: SensorTui, pilot: Pilot[None]) -> None:
        await pilot.press("s")
        await settle(pilot)
        totals = text_of(app.query_one("#totals", Static))
        assert "requests 6" in totals and "errors 1" in totals
        providers = {r[0]: r for r in rows(app.query_one("#by-provider", DataTable))}
        assert set(providers) == {"OpenAI (openai)", "Anthropic (anthropic)"}
        assert providers["OpenAI (openai)"][1:3] == ["5", "1"]
        assert providers["Anthropic (anthropic)"][1:4] == ["1", "0", "1500"]
        models = {r[0]: r[1] for r in rows(app.query_one("#by-model", DataTable))}
        assert models == {"gpt-4o": "4", "claude-3-5-haiku-20241022": "1", "gpt-4o-mini": "1"}
        apps = {r[0] for r in rows(app.query_one("#by-app", DataTable))}
        assert apps == {"Weather Agent (weather-agent)", "Chat CLI (chat-cli)"}
        assert "[stats]" in text_of(app.query_one("#status", Static))
        shot(app, "tui_stats")
        # The filter applies to the totals too.
        app.apply_filters({"provider": "anthropic"})
        await settle(pilot)
        assert "requests 1" in text_of(app.query_one("#totals", Static))

    drive(make_store(), script)


def test_process_tree_with_ai_activity_and_enter_shows_its_calls() -> None:
    async def script(app: SensorTui, pilot: Pilot[None]) -> None:
        await pilot.press("p")
        await settle(pilot)
        tree = app.query_one("#proc-tree")
        root = tree.root.children  # type: ignore[attr-defined]
        assert [n.data for n in root] == [10]
        children = {n.data: str(n.label) for n in root[0].children}
        assert set(children) == {AGENT_PID, 12}
        assert "python3 (100) Weather Agent  2 AI calls, 60/15 tok" in children[AGENT_PID]
        assert "node (12) Chat CLI  4 AI calls" in children[12]
        for _ in range(3):  # down the tree to the agent
            await pilot.press("down")
            if tree.cursor_node.data == AGENT_PID:  # type: ignore[attr-defined]
                break
        await settle(pilot)
        detail = text_of(app.query_one("#proc-detail", Static))
        assert "cmdline  python3 agent.py" in detail and "api.openai.com:443" in detail
        shot(app, "tui_processes")
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_view == "timeline" and app.filters == {"pid": AGENT_PID}
        assert [r[2] for r in rows(app.timeline)] == ["python3:100", "python3:100"]
        assert "filter: pid:100" in text_of(app.query_one("#status", Static))

    drive(make_store(), script)


def test_a_busy_machine_shows_only_the_processes_with_ai_activity() -> None:
    from oisp_sensor.ui.tui.views import ProcessView

    builds = [
        {**BASH, "pid": 500 + i, "ppid": 10, "name": "cc", "cmdline": ["cc", f"f{i}.c"]} for i in range(8)
    ]
    extra = [{"oisp_version": "0.1", "event_id": f"01JBUILD{p['pid']:018d}", "event_type": "process.exec",
              "timestamp": "2026-11-22T09:59:55.000000Z", "host": {"hostname": "box"}, "process": p,
              "data": {"pid": p["pid"], "ppid": 10}} for p in builds]  # fmt: skip

    async def script(app: SensorTui, pilot: Pilot[None]) -> None:
        app.query_one(ProcessView).max_tree = 5
        await pilot.press("p")
        await settle(pilot)
        tree = app.query_one("#proc-tree")
        top = tree.root.children  # type: ignore[attr-defined]
        assert [n.data for n in top] == [10] and {n.data for n in top[0].children} == {AGENT_PID, 12}
        assert "11 processes: showing the 3 with AI calls" in text_of(app.query_one("#proc-detail", Static))

    drive(make_store([*process_events(), *extra, *dataset()[len(process_events()) :]]), script)


def test_filter_narrows_the_timeline_and_esc_clears_it() -> None:
    async def script(app: SensorTui, pilot: Pilot[None]) -> None:
        box = app.query_one("#filter", Input)
        await pilot.press("slash")
        await settle(pilot)
        assert app.focused is box
        # Free text searches the (redacted) content; typing "s", "t"... in the box does not act.
        await pilot.press(*"story")
        await pilot.press("enter")
        await settle(pilot)
        assert app.is_running and app.filters == {"q": "story"} and not box.has_class("shown")
        assert [r[4] for r in rows(app.timeline)] == ["gpt-4o-mini (stream)"]
        await pilot.press("slash")
        assert box.value == "story"  # the box shows the filter in force
        box.value = "provider:anthropic"
        await pilot.press("enter")
        await settle(pilot)
        assert app.filters == {"provider": "anthropic"}
        assert [r[3] for r in rows(app.timeline)] == ["anthropic"]
        await pilot.press("slash")
        box.value = "status:ok "
        await pilot.press("end", *"quit")  # typed into the box: q does not quit, the search finds nothing
        await pilot.press("enter")
        await settle(pilot)
        assert app.is_running and app.filters == {"status": "ok", "q": "quit"} and app.timeline.row_count == 0
        await pilot.press("slash")
        box.value = "story"
        await pilot.press("enter")
        await settle(pilot)
        # A bad filter is reported and changes nothing.
        await pilot.press("slash")
        box.value = "pid:abc"
        await pilot.press("enter")
        await settle(pilot)
        assert app.filters == {"q": "story"} and box.has_class("shown")
        await pilot.press("escape")  # closes the box
        await settle(pilot)
        assert not box.has_class("shown") and app.filters == {"q": "story"}
        await pilot.press("escape")  # clears the filter
        await settle(pilot)
        assert app.filters == {} and app.timeline.row_count == 6
        await pilot.press("e")  # errors only, and back
        await settle(pilot)
        assert [r[9] for r in rows(app.timeline)] == ["429 error"]
        await pilot.press("e")
        await settle(pilot)
        assert app.timeline.row_count == 6

    drive(make_store(), script)


def test_live_updates_while_capture_adds_events_from_another_thread() -> None:
    m = Maker()
    m.second = 100
    first = m.openai("hello", "hi there")
    later = m.anthropic("and you?", "fine")
    req, resp = [e for e in later if e["event_type"] == "ai.request"], [e for e in later if e["event_type"] != "ai.request"]  # fmt: skip

    async def script(app: SensorTui, pilot: Pilot[None]) -> None:
        assert app.timeline.row_count == 1
        feeder = threading.Thread(target=app.store.add_many, args=(req,))  # as capture does
        feeder.start()
        feeder.join()
        await until(pilot, lambda: app.timeline.row_count == 2)
        got = rows(app.timeline)
        assert len(got) == 2 and got[1][3] == "anthropic" and got[1][9] == "pending"
        assert app.timeline.cursor_row == 1  # followed
        await pilot.press("enter")  # open the pending call: it fills in when the response comes
        await settle(pilot)
        assert "(no response yet)" in text_of(app.screen.query_one("#exchange", Static))
        app.store.add_many(resp)
        exchange = app.screen.query_one("#exchange", Static)
        await until(pilot, lambda: "(no response yet)" not in text_of(exchange))
        text = text_of(exchange)
        assert "assistant: fine" in text and "200 ok" in text
        await pilot.press("escape")
        await settle(pilot)
        got = rows(app.timeline)
        assert len(got) == 2 and got[1][9] == "200 ok" and got[1][5] == "1500"

    drive(make_store([*process_events(), *first]), script)


def test_timeline_keeps_its_last_rows_and_ignores_updates_of_older_calls() -> None:
    m = Maker()
    calls = [m.openai(f"question {i}", f"answer {i}") for i in range(5)]
    requests = [e for c in calls for e in c if e["event_type"] == "ai.request"]
    responses = [e for c in calls for e in c if e["event_type"] != "ai.request"]

    async def script(app: SensorTui, pilot: Pilot[None]) -> None:
        assert [r[9] for r in rows(app.timeline)] == ["pending"] * 3
        app.store.add_many(responses)  # the first two calls are answered too, off screen
        await until(pilot, lambda: "pending" not in str(rows(app.timeline)))
        got = rows(app.timeline)
        assert [r[9] for r in got] == ["200 ok"] * 3 and app.timeline.total == 5
        app.store.add_many(m.openai("one more", "ok"))
        await until(pilot, lambda: app.timeline.total == 6)
        assert app.timeline.row_count == 3 and app.timeline.cursor_row == 2

    drive(make_store(requests), script, max_rows=3)


def test_agent_sessions_and_their_steps() -> None:
    async def script(app: SensorTui, pilot: Pilot[None]) -> None:
        await pilot.press("a")
        await settle(pilot)
        sessions = rows(app.query_one("#sessions", DataTable))
        assert len(sessions) == 1
        s = sessions[0]
        assert s[1].startswith("ses_") and s[2] == "Weather Agent" and s[3] == "100"
        assert s[4:6] == ["2", "1"] and s[9] == "ended"
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SessionScreen)
        steps = rows(screen.query_one("#steps", DataTable))
        kinds = [r[1] for r in steps]
        assert kinds[0] == "session" and kinds.count("model_turn") == 4 and "tool_call" in kinds
        assert any(r[2] == "tool call get_weather" for r in steps)
        shot(app, "tui_session")
        # Enter on the tool call opens the AI call it belongs to.
        table = screen.query_one("#steps", DataTable)
        table.move_cursor(row=kinds.index("tool_call"))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ExchangeScreen)
        assert "get_weather" in text_of(app.screen.query_one("#exchange", Static))
        await pilot.press("escape")
        await pilot.press("escape")
        await settle(pilot)
        assert app.current_view == "sessions" and len(app.screen_stack) == 1

    drive(make_store(), script)


def test_quits_on_q_and_when_the_sensor_stops() -> None:
    async def main() -> None:
        store = make_store()
        stop = threading.Event()
        app = SensorTui(store, stop=stop, poll_s=0.05)
        task = asyncio.create_task(app.run_async(headless=True, size=SIZE))
        for _ in range(100):
            if app.is_running and app.timeline.row_count:
                break
            await asyncio.sleep(0.05)
        assert app.is_running and not task.done()
        stop.set()  # SIGTERM to the sensor
        await asyncio.wait_for(task, 5)
        app = SensorTui(store, poll_s=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("q")
            await settle(pilot)
            assert not app.is_running

    asyncio.run(main())


def test_no_terminal_no_ui_and_the_sensor_goes_on() -> None:
    from oisp_sensor.cli import _run_tui

    assert not sys.stdout.isatty()  # pytest captures stdout
    store = make_store([])
    with pytest.raises(TuiUnavailable, match="not a terminal"):
        run_tui(store)
    stop = threading.Event()
    _run_tui(run_tui, store, stop)  # what `record --tui` does: reports it, capture goes on
    assert not stop.is_set()


def test_log_lines_are_held_while_the_ui_owns_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with _logs_held():
            logging.getLogger("oisp_sensor.test").warning("exporter down")
            assert "exporter down" not in capsys.readouterr().err
        assert "exporter down" in capsys.readouterr().err
        assert handler.stream is sys.stderr
    finally:
        root.removeHandler(handler)


def test_filter_line_and_figures() -> None:
    assert flt.parse("provider:openai model:gpt-4o pid:42 status:ERROR hello world") == {
        "provider": "openai", "model": "gpt-4o", "pid": 42, "status": "error", "q": "hello world",
    }  # fmt: skip
    assert flt.parse("see http://x") == {"q": "see http://x"}
    for bad, message in (
        ("pid:x", "pid must be a number"),
        ("status:meh", "ok or error"),
        ("model:", "needs a value"),
    ):
        with pytest.raises(flt.FilterError, match=message):
            flt.parse(bad)
    assert flt.describe(flt.parse("app:a weather")) == "app:a weather"
    assert (fmt.tokens(950), fmt.tokens(12_345), fmt.tokens(None)) == ("950", "12.3k", "-")
    assert (fmt.cost(0), fmt.cost(0.0123), fmt.cost(2.5), fmt.cost(1.8e-05)) == (
        "$0",
        "$0.0123",
        "$2.50",
        "$0.000018",
    )
    assert (fmt.ms(42.4), fmt.ms(1250), fmt.ms(65_000), fmt.ms(True)) == ("42 ms", "1.25 s", "65.0 s", "-")
    assert fmt.status({"success": None}).plain == "pending"
    assert fmt.status({"success": True, "status": 200, "complete": False}).plain == "200 ~ ok"
    assert fmt.clock("garbage") == "-"
