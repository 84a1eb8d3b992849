"""Flood: as many HTTPS AI calls per second as this machine's clients can make, from many
processes, without and with the sensor (issue 9, item 4; the issue's example is 5,000/s).

Clients: `--clients` Python processes, each one keep-alive TLS connection (http.client)
calling chat completions for `--seconds`, one call in 10 streamed; `--servers` fake
provider processes share the load (tests/support/flood.py). Conditions, in turn:
  off      no sensor: what the clients reach on their own
  on       the sensor with its default limits
  limited  the sensor with ceilings (`--max-cpu-percent`, `--max-memory-mb`)

For each: calls/s reached (and the slowdown against `off`), median per-call latency,
the sensor's CPU (share of one core) and RSS sampled every 0.5 s, ai.request events
produced for the clients' calls, and what the sensor reports as lost or shed (kernel
ring losses, raw records dropped at its queue, events shed by level). Everything the
sensor did not turn into an event is accounted for by one of those counters.

Run as root: `.venv/bin/python bench/bench_flood.py [--clients 16] [--seconds 10]`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fixtures import start_fake_provider  # noqa: E402
from tests.support.flood import flood, start_servers, stop_servers  # noqa: E402
from tests.support.netns import NetNs  # noqa: E402
from tests.support.sensor import RunningSensor  # noqa: E402
from tests.support.tls import make_tls_material  # noqa: E402

from oisp_sensor.guard import read_cpu_seconds, read_rss_bytes  # noqa: E402

BASE_PORT = 9643


class Sampler:
    """The sensor's RSS and CPU every `period` seconds, in a thread."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        self.pid = str(pid)
        self.period = period
        self.rss: list[float] = []
        self.cpu: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        last, at = read_cpu_seconds(self.pid), time.monotonic()
        while not self.stop.wait(self.period):
            now, cpu = time.monotonic(), read_cpu_seconds(self.pid)
            self.cpu.append(100 * (cpu - last) / (now - at))
            last, at = cpu, now
            self.rss.append(read_rss_bytes(self.pid) / 1048576)

    def done(self) -> None:
        self.stop.set()
        self.thread.join(2)


def run_condition(fake: Any, ports: list[int], args: argparse.Namespace, work: Path, name: str,
                  sensor_args: list[str] | None) -> dict[str, Any]:  # fmt: skip
    if sensor_args is None:
        result = flood(fake, ports, args.clients, args.seconds)
        return {"condition": name, "calls": result.requests, "calls_per_s": round(result.rate),
                "p50_ms": round(result.median_p50_us() / 1000, 2), "errors": result.errors}  # fmt: skip
    status = work / f"{name}.status.json"
    sensor = RunningSensor(work / f"{name}.jsonl", ["--status-file", str(status), *sensor_args]).start()
    assert sensor.proc is not None
    sampler = Sampler(sensor.proc.pid)
    cpu0 = read_cpu_seconds(str(sensor.proc.pid))
    t0 = time.monotonic()
    result = flood(fake, ports, args.clients, args.seconds)
    cpu_s = read_cpu_seconds(str(sensor.proc.pid)) - cpu0
    wall = time.monotonic() - t0
    live = json.loads(status.read_text()) if status.exists() else {}
    sampler.done()
    sensor.stop()
    events = sensor.events()
    requests = sum(
        1 for e in events if e["event_type"] == "ai.request" and e["process"]["pid"] in result.pids
    )
    summary = sensor.stderr.strip().splitlines()[-1]
    kernel = re.search(r"kernel: (\d+) records, (\d+) lost", summary)
    shed = re.search(r"shed: (\d+) chunks, (\d+) file read/write, (\d+) metadata-only, (\d+) dropped, "
                     r"(\d+) rate-limited, (\d+) records", summary)  # fmt: skip
    guard = live.get("guard", {})
    return {
        "condition": name,
        "sensor_args": sensor_args,
        "calls": result.requests,
        "calls_per_s": round(result.rate),
        "p50_ms": round(result.median_p50_us() / 1000, 2),
        "errors": result.errors,
        "ai_request_events": requests,
        "captured_pct": round(100 * requests / max(1, result.requests), 1),
        "events_total": len(events),
        "sensor_cpu_pct_of_one_core": round(100 * cpu_s / wall, 1),
        "sensor_cpu_pct_samples_max": round(max(sampler.cpu, default=0), 1),
        "rss_mb_start": round(sampler.rss[0], 1) if sampler.rss else None,
        "rss_mb_max": round(max(sampler.rss, default=0), 1),
        "rss_mb_end": round(sampler.rss[-1], 1) if sampler.rss else None,
        "kernel_records": int(kernel[1]) if kernel else None,
        "kernel_lost": int(kernel[2]) if kernel else None,
        "queue_records_dropped": int(shed[6]) if shed else 0,
        "metadata_only_events": int(shed[3]) if shed else 0,
        "chunks_skipped": int(shed[1]) if shed else 0,
        "level_at_end_of_flood": guard.get("level_name"),
        "summary": summary,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max-cpu-percent", type=float, default=50.0)
    ap.add_argument("--max-memory-mb", type=int, default=300)
    ap.add_argument("--conditions", default="off,on,limited")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oisp-flood-"))
    tls = make_tls_material(work / "tls")
    limited = ["--max-cpu-percent", str(args.max_cpu_percent), "--max-memory-mb", str(args.max_memory_mb)]
    conditions = {"off": None, "on": [], "limited": limited}
    results = []
    with NetNs() as ns:
        fake = start_fake_provider(ns, tls, work)
        servers = start_servers(fake, work, args.servers, BASE_PORT)
        ports = [s.port for s in servers]
        for name in args.conditions.split(","):
            res = run_condition(fake, ports, args, work, name, conditions[name])
            print(json.dumps({k: v for k, v in res.items() if k != "summary"}), flush=True)
            results.append(res)
        stop_servers(servers)
    off = next((r for r in results if r["condition"] == "off"), None)
    for res in results:
        if off and res is not off:
            res["slowdown_pct"] = round(100 * (1 - res["calls_per_s"] / off["calls_per_s"]), 1)
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "clients": args.clients, "servers": args.servers,
                      "seconds": args.seconds, "loadavg": Path("/proc/loadavg").read_text().split()[:3],
                      "results": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
