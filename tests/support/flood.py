"""A flood of HTTPS AI calls from many processes, for the self-protection test and the
flood benchmark (bench/bench_flood.py).

Each client is its own Python process with one keep-alive TLS connection (http.client
over the ssl module: much cheaper per call than an SDK, so a 2-core machine reaches
thousands of calls per second), calling chat completions for a fixed time; one call in
`stream_every` is streamed (SSE). Several fake-provider processes share the load (one
asyncio process is the bottleneck otherwise), on ports `base_port`, `base_port + 1`, ...
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.fixtures import FakeProviderHandle, _start_sibling

CLIENT = r"""
import http.client, json, os, ssl, sys, time
port, seconds, stream_every, ca, start_at = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
key = os.environ["OPENAI_API_KEY"]
conn = http.client.HTTPSConnection("api.openai.com", port, context=ctx)
headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
done = errors = streamed = 0
lat = []
while time.time() < start_at:
    time.sleep(0.005)
end = time.monotonic() + seconds
while time.monotonic() < end:
    stream = stream_every > 0 and done % stream_every == stream_every - 1
    body = json.dumps({"model": "gpt-4o-mini", "stream": stream,
                       "messages": [{"role": "user", "content": f"flood {os.getpid()} {done}"}]})
    t = time.perf_counter_ns()
    try:
        conn.request("POST", "/v1/chat/completions", body, headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            errors += 1
    except (OSError, http.client.HTTPException):
        errors += 1
        conn.close()
        conn = http.client.HTTPSConnection("api.openai.com", port, context=ctx)
        continue
    lat.append(time.perf_counter_ns() - t)
    done += 1
    streamed += stream
conn.close()
lat.sort()
print(json.dumps({"pid": os.getpid(), "requests": done, "streamed": streamed, "errors": errors,
                  "p50_us": lat[len(lat) // 2] / 1000 if lat else None,
                  "p99_us": lat[int(len(lat) * 0.99)] / 1000 if lat else None}))
"""


@dataclass
class FloodResult:
    clients: list[dict[str, Any]]
    seconds: float

    @property
    def requests(self) -> int:
        return sum(c["requests"] for c in self.clients)

    @property
    def errors(self) -> int:
        return sum(c["errors"] for c in self.clients)

    @property
    def pids(self) -> set[int]:
        return {c["pid"] for c in self.clients}

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def median_p50_us(self) -> float:
        values = sorted(c["p50_us"] for c in self.clients if c["p50_us"] is not None)
        return values[len(values) // 2] if values else 0.0


def start_servers(
    fake: FakeProviderHandle, workdir: Path, count: int, base_port: int
) -> list[FakeProviderHandle]:
    """`count` more fake providers in the fake's namespace, on consecutive ports."""
    servers = []
    for i in range(count):
        sub = workdir / f"flood-server-{i}"
        sub.mkdir(parents=True, exist_ok=True)
        servers.append(_start_sibling(fake, sub, base_port + i))
    return servers


def stop_servers(servers: list[FakeProviderHandle]) -> None:
    for server in servers:
        server.process.terminate()
    for server in servers:
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()


def flood(
    fake: FakeProviderHandle, ports: list[int], clients: int, seconds: float, stream_every: int = 10
) -> FloodResult:
    """`clients` processes calling for `seconds`, spread over `ports`; waits for all."""
    start_at = time.time() + 1.0 + clients * 0.02  # every process is up before any starts
    args = [str(seconds), str(stream_every), str(fake.ca_path), str(start_at)]
    procs = [
        fake.popen([sys.executable, "-c", CLIENT, str(ports[i % len(ports)]), *args]) for i in range(clients)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"flood client failed ({proc.returncode}): {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return FloodResult(results, seconds)
