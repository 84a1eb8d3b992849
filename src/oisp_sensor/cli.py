"""Command line: thin. Parses flags into the config and calls the pipeline.

Every failure a user can cause (not root, no BTF, bad config, unwritable output) ends
in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import orjson

from . import __version__
from .config import ConfigError, SensorConfig, load_config
from .guard import shed_total, summary_text
from .redact import full_mode_warnings

PROG = "oisp-sensor"
EXIT_USAGE = 2
EXIT_FAILURE = 1


def _err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _add_record_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="PATH", help="write events as JSONL to PATH")
    p.add_argument("-c", "--config", metavar="PATH", help="TOML config file")
    p.add_argument(
        "--no-ui", action="store_true", help="no dashboard and no terminal UI (for CI): --no-web --no-tui"
    )
    p.add_argument("--redaction", choices=["safe", "full", "minimal"], help="redaction mode (default: safe)")
    p.add_argument("--append", dest="append", action="store_true", default=None, help="append to the output")
    p.add_argument("--truncate", dest="append", action="store_false", help="truncate the output at start")
    p.add_argument(
        "--ssl-path",
        action="append",
        default=[],
        metavar="FILE",
        help="also probe this libssl or executable (repeatable)",
    )
    p.add_argument("--server-side", action="store_true", help="also report exchanges seen by local servers")
    p.add_argument("--pid", type=int, action="append", default=[], help="only this process (repeatable)")
    p.add_argument(
        "--comm", action="append", default=[], metavar="GLOB", help="only processes named so (repeatable)"
    )
    p.add_argument(
        "--uid", type=int, action="append", default=[], help="only processes of this user (repeatable)"
    )
    p.add_argument(
        "--netns",
        action="append",
        default=[],
        metavar="NS",
        help="only processes in this network namespace: self, /run/netns/NAME or an inode (repeatable)",
    )
    p.add_argument("--no-ssl", action="store_true", help="no TLS capture (no uprobes on OpenSSL)")
    p.add_argument("--no-process", action="store_true", help="no process.exec/fork/exit events")
    p.add_argument("--no-network", action="store_true", help="no network.connect/dns events")
    p.add_argument("--no-file", action="store_true", help="no file.open/read/write/close events")
    p.add_argument(
        "--no-plain-http", action="store_true", help="no capture of plain-HTTP sockets (local model servers)"
    )
    p.add_argument(
        "--all-files",
        action="store_true",
        help="file events of every process (default: AI processes and what they run)",
    )
    p.add_argument(
        "--web",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the web dashboard at http://HOST:PORT/ with its API, the live event stream "
        "(/ws/events) and /metrics (default: on)",
    )
    p.add_argument(
        "--tui",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the terminal UI, when stdout is a terminal (default: on)",
    )
    p.add_argument("--host", metavar="ADDR", help="web address (default 127.0.0.1; others need a token)")
    p.add_argument("--port", type=int, metavar="PORT", help="web port (default 7777; 0 picks a free one)")
    p.add_argument(
        "--token", metavar="TOKEN", help="access token for the dashboard, API and stream (or env OISP_TOKEN)"
    )
    p.add_argument("--status-file", metavar="PATH", help="where to publish live counters (for `status`)")
    p.add_argument(
        "--max-memory-mb",
        type=int,
        metavar="MB",
        help="sensor memory ceiling ([limits], default 1024; 0: none)",
    )
    p.add_argument(
        "--max-cpu-percent",
        type=float,
        metavar="PCT",
        help="sensor CPU ceiling, percent of one core (0: none)",
    )
    p.add_argument("--max-events-per-second", type=int, metavar="N", help="event rate ceiling (0: none)")
    p.add_argument(
        "--save-raw", metavar="PATH", help="also save the raw kernel records (replay with decode-raw)"
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeat for debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    p.add_argument(
        "--ephemeral",
        action="store_true",
        help="write nothing but --output: no status file, no raw capture, no rotation, no caches (CI)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Zero-instrumentation observability for AI traffic."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    rec = sub.add_parser("record", help="capture AI activity until SIGINT/SIGTERM")
    _add_record_options(rec)

    run = sub.add_parser(
        "run", help="capture while running a command: oisp-sensor run [options] -- CMD ARGS..."
    )
    _add_record_options(run)
    run.add_argument(
        "--whole-host",
        action="store_true",
        help="record every process on the host, not only the command and what it starts",
    )
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")

    sub.add_parser("check", help="can this machine capture? (exit 0 if ready)")

    dec = sub.add_parser(
        "decode-raw", help="decode a raw capture (from --save-raw) into events, no kernel needed"
    )
    dec.add_argument("input", metavar="RAWFILE")
    dec.add_argument("-o", "--output", metavar="PATH", required=True, help="JSONL output")
    dec.add_argument("-c", "--config", metavar="PATH", help="TOML config file")
    dec.add_argument(
        "--redaction", choices=["safe", "full", "minimal"], help="redaction mode (default: safe)"
    )

    show = sub.add_parser("show", help="print a recorded JSONL file for people, one line per event")
    show.add_argument("-i", "--input", metavar="FILE", required=True, help="the JSONL file (from --output)")
    show.add_argument("-f", "--follow", action="store_true", help="keep printing what is appended")
    show.add_argument(
        "--type", metavar="T", help="only these event types: ai.response,agent.tool_call, ai.* or ai"
    )
    show.add_argument(
        "--format", choices=["text", "json"], default="text", help="text (default) or json lines"
    )

    rep = sub.add_parser("replay", help="serve a recorded JSONL file in the dashboard as if live")
    rep.add_argument("-i", "--input", metavar="FILE", required=True, help="the JSONL file (from --output)")
    pace = rep.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=float, default=1.0, metavar="X", help="X times the recorded pace (default 1)"
    )
    pace.add_argument("--instant", action="store_true", help="everything at once")
    rep.add_argument("-c", "--config", metavar="PATH", help="TOML config file ([export.websocket], [ui])")
    rep.add_argument("--host", metavar="ADDR", help="web address (default 127.0.0.1; others need a token)")
    rep.add_argument("--port", type=int, metavar="PORT", help="web port (default 7777; 0 picks a free one)")
    rep.add_argument("--token", metavar="TOKEN", help="access token (or env OISP_TOKEN)")
    rep.add_argument(
        "--tui",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also the terminal UI (default: off)",
    )
    rep.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")

    from .ci.args import add_report_arguments, add_validate_arguments

    add_validate_arguments(
        sub.add_parser("validate", help="check a recorded events file against a policy (CI): exit 0/1")
    )
    add_report_arguments(
        sub.add_parser("report", help="requests, tokens, cost, latency of a recorded events file")
    )

    status = sub.add_parser("status", help="counters of the running sensor(s)")
    status.add_argument("--json", action="store_true", help="print the raw status JSON")
    status.add_argument("--status-file", metavar="PATH", help="status file of a specific sensor")
    from .service import add_parser as add_daemon_parser

    add_daemon_parser(sub, _add_record_options)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    over: dict[str, Any] = {}
    if args.output:
        over.setdefault("export", {})["jsonl"] = {"enabled": True, "path": args.output}
        if args.append is not None:
            over["export"]["jsonl"]["append"] = args.append
    elif args.append is not None:
        over.setdefault("export", {})["jsonl"] = {"append": args.append}
    if args.redaction:
        over["redaction"] = {"mode": args.redaction}
    web = getattr(args, "web", None)
    if getattr(args, "no_ui", False):
        over["ui"] = {"web": False, "tui": False}
    # An explicit --web / --tui wins over --no-ui (`--no-ui --web`: the dashboard, no TUI).
    if web is not None:
        over.setdefault("ui", {})["web"] = web
    if getattr(args, "tui", None) is not None:
        over.setdefault("ui", {})["tui"] = args.tui
    if web:
        over.setdefault("export", {})["websocket"] = {"enabled": True}
        over["export"]["metrics"] = {"enabled": True}
    for key in ("host", "port", "token"):
        if getattr(args, key, None) is not None:
            over.setdefault("export", {}).setdefault("websocket", {})[key] = getattr(args, key)
    token = os.environ.get("OISP_TOKEN")
    if token and getattr(args, "token", None) is None and hasattr(args, "no_ui"):
        over.setdefault("export", {}).setdefault("websocket", {}).setdefault("token", token)
    capture: dict[str, Any] = {}
    if args.ssl_path:
        capture["ssl_paths"] = args.ssl_path
    if args.server_side:
        capture["server_side"] = True
    for key, values in (
        ("pids", args.pid),
        ("comm", args.comm),
        ("uids", args.uid),
        ("netns", getattr(args, "netns", [])),
    ):
        if values:
            capture[key] = values
    for flag in ("ssl", "process", "network", "file", "plain_http"):
        if getattr(args, f"no_{flag}", False):
            capture[flag] = False
    if getattr(args, "all_files", False):
        capture["file_scope"] = "all"
    if getattr(args, "cmd", None) is not None and not args.whole_host:
        capture["descendants_of"] = os.getpid()  # `run`: the command and what it starts
    if capture:
        over["capture"] = capture
    for key in ("max_memory_mb", "max_cpu_percent", "max_events_per_second"):
        if getattr(args, key, None) is not None:
            over.setdefault("limits", {})[key] = getattr(args, key)
    if getattr(args, "ephemeral", False):
        # The only file written is --output (no rotation); without it, no JSONL at all.
        jsonl = over.setdefault("export", {}).setdefault("jsonl", {})
        jsonl.update({"enabled": bool(args.output), "rotate_size_mb": 0})
    return over


def _setup_logging(args: argparse.Namespace) -> None:
    level = (
        logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    )
    logging.basicConfig(level=level, format=f"{PROG}: %(levelname)s: %(message)s", stream=sys.stderr)


class _ConsoleView:
    """One line per AI response on stdout: the live view until the terminal UI exists."""

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event_type") != "ai.response":
            return
        data = event.get("data", {})
        usage = data.get("usage") or {}
        proc = event.get("process", {})
        line = (
            f"{event['timestamp'][11:23]} {proc.get('name', '?')}[{proc.get('pid', '?')}] "
            f"{data.get('provider', {}).get('id', '?')} {data.get('model', {}).get('id', '?')} "
            f"status={data.get('status_code', '?')} latency={data.get('latency_ms', '?')}ms "
            f"tokens={usage.get('total_tokens', '-')}"
        )
        print(line, flush=True)


def _start_sensor(
    args: argparse.Namespace, config: SensorConfig, interactive: bool, tui: bool = False
) -> tuple[Any, Any]:
    """Build and start capture + pipeline + exporters: (sensor, exports). Exits with a
    message on failure; a dashboard that cannot listen is only reported (capture goes on)."""
    from .capture.layout import FileMode
    from .capture.loader import CaptureError, CaptureOptions, KernelCapture
    from .export.base import ExporterError
    from .export.factory import build_exporters
    from .pipeline import STATUS_DIR, Pipeline, Sensor

    if os.geteuid() != 0:
        _err("capture needs root (eBPF uprobes): run it with sudo")
        sys.exit(EXIT_FAILURE)
    for warning in full_mode_warnings(config):
        _err(warning)
    try:
        exports = build_exporters(config, dashboard=config.ui.web, tui=tui)
    except ExporterError as exc:
        _err(f"{exc} (or give --token / OISP_TOKEN)" if "token" in str(exc) else str(exc))
        sys.exit(EXIT_USAGE)
    _listen_or_drop_web(exports, tui)
    exporters = exports.exporters
    if not exporters:
        _err("no exporter enabled: give --output PATH or enable one in the config")
        sys.exit(EXIT_USAGE)
    on_event = _ConsoleView() if interactive and not tui else None
    pipeline = Pipeline(config, exporters, on_event=on_event)
    cap = config.capture
    options = CaptureOptions(
        ring_per_cpu_mb=cap.ring_buffer_mb_per_cpu,
        wakeup_bytes=cap.wakeup_kb * 1024,
        poll_timeout_ms=cap.poll_interval_ms,
        extra_targets=list(cap.ssl_paths),
        ssl=cap.ssl,
        process_events=cap.process,
        network_events=cap.network,
        file_mode=FileMode.OFF
        if not cap.file
        else FileMode.ALL
        if cap.file_scope == "all"
        else FileMode.WATCHED,
        socket_capture=cap.plain_http,
        http_ports=tuple(cap.http_ports),
        exec_env=cap.process_env,
        stdio_capture=cap.mcp_stdio,
    )
    status_path = args.status_file or os.path.join(STATUS_DIR, f"{os.getpid()}.json")
    if args.ephemeral:
        status_path = None  # nothing on disk but --output
        sys.dont_write_bytecode = True  # modules imported from now on leave no .pyc
        if args.save_raw or args.status_file:
            _err("--ephemeral writes nothing but --output: drop --save-raw / --status-file")
            sys.exit(EXIT_USAGE)
    sensor: Sensor | None = None
    capture = KernelCapture(
        options,
        on_batch=lambda b: sensor.submit_batch(b) if sensor else None,
        on_exec=pipeline.processes.note_exec,
    )
    if pipeline.netns.active:  # namespaces read while the processes still run
        capture.on_exec_pids = pipeline.netns.note_execs
    sensor = Sensor(pipeline, capture, status_path=status_path)
    exports.set_stats_provider(sensor.stats)
    pipeline.on_ai_process = capture.watch  # its files, and its children's, from now on
    if args.save_raw:
        pipeline.raw_writer = _open_raw_writer(args.save_raw, pipeline)
    try:
        sensor.start()
    except (CaptureError, ExporterError) as exc:
        _err(str(exc))
        for exporter in exporters:
            exporter.close(1.0)
        sys.exit(EXIT_FAILURE)
    if args.output:
        _give_to_sudo_user(args.output)
    summary = capture.probe_summary()
    outputs = exports.describe()
    if not args.quiet:
        _err(
            f"capture attached: {len(summary['targets'])} TLS libraries, {summary['probes']} probes; "
            f"redaction={config.redaction.mode}; events -> {outputs}"
        )
        if exports.server is not None and config.ui.web:
            server = exports.server
            _err(
                f"dashboard: http://{_url_host(server.host)}:{server.port}/"
                + ("?token=..." if server.token else "")
            )
    return sensor, exports


def _give_to_sudo_user(path: str) -> None:
    """`sudo oisp-sensor record --output F`: F belongs to the user who ran sudo, so the CI
    steps after it (grep, validate, artifact upload) can read it without sudo. Only a file
    root owns; it stays 0600."""
    uid, gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
    if not uid.isdigit() or not gid.isdigit() or int(uid) == 0:
        return
    with contextlib.suppress(OSError):
        if os.stat(path).st_uid == 0:
            os.chown(path, int(uid), int(gid))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _listen_or_drop_web(exports: Any, tui: bool) -> None:
    """Start the web server now: when its port cannot be had, say so and go on capturing
    without the exporters that live on it (dashboard, stream, metrics)."""
    from .export.base import ExporterError

    shared = exports.shared
    if shared is None:
        return
    try:
        shared.acquire()  # released when the process ends
    except ExporterError as exc:
        _err(f"dashboard off: {exc}; capture goes on (choose another --port, or --no-web)")
        web_names = {e.name for e in exports.exporters if getattr(e, "shared", None) is shared}
        exports.exporters[:] = [e for e in exports.exporters if e.name not in web_names]
        exports.server = exports.shared = None
        if exports.store is not None and "dashboard" in web_names:
            if tui:  # the terminal UI still has its store, fed without the web server
                from .ui.api import DashboardExporter

                exports.exporters.append(DashboardExporter(exports.store, None, name="tui"))
            else:
                exports.store = None


def _tui_runner() -> Any:
    """The terminal UI's entry point, when this build has one (Textual installed)."""
    try:
        from .ui.tui import run_tui
    except ImportError:
        return None
    return run_tui


