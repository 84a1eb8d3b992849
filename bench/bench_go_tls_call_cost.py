"""Cost of capture per Go crypto/tls call: a Go program (bench/go_tls_loop, built with
Debian's Go) times n client Writes of 1,000 bytes, then n server Reads, over an in-memory
connection, without and with the sensor running.

With the sensor, the binary is probed from the start (`--ssl-path`): Write has one probe
(its stack-check branch, emulated by the kernel), Read has that plus a probe on the RET
that returns (single-stepped). Run as root: `.venv/bin/python bench/bench_go_tls_call_cost.py`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.goclient import build_go_program  # noqa: E402
from tests.support.sensor import RunningSensor  # noqa: E402
from tests.support.tls import make_tls_material  # noqa: E402


def loop(binary: Path, tls: object, n: int) -> dict[str, float]:
    out = subprocess.run(
        [str(binary), "-cert", str(tls.cert_path), "-key", str(tls.key_path),  # type: ignore[attr-defined]
         "-ca", str(tls.ca_path), "-n", str(n)],  # type: ignore[attr-defined]
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    n, rounds = 20000, 5
    work = Path(tempfile.mkdtemp(prefix="oisp-bench-go-"))
    tls = make_tls_material(work / "tls")
    binary = build_go_program(REPO / "bench" / "go_tls_loop", "go_tls_loop")
    off: list[dict[str, float]] = []
    on: list[dict[str, float]] = []
    for rnd in range(rounds):
        off.append(loop(binary, tls, n))
        sensor = RunningSensor(work / f"e{rnd}.jsonl", extra_args=["--ssl-path", str(binary)]).start()
        try:
            on.append(loop(binary, tls, n))
        finally:
            sensor.stop()
        print(
            f"round {rnd + 1}: write {off[-1]['write_us']:.2f} -> {on[-1]['write_us']:.2f} us, "
            f"read {off[-1]['read_us']:.2f} -> {on[-1]['read_us']:.2f} us",
            flush=True,
        )

    def median(runs: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 2)

    result = {"date": time.strftime("%Y-%m-%d"), "calls_per_round": n, "rounds": rounds}
    for key in ("write_us", "read_us"):
        result[f"median_{key}_off"] = median(off, key)
        result[f"median_{key}_on"] = median(on, key)
        result[f"added_{key}"] = round(result[f"median_{key}_on"] - result[f"median_{key}_off"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
