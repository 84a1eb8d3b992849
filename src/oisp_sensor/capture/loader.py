"""Load the BPF object, attach its probes, and poll its ring buffer.

`KernelCapture` owns everything kernel-side: the libbpf object, the links, and a poll
thread whose ring-buffer callback only copies bytes into a list (decoding a record in
the callback would cut the drain rate five-fold). Batches go to `on_batch`, called in
the poll thread; the pipeline decodes them in its own thread.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .layout import (
    COUNTER_SLOTS,
    FLAG_PATH_RESOLVED,
    WATCH_FILES,
    Config,
    Counter,
    CtlEvent,
    FileCloseEvent,
    FileMode,
    FileOpenEvent,
    RecordKind,
)
from .libbpf import SAMPLE_FN, Libbpf, LibbpfError, UprobeOpts
from .parse import file_close_bytes, lib_open_path, record_kind, record_pid
from .probe_points import ProbePoint, plan_probes, plan_resolver_probes
from .targets import Target, TargetScanner, system_libc_paths

log = logging.getLogger(__name__)

# Always attached: exec and exit drive target discovery and connection lifecycle.
TRACEPOINT_PROGRAMS = ("oisp_process_exec", "oisp_process_exit")
FORK_PROGRAM = "oisp_process_fork"
CONNECT_PROGRAM = "oisp_inet_sock_set_state"
# File events and plain-HTTP sockets: every syscall passes through these two.
SYSCALL_PROGRAMS = ("oisp_sys_enter", "oisp_sys_exit")
# Plain-HTTP ports of local model servers and gateways: Ollama, LM Studio, vLLM and
# OpenAI-compatible servers (8000), llama.cpp server (8080), LiteLLM (4000), LocalAI,
# text-generation-webui (5000), KoboldCpp (5001), Jan (1337), GPT4All (4891).
DEFAULT_HTTP_PORTS = (11434, 1234, 8000, 8080, 4000, 5000, 5001, 1337, 4891)


class _FileStats(ctypes.Structure):
    """struct file_stats of the kernel's open-file table (internal to oisp.bpf.c)."""

    _fields_ = [
        ("open_ts_ns", ctypes.c_uint64),
        ("bytes_read", ctypes.c_uint64),
        ("bytes_written", ctypes.c_uint64),
        ("reads", ctypes.c_uint32),
        ("writes", ctypes.c_uint32),
    ]


# Field offsets read straight from raw records (no full parse in the poll thread).
_OPEN_FD = FileOpenEvent.fd.offset
_CLOSE_FD = FileCloseEvent.fd.offset
_CTL_TS = CtlEvent.ts_ns.offset
_CTL_COMM = CtlEvent.comm.offset


class _FdKey(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("fd", ctypes.c_int32)]


class CaptureError(RuntimeError):
    """Capture cannot start; the message is one line meant for the user."""


