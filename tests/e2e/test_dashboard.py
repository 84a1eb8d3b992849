"""End to end: the web dashboard in headless Chromium, fed by what the real sensor captured.

One sensor (as root, dashboard on a free port) records real clients calling the fake OpenAI
API: a plain call, a streamed one, an agent's tool round trip, curl, a failing call, and a
message full of markup. The page (Debian's chromium, driven by Playwright, no browser
download) must then show them: the live timeline (including a call made while the page is
open, first pending, then answered), the exchange of a call with its request and response,
filters and search kept in the URL, charts that drew, the process tree, the agent session
and the sensor health. Screenshots go to tests/artifacts/ (gitignored) for a person to look
at. Captured text is never markup: a message with HTML in it must show as text.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.support.browser import canvas_ink, chromium, open_page, screenshot
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import REPO, RunningSensor, dashboard_port

pytestmark = pytest.mark.kernel

PY_CLIENT = "tests/clients/py_openai_chat.py"
MARKUP = '<img src=x onerror="window.__pwned=1"><b>bold?</b> & done'
ROW = '.tl-row[data-id]:not([data-id=""]):not([hidden])'
# An SDK call, then a file written with the answer (the sensor watches the files of a process
# once it made an AI call: it takes effect within ~50 ms, hence the pause).
WRITER = """
import json, os, sys, time
import openai
r = openai.OpenAI(max_retries=0).chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "dash then a file"}])
time.sleep(0.5)
with open(sys.argv[1], "w") as f:
    f.write(r.choices[0].message.content)
