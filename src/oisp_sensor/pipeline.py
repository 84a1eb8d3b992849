"""Wires capture -> decode -> enrich -> redact -> export, and owns shutdown and counters.

Threads: the capture poll thread only copies ring-buffer records into batches; the
pipeline thread decodes them; each exporter has its own worker. Shutdown order matters:
drain the ring buffer, finish pending exchanges, then flush every exporter.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import orjson

from . import __version__
from .capture.layout import RecordKind
from .capture.parse import MalformedRecord, data_key, parse_record, record_kind
from .capture.rawfile import RawWriter
from .capture.records import (
    ConnCloseRecord,
    DataRecord,
    DnsRecord,
    ExecRecord,
    FileCloseRecord,
    FileOpenRecord,
    FirstSendRecord,
    ForkRecord,
    NetConnectRecord,
    ProcessExitRecord,
    Source,
)
from .config import SensorConfig
from .decode.agent_sessions import AgentSessions
from .decode.ai_events import AiEventBuilder
from .decode.connection import ConnectionTracker
from .decode.file_events import FileEventBuilder
from .decode.mcp_stdio import McpStdio
from .decode.messages import DecodeOutput
from .decode.pricing import Pricing
from .decode.providers.registry import ProviderRegistry
from .decode.system_events import SystemEventBuilder
from .enrich import kubernetes
from .enrich.apps import AppMatcher
from .enrich.filters import ProcessFilter
from .enrich.host import host_context
from .enrich.netns import NetnsFilter
from .enrich.process import ProcessCache, ProcessInfo, read_process
from .enrich.web import CallContexts, WebApps
from .export.base import Exporter
from .guard import Guard
from .redact import Redactor, exporter_modes
from .schema.envelope import Clock, envelope
from .schema.events import AI_REQUEST, Confidence, SensorEvent

log = logging.getLogger(__name__)

STATUS_DIR = "/run/oisp-sensor"
_STDIO = Source.STDIO


_CLK_TCK = os.sysconf("SC_CLK_TCK")


@functools.lru_cache(maxsize=4096)
def _resolve_exe(filename: str) -> str:
    """The executable an execve path names, as /proc/PID/exe would show it (symlinks such as
    a venv's python resolved), for processes gone before /proc could be read. Relative
    paths depend on the process's cwd, unknown by then: kept as given."""
    if not filename.startswith("/"):
        return filename
    try:
        return os.path.realpath(filename, strict=True)
    except OSError:
        return filename


class Pipeline:
    """Everything after capture, usable without the kernel (replay, tests, benchmarks)."""

    def __init__(
        self,
        config: SensorConfig,
        exporters: list[Exporter],
        clock: Clock | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.exporters = exporters
        self.clock = clock or Clock()
        self.on_event = on_event
        self.host = host_context()
        node_name = kubernetes.configure(config.kubernetes)
        if node_name:
            self.host["node_name"] = node_name
        self.processes = ProcessCache()
        # app of every event (per process image), web context and host of every AI call
        self.apps = AppMatcher.from_config(config.apps, self.processes.get)
        self.processes.on_evict = self.apps.forget
        self.calls = CallContexts(WebApps.default())
        registry = ProviderRegistry.default()
        for host, provider_id in config.providers.extra_hosts.items():
            registry.add_host(host, provider_id)
        self.tracker = ConnectionTracker(
            max_body_bytes=config.capture.max_body_mb * 1024 * 1024,
            report_server_side=config.capture.server_side,
        )
        self.builder = AiEventBuilder(
            registry,
            self.clock.new_event_id,
            streaming_chunks=config.capture.streaming_chunks,
            # Local model servers (Ollama, LM Studio, vLLM, ...) cost nothing per token.
            pricing=Pricing(
                self.clock.wall_ns, local_providers=frozenset(p.id for p in registry if p.default_ports)
            ),
        )
        # agent.session / agent.plan_step over the AI events; process trees from the cache
        self.sessions = AgentSessions(self.clock.new_event_id, parent_of=self._parent_of)
        self.system = SystemEventBuilder(
            self.clock.new_event_id, process=config.capture.process, network=config.capture.network
        )
        self.mcp_stdio = McpStdio(self.builder.mcp_tracker, self.processes.get)
        cap = config.capture
        self.files = FileEventBuilder(
            self.clock.new_event_id,
            cwd_of=lambda pid: self.processes.get(pid).cwd,
            include=cap.file_include,
            exclude=cap.file_exclude,
        )
        # Called with the pid of every process seen making an AI call (capture then
        # records its files and its children's).
        self.on_ai_process: Callable[[int], None] | None = None
        self.redactor = Redactor.from_config(config.redaction, providers=registry)
        self._registry = registry
        self._set_modes(config)
        self.filter = ProcessFilter(cap.pids, cap.comm, cap.uids, cap.exclude_comm, cap.descendants_of)
        self.netns = NetnsFilter(cap.netns)  # only these network namespaces' processes
        self.idle_ns = int(config.capture.idle_timeout_s * 1e9)
        self.counts: dict[str, int] = {"records": 0, "malformed_records": 0, "events": 0, "errors": 0}
        self.events_by_type: dict[str, int] = {}
        self._last_expire = 0
        self._latest_ts = 0
        self._seen_pids: set[int] = set()  # pids whose /proc context is cached
        self._pending: dict[str, list[dict[str, Any]]] = {}  # mode -> events not yet exported
        self.raw_writer: RawWriter | None = None  # --save-raw: keep the records as captured
        # Self-protection ([limits]): what to shed under memory, CPU or event-rate pressure.
        self.guard = Guard.from_config(config.limits)
        self._body_limit = self.tracker.body_limit
        self._guard_level = 0

    def _set_modes(self, config: SensorConfig) -> None:
        # One redacted copy per distinct mode among the exporters (per-exporter overrides).
        modes = exporter_modes(config)
        # The dashboard and the terminal UI show what the live stream carries: the
        # [export.websocket] override applies to them too (the dashboard turns it on).
        live = config.export.websocket.redaction or config.redaction.mode
        for name in ("websocket", "dashboard", "tui"):
            modes.setdefault(name, live)
        self._exporter_mode = {e.name: modes.get(e.name, config.redaction.mode) for e in self.exporters}
        self._modes = sorted(set(self._exporter_mode.values())) or [config.redaction.mode]
        # The live view shows what the strictest exporter gets, never more.
        self._view_mode = next(m for m in ("minimal", "safe", "full") if m in self._modes)

    def reconfigure(self, config: SensorConfig, exporters: list[Exporter]) -> None:
        """A config reload (SIGHUP), in the pipeline thread between batches: the events made
        so far go to the exporters they were made for, then `exporters` (the same list object,
        updated in place: status and health read it) and the redaction of `config` apply.
        Capture settings stay those the sensor started with."""
        self.dispatch()
        self.exporters[:] = exporters
        self.config = self.config.model_copy(update={"export": config.export, "redaction": config.redaction})
        self.redactor = Redactor.from_config(config.redaction, providers=self._registry)
        self._set_modes(self.config)

    # ---- per record -----------------------------------------------------------------

    def process_raw(self, buffers: list[bytes]) -> None:
        if self.guard.level != self._guard_level:
            self._apply_guard_level()
        if self.raw_writer is not None:
            try:
                self.raw_writer.write(buffers)
            except OSError as exc:
                log.error("cannot save raw records any more: %s", exc.strerror)
                self.raw_writer = None
        pass_silent = self.tracker.pass_silent
        for buf in buffers:
            self.counts["records"] += 1
            # A local server's side of its connections (an Ollama, a gateway) is ignored:
            # half the records on such a host, passed over without being built.
            key = data_key(buf)
            if key is not None and pass_silent(key[0], key[2], key[1], key[3]):
                continue
            try:
                record = parse_record(buf)
            except MalformedRecord:
                self.counts["malformed_records"] += 1
                continue
            self.process_record(record)
        self.dispatch()

    def dispatch(self) -> None:
        """Hand the events made since the last call to every exporter, as one batch."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        for exporter in self.exporters:
            events = pending.get(self._exporter_mode[exporter.name])
            if events:
                exporter.submit_many(events)

    def process_record(self, record: Any) -> None:
        if self.system.waiting:
            self._emit_all(self.system.expire(record.ts_ns))
        # The process tree is followed through every fork and exec, whatever other
        # filters then say of them (a command's child may enter another namespace).
        if self.filter.tree is not None and isinstance(record, (ForkRecord, ExecRecord)):
            self.filter.note_child(record.pid, record.ppid)
        if (
            self.netns.active
            and not isinstance(record, (ConnCloseRecord, FirstSendRecord))
            and not self._netns_allows(record)
        ):
            if self.filter.active and isinstance(record, ProcessExitRecord):
                self.filter.forget(record.pid)
            return
        if (
            self.filter.active
            and not isinstance(record, (ConnCloseRecord, FirstSendRecord))
            and not self.filter.allows(
                record.pid,
                getattr(record, "comm", ""),
                getattr(record, "uid", -1),
                exited=isinstance(record, ProcessExitRecord),
            )
        ):
            return
        ts = record.ts_ns
        if ts > self._latest_ts:
            self._latest_ts = ts
        if type(record) is DataRecord:  # the most frequent record, on the shortest path
            if record.source is _STDIO:
                self._stdio(record)
                return
            if record.pid not in self._seen_pids:
                self._first_sight(record)
            self._decode(record)
        elif isinstance(record, ExecRecord):
            self._emit_all(self.system.exec(record, self._exec_context(record)))
        elif isinstance(record, ProcessExitRecord):
            self._decode(record)  # finishes the exchanges of its connections first
            self._emit_all(self.mcp_stdio.process_exit(record.pid, record.ts_ns))
            self._emit_all(self.sessions.process_exit(record.pid, record.ts_ns))
            self.processes.exited(record.pid, record.comm)  # gone: no /proc to read
            self._emit_all(self.system.exit(record))
            self._seen_pids.discard(record.pid)
        elif isinstance(record, ForkRecord):
            self.processes.inherit(record.pid, record.ppid)
            self._emit_all(self.system.fork(record))
        elif isinstance(record, NetConnectRecord):
            self._emit_all(self.system.connect(record))
        elif isinstance(record, FirstSendRecord):
            self._emit_all(self.system.first_send(record))
        elif isinstance(record, DnsRecord):
            self._emit_all(self.system.dns(record))
        elif isinstance(record, FileOpenRecord):
            if self.config.capture.file:
                self._emit_all(self.files.open(record))
        elif isinstance(record, FileCloseRecord):
            if self.config.capture.file:
                self._emit_all(self.files.close(record))
        else:
            self._decode(record)

    def _netns_allows(self, record: Any) -> bool:
        return self.netns.allows(
            record.pid,
            getattr(record, "ppid", 0),
            fork=isinstance(record, ForkRecord),
            exec_=isinstance(record, ExecRecord),
            exited=isinstance(record, ProcessExitRecord),
        )

    def _stdio(self, record: DataRecord) -> None:
        try:
            self._emit_all(self.sessions.observe(self.mcp_stdio.feed(record)))
        except Exception:  # a decoder bug must cost one message, not the sensor
            self.counts["errors"] += 1
            log.exception("internal error while decoding a stdio record")

    def _decode(self, record: Any) -> None:
        try:
            outputs = self.tracker.feed(record)
            if outputs:  # most records complete nothing
                self._build(outputs)
        except Exception:  # a decoder bug must cost one exchange, not the sensor
            self.counts["errors"] += 1
            log.exception("internal error while decoding a record")

    def _build(self, outputs: list[DecodeOutput]) -> None:
        """HTTP decoder outputs -> AI events -> emitted."""
        process = self.builder.process
        for output in outputs:
            events = process(output)
            if not events:  # most outputs (a response's start, a chunk not reported) make none
                continue
            if self._body_shed(output):
                self._mark_metadata_only(events)
            self._emit_all(self.sessions.observe(events))

    def _apply_guard_level(self) -> None:
        """The guard changed level: bodies of new messages kept or not (decode thread)."""
        self._guard_level = self.guard.level
        self.tracker.set_body_limit(0 if self.guard.shed_bodies else self._body_limit)

    def _body_shed(self, output: DecodeOutput) -> bool:
        """Whether the body of this output's message was not kept because the guard shed it:
        cut at the size limit with less than the configured limit kept (a body cut at the
        configured limit keeps exactly that many bytes)."""
        for msg in (getattr(output, "request", None), getattr(output, "response", None)):
            if msg is not None and "body-limit" in msg.problems and len(msg.body) < self._body_limit:
                return True
        return False

    def _mark_metadata_only(self, events: list[SensorEvent]) -> None:
        for event in events:
            if event.event_type.startswith("ai."):
                old = event.confidence
                reasons = [*old.reasons, "sensor_overload"] if old else ["sensor_overload"]
                event.confidence = Confidence(old.level if old else "high", "metadata_only", reasons)
                self.guard.counters.metadata_only_events += 1

    def _parent_of(self, pid: int) -> int | None:
        return self.processes.get(pid).ppid or None

    def _emit_all(self, events: list[SensorEvent]) -> None:
        for event in events:
            self.emit(event)

    def _exec_context(self, record: ExecRecord) -> ProcessInfo:
        """The process's new image. The exec record is the truth (short-lived commands are
        gone by now) and carries the cwd; what it lacks (login session, container) is the
        parent's, so a build running thousands of commands costs no /proc reads. Without a
        cwd from the kernel, /proc fills in while the process still runs this image."""
        filename = record.filename
        if record.cwd and filename and not filename.startswith("/"):
            filename = os.path.join(record.cwd, filename)
        if record.cwd:
            parent = self.processes.get(record.ppid)
            info = ProcessInfo(
                pid=record.pid,
                ppid=record.ppid,
                name=record.comm,
                exe=_resolve_exe(filename),
                cmdline=list(record.args),
                cwd=record.cwd,
                uid=record.uid,
                gid=record.gid,
                start_ticks=record.ts_ns * _CLK_TCK // 1_000_000_000,
                login_uid=parent.login_uid,
                session_id=parent.session_id,
                container_id=parent.container_id,
                container_runtime=parent.container_runtime,
                complete=True,
            )
            self.processes.put(info)
            return info
        live = read_process(record.pid)
        same_image = live.complete and live.cmdline == list(record.args)
        info = ProcessInfo(
            pid=record.pid,
            ppid=record.ppid,
            name=record.comm,
            exe=live.exe if same_image else _resolve_exe(filename),
            cmdline=list(record.args),
            cwd=live.cwd if same_image else self.processes.exec_cwd(record.pid),
            uid=record.uid,
            gid=record.gid,
            start_ticks=live.start_ticks,
            login_uid=live.login_uid,
            session_id=live.session_id,
            container_id=live.container_id,
            container_runtime=live.container_runtime,
            complete=True,
        )
        self.processes.put(info)
        return info

    def _first_sight(self, record: DataRecord) -> None:
        if len(self._seen_pids) >= 65536:  # exits lost with their records: start over
            self._seen_pids.clear()
        self._seen_pids.add(record.pid)
        self.processes.get(record.pid, record.comm)
        # Exec contexts take the container from the parent (no /proc read per command);
        # a process with traffic is worth one read of its own cgroup.
        self.processes.refresh_container(record.pid)

    def expire_idle(self) -> None:
        """Finish exchanges on connections idle for longer than the configured timeout."""
        if not self._latest_ts:
            return
        now = time.monotonic_ns()
        if self.system.waiting:
            expired = self.system.expire(now)
            if expired:
                self._emit_all(expired)
                self.dispatch()
        if now - self._last_expire < 1_000_000_000:
            return
        self._last_expire = now
        self._build(self.tracker.expire_idle(now, self.idle_ns))
        self._emit_all(self.sessions.expire(now))
        self.dispatch()

    def finish(self) -> None:
        """Shutdown: every pending exchange is emitted (marked incomplete where it is)."""
        self._emit_all(self.system.flush())
        self._build(self.tracker.flush(time.monotonic_ns()))
        self._emit_all(self.sessions.close_all(time.monotonic_ns()))
        self.dispatch()

    # ---- events ---------------------------------------------------------------------

    def emit(self, event: SensorEvent) -> None:
        info = self.processes.get(event.pid, event.comm)
        process = info.process_context()
        if event.tid and event.tid != event.pid:
            process = {**process, "tid": event.tid}  # the shared context is never modified
        app = self.apps.context(info)
        web = None
        data = event.data
        if "provider" in data or "request_event_id" in data:  # the events of an AI call
            host, web = self.calls.lookup(event.event_type, event.event_id, data)
            provider = data.get("provider")
            if provider is not None:
                app = self.apps.check_profile(app, provider.get("id"), host)
        if event.event_type == AI_REQUEST and self.on_ai_process is not None:
            self.on_ai_process(event.pid)
        if not self.guard.admit(event.event_type):  # shed before the costly part
            return
        final = envelope(
            event,
            self.clock,
            host=self.host,
            actor=self.processes.actor_context(info, event.uid),
            process=process,
            app=app,
            web=web,
        )
        self.counts["events"] += 1
        self.events_by_type[event.event_type] = self.events_by_type.get(event.event_type, 0) + 1
        view = None
        for mode in self._modes:
            redacted = self.redactor.apply(final, mode)
            self._pending.setdefault(mode, []).append(redacted)
            if mode == self._view_mode:
                view = redacted
        if self.on_event and view is not None:
            self.on_event(view)

    def stats(self) -> dict[str, Any]:
        return {
            "pipeline": dict(self.counts),
            "events_by_type": dict(self.events_by_type),
            "decode": self.tracker.counters.as_dict(),
            "ai": asdict(self.builder.counters),
            "mcp": asdict(self.builder.mcp_counters),
            "agent_sessions": asdict(self.sessions.counters),
            "system": asdict(self.system.counters),
            "file": asdict(self.files.counters),
            "filtered_records": self.filter.dropped + self.netns.dropped,
            "redaction": {"modes": dict(self._exporter_mode), **self.redactor.stats()},
            "exporters": {e.name: e.stats().as_dict() for e in self.exporters},
            "guard": self.guard.stats(),
        }


def _is_data(buf: bytes) -> bool:
    return record_kind(buf) == RecordKind.DATA


def close_exporters(exporters: list[Exporter], timeout: float) -> None:
    """Flush and close every exporter at once, so one dead destination's deadline does not
    add to the others': shutdown takes at most `timeout` (plus a second), however many."""
    threads = [
        threading.Thread(target=e.close, args=(timeout,), name=f"oisp-close-{e.name}", daemon=True)
        for e in exporters
    ]
    for thread in threads:
        thread.start()
    end = time.monotonic() + timeout + 1.0
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))


