"""Cost of capture per Go crypto/tls call: a Go program (bench/go_tls_loop, built with
Debian's Go) times n client Writes of 1,000 bytes, then n server Reads, over an in-memory
connection, without and with the sensor running. Two modes: back to back ("burst": 20,000
records in a fraction of a second, faster than the sensor drains its ring buffer), and
"paced" (an untimed 50 us busy pause after each call, so the consumer keeps up).

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

MODES = {"burst": "0", "paced": "50us"}


def loop(binary: Path, tls: object, n: int, pause: str) -> dict[str, float]:
    out = subprocess.run(
        [str(binary), "-cert", str(tls.cert_path), "-key", str(tls.key_path),  # type: ignore[attr-defined]
         "-ca", str(tls.ca_path), "-n", str(n), "-pause", pause],  # type: ignore[attr-defined]
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    n, rounds = 20000, 7
    work = Path(tempfile.mkdtemp(prefix="oisp-bench-go-"))
    tls = make_tls_material(work / "tls")
    binary = build_go_program(REPO / "bench" / "go_tls_loop", "go_tls_loop")
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for rnd in range(rounds):
        for mode, pause in MODES.items():
            runs.setdefault((mode, "off"), []).append(loop(binary, tls, n, pause))
        sensor = RunningSensor(work / f"e{rnd}.jsonl", extra_args=["--ssl-path", str(binary)]).start()
        try:
            for mode, pause in MODES.items():
                runs.setdefault((mode, "on"), []).append(loop(binary, tls, n, pause))
        finally:
            sensor.stop()
        print(f"round {rnd + 1}: " + "; ".join(
            f"{mode} write {runs[mode, 'off'][-1]['write_us']:.2f} -> {runs[mode, 'on'][-1]['write_us']:.2f} us, "
            f"read {runs[mode, 'off'][-1]['read_us']:.2f} -> {runs[mode, 'on'][-1]['read_us']:.2f} us"
            for mode in MODES
        ), flush=True)  # fmt: skip

    result: dict[str, object] = {"date": time.strftime("%Y-%m-%d"), "calls_per_round": n, "rounds": rounds}
    for mode in MODES:
        for call in ("write", "read"):
            off = statistics.median(r[f"{call}_us"] for r in runs[mode, "off"])
            on = statistics.median(r[f"{call}_us"] for r in runs[mode, "on"])
            result[f"{mode}_{call}_us"] = {
                "off": round(off, 2),
                "on": round(on, 2),
                "added": round(on - off, 2),
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
