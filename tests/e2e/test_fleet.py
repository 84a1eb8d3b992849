"""Fleet simulation: three sensors as three hosts, all exporting to one Kafka broker.

Each "host" is a network namespace (with its own fake AI provider on 127.0.0.1:443) and a
UTS namespace with its own hostname; its sensor runs inside both, with `--netns self` so it
reports its own host's processes only (uprobes see every process on the shared kernel),
and NODE_NAME set as a DaemonSet's downward API would. The one Tansu broker listens in the
root namespace; each host reaches it at the same 127.0.0.1 address through a relay whose
listening socket is created inside the host's namespace (no veth, no routed address).

A consumer then reads the topic and checks, per host: every event of the sensor's own JSONL
output arrived, once, in the same order (`key = "host"` keeps a host on one partition), and
only that host's clients' calls are there.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.export_servers import Broker, consume, free_port
from tests.support.fixtures import FakeProviderHandle, start_fake_provider
from tests.support.netns import NetNs, cleanup_stale_namespaces
from tests.support.sensor import RunningSensor
from tests.support.tls import TlsMaterial

pytestmark = pytest.mark.kernel

HOSTS = ("fleet-host-a", "fleet-host-b", "fleet-host-c")
CALLS_PER_HOST = 4
TOPIC = "oisp-fleet"
_CLONE_NEWNET = 0x40000000


def _listen_in_netns(ns: NetNs, port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:port inside `ns`, created by a short-lived thread that
    enters the namespace (setns changes only the calling thread's namespace; the socket
    keeps it for life, whichever thread accepts on it later)."""
    result: dict[str, Any] = {}

    def enter_and_listen() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{ns.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                result["error"] = OSError(ctypes.get_errno(), "setns")
                return
        finally:
            os.close(fd)
        result["sock"] = socket.create_server(("127.0.0.1", port))

    thread = threading.Thread(target=enter_and_listen)
    thread.start()
    thread.join(10)
    if "error" in result:
        raise result["error"]
    return result["sock"]


class Relay:
    """Forwards connections accepted inside a host's namespace to the broker (root namespace)."""

    def __init__(self, listener: socket.socket, upstream: tuple[str, int]) -> None:
        self.listener = listener
        self.upstream = upstream
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.listener.close()


class Host:
    def __init__(self, name: str, ns: NetNs, fake: FakeProviderHandle, relay: Relay) -> None:
        self.name, self.ns, self.fake, self.relay = name, ns, fake, relay
        self.sensor: RunningSensor | None = None


@pytest.fixture
def fleet(tls_material: TlsMaterial, tmp_path: Path) -> Iterator[tuple[Broker, list[Host]]]:
    if os.geteuid() != 0:
        pytest.skip("namespaces and kernel capture need root")
    cleanup_stale_namespaces()
    broker = Broker(free_port(), tmp_path / "tansu.log")
    broker.start()
    hosts: list[Host] = []
    try:
        broker.create_topic(TOPIC, partitions=3)
        for name in HOSTS:
            ns = NetNs().create()
            workdir = tmp_path / name
            workdir.mkdir()
            try:
                fake = start_fake_provider(ns, tls_material, workdir)
                relay = Relay(_listen_in_netns(ns, broker.port), ("127.0.0.1", broker.port))
            except BaseException:
                ns.close()
                raise
            hosts.append(Host(name, ns, fake, relay))
        yield broker, hosts
    finally:
        for host in hosts:
            if host.sensor is not None and host.sensor.returncode is None:
                host.sensor.stop()
            host.relay.close()
            host.ns.close()
        broker.stop()


def _start_sensor(host: Host, broker: Broker, out: Path) -> RunningSensor:
    config = out.with_suffix(".toml")
    config.write_text(
        f"""
[capture]
netns = ["self"]
file = false
[export.kafka]
enabled = true
brokers = "{broker.address}"
topic = "{TOPIC}"
key = "host"
flush_interval_ms = 5
"""
    )
    sensor = RunningSensor(out, ["--config", str(config)], env={"NODE_NAME": f"node-{host.name[-1]}"})
    # ip netns exec: the host's network; unshare --uts: its own hostname. Both exec, so the
    # sensor is the process that gets the signals.
    sensor.args = [
        *host.ns.argv(["unshare", "--uts", "sh", "-c", f'hostname {host.name} && exec "$@"', "sh"]),
        *sensor.args,
    ]
    return sensor


def _client_script(host: Host) -> list[str]:
    """Sequential curl calls (one streamed), each with a message naming its host and number."""
    calls = []
    for i in range(CALLS_PER_HOST):
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"{host.name} call {i}"}],
            "stream": i == CALLS_PER_HOST - 1,
        }
        calls.append(
            "curl -sS --fail-with-body https://api.openai.com/v1/chat/completions "
            '-H "Authorization: Bearer $OPENAI_API_KEY" -H "Content-Type: application/json" '
            f"-d '{json.dumps(body)}' > /dev/null"
        )
    return ["sh", "-c", " && ".join(calls)]


def test_three_hosts_one_broker_every_event_in_order(
    fleet: tuple[Broker, list[Host]], tmp_path: Path
) -> None:
    broker, hosts = fleet
    for host in hosts:
        host.sensor = _start_sensor(host, broker, tmp_path / f"{host.name}.jsonl")
    # attach in parallel: the three load their BPF objects at once (slow on a busy machine)
    errors: list[BaseException] = []

    def start(sensor: RunningSensor) -> None:
        try:
            sensor.start(timeout=150)
        except BaseException as exc:
            errors.append(exc)

    starters = [threading.Thread(target=start, args=(h.sensor,)) for h in hosts if h.sensor is not None]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    assert not errors, errors
    clients = [h.fake.popen(_client_script(h)) for h in hosts]
    for host, client in zip(hosts, clients, strict=True):
        out, err = client.communicate(timeout=60)
        assert client.returncode == 0, f"{host.name}: {err}{out}"
    for host in hosts:
        assert host.sensor is not None
        assert host.sensor.stop() == 0, host.sensor.stderr

    own: dict[str, list[dict[str, Any]]] = {}
    for host in hosts:
        assert host.sensor is not None
        events = host.sensor.events()
        own[host.name] = events
        assert "dropped" not in host.sensor.stderr, host.sensor.stderr
        # this host's sensor saw this host's clients, every call, and nobody else's
        asked = sorted(
            m["content"] for e in events if e["event_type"] == "ai.request" for m in e["data"]["messages"]
        )
        assert asked == [f"{host.name} call {i}" for i in range(CALLS_PER_HOST)], asked
        assert sum(e["event_type"] == "ai.response" for e in events) == CALLS_PER_HOST
        for e in events:
            assert e["host"]["hostname"] == host.name
            assert e["host"]["node_name"] == f"node-{host.name[-1]}"

    total = sum(len(v) for v in own.values())
    messages = consume(broker.address, TOPIC, total + 1, partitions=3, timeout=8)
    by_host: dict[str, list[str]] = {h: [] for h in HOSTS}
    partitions: dict[str, set[int]] = {h: set() for h in HOSTS}
    for msg in messages:
        event = orjson.loads(msg.value())
        name = event["host"]["hostname"]
        assert msg.key() == name.encode()
        by_host[name].append(event["event_id"])
        partitions[name].add(msg.partition())
    for name, events in own.items():
        # every event, once, in the order the host's sensor wrote it
        assert by_host[name] == [e["event_id"] for e in events], name
        assert len(partitions[name]) == 1
    assert len(messages) == total
