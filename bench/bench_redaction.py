"""Redaction throughput and false-positive rate.

Throughput: realistic prompt content (prose, source code and JSON tool output cut
from the fixtures in tests/fixtures/redaction, a secret or personal datum in one
prompt of eight) is redacted

- as text (`Scanner.scrub`, the detectors alone), and
- as whole `ai.request` events (`Redactor.apply`: the walk, the detectors, the hashes
  of changed content and `data.redaction`), in `safe` and in `minimal` mode,

on one core, in rounds; the best and the median round are reported in MB/s of content
(UTF-8 bytes). Target (issue 6): at least 50 MB/s in `safe` mode.

False positives: every category of the false-positive corpus (prose, code, JSON,
UUIDs, git hashes, sha256 digests, base64 image data) is scanned; a whitespace-
separated token is wrongly redacted when any part of it would be replaced. Target:
under 1%. The leak corpus's detection rate is printed too.

Run: `.venv/bin/python bench/bench_redaction.py [--rounds 7] [--prompts 400] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.fixtures.redaction.corpus import (  # noqa: E402
    fp_documents,
    realistic_prompts,
    secret_samples,
)

from oisp_sensor.redact import Redactor, Scanner  # noqa: E402
from oisp_sensor.redact.walker import _registry_prefixes  # noqa: E402


def _event(i: int, prompt: str) -> dict[str, Any]:
    """An ai.request as the pipeline hands it to the redactor (envelope included)."""
    return {
        "oisp_version": "0.1",
        "event_id": f"01JC{i:022d}",
        "event_type": "ai.request",
        "timestamp": "2026-11-22T10:00:00.000000Z",
        "host": {"hostname": "bench", "os": "linux"},
        "actor": {"uid": 1000, "username": "dev"},
        "process": {
            "pid": 4242,
            "ppid": 1,
            "name": "python3",
            "exe": "/usr/bin/python3.11",
            "cmdline": ["python3", "agent.py", "--model", "gpt-4o-mini"],
            "cwd": "/srv/agent",
        },
        "source": {"collector": "oisp-sensor", "capture_point": "ssl"},
        "confidence": {"level": "high", "completeness": "full", "reasons": []},
        "data": {
            "provider": {
                "id": "openai",
                "name": "OpenAI",
                "endpoint": "https://api.openai.com/v1/chat/completions",
            },
            "model": {"id": "gpt-4o-mini", "family": "gpt-4"},
            "request_type": "chat",
            "streaming": False,
            "message_count": 2,
            "messages": [
                {"role": "system", "content": "You are a helpful coding assistant.", "content_length": 35},
                {"role": "user", "content": prompt, "content_length": len(prompt)},
            ],
            "auth": {"type": "bearer", "key_prefix": "sk-proj-"},
            "http": {"method": "POST", "path": "/v1/chat/completions", "host": "api.openai.com"},
            "request_bytes": len(prompt) + 200,
        },
    }


def _rounds(make: Callable[[], Callable[[], None]], rounds: int) -> list[float]:
    """Time `rounds` runs, each of a fresh redactor (so its string cache starts cold:
    every prompt is new to it, as distinct prompts would be in production)."""
    times: list[float] = []
    for _ in range(rounds):
        fn = make()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def throughput(prompts: list[str], rounds: int) -> dict[str, dict[str, float]]:
    prefixes = _registry_prefixes(None)
    events = [_event(i, p) for i, p in enumerate(prompts)]
    text_size = sum(len(p.encode()) for p in prompts)
    size = text_size + len(events) * 35  # plus the system prompt of each event

    def text() -> Callable[[], None]:
        scanner = Scanner(key_prefixes=prefixes)

        def run() -> None:
            for p in prompts:
                scanner.scrub(p)

        return run

    def apply(mode: str) -> Callable[[], Callable[[], None]]:
        def make() -> Callable[[], None]:
            redactor = Redactor("safe", key_prefixes=prefixes)

            def run() -> None:
                for e in events:
                    redactor.apply(e, mode)

            return run

        return make

    cases = (
        ("text (Scanner.scrub)", text, text_size),
        ("safe (Redactor.apply)", apply("safe"), size),
        ("minimal (Redactor.apply)", apply("minimal"), size),
    )
    for _name, make, _nbytes in cases:
        make()()  # warm-up
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(rounds):  # conditions alternate, so drift of the machine hits all alike
        for name, make, _nbytes in cases:
            times[name].extend(_rounds(make, 1))
    out: dict[str, dict[str, float]] = {}
    for name, _make, nbytes in cases:
        out[name] = {
            "best_mb_s": nbytes / min(times[name]) / 1e6,
            "median_mb_s": nbytes / statistics.median(times[name]) / 1e6,
            "mb": nbytes / 1e6,
        }
    return out


def false_positives() -> dict[str, dict[str, float]]:
    scanner = Scanner(key_prefixes=_registry_prefixes(None))
    out: dict[str, dict[str, float]] = {}
    total_tokens = total_bad = 0
    for name, doc in fp_documents().items():
        hits = scanner.find(doc)
        covered = bytearray(len(doc))
        for start, end, _kind in hits:
            covered[start:end] = b"\x01" * (end - start)
        tokens = bad = 0
        pos = 0
        for token in doc.split():
            start = doc.index(token, pos)
            pos = start + len(token)
            tokens += 1
            if any(covered[start:pos]):
                bad += 1
        out[name] = {"tokens": tokens, "wrong": bad, "rate_pct": 100.0 * bad / tokens, "examples": 0}
        if hits:
            out[name]["examples"] = len(hits)
            out[name]["first"] = doc[hits[0][0] : hits[0][1]]  # type: ignore[assignment]
        total_tokens += tokens
        total_bad += bad
    out["ALL"] = {"tokens": total_tokens, "wrong": total_bad, "rate_pct": 100.0 * total_bad / total_tokens}
    return out


def recall() -> tuple[int, int]:
    scanner = Scanner(key_prefixes=_registry_prefixes(None))
    samples = secret_samples()
    found = 0
    for sample in samples:
        scrubbed, _kinds = scanner.scrub(f"before {sample.text} after")
        if not any(fragment in scrubbed for fragment in sample.fragments()):
            found += 1
    return found, len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    prompts = realistic_prompts(args.prompts)
    tp = throughput(prompts, args.rounds)
    fp = false_positives()
    found, total = recall()
    if args.json:
        print(json.dumps({"throughput": tp, "false_positives": fp, "recall": [found, total]}, indent=2))
        return
    mb = sum(len(p.encode()) for p in prompts) / 1e6
    digits = sum(ch.isdigit() for p in prompts for ch in p) / max(1, sum(map(len, prompts)))
    print(
        f"content: {len(prompts)} prompts, {mb:.2f} MB ({digits:.1%} digits), {args.rounds} rounds, one core"
    )
    print(f"{'what':28s} {'best MB/s':>10s} {'median MB/s':>12s}")
    for name, row in tp.items():
        print(f"{name:28s} {row['best_mb_s']:10.1f} {row['median_mb_s']:12.1f}")
    print()
    print(f"{'false-positive corpus':28s} {'tokens':>8s} {'wrong':>6s} {'rate':>8s}")
    for name, row in fp.items():
        extra = f"  e.g. {row['first']!r}" if "first" in row else ""
        print(f"{name:28s} {row['tokens']:8d} {row['wrong']:6d} {row['rate_pct']:7.3f}%{extra}")
    print()
    print(f"leak corpus: {found}/{total} samples fully redacted in text")


if __name__ == "__main__":
    main()
