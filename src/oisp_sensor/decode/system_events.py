"""Process and network records from the kernel -> process.* and network.connect events.

Sans-IO like the rest of decode/: the /proc details the kernel record lacks (cwd) come
in as a ProcessInfo looked up by the pipeline.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..capture.records import (
    DnsRecord,
    ExecRecord,
    FirstSendRecord,
    ForkRecord,
    NetConnectRecord,
    ProcessExitRecord,
)
from ..enrich.process import ProcessInfo
from ..schema.events import (
    NETWORK_CONNECT,
    NETWORK_DNS,
    PROCESS_EXEC,
    PROCESS_EXIT,
    PROCESS_FORK,
    Confidence,
    SensorEvent,
)
from .server_name import server_name

# Remote ports on which a TCP connection is taken to carry TLS (a guess, said as such).
TLS_PORTS = frozenset({443, 8443, 9443, 6443})
# How long an established connection's event waits for its first send (which names the
# host: SNI or Host) before it is reported without it. Clients send at once after connect.
FIRST_SEND_WAIT_NS = 500_000_000
MAX_WAITING = 4096


def kernel_event(event_id: str, event_type: str, ts_ns: int, data: dict[str, Any], pid: int, tid: int,
                 uid: int, comm: str, reasons: list[str] | None) -> SensorEvent:  # fmt: skip
    """An event seen by a kernel tracepoint; partial when there are reasons to doubt it."""
    confidence = Confidence(completeness="partial", reasons=reasons) if reasons else Confidence()
    return SensorEvent(
        event_type=event_type,
        event_id=event_id,
        ts_ns=ts_ns,
        data=data,
        pid=pid,
        tid=tid,
        uid=uid,
        comm=comm,
        capture_method="ebpf_tracepoint",
        capture_point="kernel",
        confidence=confidence,
    )


@dataclass(slots=True)
class SystemCounters:
    process_exec: int = 0
    process_fork: int = 0
    process_exit: int = 0
    network_connect: int = 0
    network_dns: int = 0


class SystemEventBuilder:
    def __init__(self, id_factory: Callable[[int], str], process: bool = True, network: bool = True) -> None:
        self.new_id = id_factory
        self.process_enabled = process
        self.network_enabled = network
        self.counters = SystemCounters()
        # Answers of recent resolutions: (pid, ip) and ip -> name, to name connect targets.
        self._names: OrderedDict[tuple[int, str], str] = OrderedDict()
        self._names_any: OrderedDict[str, str] = OrderedDict()
        # Established connections waiting for their first send (kernel sock -> record).
        # The DNS name is taken at connect time: later resolutions must not rename it.
        self.waiting: OrderedDict[int, tuple[NetConnectRecord, str | None]] = OrderedDict()

    def _remember(self, pid: int, ip: str, name: str) -> None:
        for cache, key in ((self._names, (pid, ip)), (self._names_any, ip)):
            cache[key] = name  # type: ignore[index]
            cache.move_to_end(key)  # type: ignore[arg-type]
            if len(cache) > 8192:
                cache.popitem(last=False)

    def hostname_for(self, pid: int, ip: str) -> str | None:
        return self._names.get((pid, ip)) or self._names_any.get(ip)

    def _event(self, event_type: str, ts_ns: int, data: dict[str, Any], pid: int, tid: int = 0,
               uid: int = -1, comm: str = "", reasons: list[str] | None = None) -> SensorEvent:  # fmt: skip
        return kernel_event(self.new_id(ts_ns), event_type, ts_ns, data, pid, tid, uid, comm, reasons)

    def exec(self, record: ExecRecord, info: ProcessInfo | None) -> list[SensorEvent]:
        if not self.process_enabled:
            return []
        self.counters.process_exec += 1
        exe = info.exe if info and info.exe else record.filename
        data: dict[str, Any] = {
            "pid": record.pid,
            "ppid": record.ppid,
            "exe": exe,
            "args": record.args[1:],
            "argv0": record.args[0] if record.args else "",
            "cwd": info.cwd if info else "",
            "uid": record.uid,
            "gid": record.gid,
            "comm": record.comm,
        }
        if record.filename and record.filename != exe:
            data["filename"] = record.filename
        if record.env is not None:  # opt-in ([capture] process_env); redacted downstream
            data["env"] = dict(item.split("=", 1) if "=" in item else (item, "") for item in record.env)
        reasons = ["args_truncated"] if record.args_truncated else []
        if record.env_truncated:
            reasons.append("env_truncated")
        if not data["cwd"]:
            reasons.append("cwd_unknown")
        return [self._event(PROCESS_EXEC, record.ts_ns, data, record.pid, record.tid, record.uid, record.comm,
                            reasons)]  # fmt: skip

    def fork(self, record: ForkRecord) -> list[SensorEvent]:
        if not self.process_enabled:
            return []
        self.counters.process_fork += 1
        data = {"pid": record.pid, "ppid": record.ppid, "parent_comm": record.comm}
        return [self._event(PROCESS_FORK, record.ts_ns, data, record.pid, comm=record.comm)]

    def exit(self, record: ProcessExitRecord) -> list[SensorEvent]:
        if not self.process_enabled:
            return []
        self.counters.process_exit += 1
        status = record.exit_code
        data: dict[str, Any] = {"pid": record.pid}
        if status & 0x7F:  # killed by a signal (wait status semantics)
            data["signal"] = status & 0x7F
            data["exit_code"] = 128 + (status & 0x7F)
        else:
            data["exit_code"] = (status >> 8) & 0xFF
        if record.start_ns and record.ts_ns >= record.start_ns:
            data["runtime_ms"] = round((record.ts_ns - record.start_ns) / 1e6, 3)
        return [self._event(PROCESS_EXIT, record.ts_ns, data, record.pid, comm=record.comm)]

    def connect(self, record: NetConnectRecord) -> list[SensorEvent]:
        if not self.network_enabled:
            return []
        dns_name = self.hostname_for(record.pid, record.remote_ip)
        if record.success and record.sock:
            events: list[SensorEvent] = []
            # The kernel reuses a closed socket's memory for the next one: a connection still
            # waiting under this address has closed without sending; report it now.
            earlier = self.waiting.pop(record.sock, None)
            if earlier is not None:
                events += self._connect_event(*earlier, None)
            self.waiting[record.sock] = (record, dns_name)  # reported with its first send, or expire()
            if len(self.waiting) > MAX_WAITING:
                events += self._connect_event(*self.waiting.popitem(last=False)[1], None)
            return events
        return self._connect_event(record, dns_name, None)

    def first_send(self, record: FirstSendRecord) -> list[SensorEvent]:
        waiting = self.waiting.pop(record.sock, None)
        if waiting is None:
            return []
        return self._connect_event(*waiting, record.data)

    def expire(self, now_ns: int) -> list[SensorEvent]:
        """Connections that sent nothing within FIRST_SEND_WAIT_NS, reported as they are."""
        events: list[SensorEvent] = []
        while self.waiting:
            sock, (record, dns_name) = next(iter(self.waiting.items()))
            if now_ns - record.done_ns < FIRST_SEND_WAIT_NS:
                break
            del self.waiting[sock]
            events += self._connect_event(record, dns_name, None)
        return events

    def flush(self) -> list[SensorEvent]:
        events: list[SensorEvent] = []
        for record, dns_name in self.waiting.values():
            events += self._connect_event(record, dns_name, None)
        self.waiting.clear()
        return events

    def _connect_event(
        self, record: NetConnectRecord, dns_name: str | None, first_bytes: bytes | None
    ) -> list[SensorEvent]:
        self.counters.network_connect += 1
        remote: dict[str, Any] = {"ip": record.remote_ip, "port": record.remote_port}
        tls = record.remote_port in TLS_PORTS
        named = server_name(first_bytes) if first_bytes else None
        if named is not None:
            tls = named.tls
        if named is not None and named.hostname:
            remote["hostname"] = named.hostname
            remote["hostname_source"] = named.source
        elif dns_name:
            remote["hostname"] = dns_name
            remote["hostname_source"] = "dns"
        data = {
            "local": {"ip": record.local_ip, "port": record.local_port},
            "remote": remote,
            "protocol": "tcp",
            "family": "ipv6" if record.family == 10 else "ipv4",
            "tls": tls,
            "success": record.success,
            "connect_ms": round(max(0, record.done_ns - record.ts_ns) / 1e6, 3),
        }
        return [
            self._event(NETWORK_CONNECT, record.ts_ns, data, record.pid, record.tid, record.uid, record.comm)
        ]

    def dns(self, record: DnsRecord) -> list[SensorEvent]:
        if not self.network_enabled:
            return []
        self.counters.network_dns += 1
        if record.query not in record.answers:  # a numeric host names nothing
            for ip in record.answers:
                self._remember(record.pid, ip, record.query)
        data: dict[str, Any] = {
            "query": record.query,
            "answers": record.answers,
            "success": record.ret == 0,
            "resolver": "getaddrinfo",
            "duration_ms": round(max(0, record.done_ns - record.ts_ns) / 1e6, 3),
        }
        if record.ret:
            data["error_code"] = record.ret
        return [self._event(NETWORK_DNS, record.ts_ns, data, record.pid, record.tid, comm=record.comm)]
