"""Run the real sensor (`oisp-sensor record`) as a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
SENSOR_CMD = [sys.executable, "-m", "oisp_sensor"]


class RunningSensor:
    """`record` in the background: started, attached, then stopped with a signal."""

    def __init__(
        self, output: Path, extra_args: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.output = output
        self.stderr_path = output.with_suffix(".stderr")
        self.args = [*SENSOR_CMD, "record", "--output", str(output), "--no-ui", *(extra_args or [])]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = ""
        self.returncode: int | None = None

    def start(self, timeout: float = 30.0) -> RunningSensor:
        self._stderr_file = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=self._stderr_file, env=self.env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr_path.read_text(errors="replace")
            if "capture attached" in text:
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"sensor exited with {self.proc.returncode} before attaching:\n{text}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sensor did not attach within {timeout}s:\n{self.stderr}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
        self._stderr_file.close()
        self.stderr = self.stderr_path.read_text(errors="replace")
        return self.returncode

    def events(self) -> list[dict[str, Any]]:
        if not self.output.exists():
            return []
        return [orjson.loads(line) for line in self.output.read_bytes().splitlines() if line.strip()]

    def __enter__(self) -> RunningSensor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.returncode is None:
            self.stop()


def ai_events(
    events: list[dict[str, Any]],
    pid: int | None = None,
    types: tuple[str, ...] = ("ai.request", "ai.response"),
) -> list[dict[str, Any]]:
    """The AI call events (by default the request/response pairs only) of one process or all."""
    return [e for e in events if e["event_type"] in types and (pid is None or e["process"]["pid"] == pid)]


DASHBOARD_LINE = re.compile(r"dashboard: http://127\.0\.0\.1:(\d+)/")


def dashboard_port(stderr_path: Path, timeout: float = 30.0) -> int:
    """The port a sensor started with `--web --port 0` says its dashboard listens on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = DASHBOARD_LINE.search(stderr_path.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        time.sleep(0.05)
    raise AssertionError(f"the sensor printed no dashboard address:\n{stderr_path.read_text()}")
