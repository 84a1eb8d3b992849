"""Sensor cost under a build-like workload: thousands of short processes (exec, fork, exit)
and file opens, no AI traffic. Compares the workload's wall time without and with the
sensor, and reports the sensor's own CPU use (user+sys, from /proc/PID/stat) as a share
of one core. Target (issue 3): under 5% of one core and under 5% slowdown.

Run as root: `.venv/bin/python bench/bench_exec_load.py [--iterations 2000] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.sensor import RunningSensor  # noqa: E402

WORKLOAD = "for i in $(seq {n}); do /bin/true; cat /etc/hostname > /dev/null; done"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def workload(n: int) -> float:
    start = time.perf_counter()
    subprocess.run(["bash", "-c", WORKLOAD.format(n=n)], check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oisp-bench-"))
    off, on, cpu_share, events = [], [], [], 0
    for rnd in range(args.rounds):
        off.append(workload(args.iterations))
        sensor = RunningSensor(work / f"e{rnd}.jsonl").start()
        assert sensor.proc is not None
        cpu0 = cpu_seconds(sensor.proc.pid)
        t = workload(args.iterations)
        cpu = cpu_seconds(sensor.proc.pid) - cpu0
        sensor.stop()
        on.append(t)
        cpu_share.append(100 * cpu / t)
        events = len(sensor.events())
        print(f"round {rnd + 1}: off {off[-1]:.2f}s, on {t:.2f}s, sensor CPU {cpu_share[-1]:.1f}% of a core, "
              f"{events} events", flush=True)  # fmt: skip
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d"),
        "processes_per_round": 2 * args.iterations,
        "median_s_off": round(statistics.median(off), 3),
        "median_s_on": round(statistics.median(on), 3),
        "slowdown_pct": round(100 * (statistics.median(on) / statistics.median(off) - 1), 1),
        "sensor_cpu_pct_of_one_core": round(statistics.median(cpu_share), 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
