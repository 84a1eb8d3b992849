"""Decoding throughput from saved raw captures: capture -> events, without output.

Step 1 (as root, once; cached under --work): the real sensor records, with --save-raw,
a real `openai` SDK client making N chat calls against the local fake provider, for each
scenario: 1 KB and 32 KB exchanges, non-streaming and streaming.
Every prompt is different (it starts with its number, and the fake echoes it back), so
no per-string cache (redaction scanner, conversation ids) sees the same text twice.
Step 2: the saved records are replayed through the pipeline in this process, pinned to
one core, timed (best of --repeat, CPU time of this thread and wall time): records ->
HTTP -> AI events -> agent sessions -> enrichment -> envelope -> redaction (safe), handed
to no exporter. `unredacted` is the same without the redaction stage (events as the
pipeline builds them, before each exporter's redacted copy); `decode only` stops after the
AI event builder (records -> HTTP -> AI events). Other processes may share the machine:
the best of several runs is the figure that tells the code's cost, and CPU time is not
inflated by waiting for the core.

The captures hold both ends of every connection (the fake provider runs on this host), so
each exchange costs two connections' worth of records; the server side is recognised and
dropped, as it would be in production on a host running a local gateway.

Target (issue 4): >= 10,000 exchanges/s on one core for 1 KB non-streaming exchanges.
Run: `.venv/bin/python bench/bench_decode.py [--exchanges 2000] [--repeat 5] [--cpu 1]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from oisp_sensor.capture.parse import MalformedRecord, parse_record  # noqa: E402
from oisp_sensor.capture.rawfile import RawWriter, read_raw  # noqa: E402
from oisp_sensor.config import SensorConfig  # noqa: E402
from oisp_sensor.pipeline import Pipeline  # noqa: E402
from oisp_sensor.schema.envelope import Clock  # noqa: E402

# Bumped when the recorded traffic changes, so stale captures are not replayed.
CAPTURE_VERSION = 2
# name -> (prompt characters, streamed, share of --exchanges)
SCENARIOS = {
    "1kb": (900, False, 1.0),
    "1kb-stream": (900, True, 0.5),
    "32kb": (32000, False, 0.25),
    "32kb-stream": (32000, True, 0.25),
}

CLIENT = r"""
import json, os, sys, openai
n, size, stream = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
client = openai.OpenAI(max_retries=0)
base = "lorem ipsum dolor sit amet " * (size // 27 + 1)
for i in range(n):
    text = f"request {i}: {base}"[:size]  # every prompt different
    if stream:
        # max_tokens bounds the streamed answer (the fake streams one delta per word).
        for _ in client.chat.completions.create(model="gpt-4o-mini", stream=True, max_tokens=100,
                stream_options={"include_usage": True}, messages=[{"role": "user", "content": text}]):
            pass
    else:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
print(json.dumps({"pid": os.getpid()}))
"""


def record_captures(work: Path, exchanges: int) -> None:
    from tests.support.fixtures import start_fake_provider
    from tests.support.netns import NetNs
    from tests.support.sensor import RunningSensor
    from tests.support.tls import make_tls_material

    tls = make_tls_material(work / "tls")
    with NetNs() as ns:
        fake = start_fake_provider(ns, tls, work)
        for name, (size, stream, share) in SCENARIOS.items():
            raw = work / f"{name}-v{CAPTURE_VERSION}.raw"
            if raw.exists():
                continue
            everything = raw.with_suffix(".all")
            sensor = RunningSensor(
                work / f"{name}-v{CAPTURE_VERSION}.jsonl",
                ["--save-raw", str(everything), "--no-process", "--no-network", "--redaction", "minimal"],
            )
            sensor.start()
            try:
                res = fake.run(
                    [
                        str(REPO / ".venv/bin/python"),
                        "-c",
                        CLIENT,
                        str(int(exchanges * share)),
                        str(size),
                        "1" if stream else "0",
                    ],
                    timeout=1200,
                )
            finally:
                sensor.stop()
            if res.returncode != 0:
                everything.unlink(missing_ok=True)
                raise SystemExit(f"client failed for {name}: {res.stderr[-1500:]}")
            client = json.loads(res.stdout.strip().splitlines()[-1])["pid"]
            kept = _keep_pids(everything, raw, {client, fake.process.pid})
            everything.unlink()
            print(f"recorded {name}: {kept} records, {raw.stat().st_size / 1e6:.1f} MB", flush=True)
        fake.process.terminate()


def _keep_pids(source: Path, target: Path, pids: set[int]) -> int:
    """Copy the records of `pids` only: the sensor sees the whole host, and whatever else
    runs meanwhile (other tests' AI calls) must not change what the benchmark measures."""
    with open(source, "rb") as f:
        metadata, records = read_raw(f)
        kept: list[bytes] = []
        for buf in records:
            try:
                if parse_record(buf).pid in pids:
                    kept.append(buf)
            except MalformedRecord:
                continue
    with open(target, "wb") as out:
        writer = RawWriter(out, metadata)
        writer.write(kept)
        writer.close()
    return len(kept)


def _timed(run: Callable[[], None]) -> tuple[float, float]:
    """(CPU seconds of this thread, wall seconds) of one run.

    The previous run's pipeline is garbage with reference cycles: collected first, or the
    collector would charge this run for it (a sensor has one pipeline).
    """
    gc.collect()
    cpu, wall = time.thread_time(), time.perf_counter()
    run()
    return time.thread_time() - cpu, time.perf_counter() - wall


def replay(raw: Path, repeat: int) -> dict[str, float]:
    with open(raw, "rb") as f:
        metadata, records_iter = read_raw(f)
        records = list(records_iter)
    offset = metadata.get("clock_offset_ns")
    full_cpu = full_wall = decode_cpu = decode_wall = unredacted_cpu = float("inf")
    exchanges = 0
    events = 0

    def whole(pipeline: Pipeline) -> Callable[[], None]:
        def run() -> None:
            pipeline.process_raw(records)
            pipeline.finish()

        return run

    for _ in range(repeat):
        pipeline = Pipeline(SensorConfig(), [], clock=Clock(offset))
        cpu, wall = _timed(whole(pipeline))
        full_cpu, full_wall = min(full_cpu, cpu), min(full_wall, wall)
        exchanges = pipeline.events_by_type.get("ai.response", 0)
        events = pipeline.counts["events"]
        # Events without redaction: the whole pipeline, each event's redacted copy not made.
        pipeline = Pipeline(SensorConfig(), [], clock=Clock(offset))
        pipeline.redactor.apply = lambda event, mode=None: event  # type: ignore[method-assign]
        cpu, _ = _timed(whole(pipeline))
        unredacted_cpu = min(unredacted_cpu, cpu)
        # Decode only: records -> tracker -> AI event builder, no sessions, envelope, redaction.
        pipeline = Pipeline(SensorConfig(), [], clock=Clock(offset))

        def decode(tracker: Any = pipeline.tracker, builder: Any = pipeline.builder) -> None:
            for buf in records:
                for output in tracker.feed(parse_record(buf)):
                    builder.process(output)

        cpu, wall = _timed(decode)
        decode_cpu, decode_wall = min(decode_cpu, cpu), min(decode_wall, wall)
    n = max(1, exchanges)
    return {
        "records": len(records),
        "exchanges": exchanges,
        "events": events,
        "pipeline_exchanges_per_s": round(n / full_cpu),
        "pipeline_us_per_exchange": round(full_cpu / n * 1e6, 1),
        "pipeline_exchanges_per_s_wall": round(n / full_wall),
        "unredacted_exchanges_per_s": round(n / unredacted_cpu),
        "decode_only_exchanges_per_s": round(n / decode_cpu),
        "decode_only_exchanges_per_s_wall": round(n / decode_wall),
    }


def _warm(work: Path) -> None:
    """One-time loads (pricing package and data, tokenizer, caches of compiled patterns)
    happen once per sensor, not per exchange: one short replay before the timed ones."""
    with open(work / f"1kb-v{CAPTURE_VERSION}.raw", "rb") as f:
        metadata, records_iter = read_raw(f)
        records = list(records_iter)[:200]
    pipeline = Pipeline(SensorConfig(), [], clock=Clock(metadata.get("clock_offset_ns")))
    pipeline.process_raw(records)
    pipeline.finish()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/oisp-bench-decode"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    record_captures(args.work, args.exchanges)
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # one core
    _warm(args.work)
    results = {name: replay(args.work / f"{name}-v{CAPTURE_VERSION}.raw", args.repeat) for name in SCENARIOS}
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpu": cpu, **results}, indent=2))


if __name__ == "__main__":
    main()
