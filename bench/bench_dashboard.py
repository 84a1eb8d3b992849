"""Load check of the web dashboard: 50,000 AI calls in the store, measured in the browser.

What it does: generates a realistic recording (50,000 calls from a dozen processes of a few
apps, three providers, streaming and tool calls, errors, process/network/file events, agent
sessions; ~105,000 events), feeds it to the dashboard's EventStore, serves the real API and
page (ui/api.py, ui/static/) on a free port, and drives Debian's headless Chromium with
Playwright to measure, in the page:

* time to first render: navigation start -> first timeline rows on screen;
* scroll: rAF frame intervals and the virtual list's render time while the timeline is
  scrolled continuously, fast (10 rows a frame, pages loaded on the way) and at wheel
  speed (2 rows a frame), and the time to show the rows after far jumps (loaded on demand);
* time to open an exchange: click on a row -> messages shown;
* live: frame intervals while 200 calls/s arrive over the WebSocket (the page following).

Run: .venv/bin/python bench/bench_dashboard.py [--calls 50000] [--keep-open]
Also writes the recording with --write-jsonl PATH (for `oisp-sensor replay -i PATH`).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from oisp_sensor.export.web import WebServer  # noqa: E402
from oisp_sensor.export.websocket import StreamHub  # noqa: E402
from oisp_sensor.ui.api import DashboardApi, json_response  # noqa: E402
from oisp_sensor.ui.store import EventStore  # noqa: E402

PROVIDERS = {
    "openai": ("OpenAI", "https://api.openai.com/v1/chat/completions", ["gpt-4o-mini", "gpt-4o", "o3-mini"]),
    "anthropic": (
        "Anthropic",
        "https://api.anthropic.com/v1/messages",
        ["claude-sonnet-4-5", "claude-haiku-4-5"],
    ),
    "google": ("Google", "https://generativelanguage.googleapis.com/v1beta/models", ["gemini-2.5-flash"]),
}
APPS = [
    {"id": "cursor", "name": "Cursor", "tier": "profiled", "category": "ide"},
    {"id": "claude-code", "name": "Claude Code", "tier": "profiled", "category": "agent"},
    {"id": "python-app", "name": "support-bot", "tier": "identified", "category": "app"},
    {"id": "unknown", "name": "Unknown", "tier": "unknown", "category": "unknown"},
]
PROMPTS = [
    "Summarise the incident report and list the three most likely root causes.",
    "Refactor this function to avoid the N+1 query; keep the public signature.",
    "Translate the release notes into German, keep the markdown structure.",
    "What does this stack trace mean? TypeError: cannot read properties of undefined",
    "Write unit tests for the retry policy with jittered exponential back-off.",
    "Explain the difference between p95 and p99 latency for an SLO review.",
]
HOST = {"hostname": "bench", "os": "linux", "os_version": "12", "arch": "x86_64", "device_id": "0" * 32}
ACTOR = {"uid": 1000, "username": "dev", "gid": 1000}


def _ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Gen:
    """Deterministic generator of envelopes shaped like the sensor's."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.procs: list[dict[str, Any]] = []

    def eid(self) -> str:
        self.n += 1
        return f"01BENCH{self.n:019d}"

    def env(
        self, etype: str, ts: float, proc: dict[str, Any], data: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        out = {
            "oisp_version": "0.1",
            "event_id": self.eid(),
            "event_type": etype,
            "timestamp": _ts(ts),
            "host": HOST,
            "actor": ACTOR,
            "process": proc["ctx"],
            "app": proc["app"],
            "source": {"collector": "oisp-sensor", "collector_version": "0.1.0",
                       "capture_method": "ebpf_uprobe", "capture_point": "ssl"},
            "confidence": {"level": "high", "completeness": "full", "reasons": []},
            "data": data,
        }  # fmt: skip
        out.update(extra)
        return out

    def processes(self, start: float, n: int = 12) -> list[dict[str, Any]]:
        events = []
        for i in range(n):
            app = APPS[i % len(APPS)]
            name = ["python3", "node", "cursor", "claude"][i % 4]
            ctx = {
                "pid": 4100 + i, "ppid": 4000, "name": name, "exe": f"/usr/bin/{name}",
                "cmdline": [name, f"worker_{i}.py"], "cwd": "/home/dev/project",
                "start_time": _ts(start - 5),
            }  # fmt: skip
            proc = {"ctx": ctx, "app": app, "agent": i % 3 == 1}
            self.procs.append(proc)
            events.append(
                self.env(
                    "process.exec",
                    start - 5 + i * 0.01,
                    proc,
                    {"pid": ctx["pid"], "ppid": 4000, "exe": ctx["exe"], "args": ctx["cmdline"][1:]},
                )
            )
            events.append(
                self.env(
                    "network.connect",
                    start - 4 + i * 0.01,
                    proc,
                    {
                        "remote": {"ip": "104.18.7.192", "port": 443, "hostname": "api.openai.com"},
                        "protocol": "tcp",
                    },
                )
            )
            events.append(
                self.env(
                    "file.open",
                    start - 4 + i * 0.01,
                    proc,
                    {"path": f"/home/dev/project/src/module_{i}.py", "flags": "O_RDONLY"},
                )
            )
        return events

    def call(self, ts: float) -> list[dict[str, Any]]:
        rng = self.rng
        proc = rng.choice(self.procs)
        pid_name = list(PROVIDERS)[proc["ctx"]["pid"] % 3]
        pname, endpoint, models = PROVIDERS[pid_name]
        model = rng.choice(models)
        stream = rng.random() < 0.45
        tools = proc["agent"] and rng.random() < 0.5
        prompt = rng.choice(PROMPTS)
        n_in = rng.randint(20, 4000)
        messages = [{"role": "system", "content": "You are a careful assistant.", "content_length": 28},
                    {"role": "user", "content": prompt, "content_length": len(prompt)}]  # fmt: skip
        req_data: dict[str, Any] = {
            "provider": {"id": pid_name, "name": pname, "endpoint": endpoint},
            "model": {"id": model, "family": model.split("-")[0]},
            "request_type": "chat",
            "streaming": stream,
            "message_count": len(messages),
            "messages": messages,
            "parameters": {"temperature": 0.2, "max_tokens": 1024},
            "http": {"method": "POST", "path": "/v1/chat/completions", "host": endpoint.split("/")[2]},
            "auth": {"type": "bearer", "key_prefix": "sk-proj-"},
            "request_bytes": 400 + len(prompt),
        }
        if tools:
            req_data["tools"] = [{"name": "read_file", "description": "Read a file of the project"}]
        req = self.env("ai.request", ts, proc, req_data)
        latency = min(60_000.0, rng.lognormvariate(6.6, 0.6))
        failed = rng.random() < 0.02
        n_out = rng.randint(5, 900)
        resp_data: dict[str, Any] = {
            "provider": {"id": pid_name, "name": pname},
            "model": {"id": model},
            "related_event_id": req["event_id"],
            "request_id": f"chatcmpl-{self.n}",
            "status_code": 429 if failed else 200,
            "success": not failed,
            "streaming": stream,
            "latency_ms": round(latency, 1),
            "time_to_first_byte_ms": round(latency * 0.3, 1),
        }
        out = [req]
        if failed:
            resp_data["error"] = {"type": "rate_limit_error", "message": "Rate limit reached"}
        else:
            answer = "Here is what I found: " + " ".join(rng.choice(PROMPTS).split()[:12])
            message: dict[str, Any] = {"role": "assistant", "content": answer, "content_length": len(answer)}
            if tools:
                message["tool_calls"] = [{"id": f"call_{self.n}", "type": "function",
                                          "function": {"name": "read_file", "arguments": '{"path":"src/a.py"}'}}]  # fmt: skip
            resp_data["choices"] = [
                {"index": 0, "finish_reason": "tool_calls" if tools else "stop", "message": message}
            ]
            resp_data["usage"] = {
                "prompt_tokens": n_in,
                "completion_tokens": n_out,
                "total_tokens": n_in + n_out,
            }
            resp_data["cost"] = {"usd": round(n_in * 1.5e-7 + n_out * 6e-7, 8)}
            if stream:
                resp_data["time_to_first_token_ms"] = round(latency * 0.25, 1)
                resp_data["chunk_count"] = max(1, n_out // 4)
        resp = self.env("ai.response", ts + latency / 1000, proc, resp_data)
        out.append(resp)
        if tools and not failed:
            out.append(self.env("agent.tool_call", ts + latency / 1000, proc,
                                {"tool": {"name": "read_file", "type": "function"}, "arguments": {"path": "src/a.py"},
                                 "call_id": f"call_{self.n}", "related_event_id": resp["event_id"],
                                 "request_event_id": req["event_id"],
                                 "provider": {"id": pid_name, "name": pname}}))  # fmt: skip
        return out


def make_events(n_calls: int, seed: int = 7, end: float | None = None) -> list[dict[str, Any]]:
    """`n_calls` calls spread over the hour before `end` (now), in time order."""
    gen = Gen(seed)
    end = end or time.time()
    start = end - 3600
    events = gen.processes(start)
    step = 3600 / n_calls
    for i in range(n_calls):
        events.extend(gen.call(start + i * step))
    events.sort(key=lambda e: e["timestamp"])
    return events


class Server:
    """The dashboard API, page and a live WebSocket over one store, on a free port."""

    def __init__(self, store: EventStore, port: int = 0) -> None:
        self.store = store
        self.web = WebServer("127.0.0.1", port)
        self.hub = StreamHub(client_buffer=10_000, max_clients=8)
        api = DashboardApi(store)
        api.install(self.web)
        self.web.add_get("/api/health", lambda r: _health(store))
        self.web.add_get("/ws/events", self.hub.handle)
        self.web.start()
        self.url = f"http://127.0.0.1:{self.web.port}/"

    def push(self, events: list[dict[str, Any]]) -> None:
        """Add to the store and broadcast, as the sensor's exporters do."""
        self.store.add_many(events)
        self.web.call_soon(self.hub.broadcast, [orjson.dumps(e) for e in events])

    def stop(self) -> None:
        self.web.stop()


async def _health(store: EventStore) -> Any:
    return json_response(store.health())


# ---- browser measurements ---------------------------------------------------------------

FIRST_ROWS_JS = "() => document.querySelectorAll('.tl-row[data-id]:not([data-id=\"\"])').length > 5 ? performance.now() : false"

SCROLL_JS = """async ({ pxPerFrame, frames }) => {
  const s = document.querySelector('.tl-scroll');
  const list = window.oispDashboard.views.timeline.list;
  const orig = list.render.bind(list);
  const renders = [];
  list.render = () => { const t0 = performance.now(); orig(); renders.push(performance.now() - t0); };
  const deltas = [];
  let last = 0, missing = 0;
  await new Promise((done) => {
    let n = 0;
    const step = (t) => {
      if (last) deltas.push(t - last);
      last = t;
      s.scrollTop += pxPerFrame;
      // rows still loading show as placeholders: count them (they should be rare)
      missing += s.querySelectorAll('.tl-loading:not([hidden])').length ? 1 : 0;
      if (++n < frames) requestAnimationFrame(step); else done();
    };
    requestAnimationFrame(step);
  });
  list.render = orig;
  return { deltas, renders, missing, scrollTop: s.scrollTop };
}"""

JUMP_JS = """async (fractions) => {
  // A far jump (dragging the scroll bar): time until the rows at the new place are shown
  // with their data (rows not loaded yet show as placeholders until their page arrives).
  const s = document.querySelector('.tl-scroll');
  const list = window.oispDashboard.views.timeline.list;
  const out = [];
  for (const f of fractions) {
    const t0 = performance.now();
    s.scrollTop = f * (s.scrollHeight - s.clientHeight);
    const want = Math.floor(s.scrollTop / list.rowHeight);
    await new Promise((done) => {
      const check = () => {
        const [first, last] = list.range();
        const loading = s.querySelectorAll('.tl-loading:not([hidden])').length;
        const late = performance.now() - t0 > 30000; // never hang the benchmark
        if ((first <= want && last >= want && !loading) || late) done(); else requestAnimationFrame(check);
      };
      requestAnimationFrame(check);
    });
    out.push(performance.now() - t0);
  }
  return out;
}"""

OPEN_JS = """async (index) => {
  const s = document.querySelector('.tl-scroll');
  const rows = [...s.querySelectorAll('.tl-row[data-id]:not([hidden])')].filter((r) => r.dataset.id);
  const row = rows[Math.min(index, rows.length - 1)];
  const t0 = performance.now();
  row.click();
  await new Promise((done) => {
    const check = () => {
      const ok = document.querySelector('#exchange .ex-body .msg') && document.body.classList.contains('with-exchange')
        && document.querySelector('#exchange .ex-summary');
      if (ok || performance.now() - t0 > 30000) done(); else requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  });
  const t1 = performance.now();
  document.querySelector('#exchange .icon-btn').click();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return t1 - t0;
}"""

FRAMES_JS = """async (ms) => {
  const deltas = [];
  let last = 0;
  const end = performance.now() + ms;
  await new Promise((done) => {
    const step = (t) => { if (last) deltas.push(t - last); last = t; if (t < end) requestAnimationFrame(step); else done(); };
    requestAnimationFrame(step);
  });
  return deltas;
}"""


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def measure(url: str, server: Server, gen_live: Gen | None, runs: int = 3) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright
    from tests.support.browser import CHROMIUM

    out: dict[str, Any] = {"first_render_ms": [], "open_exchange_ms": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])  # fmt: skip
        ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
        for _ in range(runs):
            page = ctx.new_page()
            page.goto(url, wait_until="commit")
            t = page.wait_for_function(FIRST_ROWS_JS, polling="raf", timeout=30_000).json_value()
            out["first_render_ms"].append(t)
            page.close()
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_function(FIRST_ROWS_JS, polling="raf", timeout=30_000)
        page.wait_for_timeout(500)
        out["rows_total"] = page.evaluate("() => window.oispDashboard.views.timeline.model.count")
        # continuous scroll, 10 rows a frame for 600 frames (6,000 rows, loading pages on the way)
        scroll = page.evaluate(SCROLL_JS, {"pxPerFrame": 280, "frames": 600})
        out["scroll_frame_ms"] = scroll["deltas"]
        out["scroll_render_ms"] = scroll["renders"]
        out["scroll_frames_with_placeholders"] = scroll["missing"]
        out["jump_ms"] = page.evaluate(JUMP_JS, [0.5, 0.9, 0.999, 0.25, 0.75, 0.05])
        # wheel speed (2 rows a frame, 120 rows/s) through rows already loaded
        page.evaluate("() => { document.querySelector('.tl-scroll').scrollTop = 20000 * 28; }")
        page.wait_for_timeout(300)
        wheel = page.evaluate(SCROLL_JS, {"pxPerFrame": 56, "frames": 300})
        out["wheel_frame_ms"] = wheel["deltas"]
        out["wheel_render_ms"] = wheel["renders"]
        page.evaluate("() => { document.querySelector('.tl-scroll').scrollTop = 0; }")
        page.wait_for_timeout(300)
        for i in range(runs * 3):
            out["open_exchange_ms"].append(page.evaluate(OPEN_JS, 2 + i))
        if gen_live is not None:
            stop = threading.Event()

            def feed() -> None:
                while not stop.is_set():
                    t0 = time.time()
                    batch: list[dict[str, Any]] = []
                    for _ in range(20):  # 20 calls per 100 ms = 200 calls/s
                        batch.extend(gen_live.call(time.time()))
                    server.push(batch)
                    stop.wait(max(0.0, 0.1 - (time.time() - t0)))

            thread = threading.Thread(target=feed, daemon=True)
            before = page.evaluate("() => window.oispDashboard.views.timeline.model.count")
            thread.start()
            out["live_frame_ms"] = page.evaluate(FRAMES_JS, 5000)
            stop.set()
            thread.join()
            page.wait_for_timeout(1000)
            after = page.evaluate("() => window.oispDashboard.views.timeline.model.count")
            out["live_rows_added"] = after - before
        browser.close()
    return out


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    f = res["scroll_frame_ms"]
    r = res["scroll_render_ms"]
    summary = {
        "rows": res["rows_total"],
        "first_render_ms_median": round(statistics.median(res["first_render_ms"]), 1),
        "first_render_ms_all": [round(x, 1) for x in res["first_render_ms"]],
        "scroll_frames": len(f),
        "scroll_frame_ms_p50": round(pct(f, 50), 2),
        "scroll_frame_ms_p95": round(pct(f, 95), 2),
        "scroll_frame_ms_max": round(max(f), 2),
        "scroll_frames_over_33ms": sum(1 for x in f if x > 33.4),
        "scroll_render_ms_p50": round(pct(r, 50), 3),
        "scroll_render_ms_p95": round(pct(r, 95), 3),
        "scroll_render_ms_max": round(max(r), 3),
        "scroll_frames_with_placeholders": res["scroll_frames_with_placeholders"],
        "wheel_frame_ms_p50": round(pct(res["wheel_frame_ms"], 50), 2),
        "wheel_frame_ms_p95": round(pct(res["wheel_frame_ms"], 95), 2),
        "wheel_frames_over_33ms": sum(1 for x in res["wheel_frame_ms"] if x > 33.4),
        "wheel_render_ms_p95": round(pct(res["wheel_render_ms"], 95), 3),
        "jump_to_filled_ms": [round(x, 1) for x in res["jump_ms"]],
        "open_exchange_ms_median": round(statistics.median(res["open_exchange_ms"]), 1),
        "open_exchange_ms_max": round(max(res["open_exchange_ms"]), 1),
    }
    if "live_frame_ms" in res:
        lf = res["live_frame_ms"]
        summary.update({
            "live_rows_added_in_5s": res["live_rows_added"],
            "live_frame_ms_p50": round(pct(lf, 50), 2),
            "live_frame_ms_p95": round(pct(lf, 95), 2),
            "live_frame_ms_max": round(max(lf), 2),
        })  # fmt: skip
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--write-jsonl", metavar="PATH", help="also write the generated recording")
    ap.add_argument("--keep-open", action="store_true", help="serve until Ctrl-C (look at it)")
    ap.add_argument("--no-live", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    events = make_events(args.calls)
    gen_s = time.perf_counter() - t0
    if args.write_jsonl:
        with open(args.write_jsonl, "wb") as f:
            for e in events:
                f.write(orjson.dumps(e) + b"\n")
    store = EventStore(max_events=max(100_000, len(events) + 20_000))
    t0 = time.perf_counter()
    store.add_many(events)
    load_s = time.perf_counter() - t0
    server = Server(store)
    print(f"{len(events)} events ({args.calls} calls) generated in {gen_s:.1f} s, stored in {load_s:.1f} s; "
          f"serving {server.url}", file=sys.stderr)  # fmt: skip
    try:
        if args.keep_open:
            while True:
                time.sleep(1)
        live = None if args.no_live else Gen(seed=99)
        if live is not None:
            live.n = 1_000_000_000  # event ids must not collide with the recording's
            server.push(live.processes(time.time()))
        res = measure(server.url, server, live, args.runs)
        print(json.dumps(summarise(res), indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
