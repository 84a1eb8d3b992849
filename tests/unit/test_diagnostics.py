"""The opt-in tracemalloc reports (diagnostics.py) and the glibc heap tuning (heap.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from oisp_sensor.diagnostics import MemoryTrace, install_from_env
from oisp_sensor.heap import HeapTuning, tune_from_env

_held: list[bytes] = []


def _grow(n: int) -> None:
    for i in range(n):
        _held.append(b"x" * 200 + str(i).encode())  # the line the report must name


def test_report_names_the_line_that_grew(tmp_path: Path) -> None:
    out = tmp_path / "trace.txt"
    was_tracing = tracemalloc.is_tracing()
    trace = MemoryTrace(out)
    trace.start()
    try:
        trace.report("first")
        _grow(20_000)
        trace.report("second")
    finally:
        _held.clear()
        if not was_tracing:
            tracemalloc.stop()
    text = out.read_text()
    assert "=== report 1 (first)" in text and "=== report 2 (second)" in text
    second = text.split("=== report 2")[1]
    growth = second.split("--- growth since the first report")[1].splitlines()
    top = growth[1]  # the largest growth, right after the section's header line
    assert "test_diagnostics.py" in top and '_held.append(b"x" * 200' in top
    blocks = int(top.split("blocks")[0].split()[-1])
    assert 20_000 <= blocks <= 20_010


def test_off_unless_asked() -> None:
    assert install_from_env({}) is None
    assert install_from_env({"OISP_TRACEMALLOC": "0"}) is None


def test_sigusr2_and_exit_write_reports(tmp_path: Path) -> None:
    """In a process of its own: the signal handler and the exit hook."""
    out = tmp_path / "trace.txt"
    script = (
        "import os, signal, sys, time\n"
        "from oisp_sensor.diagnostics import install_from_env\n"
        "install_from_env()\n"
        "os.kill(os.getpid(), signal.SIGUSR2)\n"
        "deadline = time.monotonic() + 20\n"
        f"while 'report 1' not in open({str(out)!r}).read() if os.path.exists({str(out)!r}) else True:\n"
        "    time.sleep(0.05)\n"
        "    assert time.monotonic() < deadline\n"
    )
    env = {**os.environ, "OISP_TRACEMALLOC": "1", "OISP_TRACEMALLOC_OUT": str(out)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "tracemalloc on" in proc.stderr
    text = out.read_text()
    assert "report 1 (SIGUSR2)" in text and "report 2 (exit)" in text


def test_heap_tuning_respects_the_environment() -> None:
    assert tune_from_env({"OISP_MALLOC_TUNING": "0"}) is None
    tuning = HeapTuning(trim_interval_s=0.05)
    assert tuning.available  # glibc (Debian)
    assert not tuning.limit_arenas({"MALLOC_ARENA_MAX": "4"})  # the user's setting wins
    tuning.start()
    deadline = time.monotonic() + 10
    while tuning.trims < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    tuning.stop()
    assert tuning.trims >= 2 and tuning.stats()["arena_cap"] is None
