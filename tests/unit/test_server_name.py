"""Naming the remote host from a connection's first bytes: SNI and Host, and the
network.connect events that wait for them."""

from __future__ import annotations

import ssl

import pytest

from oisp_sensor.capture.records import FirstSendRecord, NetConnectRecord
from oisp_sensor.decode.server_name import server_name
from oisp_sensor.decode.system_events import FIRST_SEND_WAIT_NS, SystemEventBuilder


def client_hello(hostname: str | None) -> bytes:
    """The ClientHello OpenSSL (through Python's ssl module) really sends."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=hostname)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


def test_sni_of_a_real_client_hello() -> None:
    named = server_name(client_hello("api.anthropic.com"))
    assert named is not None and named == ("api.anthropic.com", "sni", True)


def test_client_hello_without_sni_is_tls_with_no_name() -> None:
    assert server_name(client_hello(None)) == (None, "sni", True)


def test_truncated_hello_never_raises_and_never_invents_a_name() -> None:
    hello = client_hello("generativelanguage.googleapis.com")
    names = {server_name(hello[:n]) for n in range(len(hello) + 1)}
    assert {n.hostname for n in names if n} <= {None, "generativelanguage.googleapis.com"}


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (b"POST /api/chat HTTP/1.1\r\nHost: localhost:11434\r\nContent-Length: 2\r\n\r\n{}", "localhost"),
        (b"GET / HTTP/1.1\r\nhost: Ollama.Internal.\r\n\r\n", "ollama.internal"),
        (b"GET / HTTP/1.1\r\nHost: 10.0.0.5:8000\r\n\r\n", None),  # an address names no host
        (b"GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: bad name!\r\n\r\n", None),
    ],
)
def test_http_host_header(first: bytes, expected: str | None) -> None:
    named = server_name(first)
    assert named is not None and named.hostname == expected and named.source == "http_host"
    assert named.tls is False


@pytest.mark.parametrize(
    "junk", [b"", b"\x16", b"\x16\x03\x01\x00", b"SSH-2.0-OpenSSH_9.2\r\n", bytes(range(256))]
)
def test_other_protocols_are_not_named(junk: bytes) -> None:
    assert server_name(junk) is None


def _connect(sock: int, port: int = 443, done_ns: int = 1_000) -> NetConnectRecord:
    return NetConnectRecord(
        pid=7, tid=7, uid=0, ts_ns=done_ns - 10, done_ns=done_ns, family=2, local_ip="10.0.0.2",
        local_port=40000 + sock, remote_ip="10.9.9.9", remote_port=port, success=True, comm="agent", sock=sock,
    )  # fmt: skip


def test_connect_waits_for_its_first_send() -> None:
    builder = SystemEventBuilder(lambda ts: f"id{ts}")
    assert builder.connect(_connect(1)) == []
    events = builder.first_send(FirstSendRecord(pid=7, ts_ns=2_000, sock=1, data=client_hello("api.x.ai")))
    assert len(events) == 1
    remote = events[0].data["remote"]
    assert (remote["hostname"], remote["hostname_source"], events[0].data["tls"]) == ("api.x.ai", "sni", True)
    assert events[0].ts_ns == 990  # the connect's own time, not the send's
    assert builder.first_send(FirstSendRecord(pid=7, ts_ns=3_000, sock=1, data=b"")) == []


def test_silent_connection_is_reported_after_the_wait_with_its_dns_name() -> None:
    builder = SystemEventBuilder(lambda ts: f"id{ts}")
    builder._remember(7, "10.9.9.9", "api.mistral.ai")
    builder.connect(_connect(2))
    builder._remember(7, "10.9.9.9", "renamed.example")  # a later resolution renames nothing
    assert builder.expire(1_000 + FIRST_SEND_WAIT_NS - 1) == []
    [event] = builder.expire(1_000 + FIRST_SEND_WAIT_NS)
    assert event.data["remote"]["hostname"] == "api.mistral.ai"
    assert event.data["remote"]["hostname_source"] == "dns"
    assert not builder.waiting


def test_failed_connects_are_not_held_and_shutdown_flushes_the_rest() -> None:
    builder = SystemEventBuilder(lambda ts: f"id{ts}")
    refused = _connect(3)
    refused.success = False
    assert len(builder.connect(refused)) == 1
    builder.connect(_connect(4, port=8080))
    [event] = builder.flush()
    assert event.data["tls"] is False and "hostname" not in event.data["remote"]


def test_a_reused_socket_address_reports_the_silent_connection_it_replaces() -> None:
    """The kernel hands a closed socket's memory to the next one: a connection that closed
    without sending must be reported, not overwritten by its successor."""
    builder = SystemEventBuilder(lambda ts: f"id{ts}")
    builder._remember(7, "10.9.9.9", "api.openai.com")
    assert builder.connect(_connect(5)) == []
    second = _connect(5, done_ns=5_000)
    second.local_port = 50000
    [silent] = builder.connect(second)
    assert silent.data["local"]["port"] == 40005
    assert silent.data["remote"]["hostname"] == "api.openai.com"
    [named] = builder.first_send(
        FirstSendRecord(pid=7, ts_ns=6_000, sock=5, data=client_hello("sni.example"))
    )
    assert named.data["local"]["port"] == 50000 and named.data["remote"]["hostname"] == "sni.example"
