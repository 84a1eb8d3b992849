"""Pytest fixtures: a fake AI provider reachable by its real hostnames inside a private namespace.

Registered by ``tests/conftest.py`` (``pytest_plugins``). Session-scoped because generating a CA,
creating a namespace and starting the server cost ~0.5 s and the fake is stateless between
requests, so one instance serves every test.

A test gets a :class:`FakeProviderHandle`::

    def test_curl(fake_provider):
        res = fake_provider.run(["curl", "-sS", fake_provider.url("api.openai.com", "/v1/models"),
                                 "-H", f"Authorization: Bearer {fake_provider.openai_api_key}"])

Commands run inside the namespace with the CA trusted through every mechanism the clients know
(``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``, ``CURL_CA_BUNDLE``) and with
fake but realistic API keys, so sensor tests can check that a full key never reaches the output.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import string
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.support.netns import Cmd, NetNs, cleanup_stale_namespaces
from tests.support.tls import TlsMaterial, make_tls_material

#: Repository root: the fake provider is started as ``python -m tests.support.fake_provider``.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where the client programs live.
CLIENTS_DIR = REPO_ROOT / "tests" / "clients"

#: Variables that would make a client bypass the fake (proxies, base-URL overrides) or that
#: carry a developer's real credentials; removed from the environment of commands run inside.
SCRUBBED_ENV: tuple[str, ...] = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
    "GOOGLE_API_KEY",
    "SSL_CERT_DIR",
)

_ALNUM = string.ascii_letters + string.digits


def _random_alnum(n: int) -> str:
    """``n`` random letters and digits (fresh per session: a leaked key proves nothing)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def make_openai_key() -> str:
    """A project key shaped like OpenAI's: ``sk-proj-`` and 64 alphanumerics."""
    return "sk-proj-" + _random_alnum(64)


def make_anthropic_key() -> str:
    """A key shaped like Anthropic's: ``sk-ant-api03-``, 93 characters, ``AA``."""
    return "sk-ant-api03-" + _random_alnum(93) + "AA"


def make_gemini_key() -> str:
    """A key shaped like Google's: ``AIza`` and 35 characters."""
    return "AIza" + _random_alnum(35)


