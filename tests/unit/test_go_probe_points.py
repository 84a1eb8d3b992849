"""Go crypto/tls probe placement on a real Go binary (the test client, built with Debian's Go):
entry probes on the stack-check branch, one probe per RET of Read, never a uretprobe; and
clear refusals for stripped, foreign, damaged or unsupported binaries."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.goclient import GoBuildError, build_go_client, go_toolchain

from oisp_sensor.capture.gobinary import GO_TLS_FUNCTIONS, go_minor, inspect_go_binary
from oisp_sensor.capture.probe_points import plan_probes
from oisp_sensor.capture.targets import TargetScanner
from oisp_sensor.check import _describe_target

pytestmark = pytest.mark.skipif(go_toolchain() is None, reason="golang-go not installed")

WRITE, READ, CLOSE = GO_TLS_FUNCTIONS


@pytest.fixture(scope="module")
def client() -> Path:
    try:
        return build_go_client()
    except GoBuildError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def stripped() -> Path:
    try:
        return build_go_client(stripped=True)
    except GoBuildError as exc:
        pytest.fail(str(exc))


def _file_offset(path: Path, vaddr: int) -> int:
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_filesz"]:
                return vaddr - seg["p_vaddr"] + seg["p_offset"]
    raise AssertionError(hex(vaddr))


def _patched(src: Path, dest: Path, patches: dict[int, bytes]) -> Path:
    data = bytearray(src.read_bytes())
    for offset, new in patches.items():
        data[offset : offset + len(new)] = new
    dest.write_bytes(bytes(data))
    return dest


def test_inspect_unstripped(client: Path) -> None:
    go = inspect_go_binary(str(client))
    assert go is not None and go.uses_tls and go.problem == ""
    assert go_minor(go.version) is not None and go_minor(go.version) >= 17  # type: ignore[operator]
    assert set(go.functions) == set(GO_TLS_FUNCTIONS)
    assert all(f.size > 0 for f in go.functions.values())


def test_probe_points(client: Path) -> None:
    go = inspect_go_binary(str(client))
    assert go is not None
    points = plan_probes(str(client), tuple(go.functions), "go")
    assert all(p.return_program is None for p in points)  # never a uretprobe on Go code
    assert all(p.cookie == 3 for p in points)  # OISP_SRC_GO
    data = client.read_bytes()
    by_program: dict[str, list[int]] = {}
    for p in points:
        by_program.setdefault(p.entry_program, []).append(p.file_offset)
    # Entry probes: on the `jbe` (0f 86 rel32) of each function's stack check, which the
    # kernel emulates.
    for program, name in (("oisp_go_tls_write", WRITE), ("oisp_go_tls_read_entry", READ),
                          ("oisp_go_tls_close", CLOSE)):  # fmt: skip
        (offset,) = by_program[program]
        start = _file_offset(client, go.functions[name].vaddr)
        assert start < offset < start + 24
        assert data[offset : offset + 2] == b"\x0f\x86", name
    # Return probes: every RET of Read, and only those.
    read = go.functions[READ]
    start = _file_offset(client, read.vaddr)
    rets = by_program["oisp_go_tls_read_ret"]
    assert rets and all(start < off < start + read.size and data[off] == 0xC3 for off in rets)
    if shutil.which("objdump"):
        listing = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", f"--start-address={read.vaddr:#x}",
             f"--stop-address={read.vaddr + read.size:#x}", str(client)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        objdump_rets = [int(m, 16) for m in re.findall(r"^\s*([0-9a-f]+):\s+ret", listing, re.M)]
        assert sorted(off - start + read.vaddr for off in rets) == objdump_rets


def test_stripped_binary_is_found_but_not_probeable(stripped: Path) -> None:
    go = inspect_go_binary(str(stripped))
    assert go is not None and go.uses_tls and not go.functions
    assert "stripped Go binary" in go.problem
    target = TargetScanner().examine(str(stripped), "test")
    assert target is not None and target.family == "go" and target.problem == go.problem
    with pytest.raises(ValueError, match="stripped Go binary"):
        plan_probes(str(stripped), target.functions, "go")
    ok, detail = _describe_target(target)
    assert not ok and "NOT probeable: stripped Go binary" in detail


def test_not_a_go_binary() -> None:
    assert inspect_go_binary(sys.executable) is None or not inspect_go_binary(sys.executable).uses_tls  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="not a Go executable"):
        plan_probes(str(Path(sys.executable).resolve()), (), "go")


def test_truncated_go_binary(client: Path, tmp_path: Path) -> None:
    """Half a Go binary: no traceback, at most a clear refusal."""
    half = tmp_path / "half"
    half.write_bytes(client.read_bytes()[: client.stat().st_size // 2])
    target = TargetScanner().examine(str(half), "test")
    if target is not None:
        with pytest.raises((ValueError, OSError)):
            plan_probes(str(half), target.functions, target.family)
    with pytest.raises((ValueError, OSError)):
        plan_probes(str(half), (), "go")


def test_read_without_ret(client: Path, tmp_path: Path) -> None:
    go = inspect_go_binary(str(client))
    assert go is not None
    rets = [
        p.file_offset for p in plan_probes(str(client), (), "go") if p.entry_program == "oisp_go_tls_read_ret"
    ]
    patched = _patched(client, tmp_path / "noret", dict.fromkeys(rets, b"\xcc"))
    with pytest.raises(ValueError, match=r"Read: no RET instruction"):
        plan_probes(str(patched), (), "go")


def test_unrecognised_prologue(client: Path, tmp_path: Path) -> None:
    go = inspect_go_binary(str(client))
    assert go is not None
    write_entry = next(
        p.file_offset for p in plan_probes(str(client), (), "go") if p.entry_program == "oisp_go_tls_write"
    )
    patched = _patched(client, tmp_path / "nojbe", {write_entry: b"\x90" * 6})  # jbe rel32 -> nops
    with pytest.raises(ValueError, match="prologue is not recognised"):
        plan_probes(str(patched), (), "go")


def test_go_before_register_abi_is_refused(client: Path, tmp_path: Path) -> None:
    data = client.read_bytes()
    version = inspect_go_binary(str(client)).version  # type: ignore[union-attr]
    at = data.index(b"\xff Go buildinf:")
    pos = data.index(version.encode(), at)
    old = _patched(client, tmp_path / "old", {pos: b"go1.16" + version.encode()[6:]})
    go = inspect_go_binary(str(old))
    assert go is not None and go.version.startswith("go1.16")
    assert "only Go >= 1.17" in go.problem
    with pytest.raises(ValueError, match="arguments on the stack"):
        plan_probes(str(old), (), "go")


@pytest.mark.parametrize(
    ("version", "minor"),
    [("go1.19.8", 19), ("go1.22rc1", 22), ("devel go1.23-abcdef Tue", 23), ("go1.9", 9), ("gccgo", None)],
)
def test_go_minor(version: str, minor: int | None) -> None:
    assert go_minor(version) == minor