def _run_tui(run_tui: Any, store: Any, stop: threading.Event, **extra: Any) -> None:
    """The terminal UI in the foreground until the user quits it or a signal stops the sensor."""
    import inspect

    params = inspect.signature(run_tui).parameters
    kwargs = {k: v for k, v in {"stop": stop, **extra}.items() if k in params}
    try:
        run_tui(store, **kwargs)
    except Exception as exc:  # the UI failing must not lose the capture
        _err(f"terminal UI stopped: {exc}")
        return
    stop.set()


def _open_raw_writer(path: str, pipeline: Any) -> Any:
    from .capture.rawfile import RawWriter

    try:
        f = open(path, "wb")  # noqa: SIM115 - closed by the process exit after the final flush
    except OSError as exc:
        _err(f"cannot write raw capture to {path}: {exc.strerror}")
        sys.exit(EXIT_FAILURE)
    return RawWriter(
        f, {"clock_offset_ns": pipeline.clock.offset_ns, "version": __version__, "host": pipeline.host}
    )


def _summary_line(stats: dict[str, Any]) -> str:
    by_type = stats.get("events_by_type", {})
    kernel = stats.get("kernel", {})
    types = ", ".join(f"{n} {t}" for t, n in sorted(by_type.items())) or "none"
    lost = kernel.get("lost_records", 0) + kernel.get("ctl_lost", 0)
    line = (
        f"stopped: {sum(by_type.values())} events ({types}); kernel: {kernel.get('data_records', 0)} records, "
        f"{lost} lost, {kernel.get('trunc_bytes', 0)} bytes truncated"
    )
    for name, exp in stats.get("exporters", {}).items():
        if exp.get("events_dropped") or exp.get("errors"):
            line += (
                f"; {name}: {exp['events_dropped']} dropped, {exp['errors']} errors ({exp.get('last_error')})"
            )
    guard = stats.get("guard") or {}
    if guard.get("level_changes") or shed_total(guard) or guard.get("metadata_only_events"):
        line += "; " + summary_text(guard)
    return line