print(json.dumps({"pid": os.getpid()}))
"""


@dataclass
class Live:
    sensor: RunningSensor
    fake: FakeProviderHandle
    url: str
    results: dict[str, Any] = field(default_factory=dict)

    def events(self) -> list[dict[str, Any]]:
        return self.sensor.events()

    def request_with(self, text: str, count: int = 1, nth: int = 0) -> dict[str, Any]:
        """The ai.request event (from the sensor's own JSONL) with a message `text`: the
        `nth` of the `count` there are (a tool round trip repeats the conversation)."""
        deadline = time.monotonic() + 10
        while True:
            found = [
                e
                for e in self.events()
                if e["event_type"] == "ai.request"
                and any(m.get("content") == text for m in e["data"].get("messages", []))
            ]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) == count, f"expected {count} requests with {text!r}, got {len(found)}"
                return found[nth]
            time.sleep(0.1)


def _client(fake: FakeProviderHandle, *args: str) -> dict[str, Any]:
    res = fake.run([".venv/bin/python", PY_CLIENT, *args], timeout=120)
    assert res.stdout.strip(), res.stderr
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def live(fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    out = tmp_path_factory.mktemp("dashboard") / "events.jsonl"
    sensor = RunningSensor(out, ["--web", "--port", "0"]).start()
    try:
        port = dashboard_port(sensor.stderr_path)
        live = Live(sensor, fake_provider, f"http://127.0.0.1:{port}/")
        r = live.results
        r["plain"] = _client(fake_provider, "--model", "gpt-4o-mini", "--message", "dash plain hello")
        r["stream"] = _client(fake_provider, "--model", "gpt-4o", "--message", "dash streamed", "--stream")
        r["tools"] = _client(fake_provider, "--model", "gpt-4o-mini", "--message", "dash weather", "--tools")
        r["error"] = _client(fake_provider, "--model", "error-429", "--message", "dash failing")
        r["markup"] = _client(fake_provider, "--model", "gpt-4o-mini", "--message", MARKUP)
        notes = out.parent / "dash_notes.txt"
        res = fake_provider.run([".venv/bin/python", "-c", WRITER, str(notes)], timeout=120)
        assert res.returncode == 0, res.stderr
        r["writer"] = {**json.loads(res.stdout.strip().splitlines()[-1]), "path": str(notes)}
        curl = fake_provider.run(
            ["curl", "-sS", "https://api.openai.com/v1/chat/completions",
             "-H", f"Authorization: Bearer {fake_provider.openai_api_key}", "-H", "Content-Type: application/json",
             "-d", json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "dash from curl"}]})],
            timeout=60,
        )  # fmt: skip
        assert curl.returncode == 0, curl.stderr
        yield live
    finally:
        code = sensor.stop()
    assert code == 0, sensor.stderr
    assert "Traceback" not in sensor.stderr


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(width=1600, height=1000) as context:
        yield context


def _page(browser: Any, url: str) -> tuple[Any, Any]:
    page, log = open_page(browser, url)
    page.wait_for_selector(ROW, state="attached", timeout=15_000)  # views other than the timeline hide it
    return page, log


def _rows(page: Any) -> list[dict[str, str]]:
    """The timeline rows on screen: their id and the text of each column."""
    rows: list[dict[str, str]] = page.eval_on_selector_all(
        ROW,
        """(rows) => rows.map((r) => {
            const c = [...r.children].map((x) => x.textContent);
            return {id: r.dataset.id, time: c[0], app: c[1], process: c[2], provider: c[3], model: c[4],
                    tin: c[5], tout: c[6], cost: c[7], latency: c[8], mode: c[10], status: c[11],
                    top: r.style.transform};
        })""",
    )
    rows.sort(key=lambda r: float(re.sub(r"[^0-9.]", "", r["top"]) or 0))
    return rows


def _show(page: Any, row_id: str, timeout: float = 15_000) -> dict[str, str]:
    """Scroll the timeline to the row of `row_id` (other processes on the machine may have
    made calls since) and return its cells."""
    page.wait_for_function(
        """(id) => {
            const tl = window.oispDashboard.views.timeline;
            const i = tl.model.indexOf(id);
            if (i < 0) {
                tl.model.ensureLoaded(tl.model.rows.length + 1000); // older than the first page
                return false;
            }
            tl.list.scrollToIndex(i);
            tl.list.render();
            return true;
        }""",
        arg=row_id,
        timeout=timeout,
        polling=100,
    )
    page.wait_for_selector(f'.tl-row[data-id="{row_id}"]:not([hidden])')
    return next(r for r in _rows(page) if r["id"] == row_id)


def _query(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_timeline_shows_the_captured_calls_and_follows_live(live: Live, browser: Any) -> None:
    page, log = _page(browser, live.url)
    mine = {name: live.request_with(text)["event_id"] for name, text in (
        ("plain", "dash plain hello"), ("stream", "dash streamed"), ("error", "dash failing"),
        ("markup", MARKUP), ("curl", "dash from curl"))}  # fmt: skip
    rows = {name: _show(page, row_id) for name, row_id in mine.items()}
    # newest first
    order = page.evaluate("(ids) => ids.map((id) => window.oispDashboard.views.timeline.model.indexOf(id))",
                          list(mine.values()))  # fmt: skip
    assert order == sorted(order, reverse=True) and min(order) >= 0, order
    assert rows["curl"]["process"].startswith("curl ")
    assert rows["error"]["model"] == "error-429" and rows["error"]["status"] == "429"
    assert rows["stream"]["model"] == "gpt-4o" and rows["stream"]["mode"].startswith("stream")
    assert rows["stream"]["latency"].endswith(("ms", "s")) and rows["stream"]["status"] == "200"
    plain = rows["plain"]
    assert plain["process"] == f"python {live.results['plain']['pid']}" and plain["provider"] == "openai"
    assert plain["tin"] == "4" and plain["tout"] == "6"  # the fake's token rules
    tool_rows = page.evaluate(
        "(pid) => window.oispDashboard.views.timeline.model.rows.filter((r) => r.process.pid === pid)"
        ".map((r) => r.tool_calls)",
        live.results["tools"]["pid"],
    )
    assert sorted(tool_rows) == [0, 1], tool_rows  # the request the model answered with a tool call
    assert page.text_content("#live-text") == "live"

    # A call made now, answered 2.5 s later: its row appears pending, then gets its answer.
    page.evaluate("() => window.oispDashboard.views.timeline.toTop()")
    proc = live.fake.popen(
        [".venv/bin/python", PY_CLIENT, "--message", "dash live now", "--header", "x-fake-delay-ms:2500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        row_id = live.request_with("dash live now")["event_id"]
        pending = _show(page, row_id, timeout=2000)
        assert pending["status"] == "pending" and pending["latency"] == "", pending
        page.wait_for_function(
            """(id) => {
                const row = window.oispDashboard.views.timeline.model.byId.get(id);
                return row && row.status === 200;
            }""",
            arg=row_id,
            timeout=15_000,
            polling=100,
        )
    finally:
        proc.wait(60)
    assert proc.returncode == 0
    answered = _show(page, row_id)  # the same row, updated in place
    assert answered["status"] == "200" and answered["tin"] == "4" and answered["latency"] != ""
    screenshot(page, "dashboard_timeline")
    log.assert_clean()


def test_exchange_view_shows_the_request_and_response_as_captured(live: Live, browser: Any) -> None:
    req = live.request_with("dash from curl")
    page, log = _page(browser, live.url)
    _show(page, req["event_id"])
    page.click(f'.tl-row[data-id="{req["event_id"]}"]')
    page.wait_for_selector("#exchange .msg")
    assert _query(page)["call"] == [req["event_id"]]
    head = page.text_content("#exchange .ex-head")
    assert "OpenAI" in head and "gpt-4o-mini" in head and "200" in head
    summary = page.text_content("#exchange .ex-summary")
    assert "curl" in summary and str(req["process"]["pid"]) in summary
    messages = page.locator("#exchange .ex-body .msg")
    assert messages.count() == 1
    assert messages.nth(0).locator(".msg-role").text_content().startswith("user")
    assert messages.nth(0).locator("pre").text_content() == "dash from curl"
    screenshot(page, "dashboard_exchange")
    page.click('#exchange .tab[data-tab="Response"]')
    assert page.text_content("#exchange .ex-body .msg pre") == "Hello! You said: dash from curl"
    page.click('#exchange .tab[data-tab="HTTP"]')
    http = page.text_content("#exchange .ex-body")
    assert "/v1/chat/completions" in http and "sk-proj-" in http
    assert live.fake.openai_api_key not in page.content()  # only the redacted prefix
    page.click('#exchange .tab[data-tab="JSON"]')
    shown = json.loads(page.text_content("#exchange pre.json"))
    assert shown["event_id"] == req["event_id"] and shown["data"]["messages"] == req["data"]["messages"]
    # a link to the exchange opens it; Escape closes it
    page.goto(live.url + f"?call={req['event_id']}")
    page.wait_for_selector("#exchange .msg")
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.body.classList.contains('with-exchange')")
    assert "call" not in _query(page)
    log.assert_clean()


def test_tool_calls_and_markup_are_shown_as_text(live: Live, browser: Any) -> None:
    page, log = _page(browser, live.url)
    # The tool round trip: the model's tool call, with its arguments, in the first request.
    first = live.request_with("dash weather", count=2, nth=0)["event_id"]
    _show(page, first)
    page.click(f'.tl-row[data-id="{first}"]')
    page.click('#exchange .tab[data-tab="Tools"]')
    body = page.text_content("#exchange .ex-body")
    assert "get_weather" in body and '"city": "example"' in body and "Tools offered" in body
    screenshot(page, "dashboard_exchange_tools")
    # Markup in a message is text: no element made from it, no script run.
    req = live.request_with(MARKUP)
    _show(page, req["event_id"])
    page.click(f'.tl-row[data-id="{req["event_id"]}"]')
    page.click('#exchange .tab[data-tab="Messages"]')
    page.wait_for_function(
        f"() => document.querySelector('#exchange .msg pre')?.textContent === {json.dumps(MARKUP)}"
    )
    assert page.locator("#exchange img, #exchange b").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    log.assert_clean()


def test_filters_and_search_are_in_the_url(live: Live, browser: Any) -> None:
    page, log = _page(browser, live.url)
    page.wait_for_selector(
        'select[data-filter="model"] option[value="gpt-4o"]', state="attached", timeout=15_000
    )
    page.select_option('select[data-filter="model"]', "gpt-4o")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{ROW}')].every((r) => r.children[4].textContent === 'gpt-4o')"
    )
    assert _query(page)["model"] == ["gpt-4o"]
    streamed = live.request_with("dash streamed")["event_id"]
    assert _show(page, streamed)["mode"].startswith("stream")
    shown = [r["id"] for r in _rows(page)]
    # the URL brings the same view back
    page.goto(page.url)
    page.wait_for_selector(ROW)
    assert [r["id"] for r in _rows(page)][: len(shown)] == shown
    assert page.eval_on_selector('select[data-filter="model"]', "(s) => s.value") == "gpt-4o"
    # text search (across the redacted event JSON), combined with nothing else
    page.click("#clear-filters")
    page.fill("#search", "dash from CURL")
    page.wait_for_function(f"() => document.querySelectorAll('{ROW}').length === 1")
    assert _rows(page)[0]["process"].startswith("curl ")
    assert _query(page)["q"] == ["dash from CURL"]
    # status filter: the failed call only
    page.fill("#search", "")
    page.select_option('select[data-filter="status"]', "error")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{ROW}')].every((r) => !['200', 'pending'].includes(r.lastElementChild.textContent))"
    )
    assert _show(page, live.request_with("dash failing")["event_id"])["status"] == "429"
    # process filter: the calls of the tool-using agent (two requests)
    page.select_option('select[data-filter="status"]', "")
    tools_pid = str(live.results["tools"]["pid"])
    page.select_option('select[data-filter="pid"]', tools_pid)
    page.wait_for_function(
        f"() => document.querySelectorAll('{ROW}').length === 2 && "
        f"[...document.querySelectorAll('{ROW}')].every((r) => r.children[2].textContent.endsWith(' {tools_pid}'))"
    )
    assert page.text_content(".tl-count").startswith("2 calls")
    screenshot(page, "dashboard_filtered")
    log.assert_clean()


def test_charts_render(live: Live, browser: Any) -> None:
    page, log = _page(browser, live.url + "?view=stats")
    page.wait_for_selector('[data-card="Requests"]')
    assert int(page.text_content('[data-card="Requests"] .card-value').replace(",", "")) >= 7
    assert page.text_content('[data-card="Errors"] .card-value') != "0"
    for name in ("requests", "tokens", "cost", "latency", "latency-groups"):
        canvas = f'canvas[data-chart="{name}"]'
        assert canvas_ink(page, canvas) > 500, name  # axes, labels and data were painted
        assert int(page.get_attribute(canvas, "data-points") or 0) >= 1, name  # data among them
    table = page.text_content(".group-table")
    assert "OpenAI" in table
    page.click('.groups .tab:has-text("Model")')
    assert "gpt-4o-mini" in page.text_content(".group-table")
    screenshot(page, "dashboard_charts")
    # a breakdown row filters the timeline
    page.click('.group-table tr:has-text("error-429")')
    page.wait_for_function("() => document.body.dataset.page === 'timeline'")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{ROW}')].every((r) => r.children[4].textContent === 'error-429')"
    )
    assert _query(page)["model"] == ["error-429"]
    log.assert_clean()


def test_process_tree_shows_ai_activity_and_file_and_network_events(live: Live, browser: Any) -> None:
    pid = live.results["writer"]["pid"]
    page, log = _page(browser, live.url + "?view=processes")
    node = page.locator(f'.pnode[data-pid="{pid}"]')
    node.wait_for()
    assert "1 AI call" in node.text_content()
    tools = page.locator(f'.pnode[data-pid="{live.results["tools"]["pid"]}"]')
    assert "2 AI calls" in tools.text_content()
    node.click()
    page.wait_for_selector(".pdetail .pd-head")
    detail = page.text_content(".pdetail")
    assert "openai.OpenAI(max_retries=0)" in detail  # its command line (python -c ...)
    assert re.search(r"Network \([1-9]", detail) and "api.openai.com" in detail, detail
    assert re.search(r"Files \([1-9]", detail) and live.results["writer"]["path"] in detail, detail
    assert _query(page)["proc"] == [str(pid)]
    screenshot(page, "dashboard_processes")
    page.click('.pdetail button:has-text("AI call")')
    page.wait_for_function(f"() => document.querySelectorAll('{ROW}').length === 1")
    assert _query(page)["pid"] == [str(pid)] and _query(page).get("view") is None
    log.assert_clean()


def test_agent_session_shows_model_turns_and_tool_calls(live: Live, browser: Any) -> None:
    page, log = _page(browser, live.url + "?view=sessions")
    # the session of the tool-using client (other agents on the machine may have some too)
    row = page.locator(f'tr[data-session]:has(td:text-is("{live.results["tools"]["pid"]}"))')
    row.wait_for(timeout=15_000)
    row.click()
    page.wait_for_selector(".chain .step")
    kinds = page.eval_on_selector_all(".chain .step", "(s) => s.map((x) => x.dataset.kind)")
    assert "model_turn" in kinds and "tool_call" in kinds, kinds
    assert kinds.index("model_turn") < kinds.index("tool_call")
    assert "get_weather" in page.text_content(".chain")
    screenshot(page, "dashboard_sessions")
    page.click('.chain .step[data-kind="model_turn"] button:has-text("open exchange")')
    page.wait_for_selector("#exchange .msg")
    assert page.text_content("#exchange .msg pre") == "dash weather"
    log.assert_clean()


def test_health_shows_what_is_attached(live: Live, browser: Any) -> None:
    page, log = _page(browser, live.url + "?view=health")
    page.wait_for_selector(".health-status")
    assert page.get_attribute(".health-status", "data-status") == "healthy"
    attached = page.locator('table[data-table="attached"] tbody tr')
    assert attached.count() >= 1
    assert "libssl" in page.text_content('table[data-table="attached"]')
    exporters = page.text_content('table[data-table="exporters"]')
    assert "dashboard" in exporters and "jsonl" in exporters
    assert "Losses" in page.text_content('[data-panel="capture"]')
    screenshot(page, "dashboard_health")
    log.assert_clean()


def test_replay_with_a_token(live: Live, browser: Any, tmp_path: Path) -> None:
    """`replay` of the recording behind a token: nothing without it, everything with it."""
    err = tmp_path / "replay.stderr"
    with open(err, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oisp_sensor", "replay", "-i", str(live.sensor.output), "--instant",
             "--port", "0", "--token", "s3cret-token"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=f,
        )  # fmt: skip
    try:
        port = dashboard_port(err)
        url = f"http://127.0.0.1:{port}/"
        page, log = open_page(browser, url)
        page.wait_for_timeout(500)
        assert page.locator(ROW).count() == 0
        page.close()
        page, log = _page(browser, url + "?token=s3cret-token")
        assert page.locator(ROW).count() >= 7
        page.wait_for_function("() => document.querySelector('#live').dataset.state === 'open'")
        page.click(".views a[data-view='stats']")
        page.wait_for_selector('[data-card="Requests"]')
        assert "token=s3cret-token" in page.url  # links keep it
        log.assert_clean()
    finally:
        proc.terminate()
        proc.wait(10)
