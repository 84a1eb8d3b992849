"""Probe placement on the OpenSSL copies of this machine (Debian libssl3, Node 20)."""

from __future__ import annotations

import os

import pytest

from oisp_sensor.capture.probe_points import plan_probes
from oisp_sensor.capture.targets import SSL_FUNCTIONS, exported_ssl_functions

LIBSSL = "/lib/x86_64-linux-gnu/libssl.so.3"
NODE = "/usr/bin/node"


@pytest.mark.skipif(not os.path.exists(LIBSSL), reason="no Debian libssl3")
def test_libssl_uses_the_shared_internal_functions() -> None:
    points = {p.name: p for p in plan_probes(LIBSSL, SSL_FUNCTIONS)}
    # One fast probe pair per direction instead of four single-stepped ones.
    assert set(points) == {"internal:SSL_read_ex", "internal:SSL_write_ex", "SSL_free"}
    for name in ("internal:SSL_read_ex", "internal:SSL_write_ex"):
        assert points[name].fast
        assert points[name].entry_program.endswith("_ex_entry")
        assert points[name].return_program is not None
    with open(LIBSSL, "rb") as f:
        f.seek(points["internal:SSL_read_ex"].file_offset)
        first = f.read(2)
    assert first[0] in range(0x50, 0x58) or (first[0] == 0x41 and first[1] in range(0x50, 0x58))  # push


@pytest.mark.skipif(not os.path.exists(NODE), reason="no node")
def test_node_exports_are_probed_directly_and_fast() -> None:
    functions = exported_ssl_functions(NODE)
    assert functions == SSL_FUNCTIONS
    points = {p.name: p for p in plan_probes(NODE, functions)}
    for name in ("SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex"):
        assert points[name].fast, name


def test_not_an_elf(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "x.so")
    with open(path, "wb") as f:
        f.write(b"\x7fELF" + b"\0" * 10)
    with pytest.raises((ValueError, OSError)):
        plan_probes(path, SSL_FUNCTIONS)
