"""Build the Go test client (tests/clients/go) and other Go programs with Debian's Go toolchain.

Standard library only, so the build is offline; CGO_ENABLED=0 so the client uses Go's own
crypto/tls and resolver, never libc or OpenSSL (the sensor must see it through the Go
probes alone). Built once per test session into a temporary directory; the build cache
lives in the system temporary directory so reruns take about a second.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

GO_CLIENT_DIR = Path(__file__).resolve().parents[1] / "clients" / "go"
GO_CACHE = Path(tempfile.gettempdir()) / "oisp-go-build-cache"


class GoBuildError(RuntimeError):
    pass


def go_toolchain() -> str | None:
    """The `go` command, or None when golang-go is not installed."""
    return shutil.which("go") or next(
        (str(p) for p in sorted(Path("/usr/lib").glob("go-1.*/bin/go"), reverse=True) if p.exists()), None
    )


def go_build_env() -> dict[str, str]:
    """A writable, offline environment for `go build` (root's HOME may be read-only)."""
    GO_CACHE.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "HOME": str(GO_CACHE),
        "GOCACHE": str(GO_CACHE / "build"),
        "GOPATH": str(GO_CACHE / "gopath"),
        "GOFLAGS": "",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }


def build_go_client(stripped: bool = False) -> Path:
    """The test client (`-ldflags=-s -w` when `stripped`). Raises GoBuildError."""
    return build_go_program(GO_CLIENT_DIR, "oisp-go-client" + ("-stripped" if stripped else ""), stripped)


@functools.cache
def build_go_program(src_dir: Path, name: str, stripped: bool = False) -> Path:
    """Build the Go module in `src_dir` into a temporary directory, once per process."""
    go = go_toolchain()
    if go is None:
        raise GoBuildError("the Go toolchain is not installed (apt-get install golang-go)")
    out_dir = Path(tempfile.mkdtemp(prefix="oisp-go-build-"))
    atexit.register(shutil.rmtree, out_dir, True)
    out = out_dir / name
    cmd = [go, "build", "-o", str(out)]
    if stripped:
        cmd.append("-ldflags=-s -w")
    proc = subprocess.run(
        [*cmd, "."], cwd=src_dir, env=go_build_env(), capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise GoBuildError(f"go build in {src_dir} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return out
