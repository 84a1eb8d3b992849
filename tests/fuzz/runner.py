"""Runs one fuzz target under atheris (coverage-guided libFuzzer), or minimizes a finding.

    python -m tests.fuzz.runner fuzz TARGET CRASH_DIR [libFuzzer flags and corpus dirs]
    python -m tests.fuzz.runner minimize TARGET INPUT OUTPUT [SECONDS]

A broken property does not stop the run: the input and its traceback are saved under
CRASH_DIR once per distinct signature (exception type and innermost project frame), so
one long run collects every distinct finding instead of stopping at the first and
re-finding it after a restart. Hangs and memory blow-ups are libFuzzer's to catch
(``-timeout``, ``-rss_limit_mb``): it then stops and writes a ``timeout-``/``oom-``
artifact, and bench/fuzz_decoders.py restarts the target.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

_PROJECT = "oisp_sensor"


def signature(exc: BaseException) -> str:
    """Exception type and the innermost frame inside the project (or the harness message)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = next(
        (f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames) if _PROJECT in f.filename),
        "harness",
    )
    detail = ""
    if where == "harness" or type(exc).__name__ == "PropertyBroken":
        detail = re.sub(r"\d+", "N", str(exc))[:60]
    return f"{type(exc).__name__}@{where}:{detail}"


def check(target: Callable[[bytes], None], data: bytes) -> str | None:
    """The finding's signature for this input, or None when every property holds."""
    try:
        target(data)
    except Exception as exc:  # every escaping exception is a finding
        return signature(exc)
    return None


def fuzz(name: str, crash_dir: Path, argv: list[str]) -> None:
    import atheris

    # instrument the project's modules (and only them) for coverage feedback
    with atheris.instrument_imports(include=[_PROJECT, "tests.fuzz"]):
        from tests.fuzz.targets import TARGETS

    target = TARGETS[name]
    crash_dir.mkdir(parents=True, exist_ok=True)
    known = {p.stem.split("-", 1)[1] for p in crash_dir.glob(f"{name}-*.txt")}

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except Exception as exc:
            sig = signature(exc)
            digest = hashlib.sha1(sig.encode()).hexdigest()[:12]
            if digest in known:
                return
            known.add(digest)
            (crash_dir / f"{name}-{digest}.input").write_bytes(data)
            (crash_dir / f"{name}-{digest}.txt").write_text(sig + "\n\n" + traceback.format_exc())
            print(f"FINDING {name} {sig}", file=sys.stderr, flush=True)

    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()


def minimize(name: str, data: bytes, seconds: float) -> bytes:
    """Smallest input (greedy chunk removal, then byte simplification) with the same finding."""
    from tests.fuzz.targets import TARGETS

    target = TARGETS[name]
    want = check(target, data)
    if want is None:
        return data
    deadline = time.monotonic() + seconds
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        start = 0
        while start < len(data) and time.monotonic() < deadline:
            candidate = data[:start] + data[start + chunk :]
            if candidate and check(target, candidate) == want:
                data = candidate
            else:
                start += chunk
        chunk //= 2
    out = bytearray(data)
    for i in range(len(out)):  # printable bytes make readable regression tests
        if time.monotonic() >= deadline:
            break
        original = out[i]
        if 0x20 <= original < 0x7F:
            continue
        for repl in (0x61, 0x30, 0x20):
            out[i] = repl
            if check(target, bytes(out)) == want:
                break
            out[i] = original
    return bytes(out)


def main(argv: list[str]) -> int:
    if argv[:1] == ["fuzz"]:
        fuzz(argv[1], Path(argv[2]), argv[3:])
        return 0
    if argv[:1] == ["minimize"]:
        seconds = float(argv[4]) if len(argv) > 4 else 60.0
        small = minimize(argv[1], Path(argv[2]).read_bytes(), seconds)
        Path(argv[3]).write_bytes(small)
        print(len(small))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