class Sensor:
    """A running sensor: kernel capture feeding a Pipeline in its own thread."""

    def __init__(self, pipeline: Pipeline, capture: Any, status_path: str | None = None) -> None:
        self.pipeline = pipeline
        self.capture = capture
        self.batches: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self.status_path = status_path
        self.started_at = time.time()
        self._thread: threading.Thread | None = None
        self._status_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._calls: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = queue.SimpleQueue()

    def call_in_pipeline(self, fn: Callable[[], None]) -> threading.Event:
        """Run `fn` in the pipeline thread between two batches (a config reload swaps
        exporters there, so no event is half-way); the event is set once it has run."""
        done = threading.Event()
        self._calls.put((fn, done))
        self.batches.put([])  # wakes the pipeline thread
        return done

    def submit_batch(self, batch: list[bytes]) -> None:
        """From the poll thread: queued for decoding, within the guard's queue bound."""
        batch = self.pipeline.guard.enqueue(batch, _is_data)
        if batch:
            self.batches.put(batch)

    def start(self) -> None:
        for exporter in self.pipeline.exporters:
            exporter.start()
        self._thread = threading.Thread(target=self._run, name="oisp-pipeline", daemon=True)
        self._thread.start()
        self.capture.start()
        self.pipeline.guard.start()
        if self.status_path:
            self._status_thread = threading.Thread(target=self._status_loop, name="oisp-status", daemon=True)
            self._status_thread.start()

    def _run(self) -> None:
        while True:
            try:
                batch = self.batches.get(timeout=0.5)
            except queue.Empty:
                batch = []
            if batch is None:
                break
            if batch:
                guard = self.pipeline.guard
                guard.dequeued(batch)
                started = time.monotonic()
                self.pipeline.process_raw(batch)
                pause = guard.pause_for(time.monotonic() - started)
                if pause and not self._stopping.is_set():
                    time.sleep(min(pause, 1.0))  # the CPU ceiling: records wait (bounded queue)
            self.pipeline.expire_idle()
            while not self._calls.empty():
                fn, done = self._calls.get()
                try:
                    fn()
                except Exception:
                    log.exception("a reconfiguration failed")
                done.set()

    def stop(self, flush_timeout: float = 10.0) -> dict[str, Any]:
        """Drain the kernel, finish exchanges, flush exporters; returns the final stats."""
        self._stopping.set()
        self.pipeline.guard.stop()
        self.capture.stop()  # hands the last records to submit_batch
        self.batches.put(None)
        if self._thread:
            self._thread.join()
        self.pipeline.finish()
        if self.pipeline.raw_writer is not None:
            self.pipeline.raw_writer.close()
        close_exporters(self.pipeline.exporters, flush_timeout)
        stats = self.stats()
        self.capture.close()
        self._write_status(stats, final=True)
        return stats

    def stats(self) -> dict[str, Any]:
        stats = self.pipeline.stats()
        stats["kernel"] = self.capture.kernel_counters()
        stats["capture"] = self.capture.probe_summary()
        stats["sensor"] = {
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self.started_at,
            "uptime_s": round(time.time() - self.started_at, 3),
            "records_received": self.capture.user_records,
        }
        return stats

    def _status_loop(self) -> None:
        while not self._stopping.wait(1.0):
            try:
                self._write_status(self.stats(), final=False)
            except Exception:
                log.debug("status write failed", exc_info=True)

    def _write_status(self, stats: dict[str, Any], final: bool) -> None:
        if not self.status_path:
            return
        if final:
            with contextlib.suppress(OSError):
                os.unlink(self.status_path)
            return
        tmp = f"{self.status_path}.tmp"
        try:
            os.makedirs(os.path.dirname(self.status_path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(orjson.dumps(stats))
            os.replace(tmp, self.status_path)
        except OSError:
            pass