def default_bpf_object() -> Path:
    env = os.environ.get("OISP_BPF_OBJECT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "bpf" / "oisp.bpf.o"


def ring_buffer_bytes(cpus: int, per_cpu_mb: int = 4) -> int:
    """Ring size: `per_cpu_mb` per CPU, a power of two (the kernel requires one)."""
    want = max(1, cpus) * per_cpu_mb * 1024 * 1024
    size = 1 << (want - 1).bit_length()
    return min(size, 1 << 30)


@dataclass
class AttachedTarget:
    target: Target
    links: list[int] = field(default_factory=list)
    points: list[ProbePoint] = field(default_factory=list)
    error: str = ""


@dataclass
class CaptureOptions:
    bpf_object: Path = field(default_factory=default_bpf_object)
    ring_per_cpu_mb: int = 4
    wakeup_bytes: int = 256 * 1024  # wake the consumer once this much is waiting
    poll_timeout_ms: int = 50  # ... or after this long, whichever comes first
    # TLS libraries opened after exec (the loader, dlopen, LD_LIBRARY_PATH) are reported by
    # the kernel as they are opened; every process's maps are read again now and then, as
    # a safety net (a library mapped without open(), e.g. from a memfd).
    rescan_interval_s: float = 5.0
    extra_targets: list[str] = field(default_factory=list)  # more files to probe
    ssl: bool = True
    process_events: bool = True  # fork records (exec and exit are always captured)
    network_events: bool = True  # TCP connect records
    file_mode: FileMode = FileMode.WATCHED  # whose file opens and closes are recorded
    socket_capture: bool = True  # plain-HTTP traffic to http_ports
    http_ports: tuple[int, ...] = DEFAULT_HTTP_PORTS
    exec_env: bool = False  # exec records carry the environment (opt-in)
    stdio_capture: bool = True  # JSON-RPC over stdin/stdout pipes (MCP stdio servers)


class KernelCapture:
    """The kernel side of the sensor. Not reusable: start() once, stop() once."""

    def __init__(
        self,
        options: CaptureOptions,
        on_batch: Callable[[list[bytes]], None],
        on_exec: Callable[[int], None] | None = None,
    ) -> None:
        self.options = options
        self.on_batch = on_batch
        self.on_exec = on_exec  # called in the poll thread, before the batch is handed off
        # Every exec'd pid of a batch, in the poll thread before the hand-off (netns filter).
        self.on_exec_pids: Callable[[list[int]], None] | None = None
        self.bpf = Libbpf()
        self.obj: int | None = None
        self.ringbuf: int | None = None
        self.counters_fd = -1
        self.tracepoint_links: list[int] = []
        self.resolver_links: list[int] = []
        self.attached: dict[tuple[int, int], AttachedTarget] = {}
        self.failed: dict[tuple[int, int], AttachedTarget] = {}
        self.scanner = TargetScanner()
        self.self_pid = os.getpid()
        self.user_records = 0  # records handed to on_batch
        self.attach_lock = threading.Lock()
        self._batch: list[bytes] = []
        self._pending_exec: list[int] = []
        self._exec_no_cwd: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sample_cb = SAMPLE_FN(self._on_sample)
        self._last_rescan = 0.0
        self.watch_fd = -1
        self.files_fd = -1
        self._open_files: dict[int, dict[int, str]] = {}  # pid -> fd -> comm, from open records
        self._watched: set[int] = set()

    # ---- start-up ------------------------------------------------------------------

    def start(self) -> None:
        """Load, attach and start polling. Raises CaptureError with a one-line reason."""
        path = self.options.bpf_object
        if not path.is_file():
            raise CaptureError(f"BPF object {path} not found: run `make bpf` (or `make record`) first")
        self.bpf.silence()
        obj = self.bpf.lib.bpf_object__open(str(path).encode())
        if not obj:
            raise CaptureError(f"cannot open BPF object {path}: {os.strerror(ctypes.get_errno())}")
        self.obj = obj
        ring = self._map("oisp_events")
        cpus = max(1, self.bpf.lib.libbpf_num_possible_cpus())
        self.bpf.lib.bpf_map__set_max_entries(ring, ring_buffer_bytes(cpus, self.options.ring_per_cpu_mb))
        err = self.bpf.lib.bpf_object__load(obj)
        if err:
            code = abs(err)
            hint = " (are you root?)" if code in (1, 13) else ""
            raise CaptureError(f"cannot load the BPF programs into the kernel: {os.strerror(code)}{hint}")
        self.counters_fd = self.bpf.lib.bpf_map__fd(self._map("oisp_counters"))
        self._write_config()
        self.watch_fd = self.bpf.lib.bpf_map__fd(self._map("oisp_watch"))
        self.files_fd = self.bpf.lib.bpf_map__fd(self._map("oisp_files"))
        self._write_http_ports()
        programs = list(TRACEPOINT_PROGRAMS)
        # Fork records also carry the watch on files from an AI process to its children.
        if self.options.process_events or self.options.file_mode == FileMode.WATCHED:
            programs.append(FORK_PROGRAM)
        if self.options.network_events:
            programs.append(CONNECT_PROGRAM)
        if (
            self.options.file_mode != FileMode.OFF
            or self.options.socket_capture
            or self.options.ssl
            or self.options.stdio_capture
        ):
            programs.extend(SYSCALL_PROGRAMS)
        for name in programs:
            link = self.bpf.lib.bpf_program__attach(self._program(name))
            if not link:
                raise CaptureError(f"cannot attach {name}: {os.strerror(ctypes.get_errno())}")
            self.tracepoint_links.append(link)
        self.ringbuf = self.bpf.lib.ring_buffer__new(
            self.bpf.lib.bpf_map__fd(ring), self._sample_cb, None, None
        )
        if not self.ringbuf:
            raise CaptureError(f"cannot open the ring buffer: {os.strerror(ctypes.get_errno())}")
        if self.options.ssl:
            self._attach_initial_targets()
        if self.options.network_events:
            self._attach_resolvers()
        self._thread = threading.Thread(target=self._poll_loop, name="oisp-capture", daemon=True)
        self._thread.start()

    def _map(self, name: str) -> int:
        assert self.obj is not None
        ptr = self.bpf.lib.bpf_object__find_map_by_name(self.obj, name.encode())
        if not ptr:
            raise CaptureError(f"BPF object has no map {name}: rebuild it with `make bpf`")
        return ptr

    def _program(self, name: str) -> int:
        assert self.obj is not None
        ptr = self.bpf.lib.bpf_object__find_program_by_name(self.obj, name.encode())
        if not ptr:
            raise CaptureError(f"BPF object has no program {name}: rebuild it with `make bpf`")
        return ptr

    def _write_config(self) -> None:
        cfg = Config(
            self_pid=self.self_pid,
            wakeup_bytes=self.options.wakeup_bytes,
            process_events=int(self.options.process_events),
            network_events=int(self.options.network_events),
            file_mode=int(self.options.file_mode),
            socket_capture=int(self.options.socket_capture),
            exec_env=int(self.options.exec_env),
            lib_hints=int(self.options.ssl),
            stdio_capture=int(self.options.stdio_capture),
        )
        key = ctypes.c_uint32(0)
        fd = self.bpf.lib.bpf_map__fd(self._map("oisp_config"))
        if self.bpf.lib.bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(cfg), 0) != 0:
            raise CaptureError(f"cannot configure the BPF programs: {os.strerror(ctypes.get_errno())}")

    def _write_http_ports(self) -> None:
        fd = self.bpf.lib.bpf_map__fd(self._map("oisp_http_ports"))
        one = ctypes.c_uint8(1)
        for port in self.options.http_ports[:64]:
            key = ctypes.c_uint16(port)
            if self.bpf.lib.bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(one), 0) != 0:
                raise CaptureError(
                    f"cannot configure plain-HTTP port {port}: {os.strerror(ctypes.get_errno())}"
                )

    def watch(self, pid: int) -> None:
        """Record the files of `pid` and of the processes it starts from now on (an AI
        process and the tools it runs). Safe to call from any thread, any number of times."""
        if self.watch_fd < 0 or pid in self._watched or self.options.file_mode != FileMode.WATCHED:
            return
        if len(self._watched) >= 65536:  # exits lost with their records: start over
            self._watched.clear()
        self._watched.add(pid)
        key = ctypes.c_uint32(pid)
        bits = ctypes.c_uint32(0)
        self.bpf.lib.bpf_map_lookup_elem(self.watch_fd, ctypes.byref(key), ctypes.byref(bits))
        bits.value |= WATCH_FILES
        if self.bpf.lib.bpf_map_update_elem(self.watch_fd, ctypes.byref(key), ctypes.byref(bits), 0) != 0:
            log.warning("cannot watch the files of pid %d: %s", pid, os.strerror(ctypes.get_errno()))

    def _attach_initial_targets(self) -> None:
        targets = self.scanner.system_libraries() + self.scanner.runtimes_on_path()
        for extra in self.options.extra_targets:
            target = self.scanner.examine(extra, "config")
            if target:
                targets.append(target)
        targets += self.scanner.all_processes(skip_pids=[self.self_pid])
        for target in targets:
            self.attach(target)
        self._last_rescan = time.monotonic()

    def _attach_resolvers(self) -> None:
        """getaddrinfo() probes in the system libc (DNS events; best effort)."""
        for path in system_libc_paths():
            try:
                for point in plan_resolver_probes(path):
                    self.resolver_links.append(self._attach_uprobe(point.entry_program, path, point, False))
                    if point.return_program:
                        self.resolver_links.append(
                            self._attach_uprobe(point.return_program, path, point, True)
                        )
            except (LibbpfError, OSError, ValueError) as exc:
                log.warning("no DNS events from %s: %s", path, exc)

    # ---- uprobes -------------------------------------------------------------------

    def attach(self, target: Target) -> AttachedTarget:
        """Attach entry and return probes to every SSL function the file exports."""
        key = (target.dev, target.inode)
        with self.attach_lock:
            if key in self.attached:
                return self.attached[key]
            result = AttachedTarget(target)
            try:
                points = plan_probes(target.path, target.functions, target.family)
                if target.family == "go" and any(p.return_program for p in points):
                    raise ValueError("refusing a uretprobe on Go code (it crashes Go programs)")
                for point in points:
                    result.links.append(self._attach_uprobe(point.entry_program, target.path, point, False))
                    if point.return_program:
                        result.links.append(
                            self._attach_uprobe(point.return_program, target.path, point, True)
                        )
                result.points = points
            except (LibbpfError, OSError, ValueError) as exc:
                for link in result.links:
                    self.bpf.lib.bpf_link__destroy(link)
                result.links.clear()
                result.error = str(exc)
                self.failed[key] = result
                log.warning("cannot probe %s: %s", target.path, exc)
                return result
            self.attached[key] = result
            log.info("probing %s (%s, %d probes)", target.path, target.found_by, len(result.links))
            return result

    def _attach_uprobe(self, program: str, path: str, point: ProbePoint, retprobe: bool) -> int:
        # No func_name: the offset is a file offset computed by plan_probes.
        opts = UprobeOpts(sz=ctypes.sizeof(UprobeOpts), retprobe=retprobe, bpf_cookie=point.cookie)
        link = self.bpf.lib.bpf_program__attach_uprobe_opts(
            self._program(program), -1, path.encode(), point.file_offset, ctypes.byref(opts)
        )
        if not link:
            kind = "uretprobe" if retprobe else "uprobe"
            raise self.bpf.errno_error(f"{kind} {point.name}+0x{point.file_offset:x} in {path}")
        return link

    def rescan(self, pids: list[int] | None = None) -> list[AttachedTarget]:
        """Probe libssl copies mapped since the last scan (all processes, or the given pids)."""
        targets: list[Target] = []
        if pids is None:
            targets = self.scanner.all_processes(skip_pids=[self.self_pid])
        else:
            for pid in pids:
                if pid != self.self_pid:
                    targets.extend(self.scanner.process(pid, f"exec:{pid}"))
        return [self.attach(t) for t in targets]

    def _probe_new_images(self, pids: list[int], libs: list[tuple[int, str]]) -> None:
        """Exec'd executables (a static OpenSSL, a Go binary) and TLS libraries the kernel
        saw being opened: probe what is new (each file is examined once)."""
        targets: list[Target] = []
        for pid in pids:
            target = self.scanner.executable(pid, f"exec:{pid}")
            if target:
                targets.append(target)
        for pid, path in libs:
            target = self.scanner.opened_library(pid, path, f"open:{pid}")
            if target:
                targets.append(target)
        for target in targets:
            self.attach(target)

    # ---- polling -------------------------------------------------------------------

    def _on_sample(self, _ctx: int | None, data: int, size: int) -> int:
        buf = ctypes.string_at(data, size)
        kind = record_kind(buf)
        if kind == RecordKind.LIB_OPEN:  # for capture only, not an event
            # At once, not after the batch: the library's first call may be milliseconds
            # away (curl opens libssl and writes its request within a few ms).
            if self.options.ssl:
                try:
                    self._probe_new_images([], [(record_pid(buf), lib_open_path(buf))])
                except Exception:  # never let a file we cannot read stop the poll loop
                    log.exception("cannot examine a TLS library a process opened")
            return 0
        self._batch.append(buf)
        if kind == RecordKind.PROC_EXEC:
            self._pending_exec.append(record_pid(buf))
            if not buf[2] & FLAG_PATH_RESOLVED:  # no cwd from the kernel: note it from /proc
                self._exec_no_cwd.append(record_pid(buf))
        return 0

    def _poll_loop(self) -> None:
        assert self.ringbuf is not None
        lib = self.bpf.lib
        timeout = self.options.poll_timeout_ms
        while not self._stop.is_set():
            # Records are published without wake-ups until wakeup_bytes are waiting, so
            # poll() may return on its timeout with data ready: always consume after it.
            lib.ring_buffer__poll(self.ringbuf, timeout)
            lib.ring_buffer__consume(self.ringbuf)
            self._hand_off()
            self._maybe_rescan()

    def _hand_off(self) -> None:
        if self._pending_exec:
            pids, self._pending_exec = self._pending_exec, []
            no_cwd, self._exec_no_cwd = self._exec_no_cwd, []
            if self.on_exec:
                for pid in no_cwd:
                    self.on_exec(pid)
            if self.on_exec_pids:
                self.on_exec_pids(pids)
            if self.options.ssl:
                self._probe_new_images(pids, [])
        if self._batch:
            batch, self._batch = self._batch, []
            if self.files_fd >= 0 and self.options.file_mode != FileMode.OFF:
                batch = self._close_files_at_exit(batch)
            self.user_records += len(batch)
            self.on_batch(batch)

    def _close_files_at_exit(self, batch: list[bytes]) -> list[bytes]:
        """A process's descriptors close without close() calls when it exits: report the
        files it still had open (from the kernel's table) just before its exit record."""
        out: list[bytes] | None = None
        for i, buf in enumerate(batch):
            kind = record_kind(buf)
            if kind == RecordKind.FILE_OPEN:
                fd = int.from_bytes(buf[_OPEN_FD : _OPEN_FD + 4], "little", signed=True)
                pid = record_pid(buf)
                if pid not in self._open_files and len(self._open_files) >= 65536:
                    # exits lost with their records: forget the oldest process
                    self._open_files.pop(next(iter(self._open_files)))
                self._open_files.setdefault(pid, {})[fd] = ""
            elif kind == RecordKind.FILE_CLOSE:
                fds = self._open_files.get(record_pid(buf))
                if fds is not None:
                    fds.pop(int.from_bytes(buf[_CLOSE_FD : _CLOSE_FD + 4], "little", signed=True), None)
            elif kind == RecordKind.PROC_EXIT:
                pid = record_pid(buf)
                self._watched.discard(pid)
                fds = self._open_files.pop(pid, None)
                if fds:
                    if out is None:
                        out = batch[:i]
                    out.extend(self._take_open_files(pid, list(fds), buf))
            if out is not None:
                out.append(buf)
        return batch if out is None else out

    def _take_open_files(self, pid: int, fds: list[int], exit_record: bytes) -> list[bytes]:
        ts_ns = int.from_bytes(exit_record[_CTL_TS : _CTL_TS + 8], "little")
        comm = exit_record[_CTL_COMM : _CTL_COMM + 16].split(b"\0", 1)[0].decode("utf-8", "replace")
        records = []
        for fd in fds:
            key = _FdKey(pid, fd)
            stats = _FileStats()
            if self.bpf.lib.bpf_map_lookup_and_delete_elem(
                self.files_fd, ctypes.byref(key), ctypes.byref(stats)
            ):
                continue  # closed in a record still in the ring, or never stored
            values = (stats.open_ts_ns, stats.bytes_read, stats.bytes_written, stats.reads, stats.writes)
            records.append(file_close_bytes(pid, fd, ts_ns, values, comm))
        return records

    def _maybe_rescan(self) -> None:
        if not self.options.ssl:
            return
        now = time.monotonic()
        if now - self._last_rescan >= self.options.rescan_interval_s:
            self._last_rescan = now
            self.rescan()

    def drain(self) -> None:
        """Consume everything the kernel has written so far (call after stop_polling)."""
        if self.ringbuf:
            while self.bpf.lib.ring_buffer__consume(self.ringbuf) > 0:
                self._hand_off()
            self._hand_off()

    def stop(self) -> None:
        """Stop polling and hand off what is in the ring. The uprobes stay attached until
        close(): unregistering one costs the kernel ~110 ms here (3-4 s for a typical set),
        and the events file must be final before that, not after."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        # Drain before detaching: exchanges finished before the signal are in the ring.
        self.drain()
        with self.attach_lock:
            for link in self.tracepoint_links + self.resolver_links:
                self.bpf.lib.bpf_link__destroy(link)
            self.tracepoint_links.clear()
            self.resolver_links.clear()
        time.sleep(0.05)  # calls in flight at the signal: their last bytes
        self.drain()

    def detach_probes(self) -> None:
        with self.attach_lock:
            for attached in self.attached.values():
                for link in attached.links:
                    self.bpf.lib.bpf_link__destroy(link)
                attached.links.clear()

    def close(self) -> None:
        """Detach the uprobes (slow, see stop) and free the ring and the BPF object; what
        the probes wrote after stop() is discarded."""
        self.detach_probes()
        if self.ringbuf:
            self.bpf.lib.ring_buffer__free(self.ringbuf)
            self.ringbuf = None
        if self.obj:
            self.bpf.lib.bpf_object__close(self.obj)
            self.obj = None

    # ---- counters ------------------------------------------------------------------

    def kernel_counters(self) -> dict[str, int]:
        """Sum the per-CPU kernel counters."""
        if self.counters_fd < 0:
            return {}
        cpus = max(1, self.bpf.lib.libbpf_num_possible_cpus())
        values = (ctypes.c_uint64 * cpus)()
        result = {}
        for slot in range(COUNTER_SLOTS):
            key = ctypes.c_uint32(slot)
            if self.bpf.lib.bpf_map_lookup_elem(self.counters_fd, ctypes.byref(key), values) == 0:
                result[Counter(slot).name.lower()] = int(sum(values))
        return result

    def probe_summary(self) -> dict[str, object]:
        return {
            "targets": [
                {
                    "path": a.target.path,
                    "kind": a.target.kind,
                    "family": a.target.family,
                    "found_by": a.target.found_by,
                    "probes": len(a.links),
                }
                for a in self.attached.values()
            ],
            "failed": [{"path": a.target.path, "error": a.error} for a in self.failed.values()],
            "probes": sum(len(a.links) for a in self.attached.values()),
            "resolver_probes": len(self.resolver_links),
        }