def _load(args: argparse.Namespace) -> SensorConfig:
    try:
        config, _path = load_config(args.config, _overrides(args))
    except ConfigError as exc:
        _err(f"config error: {exc}")
        sys.exit(EXIT_USAGE)
    return config


def cmd_record(args: argparse.Namespace) -> int:
    _setup_logging(args)
    from .diagnostics import install_from_env
    from .heap import tune_from_env

    tune_from_env()  # few malloc arenas, free pages trimmed: flat RSS over weeks (heap.py)
    install_from_env()  # OISP_TRACEMALLOC=1: memory growth reports (diagnostics.py)
    config = _load(args)
    if getattr(args, "daemon", False):  # `daemon start`: service defaults (service.py)
        from .service import apply_daemon_defaults

        apply_daemon_defaults(config)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    interactive = not args.no_ui and sys.stdout.isatty()
    run_tui = _tui_runner() if interactive and config.ui.tui else None
    sensor, exports = _start_sensor(args, config, interactive, tui=run_tui is not None)
    # SIGHUP reloads the config (service use); in a terminal it keeps its usual meaning.
    reloader = None
    if getattr(args, "daemon", False) or not sys.stdin.isatty():
        from .service import Reloader

        reloader = Reloader(args, config, sensor, _overrides(args))
        reloader.install()
    if run_tui is not None and exports.store is not None:
        _run_tui(run_tui, exports.store, stop)
    while not stop.wait(0.5):
        if reloader is not None:
            reloader.poll()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stats = sensor.stop()
    if exports.shared is not None:
        exports.shared.release()
    if not args.quiet:
        _err(_summary_line(stats))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        _err("run needs a command: oisp-sensor run [options] -- CMD ARGS...")
        return EXIT_USAGE
    _setup_logging(args)
    config = _load(args)
    sensor, exports = _start_sensor(args, config, interactive=False)
    try:
        child = subprocess.Popen(cmd)
    except OSError as exc:
        _err(f"cannot run {cmd[0]}: {exc.strerror}")
        sensor.stop()
        return 127
    # Signals go to the command; the sensor stops once it has exited.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _f: child.send_signal(signum))
    code = child.wait()
    stats = sensor.stop()
    if exports.shared is not None:
        exports.shared.release()
    if not args.quiet:
        _err(_summary_line(stats))
    return code if code >= 0 else 128 - code


