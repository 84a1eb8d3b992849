"""Soak: the sensor at a steady mixed load for a long time (issue 9, item 6).

Load (inside a private network namespace, against the local fake provider, one driver
process that is an "AI agent": its files and its children's are recorded):
  - non-streaming chat completions with the openai SDK (keep-alive), `--plain-rate`/s
  - streaming chat completions (SSE, chunk events), `--stream-rate`/s
  - a new curl process making one chat call, `--curl-rate`/s (exec, connect, exit)
  - a shell child writing, reading and deleting a file, `--proc-rate`/s (process and file events)

The sensor runs with five exporters at once: JSONL, the WebSocket stream (a client here
reads it), a webhook (a receiver here counts it), /metrics and, as `record` does by
default, the web dashboard. The dashboard's event store keeps the last `[ui] max_events`
events (100,000 by default, ~75 events/s here: full after ~22 min); to see the sensor's
steady state within the run, the soak keeps `--ui-max-events` (default 10,000, full after
~2 min, inside the warm-up); `--ui-max-events 0` runs without the dashboard (`--no-ui`).
Every 10 s the sensor's RSS and CPU are sampled from /proc (and the machine's load
average, since it is shared).

`--tracemalloc FILE`: the sensor runs with OISP_TRACEMALLOC=1 (diagnostics.py) and is sent
SIGUSR2 at the end of the warm-up and every `--report-every-min`: FILE then says which
source lines hold the memory that grew (the RSS figures of such a run are inflated by
tracemalloc itself: use it to find growth, not to measure it).

Checks at the end:
  - memory flat after warm-up: least-squares slope of RSS over the samples after
    `--warmup-min`, and the growth it implies over that window (pass: under 5% of the
    mean RSS, or under 8 MB);
  - no events lost: AI calls the driver made == ai.request (and ai.response) events of
    its processes in the JSONL output; kernel records lost == 0; nothing shed;
  - exporters caught up: the JSONL file, the WebSocket client and the webhook receiver
    hold the same set of event ids, and no exporter dropped anything.

Run as root: `.venv/bin/python bench/soak.py [--minutes 30]`. Prints a JSON summary
(and writes it with the RSS curve to `--out`, default /tmp/oisp-soak.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402
from aiohttp import web  # noqa: E402
from tests.support.export_servers import WsClient, free_port  # noqa: E402
from tests.support.fixtures import start_fake_provider  # noqa: E402
from tests.support.netns import NetNs  # noqa: E402
from tests.support.sensor import RunningSensor  # noqa: E402
from tests.support.tls import make_tls_material  # noqa: E402

from oisp_sensor.guard import read_cpu_seconds, read_rss_bytes  # noqa: E402

DRIVER = r"""
import json, os, subprocess, sys, time, openai
duration, plain_rate, stream_rate, curl_rate, proc_rate = map(float, sys.argv[1:6])
workdir, ca = sys.argv[6], sys.argv[7]
client = openai.OpenAI(max_retries=0)
counts = {"plain": 0, "stream": 0, "curl": 0, "procs": 0, "errors": 0, "chunks": 0}
curl_pids = []
body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "soak from curl"}]})
key = os.environ["OPENAI_API_KEY"]

def plain():
    client.chat.completions.create(model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"soak plain {counts['plain']}"}])
    counts["plain"] += 1

def stream():
    s = client.chat.completions.create(model="gpt-4o-mini", stream=True,
        messages=[{"role": "user", "content": f"soak stream {counts['stream']} with a few more words"}])
    for _ in s:
        counts["chunks"] += 1
    counts["stream"] += 1

def curl():
    p = subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "--cacert", ca,
        "https://api.openai.com/v1/chat/completions", "-H", "Content-Type: application/json",
        "-H", f"Authorization: Bearer {key}", "-d", body])
    curl_pids.append(p.pid)
    if p.wait() != 0:
        raise RuntimeError("curl failed")
    counts["curl"] += 1

def proc():
    f = os.path.join(workdir, f"soak-{counts['procs'] % 10}.txt")
    subprocess.run(["sh", "-c", f"echo one > {f}; echo two >> {f}; cat {f} > /dev/null; rm -f {f}"], check=True)
    counts["procs"] += 1

actions = [(fn, 1.0 / rate) for fn, rate in ((plain, plain_rate), (stream, stream_rate),
           (curl, curl_rate), (proc, proc_rate)) if rate > 0]
start = time.monotonic()
due = [start] * len(actions)
end = start + duration
while True:
    now = time.monotonic()
    if now >= end:
        break
    i = min(range(len(actions)), key=due.__getitem__)
    if due[i] > now:
        time.sleep(min(due[i], end) - now)
        continue
    fn, period = actions[i]
    due[i] += period
    try:
        fn()
    except Exception as exc:
        counts["errors"] += 1
        print(f"error: {exc}", file=sys.stderr, flush=True)
print(json.dumps({"pid": os.getpid(), "curl_pids": curl_pids, **counts}), flush=True)
"""


class HookCounter:
    """A webhook receiver (aiohttp, in a thread) that keeps the event ids it was sent."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.requests = 0
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/hook", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        ready.set()
        self.loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        payload = orjson.loads(await request.read())
        self.requests += 1
        for event in payload.get("events", [payload]):
            self.ids.add(event["event_id"])
        return web.Response(status=200)


