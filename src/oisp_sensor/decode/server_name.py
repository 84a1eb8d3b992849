"""The host a client meant to reach, from the first bytes its connection sent.

A TLS client names the server in the ClientHello's server_name extension (SNI, RFC 6066
section 3) before anything is encrypted; an HTTP/1.x client names it in the Host header.
The kernel copies the first send of every outgoing connection (at most 1 KiB), which is
where both are. Sans-IO: bytes in, (name, how it was found) out; anything else, truncated
or malformed gives None, never an exception.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

_TLS_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_EXT_SERVER_NAME = 0x0000
_HOST_NAME = 0x00
_HTTP_REQUEST_LINE = re.compile(rb"^[A-Z]{3,10} \S+ HTTP/1\.[01]\r\n")
_HOST_HEADER = re.compile(rb"\r\nhost:[ \t]*([^\r\n]*)", re.IGNORECASE)
_VALID_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,251}[a-z0-9_])?$")


class ServerName(NamedTuple):
    hostname: str | None  # None when the first bytes are recognised but name no host
    source: str  # "sni" or "http_host"
    tls: bool


def server_name(data: bytes) -> ServerName | None:
    """What the first bytes of a connection say about the server, or None."""
    if len(data) >= 6 and data[0] == _TLS_HANDSHAKE and data[1] == 3 and data[5] == _CLIENT_HELLO:
        return ServerName(_sni(data), "sni", True)
    if _HTTP_REQUEST_LINE.match(data):
        return ServerName(_host_header(data), "http_host", False)
    return None


def _sni(data: bytes) -> str | None:
    # TLS record header (5) + handshake header (4) + client_version (2) + random (32).
    pos = 5 + 4 + 2 + 32
    try:
        pos += 1 + data[pos]  # session_id
        pos += 2 + int.from_bytes(data[pos : pos + 2], "big")  # cipher_suites
        pos += 1 + data[pos]  # compression_methods
        end = pos + 2 + int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= min(end, len(data)):
            kind = int.from_bytes(data[pos : pos + 2], "big")
            size = int.from_bytes(data[pos + 2 : pos + 4], "big")
            body = data[pos + 4 : pos + 4 + size]
            if kind == _EXT_SERVER_NAME:
                return _first_host_name(body)
            pos += 4 + size
    except IndexError:  # truncated: the copy ended inside the hello
        return None
    return None


def _first_host_name(body: bytes) -> str | None:
    # server_name_list: total length (2), then entries of type (1), length (2), name.
    pos = 2
    while pos + 3 <= len(body):
        kind = body[pos]
        size = int.from_bytes(body[pos + 1 : pos + 3], "big")
        name = body[pos + 3 : pos + 3 + size]
        if kind == _HOST_NAME and len(name) == size:
            return _valid(name.decode("ascii", "replace"))
        pos += 3 + size
    return None


def _host_header(data: bytes) -> str | None:
    head = data.split(b"\r\n\r\n", 1)[0]
    match = _HOST_HEADER.search(head)
    if not match:
        return None
    host = match.group(1).strip().decode("ascii", "replace")
    if host.startswith("["):  # [v6]:port
        return None
    return _valid(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)


def _valid(name: str) -> str | None:
    """A DNS name (lowercase, no trailing dot); addresses and junk give None."""
    name = name.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return None  # an address names no host
    except ValueError:
        pass
    return name if _VALID_NAME.match(name) else None
