"""Decoding throughput from saved raw captures: capture -> events, without output.

Step 1 (as root, once; cached under --work): the real sensor records, with --save-raw,
a real `openai` SDK client making N chat calls against the local fake provider, for each
scenario: 1 KB and 32 KB exchanges, non-streaming and streaming.
Step 2: the saved records are replayed through the pipeline in this process, on one core,
timed (best of --repeat): records -> HTTP -> AI events -> envelope -> redaction (safe),
handed to no exporter. `decode only` stops after the AI event builder.

The captures hold both ends of every connection (the fake provider runs on this host), so
each exchange costs two connections' worth of records; the server side is recognised and
dropped, as it would be in production on a host running a local gateway.

Target (issue 4): >= 10,000 exchanges/s on one core for 1 KB non-streaming exchanges.
Run: `.venv/bin/python bench/bench_decode.py [--exchanges 2000] [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from oisp_sensor.capture.parse import parse_record  # noqa: E402
from oisp_sensor.capture.rawfile import read_raw  # noqa: E402
from oisp_sensor.config import SensorConfig  # noqa: E402
from oisp_sensor.pipeline import Pipeline  # noqa: E402
from oisp_sensor.schema.envelope import Clock  # noqa: E402

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
text = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size]
for i in range(n):
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
            raw = work / f"{name}.raw"
            if raw.exists():
                continue
            sensor = RunningSensor(
                work / f"{name}.jsonl",
                ["--save-raw", str(raw), "--no-process", "--no-network", "--redaction", "minimal"],
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
                raw.unlink(missing_ok=True)
                raise SystemExit(f"client failed for {name}: {res.stderr[-1500:]}")
            print(f"recorded {name}: {raw.stat().st_size / 1e6:.1f} MB", flush=True)
        fake.process.terminate()


def replay(raw: Path, repeat: int) -> dict[str, float]:
    with open(raw, "rb") as f:
        metadata, records_iter = read_raw(f)
        records = list(records_iter)
    best_full = best_decode = float("inf")
    exchanges = 0
    for _ in range(repeat):
        pipeline = Pipeline(SensorConfig(), [], clock=Clock(metadata.get("clock_offset_ns")))
        pipeline.builder.process  # noqa: B018 - warm attribute lookups
        start = time.perf_counter()
        pipeline.process_raw(records)
        pipeline.finish()
        best_full = min(best_full, time.perf_counter() - start)
        exchanges = pipeline.events_by_type.get("ai.response", 0)
        # Decode only: records -> tracker -> AI event builder, no envelope, no redaction.
        pipeline = Pipeline(SensorConfig(), [], clock=Clock(metadata.get("clock_offset_ns")))
        tracker, builder = pipeline.tracker, pipeline.builder
        start = time.perf_counter()
        for buf in records:
            for output in tracker.feed(parse_record(buf)):
                builder.process(output)
        best_decode = min(best_decode, time.perf_counter() - start)
    return {
        "records": len(records),
        "exchanges": exchanges,
        "pipeline_exchanges_per_s": round(exchanges / best_full),
        "pipeline_us_per_exchange": round(best_full / max(1, exchanges) * 1e6, 1),
        "decode_only_exchanges_per_s": round(exchanges / best_decode),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/oisp-bench-decode"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    record_captures(args.work, args.exchanges)
    # Warm the one-time loads (pricing data, tokenizer) outside the timed region.
    Pipeline(SensorConfig(), []).builder  # noqa: B018
    results = {name: replay(args.work / f"{name}.raw", args.repeat) for name in SCENARIOS}
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), **results}, indent=2))


if __name__ == "__main__":
    main()
