"""Service mode: `oisp-sensor daemon start|stop|status|reload|restart`, and config reload.

`daemon start --foreground` is what systemd (deploy/systemd/oisp-sensor.service) and the
container image run: `record` without UI, with service defaults (events to
/var/lib/oisp-sensor/events.jsonl rotated at 100 MB, a pid file under /run, counters in
/run/oisp-sensor/daemon.json), logs on stderr (the journal) or in `--log-file`.
`daemon start` without it starts that same process in the background, logging to
/var/log/oisp-sensor/sensor.log, and returns once capture is attached.

The pid file is locked (flock) for the daemon's lifetime: a second daemon refuses to start,
and a pid file left by a crash is recognised as stale (no lock held), so a reused pid is
never signalled by mistake.

SIGHUP (`daemon reload`, systemd's ExecReload, logrotate's postrotate) reopens the log file
and reloads the config: changed `[export.jsonl|otlp|kafka|webhook]` sections and
`[redaction]` apply at once; capture goes on meanwhile. The swap happens in the pipeline
thread between two batches: every event made before it goes to the old exporters, which
are flushed and closed, and every later event to the new ones, so none is lost or doubled.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .config import ConfigError, SensorConfig, load_config

log = logging.getLogger(__name__)

RUN_DIR = "/run/oisp-sensor"
DEFAULT_PID_FILE = f"{RUN_DIR}/oisp-sensor.pid"
DEFAULT_STATUS_FILE = f"{RUN_DIR}/daemon.json"
DEFAULT_OUTPUT = "/var/lib/oisp-sensor/events.jsonl"
DEFAULT_LOG_FILE = "/var/log/oisp-sensor/sensor.log"
# Exporters a reload can replace; the web server's (dashboard, stream, metrics) keep their
# port and settings until a restart.
RELOADABLE = ("jsonl", "otlp", "kafka", "webhook")
RESTART_ONLY = ("capture", "limits", "ui", "providers", "apps", "kubernetes")
EXIT_NOT_RUNNING = 3  # LSB: "program is not running" (status)


def add_parser(sub: Any, add_record_options: Callable[[argparse.ArgumentParser], None]) -> None:
    d = sub.add_parser(
        "daemon",
        help="run as a service: daemon start|stop|status|reload|restart",
        description="Service mode. start: in the background (returns once capture is attached); "
        "start --foreground: for systemd and containers. reload: SIGHUP (config and log file).",
    )
    d.add_argument("action", choices=["start", "stop", "status", "reload", "restart"])
    d.add_argument("--foreground", action="store_true", help="stay in the foreground (systemd, containers)")
    d.add_argument("--pid-file", default=DEFAULT_PID_FILE, metavar="PATH", help=f"default {DEFAULT_PID_FILE}")
    d.add_argument(
        "--log-file",
        metavar="PATH",
        help=f"log here (default in the background: {DEFAULT_LOG_FILE}; foreground: stderr/journal)",
    )
    d.add_argument("--timeout", type=float, default=60.0, help="seconds start/stop wait (default 60)")
    d.add_argument("--json", action="store_true", help="status: the raw status JSON")
    add_record_options(d)


# ---- the pid file -------------------------------------------------------------------------


def running_pid(pid_file: str) -> int | None:
    """The daemon's pid if one holds the pid file's lock, else None (no file, or stale)."""
    try:
        fd = os.open(pid_file, os.O_RDONLY)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = f.read().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


class PidFile:
    """Held by the running daemon: written, locked, removed at exit."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise RuntimeError(f"already running (pid {running_pid(path)}, {path})") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)


# ---- logs ---------------------------------------------------------------------------------


def open_log(path: str) -> None:
    """Point stdout and stderr (the logging handler writes there) at `path`, appended."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


# ---- config --------------------------------------------------------------------------------


def apply_daemon_defaults(config: SensorConfig) -> None:
    """Service defaults for what neither the config file, the environment nor a flag set:
    events under /var/lib/oisp-sensor, rotated (100 MB x 5)."""
    jsonl = config.export.jsonl
    given = jsonl.model_fields_set
    if "path" not in given:
        jsonl.path = DEFAULT_OUTPUT
    if "rotate_size_mb" not in given:
        jsonl.rotate_size_mb = 100


class Reloader:
    """SIGHUP handling for a running `record` (daemon or not): set from the signal handler,
    acted on by the main thread's wait loop."""

    def __init__(
        self, args: argparse.Namespace, config: SensorConfig, sensor: Any, overrides: dict[str, Any]
    ) -> None:
        self.args = args
        self.config = config
        self.sensor = sensor
        self.overrides = overrides
        self.requested = threading.Event()
        self.count = 0

    def install(self) -> None:
        signal.signal(signal.SIGHUP, lambda *_: self.requested.set())

    def poll(self) -> None:
        if self.requested.is_set():
            self.requested.clear()
            self.reload()

    def reload(self) -> bool:
        """Reopen the log, reload the config; False (and the old config kept) on an error."""
        log_file = getattr(self.args, "log_file", None)
        if log_file:
            try:
                open_log(log_file)
            except OSError as exc:
                log.error("reload: cannot reopen the log file %s: %s", log_file, exc.strerror)
        try:
            new, _path = load_config(self.args.config, self.overrides)
        except ConfigError as exc:
            log.error("reload failed, the running config is kept: %s", exc)
            return False
        if getattr(self.args, "daemon", False):
            apply_daemon_defaults(new)
        changed = [n for n in RELOADABLE if getattr(new.export, n) != getattr(self.config.export, n)]
        restart = [n for n in RESTART_ONLY if getattr(new, n) != getattr(self.config, n)]
        restart += [
            f"export.{n}"
            for n in ("websocket", "metrics")
            if getattr(new.export, n) != getattr(self.config.export, n)
        ]
        if restart:
            log.warning("reload: changes to %s take effect at the next restart", ", ".join(restart))
        if not changed and new.redaction == self.config.redaction:
            log.warning("reload: no exporter or redaction change")
            return True
        done = self.sensor.call_in_pipeline(lambda: self._swap(new, changed))
        if not done.wait(30):
            log.error("reload: the pipeline did not take the new config within 30 s")
            return False
        self.count += 1
        log.warning(
            "reloaded the config (%s%s)",
            ", ".join(changed) or "no exporter",
            " and redaction" if new.redaction != self.config.redaction else "",
        )
        self.config = new
        return True

    def _swap(self, new: SensorConfig, changed: list[str]) -> None:
        """In the pipeline thread: flush and close the changed exporters, start their new
        versions, hand the pipeline the new list."""
        from .export.base import ExporterError
        from .export.factory import build_exporters
        from .pipeline import close_exporters

        pipeline = self.sensor.pipeline
        pipeline.dispatch()  # what was made for the old exporters goes to them
        current = list(pipeline.exporters)
        close_exporters([e for e in current if e.name in changed], 10.0)
        fresh: list[Any] = []
        for exporter in _build_only(new, changed, build_exporters):
            try:
                exporter.start()
            except ExporterError as exc:
                log.error("reload: %s stays off: %s", exporter.name, exc)
                continue
            fresh.append(exporter)
        pipeline.reconfigure(new, [e for e in current if e.name not in changed] + fresh)


