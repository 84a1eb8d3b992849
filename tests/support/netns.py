"""Private network namespaces in which real AI clients reach a fake provider by its real hostname.

Why a namespace: the sensor must observe genuine clients connecting to ``api.openai.com`` and
friends, but this machine has no internet and tests must never send traffic anywhere but loopback.
Inside a namespace of our own, only ``lo`` exists, and ``ip netns exec`` bind-mounts
``/etc/netns/NAME/hosts`` over ``/etc/hosts``, so the provider hostnames resolve to 127.0.0.1 for
the processes started there and for nobody else. The fake provider can then bind port 443 there
without disturbing the host, and several test runs can coexist (each has its own namespace). The
sensor runs in the root namespace and still sees these processes: uprobes are not namespaced.

Namespaces are named ``oisp-t-<creator pid>-<random>``. The creator pid lets
:func:`cleanup_stale_namespaces` delete what a crashed run left behind without touching the
namespaces of a concurrent run that is still alive.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from tests.support.tls import PROVIDER_HOSTNAMES

#: Prefix of every namespace this module creates; nothing else is ever deleted.
NS_PREFIX = "oisp-t-"
#: Where ``ip netns exec`` looks for per-namespace replacements of files under /etc.
NETNS_ETC = Path("/etc/netns")
#: Where iproute2 keeps the bind mounts that name namespaces.
NETNS_RUN = Path("/run/netns")

_NAME_RE = re.compile(rf"^{re.escape(NS_PREFIX)}(\d+)-[0-9a-f]+$")
_LIVE: set[NetNs] = set()

Cmd = Sequence[str | os.PathLike[str]]


class NetNsError(RuntimeError):
    """Raised when a namespace cannot be set up (usually: not running as root)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip`` with ``args``; raise :class:`NetNsError` with its stderr when ``check`` fails."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise NetNsError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def list_namespaces() -> list[str]:
    """Names of all named network namespaces (``ip netns list`` prints ``NAME (id: N)``)."""
    proc = _ip("netns", "list", check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def namespace_pids(name: str) -> list[int]:
    """Pids of the processes whose network namespace is ``name``."""
    proc = _ip("netns", "pids", name, check=False)
    return [int(tok) for tok in proc.stdout.split() if tok.isdigit()]


def hosts_file_text(hostnames: Iterable[str] = PROVIDER_HOSTNAMES, address: str = "127.0.0.1") -> str:
    """The ``/etc/hosts`` seen inside the namespace: localhost plus each provider on ``address``."""
    lines = [
        "# written by tests/support/netns.py: provider hostnames point at the local fake provider",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    lines.extend(f"{address}\t{host}" for host in hostnames)
    return "\n".join(lines) + "\n"


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` exists (signal 0 checks existence and permission without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group_or_pid(proc: subprocess.Popen[Any], sig: int) -> None:
    """Signal ``proc``'s process group (it was started in its own session), falling back to the pid."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def _stop_process(proc: subprocess.Popen[Any], grace: float = 3.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not exited within ``grace`` seconds."""
    if proc.poll() is None:
        _kill_group_or_pid(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_group_or_pid(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
    else:
        # The leader is gone but children started in its session may still run.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _remove_namespace(name: str) -> None:
    """Kill what still runs inside ``name``, delete it and its /etc/netns directory. Idempotent.

    Every process in the namespace was started by a test (nothing else can enter a namespace we
    just created), so killing them is ours to do; a namespace cannot be fully freed otherwise.
    """
    for _ in range(3):
        pids = [pid for pid in namespace_pids(name) if pid != os.getpid()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    if name in list_namespaces():
        _ip("netns", "delete", name, check=False)
    shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def cleanup_stale_namespaces() -> list[str]:
    """Remove ``oisp-t-*`` namespaces (and /etc/netns dirs) whose creating process is dead.

    Call at the start of a session: a run killed by SIGKILL or a CI timeout cannot clean up after
    itself. Namespaces of a concurrent, still-running test session are left alone. Returns the
    names removed.
    """
    removed: list[str] = []
    names = set(list_namespaces())
    if NETNS_ETC.is_dir():
        names.update(p.name for p in NETNS_ETC.iterdir() if p.is_dir())
    for name in sorted(names):
        if not name.startswith(NS_PREFIX):
            continue
        match = _NAME_RE.match(name)
        if match and _pid_alive(int(match.group(1))):
            continue
        _remove_namespace(name)
        removed.append(name)
    return removed


class NetNs:
    """A private network namespace with ``lo`` up and provider hostnames resolving to loopback.

    Use as a context manager (or call :meth:`create` / :meth:`close`). Commands run inside with
    :meth:`run` or :meth:`popen`; ``close`` kills everything still running inside, deletes the
    namespace and its ``/etc/netns`` directory, and is safe to call repeatedly or after a
    partially failed :meth:`create`. An ``atexit`` hook closes namespaces a test forgot.
    """

    def __init__(
        self,
        hostnames: Iterable[str] = PROVIDER_HOSTNAMES,
        address: str = "127.0.0.1",
        name: str | None = None,
    ) -> None:
        """Prepare (but do not create) a namespace; ``name`` must start with ``oisp-t-``."""
        self.name = name or f"{NS_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        if not self.name.startswith(NS_PREFIX):
            raise ValueError(f"namespace name must start with {NS_PREFIX!r}: {self.name!r}")
        self.hostnames = tuple(hostnames)
        self.address = address
        self._procs: list[subprocess.Popen[Any]] = []
        self._created = False

    # -- lifecycle ---------------------------------------------------------------------------
    def create(self) -> NetNs:
        """Create the namespace, write its hosts/resolv.conf, bring ``lo`` up. Returns ``self``."""
        if os.geteuid() != 0:
            raise NetNsError("network namespaces need root")
        _LIVE.add(self)
        self._created = True
        try:
            etc = NETNS_ETC / self.name
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts_file_text(self.hostnames, self.address))
            # Any name not in hosts is looked up on loopback and refused at once: DNS queries can
            # never wander off (there is no route anyway, this just makes it explicit and fast).
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            _ip("netns", "add", self.name)
            _ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop processes started here, delete the namespace and ``/etc/netns/NAME``. Idempotent."""
        procs, self._procs = self._procs, []
        for proc in procs:
            _stop_process(proc)
        if self._created:
            _remove_namespace(self.name)
            self._created = False
        _LIVE.discard(self)

    def __enter__(self) -> NetNs:
        """Create the namespace for a ``with`` block."""
        return self.create()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Always clean up, whatever happened in the block."""
        self.close()

    @property
    def exists(self) -> bool:
        """Whether the namespace currently exists (checked against ``ip netns list``)."""
        return self.name in list_namespaces()

    # -- running commands --------------------------------------------------------------------
    def argv(self, cmd: Cmd) -> list[str]:
        """``cmd`` prefixed with ``ip netns exec NAME`` (which execs it: the pid is the command's)."""
        return ["ip", "netns", "exec", self.name, *(os.fspath(part) for part in cmd)]

    @staticmethod
    def _env(env: Mapping[str, str | None] | None) -> dict[str, str]:
        """The current environment overlaid with ``env``; a ``None`` value removes the variable.

        Tests pass only what they change; removal lets them drop e.g. proxy settings or an
        ``OPENAI_BASE_URL`` inherited from a developer's shell, which would bypass the fake.
        """
        merged = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def popen(
        self,
        cmd: Cmd,
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr: int | IO[Any] | None = subprocess.PIPE,
        text: bool = True,
        **kwargs: Any,
    ) -> subprocess.Popen[Any]:
        """Start ``cmd`` inside the namespace in a new session; it is killed by :meth:`close`.

        ``env`` is merged over ``os.environ`` (``None`` removes a variable). The new session gives the process its own group so
        that cleanup can kill its children too.
        """
        if not self._created:
            raise NetNsError(f"namespace {self.name} is not created")
        proc: subprocess.Popen[Any] = subprocess.Popen(
            self.argv(cmd),
            env=self._env(env),
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            text=text,
            start_new_session=True,
            **kwargs,
        )
        self._procs.append(proc)
        return proc

    def run(
        self,
        cmd: Cmd,
        *,
        env: Mapping[str, str | None] | None = None,
        timeout: float = 60,
        input: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespace to completion, capturing text stdout/stderr.

        Unlike ``subprocess.run``, a timeout kills the whole process group (a client's helper
        processes included) before :class:`subprocess.TimeoutExpired` is raised.
        """
        proc = self.popen(
            cmd, env=env, cwd=cwd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL
        )
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_process(proc, grace=1.0)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(proc.args, timeout, output=out, stderr=err) from None
        finally:
            with contextlib.suppress(ValueError):
                self._procs.remove(proc)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check:
            result.check_returncode()
        return result

    def __repr__(self) -> str:
        """Show the name, which is what one needs to inspect it by hand (``ip netns exec``)."""
        return f"NetNs({self.name!r})"


@atexit.register
def _close_forgotten() -> None:
    """Last-resort cleanup of namespaces still open when the interpreter exits normally."""
    for ns in list(_LIVE):
        with contextlib.suppress(Exception):
            ns.close()
