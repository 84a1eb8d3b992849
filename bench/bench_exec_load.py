"""Sensor cost under build-like workloads with no AI traffic. Compares the workload's wall
time without and with the sensor (default settings: process, network and file events,
plain-HTTP sockets, TLS probes), and reports the sensor's own CPU use (user+sys, from
/proc/PID/stat) as a share of one core and per process started. Target (issue 3): under
5% of one core and under 5% slowdown.

Workloads:
  build  `make -j2` of a C project (N files, each compiled by gcc: gcc, cc1, as, then one
         link): real compilers opening headers and writing objects.
  storm  a bash loop of /bin/true and cat: the most processes per second a shell can
         start, an adversarial upper bound for per-process cost.

Run as root: `.venv/bin/python bench/bench_exec_load.py [--workload build|storm] [--rounds 3]`.
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

STORM = "for i in $(seq {n}); do /bin/true; cat /etc/hostname > /dev/null; done"
TICK = os.sysconf("SC_CLK_TCK")
HEADERS = "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\n"


def make_project(root: Path, files: int) -> Path:
    src = root / "project"
    src.mkdir()
    for i in range(files):
        (src / f"f{i}.c").write_text(f"{HEADERS}int f{i}(int x) {{ return (int)sqrt((double)x) + {i}; }}\n")
    calls = " + ".join(f"f{i}(1)" for i in range(files))
    decls = "".join(f"int f{i}(int);" for i in range(files))
    (src / "main.c").write_text(
        f'{HEADERS}{decls}\nint main(void) {{ printf("%d\\n", {calls}); return 0; }}\n'
    )
    (src / "Makefile").write_text(
        "SRCS := $(wildcard *.c)\nOBJS := $(SRCS:.c=.o)\n"
        "app: $(OBJS)\n\tgcc -o $@ $^ -lm\n%.o: %.c\n\tgcc -O1 -c $< -o $@\n"
        "clean:\n\trm -f *.o app\n"
    )
    return src


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def workload(kind: str, n: int, project: Path | None) -> float:
    if kind == "build":
        assert project is not None
        subprocess.run(["make", "-s", "clean"], cwd=project, check=True)
        start = time.perf_counter()
        subprocess.run(["make", "-s", "-j2", "app"], cwd=project, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(["bash", "-c", STORM.format(n=n)], check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", choices=("build", "storm"), default="build")
    ap.add_argument("--iterations", type=int, default=2000, help="storm: loop iterations")
    ap.add_argument("--files", type=int, default=300, help="build: C files")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold", dest="warm", action="store_false", help="measure the sensor's first run")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oisp-bench-"))
    project = make_project(work, args.files) if args.workload == "build" else None
    off, on, cpu_share, cpu_per_proc, events = [], [], [], [], 0
    for rnd in range(args.rounds):
        off.append(workload(args.workload, args.iterations, project))
        sensor = RunningSensor(work / f"e{rnd}.jsonl").start()
        assert sensor.proc is not None
        cold = cpu_seconds(sensor.proc.pid)
        if args.warm:
            # A sensor that has been running has examined the compilers' executables
            # already (once per file, ~10 ms for cc1): measure that steady state.
            workload(args.workload, args.iterations, project)
            cold = cpu_seconds(sensor.proc.pid) - cold
        cpu0 = cpu_seconds(sensor.proc.pid)
        t = workload(args.workload, args.iterations, project)
        cpu = cpu_seconds(sensor.proc.pid) - cpu0
        sensor.stop()
        on.append(t)
        cpu_share.append(100 * cpu / t)
        evs = sensor.events()
        execs = sum(1 for e in evs if e["event_type"] == "process.exec") // (2 if args.warm else 1) or 1
        cpu_per_proc.append(1e6 * cpu / execs)
        events = len(evs)
        print(f"round {rnd + 1}: off {off[-1]:.2f}s, on {t:.2f}s, sensor CPU {cpu_share[-1]:.1f}% of a core, "
              f"{execs} execs, {cpu_per_proc[-1]:.0f} us CPU per exec, {events} events", flush=True)  # fmt: skip
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d"),
        "workload": args.workload,
        "sensor": "warm" if args.warm else "cold",
        "sensor_us_cpu_per_exec": round(statistics.median(cpu_per_proc)),
        "median_s_off": round(statistics.median(off), 3),
        "median_s_on": round(statistics.median(on), 3),
        "slowdown_pct": round(100 * (statistics.median(on) / statistics.median(off) - 1), 1),
        "sensor_cpu_pct_of_one_core": round(statistics.median(cpu_share), 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
