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

from .layout import COUNTER_SLOTS, Config, Counter, RecordKind
from .libbpf import SAMPLE_FN, Libbpf, LibbpfError, UprobeOpts
from .parse import record_kind, record_pid
from .probe_points import ProbePoint, plan_probes, plan_resolver_probes
from .targets import Target, TargetScanner, system_libc_paths

log = logging.getLogger(__name__)

# Always attached: exec and exit drive target discovery and connection lifecycle.
TRACEPOINT_PROGRAMS = ("oisp_process_exec", "oisp_process_exit")
FORK_PROGRAM = "oisp_process_fork"
CONNECT_PROGRAM = "oisp_inet_sock_set_state"


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
    # Look for libssl copies mapped after exec (dlopen, LD_LIBRARY_PATH): processes that
    # exec'd recently are rescanned often, every process now and then.
    young_rescan_interval_s: float = 0.25
    young_process_s: float = 30.0
    rescan_interval_s: float = 5.0
    extra_targets: list[str] = field(default_factory=list)  # more files to probe
    ssl: bool = True
    process_events: bool = True  # fork records (exec and exit are always captured)
    network_events: bool = True  # TCP connect records


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sample_cb = SAMPLE_FN(self._on_sample)
        self._last_rescan = 0.0
        self._last_young_rescan = 0.0
        self._young: dict[int, float] = {}  # pid -> monotonic time of its exec

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
        programs = list(TRACEPOINT_PROGRAMS)
        if self.options.process_events:
            programs.append(FORK_PROGRAM)
        if self.options.network_events:
            programs.append(CONNECT_PROGRAM)
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
        )
        key = ctypes.c_uint32(0)
        fd = self.bpf.lib.bpf_map__fd(self._map("oisp_config"))
        if self.bpf.lib.bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(cfg), 0) != 0:
            raise CaptureError(f"cannot configure the BPF programs: {os.strerror(ctypes.get_errno())}")

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

    # ---- polling -------------------------------------------------------------------

    def _on_sample(self, _ctx: int | None, data: int, size: int) -> int:
        buf = ctypes.string_at(data, size)
        self._batch.append(buf)
        if record_kind(buf) == RecordKind.PROC_EXEC:
            self._pending_exec.append(record_pid(buf))
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
            if self.on_exec:
                for pid in pids:
                    self.on_exec(pid)
            if self.options.ssl:
                now = time.monotonic()
                for pid in pids:
                    self._young[pid] = now
                self.rescan(pids)
        if self._batch:
            batch, self._batch = self._batch, []
            self.user_records += len(batch)
            self.on_batch(batch)

    def _maybe_rescan(self) -> None:
        if not self.options.ssl:
            return
        now = time.monotonic()
        if now - self._last_rescan >= self.options.rescan_interval_s:
            self._last_rescan = self._last_young_rescan = now
            self.rescan()
        elif now - self._last_young_rescan >= self.options.young_rescan_interval_s and self._young:
            self._last_young_rescan = now
            cutoff = now - self.options.young_process_s
            # Bounded: the most recent execs that are still alive.
            recent = sorted(self._young.items(), key=lambda item: item[1])[-512:]
            self._young = {pid: t for pid, t in recent if t >= cutoff and os.path.exists(f"/proc/{pid}")}
            self.rescan(list(self._young))

    def drain(self) -> None:
        """Consume everything the kernel has written so far (call after stop_polling)."""
        if self.ringbuf:
            while self.bpf.lib.ring_buffer__consume(self.ringbuf) > 0:
                self._hand_off()
            self._hand_off()

    def stop(self) -> None:
        """Stop polling, detach every probe, and hand off what is still in the ring."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        # Drain before detaching: exchanges finished before the signal are in the ring.
        self.drain()
        with self.attach_lock:
            for attached in self.attached.values():
                for link in attached.links:
                    self.bpf.lib.bpf_link__destroy(link)
                attached.links.clear()
            for link in self.tracepoint_links + self.resolver_links:
                self.bpf.lib.bpf_link__destroy(link)
            self.tracepoint_links.clear()
            self.resolver_links.clear()
        self.drain()

    def close(self) -> None:
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