def slope_mb_per_hour(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS (bytes) over time (seconds), in MB per hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if not var:
        return 0.0
    cov = sum((t - mean_t) * (r - mean_r) for t, r in samples)
    return cov / var * 3600 / 1048576


def every(samples: list[dict[str, Any]], period_s: float) -> list[float]:
    """RSS (MB) at 0, period, 2 x period, ...: the first sample, then the one nearest each mark."""
    if not samples:
        return []
    out = [samples[0]["rss_mb"]]
    mark = period_s
    while mark <= samples[-1]["t_s"] + period_s / 2:
        out.append(min(samples, key=lambda s: abs(s["t_s"] - mark))["rss_mb"])
        mark += period_s
    return out


def wait_for_ws_client(status: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stats = orjson.loads(status.read_bytes())
            if stats["exporters"]["websocket"]["details"].get("clients", 0) >= 1:
                return
        except (OSError, KeyError, orjson.JSONDecodeError):
            pass
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--warmup-min", type=float, default=None, help="default: a sixth of the run, at most 5")
    ap.add_argument("--plain-rate", type=float, default=4.0)
    ap.add_argument("--stream-rate", type=float, default=2.0)
    ap.add_argument("--curl-rate", type=float, default=0.2)
    ap.add_argument("--proc-rate", type=float, default=1.0)
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--out", default="/tmp/oisp-soak.json")
    ap.add_argument("--ui-max-events", type=int, default=10_000, help="dashboard store size; 0: no dashboard")
    ap.add_argument("--tracemalloc", metavar="FILE", help="tracemalloc reports of the sensor to FILE")
    ap.add_argument("--report-every-min", type=float, default=5.0)
    ap.add_argument(
        "--sensor-env",
        action="append",
        default=[],
        metavar="K=V",
        help="environment of the sensor (repeatable)",
    )
    ap.add_argument(
        "--uid",
        type=int,
        default=65534,
        help="the load runs as this user and the sensor records only it (other programs on a "
        "shared machine, e.g. a flood benchmark, stay out of the counts; -1: root, no filter)",
    )
    args = ap.parse_args()
    duration = args.minutes * 60
    warmup = (args.warmup_min if args.warmup_min is not None else min(5.0, args.minutes / 6)) * 60

    work = Path(tempfile.mkdtemp(prefix="oisp-soak-"))
    work.chmod(0o755)
    files = work / "files"
    files.mkdir(mode=0o777)
    files.chmod(0o777)
    tls = make_tls_material(work / "tls")
    hook = HookCounter()
    port = free_port()
    status = work / "status.json"
    config = work / "sensor.toml"
    config.write_text(
        f"""
[export.jsonl]
path = "{work / "events.jsonl"}"
[export.websocket]
enabled = true
port = {port}
[export.metrics]
enabled = true
[export.webhook]
enabled = true
url = "http://127.0.0.1:{hook.port}/hook"
batch_size = 200
flush_interval_ms = 500
"""
        + (f"[ui]\nmax_events = {args.ui_max_events}\n" if args.ui_max_events > 0 else "")
    )
    samples: list[dict[str, Any]] = []
    with NetNs() as ns:
        fake = start_fake_provider(ns, tls, work)
        only = ["--uid", str(args.uid)] if args.uid >= 0 else []
        ui = ["--web"] if args.ui_max_events > 0 else []  # --web wins over RunningSensor's --no-ui
        env = {"OISP_TRACEMALLOC": "1", "OISP_TRACEMALLOC_OUT": args.tracemalloc} if args.tracemalloc else {}
        env.update(item.split("=", 1) for item in args.sensor_env)
        sensor = RunningSensor(
            work / "events.jsonl",
            ["--config", str(config), "--status-file", str(status), *only, *ui],
            env=env,
        )
        sensor.start()
        assert sensor.proc is not None
        spid = str(sensor.proc.pid)
        ws_ids: set[str] = set()
        ws = WsClient(
            f"http://127.0.0.1:{port}/ws/events", lambda text: ws_ids.add(orjson.loads(text)["event_id"])
        )
        if not ws.connected.wait(10):
            raise SystemExit(f"cannot read the WebSocket stream: {ws.error}")
        wait_for_ws_client(status)
        # A script file, not `python -c`: the driver's command line is in every event of it,
        # and an agent's is short (`node /usr/bin/claude`), not a whole program.
        driver_py = work / "soak_driver.py"
        driver_py.write_text(DRIVER)
        driver_py.chmod(0o644)
        as_user = ["setpriv", f"--reuid={args.uid}", f"--regid={args.uid}", "--clear-groups"]
        driver = fake.popen(
            [*(as_user if args.uid >= 0 else []), str(REPO / ".venv/bin/python"), str(driver_py), str(duration), str(args.plain_rate),
             str(args.stream_rate), str(args.curl_rate), str(args.proc_rate), str(files), str(fake.ca_path)],
            stderr=(work / "driver.stderr").open("w"),
        )  # fmt: skip
        start = time.monotonic()
        cpu0 = read_cpu_seconds(spid)
        last_cpu, last_t = cpu0, start
        print(f"soak: {args.minutes} min, work dir {work}", flush=True)
        next_report = warmup
        while driver.poll() is None:
            time.sleep(max(0.0, start + (len(samples) + 1) * args.sample_s - time.monotonic()))
            now = time.monotonic()
            cpu = read_cpu_seconds(spid)
            rss = read_rss_bytes(spid)
            if not rss:
                break
            sample = {
                "t_s": round(now - start, 1),
                "rss_mb": round(rss / 1048576, 2),
                "cpu_pct": round(100 * (cpu - last_cpu) / max(1e-3, now - last_t), 1),
                "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
            }
            last_cpu, last_t = cpu, now
            samples.append(sample)
            if args.tracemalloc and now - start >= next_report:
                sensor.proc.send_signal(signal.SIGUSR2)  # a tracemalloc report (diagnostics.py)
                next_report += args.report_every_min * 60
            if len(samples) % 6 == 0:
                print(json.dumps(sample), flush=True)
        out, _ = driver.communicate(timeout=120)
        made = json.loads(out.strip().splitlines()[-1])
        sensor_cpu_s = read_cpu_seconds(spid) - cpu0
        time.sleep(3)  # let the last events reach every exporter before comparing live counts
        sensor.stop()
        ws.stop.set()
        ws.thread.join(5)
        fake.process.terminate()

    events = sensor.events()
    jsonl_ids = {e["event_id"] for e in events}
    pids = {made["pid"], *made["curl_pids"]}
    ours = [e for e in events if e["process"]["pid"] in pids]
    requests = sum(1 for e in ours if e["event_type"] == "ai.request")
    responses = sum(1 for e in ours if e["event_type"] == "ai.response")
    calls = made["plain"] + made["stream"] + made["curl"]
    post = [(s["t_s"], int(s["rss_mb"] * 1048576)) for s in samples if s["t_s"] >= warmup]
    slope = slope_mb_per_hour(post)
    window_h = (post[-1][0] - post[0][0]) / 3600 if len(post) > 1 else 0.0
    mean_post = sum(r for _, r in post) / len(post) / 1048576 if post else 0.0
    growth = slope * window_h
    lost = re.search(r"kernel: (\d+) records, (\d+) lost", sensor.stderr)
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "minutes": args.minutes,
        "load": {"plain_per_s": args.plain_rate, "stream_per_s": args.stream_rate,
                 "curl_per_s": args.curl_rate, "proc_per_s": args.proc_rate},
        "driver": {k: v for k, v in made.items() if k != "curl_pids"},
        "calls_made": calls,
        "ai_request_events": requests,
        "ai_response_events": responses,
        "events_total": len(events),
        "kernel_records": int(lost[1]) if lost else None,
        "kernel_lost": int(lost[2]) if lost else None,
        "exporters_equal": jsonl_ids == ws_ids == hook.ids,
        "ws_events": len(ws_ids),
        "webhook_events": len(hook.ids),
        "jsonl_events": len(jsonl_ids),
        "ws_error": ws.error,
        "sensor_cpu_pct_mean": round(100 * sensor_cpu_s / max(1.0, duration), 2),
        "rss_mb_first": samples[0]["rss_mb"] if samples else None,
        "rss_mb_after_warmup_mean": round(mean_post, 1),
        "rss_mb_max": max((s["rss_mb"] for s in samples), default=None),
        "rss_mb_last": samples[-1]["rss_mb"] if samples else None,
        "rss_mb_every_5_min": every(samples, 300),
        "dashboard_max_events": args.ui_max_events,
        "sensor_env": args.sensor_env,
        "rss_slope_mb_per_hour_after_warmup": round(slope, 2),
        # Bounded caches that fill slowly show as a slope that falls off: the last third alone.
        "rss_slope_mb_per_hour_last_third": round(
            slope_mb_per_hour([(t, r) for t, r in post if t >= duration * 2 / 3]), 2
        ),
        "rss_growth_mb_after_warmup": round(growth, 2),
        "loadavg_1m_mean": round(sum(s["loadavg_1m"] for s in samples) / max(1, len(samples)), 2),
        "shutdown_summary": sensor.stderr.strip().splitlines()[-1] if sensor.stderr.strip() else "",
    }  # fmt: skip
    summary["memory_flat"] = abs(growth) < max(8.0, 0.05 * mean_post)
    summary["no_events_lost"] = (
        requests == calls and responses == calls and made["errors"] == 0 and summary["kernel_lost"] == 0
    )
    summary["exporters_caught_up"] = (
        bool(summary["exporters_equal"]) and "dropped" not in summary["shutdown_summary"]
    )
    summary["pass"] = summary["memory_flat"] and summary["no_events_lost"] and summary["exporters_caught_up"]
    Path(args.out).write_text(json.dumps({**summary, "rss_curve": samples}, indent=1))
    print(json.dumps(summary, indent=2))
    sys.exit(0 if summary["pass"] else 1)


if __name__ == "__main__":
    main()
