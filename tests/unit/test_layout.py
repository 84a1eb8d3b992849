"""The ctypes mirror (capture/layout.py) and the struct parser match bpf/oisp_records.h.

Compiles a tiny C program against the real header and compares every size and field
offset, so neither side can change alone.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from oisp_sensor.capture import layout
from oisp_sensor.capture.parse import CTL_EVENT, DATA_HDR, EXEC_HDR, NET_EVENT

HEADER = Path(__file__).resolve().parents[2] / "bpf" / "oisp_records.h"
COMPILER = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _c_layout(tmp_path: Path) -> dict[str, int]:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;",
        "typedef int32_t __s32;",
        f'#include "{HEADER}"',
        "int main(void) {",
    ]
    for c_name, cls in layout.MIRRORED:
        lines.append(f'printf("{c_name} %zu\\n", sizeof(struct {c_name}));')
        for field, *_ in cls._fields_:
            lines.append(f'printf("{c_name}.{field} %zu\\n", offsetof(struct {c_name}, {field}));')
    for name in (
        "OISP_CHUNK_MAX",
        "OISP_MAX_CHUNKS",
        "OISP_COMM_LEN",
        "OISP_CNT__MAX",
        "OISP_REC_DATA",
        "OISP_REC_CONN_CLOSE",
        "OISP_REC_PROC_EXIT",
        "OISP_REC_PROC_EXEC",
        "OISP_FLAG_TRUNCATED",
        "OISP_ARGS_MAX",
        "OISP_FILENAME_MAX",
        "OISP_REC_PROC_FORK",
        "OISP_REC_NET_CONNECT",
        "OISP_REC_NET_FIRST_SEND",
        "OISP_FIRST_SEND_MAX",
        "OISP_REC_FILE_OPEN",
        "OISP_REC_FILE_CLOSE",
        "OISP_PATH_MAX",
        "OISP_FLAG_FD_REUSED",
        "OISP_WATCH_FILES",
        "OISP_WATCH_SOCKETS",
        "OISP_FILES_ALL",
        "OISP_ENV_MAX",
        "OISP_FLAG_DUP",
        "OISP_FLAG_PATH_RESOLVED",
        "OISP_FLAG_INHERITED",
        "OISP_REC_LIB_OPEN",
    ):
        lines.append(f'printf("{name} %d\\n", (int){name});')
    lines += ["return 0; }"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([COMPILER, str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


@pytest.mark.skipif(COMPILER is None, reason="no C compiler")
def test_ctypes_mirror_matches_header(tmp_path: Path) -> None:
    c = _c_layout(tmp_path)
    for c_name, cls in layout.MIRRORED:
        assert ctypes.sizeof(cls) == c[c_name], c_name
        for field, *_ in cls._fields_:
            assert getattr(cls, field).offset == c[f"{c_name}.{field}"], f"{c_name}.{field}"
    assert c["OISP_CHUNK_MAX"] == layout.CHUNK_MAX
    assert c["OISP_MAX_CHUNKS"] == layout.MAX_CHUNKS
    assert c["OISP_COMM_LEN"] == layout.COMM_LEN
    assert c["OISP_CNT__MAX"] == layout.COUNTER_SLOTS == len(layout.Counter)
    assert c["OISP_FLAG_TRUNCATED"] == layout.FLAG_TRUNCATED
    assert c["OISP_REC_DATA"] == layout.RecordKind.DATA
    assert c["OISP_REC_CONN_CLOSE"] == layout.RecordKind.CONN_CLOSE
    assert c["OISP_REC_PROC_EXIT"] == layout.RecordKind.PROC_EXIT
    assert c["OISP_REC_PROC_EXEC"] == layout.RecordKind.PROC_EXEC
    assert c["OISP_REC_PROC_FORK"] == layout.RecordKind.PROC_FORK
    assert c["OISP_REC_NET_CONNECT"] == layout.RecordKind.NET_CONNECT
    assert c["OISP_ARGS_MAX"] == layout.ARGS_MAX
    assert c["OISP_FILENAME_MAX"] == layout.FILENAME_MAX
    assert c["OISP_REC_FILE_OPEN"] == layout.RecordKind.FILE_OPEN
    assert c["OISP_REC_FILE_CLOSE"] == layout.RecordKind.FILE_CLOSE
    assert c["OISP_PATH_MAX"] == layout.PATH_MAX
    assert c["OISP_FLAG_FD_REUSED"] == layout.FLAG_FD_REUSED
    assert c["OISP_WATCH_FILES"] == layout.WATCH_FILES
    assert c["OISP_WATCH_SOCKETS"] == layout.WATCH_SOCKETS
    assert c["OISP_FILES_ALL"] == layout.FileMode.ALL
    assert c["OISP_ENV_MAX"] == layout.ENV_MAX
    assert c["OISP_FLAG_DUP"] == layout.FLAG_DUP
    assert c["OISP_FLAG_PATH_RESOLVED"] == layout.FLAG_PATH_RESOLVED
    assert c["OISP_FLAG_INHERITED"] == layout.FLAG_INHERITED
    assert c["OISP_REC_LIB_OPEN"] == layout.RecordKind.LIB_OPEN
    assert c["OISP_REC_NET_FIRST_SEND"] == layout.RecordKind.NET_FIRST_SEND
    assert c["OISP_FIRST_SEND_MAX"] == layout.FIRST_SEND_MAX


def test_struct_parsers_match_ctypes() -> None:
    assert DATA_HDR.size == ctypes.sizeof(layout.DataHdr)
    assert CTL_EVENT.size == ctypes.sizeof(layout.CtlEvent)
    assert EXEC_HDR.size == ctypes.sizeof(layout.ExecHdr)
    assert NET_EVENT.size == ctypes.sizeof(layout.NetEvent)