@dataclass
class FakeProviderHandle:
    """A running fake provider inside ``ns``, and helpers to run clients next to it.

    Attributes:
        ns: the namespace (provider hostnames resolve to 127.0.0.1 there).
        tls: the certificates in use.
        ca_path: the CA file clients must trust.
        process: the ``ip netns exec ... python -m tests.support.fake_provider`` process.
        log_path: the server's stderr.
        openai_api_key / anthropic_api_key / gemini_api_key: the keys exported to clients.
    """

    ns: NetNs
    tls: TlsMaterial
    process: subprocess.Popen[Any]
    log_path: Path
    openai_api_key: str = field(default_factory=make_openai_key)
    anthropic_api_key: str = field(default_factory=make_anthropic_key)
    gemini_api_key: str = field(default_factory=make_gemini_key)
    port: int = 443

    @property
    def ca_path(self) -> Path:
        """The CA certificate to trust."""
        return self.tls.ca_path

    @property
    def api_keys(self) -> tuple[str, ...]:
        """All keys given to clients (for "no full key in the output" assertions)."""
        return (self.openai_api_key, self.anthropic_api_key, self.gemini_api_key)

    def env(self, extra: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
        """Environment overrides for a client: CA trust, keys, scrubbed proxies, then ``extra``."""
        ca = str(self.ca_path)
        env: dict[str, str | None] = dict.fromkeys(SCRUBBED_ENV)
        env.update(
            {
                "SSL_CERT_FILE": ca,
                "REQUESTS_CA_BUNDLE": ca,
                "NODE_EXTRA_CA_CERTS": ca,
                "CURL_CA_BUNDLE": ca,
                "OPENAI_API_KEY": self.openai_api_key,
                "ANTHROPIC_API_KEY": self.anthropic_api_key,
                "GEMINI_API_KEY": self.gemini_api_key,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if extra:
            env.update(extra)
        return env

    def run(
        self,
        cmd: Cmd,
        env: Mapping[str, str | None] | None = None,
        timeout: float = 60,
        input: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespace with :meth:`env`; text output captured."""
        return self.ns.run(cmd, env=self.env(env), timeout=timeout, input=input, cwd=cwd or REPO_ROOT)

    def popen(
        self,
        cmd: Cmd,
        env: Mapping[str, str | None] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> subprocess.Popen[Any]:
        """Start ``cmd`` inside the namespace with :meth:`env` (killed at teardown at the latest)."""
        return self.ns.popen(cmd, env=self.env(env), cwd=cwd or REPO_ROOT, **kwargs)

    def url(self, host: str = "api.openai.com", path: str = "/") -> str:
        """``https://host/path`` as clients inside the namespace reach it."""
        if not path.startswith("/"):
            path = "/" + path
        netloc = host if self.port == 443 else f"{host}:{self.port}"
        return f"https://{netloc}{path}"

    def curl_json(
        self, host: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> Any:
        """Convenience: curl a JSON endpoint inside the namespace (POST when ``body`` is given)."""
        cmd = ["curl", "-sS", "--fail-with-body", "--cacert", str(self.ca_path), self.url(host, path)]
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}: {value}"]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        res = self.run(cmd, timeout=30)
        if res.returncode != 0:
            raise RuntimeError(f"curl failed ({res.returncode}): {res.stderr}{res.stdout}")
        return json.loads(res.stdout)

    def stats(self) -> dict[str, Any]:
        """The server's counters (``GET /_fake/stats``)."""
        result: dict[str, Any] = self.curl_json("localhost", "/_fake/stats")
        return result


def start_fake_provider(
    ns: NetNs, tls: TlsMaterial, workdir: Path, timeout: float = 20.0
) -> FakeProviderHandle:
    """Start the fake provider on 127.0.0.1:443 inside ``ns`` and wait for its ready file.

    The server's stderr goes to ``workdir/fake_provider.log`` (a pipe nobody reads could fill up
    and block it); its content is included in the error if startup fails.
    """
    ready = workdir / "fake_provider.ready"
    ready.unlink(missing_ok=True)
    log_path = workdir / "fake_provider.log"
    with open(log_path, "wb") as log:
        proc = ns.popen(
            [
                sys.executable,
                "-m",
                "tests.support.fake_provider",
                "--host",
                "127.0.0.1",
                "--port",
                "443",
                "--cert",
                str(tls.cert_path),
                "--key",
                str(tls.key_path),
                "--ready-file",
                str(ready),
            ],
            env={"PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=False,
        )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"fake provider did not start (exit {proc.poll()}):\n{log_path.read_text(errors='replace')}"
            )
        time.sleep(0.02)
    info = json.loads(ready.read_text())
    return FakeProviderHandle(ns=ns, tls=tls, process=proc, log_path=log_path, port=int(info["port"]))


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """``tests/clients/node`` with its npm dependencies installed (``npm ci`` when missing).

    Installed from the root namespace (the test namespace has no network by design) and only
    when ``node_modules`` does not match ``package-lock.json`` yet, so reruns cost nothing.
    """
    node_dir = CLIENTS_DIR / "node"
    marker = node_dir / "node_modules" / ".package-lock.json"
    lock = node_dir / "package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:
        proc = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=node_dir,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"npm ci in {node_dir} failed:\n{proc.stdout}\n{proc.stderr}")
    return node_dir


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """A throwaway CA and a server certificate for every provider hostname (one per session)."""
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def fake_provider(
    tls_material: TlsMaterial, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeProviderHandle]:
    """The fake provider on 127.0.0.1:443 in a fresh namespace; namespace removed afterwards.

    Needs root (namespaces, port 443); skips otherwise. Stale namespaces of crashed runs are
    removed first so they cannot accumulate on CI machines.
    """
    if os.geteuid() != 0:
        pytest.skip("the fake provider needs root (network namespace, port 443)")
    cleanup_stale_namespaces()
    workdir = tmp_path_factory.mktemp("fake_provider")
    with NetNs() as ns:
        yield start_fake_provider(ns, tls_material, workdir)


H2_PORT = 8443
#: Where a local Ollama listens (plain HTTP), and so the plain fake Ollama.
OLLAMA_PORT = 11434


def _start_sibling(
    fake_provider: FakeProviderHandle, workdir: Path, port: int, *flags: str
) -> FakeProviderHandle:
    """Another fake provider in the same namespace, on ``port``, with extra ``flags``."""
    ready = workdir / "ready"
    log_path = workdir / "log"
    tls = fake_provider.tls
    tls_args = [] if "--plain" in flags else ["--cert", str(tls.cert_path), "--key", str(tls.key_path)]
    with open(log_path, "wb") as log:
        proc = fake_provider.ns.popen(
            [sys.executable, "-m", "tests.support.fake_provider", "--host", "127.0.0.1", "--port", str(port),
             *tls_args, "--ready-file", str(ready), *flags],
            env={"PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=False,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
        time.sleep(0.02)
    return dataclasses.replace(fake_provider, process=proc, log_path=log_path, port=port)


@pytest.fixture(scope="module")
def h2_fake(
    fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeProviderHandle]:
    """A second fake provider with ``--http2``, in the same namespace, on :data:`H2_PORT`."""
    handle = _start_sibling(fake_provider, tmp_path_factory.mktemp("fake_provider_h2"), H2_PORT, "--http2")
    yield handle
    handle.process.terminate()
    handle.process.wait(10)


@pytest.fixture(scope="module")
def fake_ollama_plain(
    fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeProviderHandle]:
    """The fake's Ollama API over plain HTTP (no TLS) on 127.0.0.1::data:`OLLAMA_PORT` in the
    fake provider's namespace, as a local ``ollama serve`` would be: clients use
    ``http://127.0.0.1:11434`` (``handle.url()`` builds https URLs and does not apply)."""
    workdir = tmp_path_factory.mktemp("fake_ollama_plain")
    handle = _start_sibling(fake_provider, workdir, OLLAMA_PORT, "--plain")
    yield handle
    handle.process.terminate()
    handle.process.wait(10)
