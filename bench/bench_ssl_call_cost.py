"""Cost of capture per OpenSSL call: a tight in-memory TLS loop (client SSL_write_ex, server
SSL_read_ex of 1,000 bytes through memory BIOs), without and with the sensor running.

Steadier than an HTTP benchmark: no sockets, no scheduler noise, just the probes and the
copy into the ring buffer. Run as root: `.venv/bin/python bench/bench_ssl_call_cost.py`.
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

from tests.support.sensor import RunningSensor  # noqa: E402
from tests.support.tls import make_tls_material  # noqa: E402

LOOP = r"""
import ssl, sys, time
ca, cert, key, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain(cert, key)
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.load_verify_locations(ca)
ci, co, si, so = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
c = cctx.wrap_bio(ci, co, server_hostname="api.openai.com")
s = sctx.wrap_bio(si, so, server_side=True)
def pump():
    d = co.read()
    if d: si.write(d)
    d = so.read()
    if d: ci.write(d)
for _ in range(10):
    for end in (c, s):
        try: end.do_handshake()
        except ssl.SSLWantReadError: pass
    pump()
msg = b"x" * 1000
t = time.perf_counter_ns()
for _ in range(n):
    c.write(msg); pump(); s.read(2000)
print((time.perf_counter_ns() - t) / n / 1000)
"""


def loop(tls: object, n: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", LOOP, str(tls.ca_path), str(tls.cert_path), str(tls.key_path), str(n)],  # type: ignore[attr-defined]
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout)


def main() -> None:
    n, rounds = 20000, 5
    work = Path(tempfile.mkdtemp(prefix="oisp-bench-"))
    tls = make_tls_material(work / "tls")
    off, on = [], []
    for rnd in range(rounds):
        off.append(loop(tls, n))
        sensor = RunningSensor(work / f"e{rnd}.jsonl").start()
        try:
            on.append(loop(tls, n))
        finally:
            sensor.stop()
        print(f"round {rnd + 1}: {off[-1]:.2f} us off, {on[-1]:.2f} us on per write+read pair", flush=True)
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d"),
        "pairs_per_round": n,
        "median_us_per_pair_off": round(m_off, 2),
        "median_us_per_pair_on": round(m_on, 2),
        "added_us_per_ssl_call": round((m_on - m_off) / 2, 2),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
