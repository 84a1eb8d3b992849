"""Coverage-guided fuzzing of the decoders with atheris (libFuzzer for Python).

For each target of tests/fuzz/targets.py, one process at a time (one core): seed
corpora are harvested from the unit tests (tests/fuzz/seeds.py), then atheris mutates
them for the time given, with a per-input time limit (a hang is a finding) and an RSS
limit (a memory blow-up is a finding). Distinct broken properties are saved under
OUT/crashes with their traceback and minimized; libFuzzer's own timeout/oom artifacts
land there too, and the target is restarted for the rest of its time.

    .venv/bin/python bench/fuzz_decoders.py                       # every target, 5 min each
    .venv/bin/python bench/fuzz_decoders.py --seconds 60 --targets sse,config
    .venv/bin/python bench/fuzz_decoders.py --cpu --seconds 300     # 5 CPU minutes each

Results (per target: seconds, CPU seconds, inputs tried, corpus size, findings) are
printed as a Markdown table and written to OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# wire-format targets take whole record scripts; others small inputs
MAX_LEN = {"sse": 16384, "compressed": 262144, "provider": 16384, "config": 4096, "mcp_stdio": 8192}
DEFAULT_MAX_LEN = 32768
_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_PROGRESS = re.compile(r"^#(\d+)\s", re.MULTILINE)
_CORPUS = re.compile(r"corp: (\d+)/")


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_target(
    name: str, seconds: float, out: Path, seeds: Path, timeout_s: int, rss_mb: int, *, cpu: bool
) -> dict[str, object]:
    """Fuzz one target for ``seconds`` of wall time, or of its own CPU time when ``cpu``
    (on a shared machine the fuzzer gets a fraction of a core; CPU time is the work done)."""
    corpus = out / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes = out / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in crashes.iterdir()}
    log_path = out / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    runs = restarts = 0
    corpus_size = 0
    started = time.monotonic()
    cpu0 = _cpu_children()
    with log_path.open("w") as log:
        while True:
            spent = (_cpu_children() - cpu0) if cpu else (time.monotonic() - started)
            left = seconds - spent
            if left <= 5:
                break
            cmd = [
                PYTHON, "-m", "tests.fuzz.runner", "fuzz", name, str(crashes),
                f"-max_total_time={int(left)}", f"-timeout={timeout_s}", f"-rss_limit_mb={rss_mb}",
                f"-max_len={MAX_LEN.get(name, DEFAULT_MAX_LEN)}", "-print_final_stats=1",
                f"-artifact_prefix={crashes}/{name}-libfuzzer-", "-close_fd_mask=1",
                str(corpus), str(seeds / name),
            ]  # fmt: skip
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, errors="replace")
            log.write(proc.stderr)
            executed = _EXECUTED.search(proc.stderr)
            progress = _PROGRESS.findall(proc.stderr)
            runs += int(executed.group(1)) if executed else (int(progress[-1]) if progress else 0)
            sizes = _CORPUS.findall(proc.stderr)
            if sizes:
                corpus_size = int(sizes[-1])
            if proc.returncode != 0:
                restarts += 1  # libFuzzer stopped on a timeout or an RSS blow-up: go on
    new = sorted({p.name for p in crashes.iterdir()} - before)
    return {
        "target": name,
        "seconds": round(time.monotonic() - started),
        "cpu_seconds": round(_cpu_children() - cpu0),
        "inputs": runs,
        "corpus": corpus_size,
        "restarts": restarts,
        "findings": [n for n in new if n.endswith(".txt") or "-libfuzzer-" in n],
    }


def minimize_findings(out: Path, seconds: float) -> None:
    for path in sorted((out / "crashes").glob("*.input")):
        small = path.with_suffix(".min")
        if small.exists():
            continue
        name = path.name.split("-", 1)[0]
        subprocess.run(
            [PYTHON, "-m", "tests.fuzz.runner", "minimize", name, str(path), str(small), str(seconds)],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )


def main() -> int:
    from tests.fuzz.targets import TARGETS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--seconds", type=float, default=300.0, help="fuzzing time per target")
    ap.add_argument("--cpu", action="store_true", help="--seconds is CPU time, not wall time")
    ap.add_argument("--out", type=Path, default=Path("/tmp/oisp-fuzz"))
    ap.add_argument("--timeout", type=int, default=10, help="per-input time limit, seconds")
    ap.add_argument("--rss-mb", type=int, default=2048, help="RSS limit of the fuzzing process")
    ap.add_argument("--minimize-seconds", type=float, default=60.0)
    args = ap.parse_args()

    seeds = args.out / "seeds"
    if not seeds.exists():
        subprocess.run([PYTHON, "-m", "tests.fuzz.seeds", str(seeds)], cwd=ROOT, check=True)
    results = []
    path = args.out / "results.json"
    previous = json.loads(path.read_text()) if path.exists() else []
    for name in args.targets.split(","):
        result = run_target(name, args.seconds, args.out, seeds, args.timeout, args.rss_mb, cpu=args.cpu)
        print(json.dumps(result), flush=True)
        results.append(result)
        path.write_text(json.dumps(previous + results, indent=1))  # kept if the run is stopped
    minimize_findings(args.out, args.minimize_seconds)
    print("\n| target | seconds | CPU s | inputs tried | corpus | findings |\n|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['target']} | {r['seconds']} | {r['cpu_seconds']} | {r['inputs']} | {r['corpus']} | {len(r['findings'])} |"
        )  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