def _build_only(config: SensorConfig, names: list[str], build: Any) -> list[Any]:
    """The exporters of sections `names` of `config` (those enabled), nothing else."""
    partial = config.model_copy(deep=True)
    for name in ("jsonl", "websocket", "metrics", "otlp", "kafka", "webhook"):
        section = getattr(partial.export, name)
        section.enabled = section.enabled and name in names
    return list(build(partial).exporters)


# ---- the daemon command --------------------------------------------------------------------


def _say(message: str) -> None:
    print(f"oisp-sensor: {message}", file=sys.stderr, flush=True)


def cmd_daemon(args: argparse.Namespace, argv: list[str], record: Callable[[argparse.Namespace], int]) -> int:
    action = args.action
    if action == "start":
        return _foreground(args, record) if args.foreground else _background(args, argv)
    if action == "stop":
        return stop(args.pid_file, args.timeout)
    if action == "status":
        return _status(args)
    if action == "reload":
        pid = running_pid(args.pid_file)
        if pid is None:
            _say(f"not running ({args.pid_file})")
            return EXIT_NOT_RUNNING
        os.kill(pid, signal.SIGHUP)
        _say(f"reload requested (pid {pid})")
        return 0
    # restart
    code = stop(args.pid_file, args.timeout)
    if code not in (0, EXIT_NOT_RUNNING):
        return code
    start_argv = [("start" if a == "restart" else a) for a in argv]
    return _background(args, start_argv)


def _foreground(args: argparse.Namespace, record: Callable[[argparse.Namespace], int]) -> int:
    try:
        pid_file = PidFile(args.pid_file)
    except RuntimeError as exc:
        _say(str(exc))
        return 1
    except OSError as exc:
        _say(f"cannot write the pid file {args.pid_file}: {exc.strerror}")
        return 1
    try:
        if args.log_file:
            open_log(args.log_file)
        args.no_ui = True
        args.daemon = True
        args.status_file = args.status_file or DEFAULT_STATUS_FILE
        return record(args)
    finally:
        pid_file.release()


def _background(args: argparse.Namespace, argv: list[str]) -> int:
    pid = running_pid(args.pid_file)
    if pid is not None:
        _say(f"already running (pid {pid})")
        return 0
    log_file = args.log_file or DEFAULT_LOG_FILE
    cmd = [sys.executable, "-m", "oisp_sensor", *argv, "--foreground"]
    if not args.log_file:
        cmd += ["--log-file", log_file]
    try:
        os.makedirs(os.path.dirname(log_file) or ".", exist_ok=True)
        offset = os.path.getsize(log_file) if os.path.exists(log_file) else 0
    except OSError as exc:
        _say(f"cannot write the log file {log_file}: {exc.strerror}")
        return 1
    child = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # no controlling terminal: a closed shell does not stop it
    )
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        text = _read_from(log_file, offset)
        if "capture attached" in text:
            _say(f"started (pid {child.pid}); log: {log_file}")
            return 0
        if child.poll() is not None:
            _say(f"failed to start (exit {child.returncode}):\n{text.strip()}")
            return 1
        time.sleep(0.1)
    _say(f"not attached after {args.timeout:.0f} s (pid {child.pid} still starting); see {log_file}")
    return 1


def _read_from(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def stop(pid_file: str, timeout: float) -> int:
    pid = running_pid(pid_file)
    if pid is None:
        _say(f"not running ({pid_file})")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # The lock is released once everything is flushed; then the process exits.
        if running_pid(pid_file) is None and not _alive(pid):
            _say(f"stopped (pid {pid})")
            return 0
        time.sleep(0.05)
    _say(f"pid {pid} did not stop within {timeout:.0f} s (still flushing?)")
    return 1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")  # a zombie has exited (its parent reaps it)


def _status(args: argparse.Namespace) -> int:
    import orjson

    from .cli import _status_text

    pid = running_pid(args.pid_file)
    if pid is None:
        _say(f"not running ({args.pid_file})")
        return EXIT_NOT_RUNNING
    path = args.status_file or DEFAULT_STATUS_FILE
    try:
        with open(path, "rb") as f:
            stats = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        print(f"running (pid {pid}), no counters yet ({path})")
        return 0
    print(orjson.dumps(stats).decode() if args.json else _status_text(stats, path))
    return 0