def cmd_decode_raw(args: argparse.Namespace) -> int:
    from .capture.rawfile import RawFileError, read_raw
    from .export.base import ExporterError
    from .export.jsonl import JsonlExporter
    from .pipeline import Pipeline
    from .schema.envelope import Clock

    args.ssl_path, args.server_side, args.append = [], False, None
    args.no_ssl = args.no_process = args.no_network = args.no_file = args.no_plain_http = False
    args.all_files = False
    args.pid, args.comm, args.uid = [], [], []
    config = _load(args)
    try:
        f = open(args.input, "rb")  # noqa: SIM115
    except OSError as exc:
        _err(f"cannot read {args.input}: {exc.strerror}")
        return EXIT_FAILURE
    with f:
        try:
            metadata, records = read_raw(f)
        except RawFileError as exc:
            _err(f"{args.input}: {exc}")
            return EXIT_FAILURE
        exporter = JsonlExporter(config.export.jsonl)
        pipeline = Pipeline(config, [exporter], clock=Clock(metadata.get("clock_offset_ns")))
        try:
            exporter.start()
        except ExporterError as exc:
            _err(str(exc))
            return EXIT_FAILURE
        batch: list[bytes] = []
        try:
            for rec in records:
                batch.append(rec)
                if len(batch) >= 1024:
                    pipeline.process_raw(batch)
                    batch = []
        except RawFileError as exc:
            _err(f"{args.input}: {exc} (decoded what came before)")
        pipeline.process_raw(batch)
        pipeline.finish()
        exporter.close(30.0)
    stats = pipeline.stats()
    _err(_summary_line(stats))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .ui.show import show

    if not os.path.isfile(args.input):
        _err(f"cannot read {args.input}: no such file")
        return EXIT_FAILURE
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        counts = show(args.input, follow=args.follow, types=args.type, fmt=args.format, stop=stop.is_set)
    except BrokenPipeError:  # `show ... | head`: the reader has had enough
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        _err(f"cannot read {args.input}: {exc.strerror or exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 0
    if counts.malformed:
        _err(
            f"{counts.malformed} line{'s' if counts.malformed != 1 else ''} of {args.input} "
            f"{'are' if counts.malformed != 1 else 'is'} not events and were skipped "
            f"(first: line {counts.first_malformed})"
        )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .export.base import ExporterError
    from .ui.replay import ReplayState, attach_state, build, feed

    if args.speed <= 0:
        _err("--speed must be positive")
        return EXIT_USAGE
    if not os.path.isfile(args.input):
        _err(f"cannot read {args.input}: no such file")
        return EXIT_FAILURE
    over: dict[str, Any] = {"export": {"jsonl": {"enabled": False}, "websocket": {"enabled": True}}}
    for key in ("host", "port", "token"):
        if getattr(args, key) is not None:
            over["export"]["websocket"][key] = getattr(args, key)
    if args.token is None and os.environ.get("OISP_TOKEN"):
        over["export"]["websocket"].setdefault("token", os.environ["OISP_TOKEN"])
    try:
        config, _path = load_config(args.config, over)
    except ConfigError as exc:
        _err(f"config error: {exc}")
        return EXIT_USAGE
    # Only what a replay serves: no metrics, OTLP, Kafka or webhook deliveries of old events.
    for name in ("metrics", "otlp", "kafka", "webhook"):
        getattr(config.export, name).enabled = False
    try:
        exports = build(config)
        for exporter in exports.exporters:
            exporter.start()
    except ExporterError as exc:
        _err(f"{exc} (or give --token / OISP_TOKEN)" if "token" in str(exc) else str(exc))
        return EXIT_FAILURE
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    state = ReplayState(args.input)
    attach_state(exports, state)
    server = exports.server
    assert server is not None and exports.store is not None
    if not args.quiet:
        _err(
            f"dashboard: http://{_url_host(server.host)}:{server.port}/"
            + ("?token=..." if server.token else "")
        )
    feeder = threading.Thread(
        target=feed, args=(exports, state, args.speed, args.instant, stop), name="oisp-replay", daemon=True
    )
    feeder.start()
    run_tui = _tui_runner() if args.tui and sys.stdout.isatty() else None
    if run_tui is not None:
        _run_tui(run_tui, exports.store, stop)
    else:
        reported = False
        while not stop.wait(0.2):
            if state.done and not reported:
                reported = True
                if not args.quiet:
                    _err(
                        f"replayed {state.events} events from {args.input}"
                        + (f" ({state.malformed} malformed lines skipped)" if state.malformed else "")
                        + "; serving until Ctrl-C"
                    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    feeder.join(2.0)
    from .pipeline import close_exporters

    close_exporters(exports.exporters, 2.0)
    return 0


def cmd_check(_args: argparse.Namespace) -> int:
    from .check import format_results, run_checks

    text, ready = format_results(run_checks())
    print(text)
    return 0 if ready else EXIT_FAILURE


def cmd_status(args: argparse.Namespace) -> int:
    from .pipeline import STATUS_DIR

    paths = [args.status_file] if args.status_file else sorted(glob.glob(os.path.join(STATUS_DIR, "*.json")))
    found = 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                stats = orjson.loads(f.read())
        except (OSError, orjson.JSONDecodeError):
            continue
        pid = stats.get("sensor", {}).get("pid", 0)
        if pid and not os.path.exists(f"/proc/{pid}"):
            continue  # a sensor that died without cleaning up
        found += 1
        if args.json:
            print(orjson.dumps(stats).decode())
            continue
        print(_status_text(stats, path))
    if not found:
        _err(
            "no running sensor found"
            + (f" at {args.status_file}" if args.status_file else f" in {STATUS_DIR}")
        )
        return EXIT_FAILURE
    return 0


def _status_text(stats: dict[str, Any], path: str) -> str:
    sensor, kernel, capture = stats.get("sensor", {}), stats.get("kernel", {}), stats.get("capture", {})
    lines = [
        f"sensor pid {sensor.get('pid')} (v{sensor.get('version')}), up {sensor.get('uptime_s', 0):.0f}s  [{path}]",
        f"  probes: {capture.get('probes', 0)} on {len(capture.get('targets', []))} TLS libraries"
        + (f", {len(capture['failed'])} failed" if capture.get("failed") else ""),
        f"  kernel: {kernel.get('data_records', 0)} records ({kernel.get('data_bytes', 0)} bytes), "
        f"lost {kernel.get('lost_records', 0)} records / {kernel.get('lost_bytes', 0)} bytes, "
        f"truncated {kernel.get('trunc_bytes', 0)} bytes, control records lost {kernel.get('ctl_lost', 0)}",
        "  events: "
        + (", ".join(f"{t}={n}" for t, n in sorted(stats.get("events_by_type", {}).items())) or "none"),
    ]
    if stats.get("guard"):
        lines.append("  " + summary_text(stats["guard"]))
    for name, exp in stats.get("exporters", {}).items():
        details = exp.get("details") or {}
        extra = "".join(
            f", {key} {value}" for key, value in sorted(details.items()) if not isinstance(value, dict | list)
        )
        lines.append(
            f"  export {name}: {exp.get('status')}, submitted {exp.get('events_submitted', 0)}, "
            f"exported {exp.get('events_exported')}, retried {exp.get('events_retried', 0)}, "
            f"dropped {exp.get('events_dropped')}, errors {exp.get('errors', 0)}, queue {exp.get('queue_depth')}"
            + extra
            + (f", last error: {exp['last_error']}" if exp.get("last_error") else "")
        )
    return "\n".join(lines)


def _ci_validate(args: argparse.Namespace) -> int:
    from .ci.validate import run

    return run(args)


def _ci_report(args: argparse.Namespace) -> int:
    from .ci.report import run

    return run(args)


def _daemon(args: argparse.Namespace, argv: list[str]) -> int:
    from .service import cmd_daemon

    return cmd_daemon(args, argv, cmd_record)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "record": cmd_record,
        "run": cmd_run,
        "check": cmd_check,
        "status": cmd_status,
        "decode-raw": cmd_decode_raw,
        "show": cmd_show,
        "replay": cmd_replay,
        "validate": _ci_validate,
        "report": _ci_report,
        "daemon": lambda a: _daemon(a, sys.argv[1:] if argv is None else argv),
    }
    if args.command not in handlers:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
