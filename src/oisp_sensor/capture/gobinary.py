"""Facts about a Go executable that decide whether its crypto/tls can be probed.

Go links crypto/tls statically and exports nothing, so the functions are found in the
static symbol table (.symtab), which `go build -ldflags=-s` and `strip` remove. Such a
stripped binary is still recognised as using crypto/tls (the function names stay in
.gopclntab, which the Go runtime itself needs) and reported as found but not probeable.

The probes read Go's register ABI (amd64, Go >= 1.17), so the Go version comes from
.go.buildinfo and the machine from the ELF header.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

# Write and Read decide that a binary uses crypto/tls; Close marks the end of a connection.
GO_TLS_FUNCTIONS = (
    "crypto/tls.(*Conn).Write",
    "crypto/tls.(*Conn).Read",
    "crypto/tls.(*Conn).Close",
)
# The first Go with the register-based internal ABI on amd64.
MIN_GO_MINOR = 17

_BUILDINFO_MAGIC = b"\xff Go buildinf:"
_STT_FUNC = 2
_SYM64 = struct.Struct("<IBBHQQ")  # Elf64_Sym: name, info, other, shndx, value, size


@dataclass(frozen=True, slots=True)
class GoFunction:
    name: str
    vaddr: int
    size: int


@dataclass(slots=True)
class GoBinary:
    """What the sensor needs to know about one Go executable."""

    path: str
    version: str  # "go1.19.8", or "" when the build info cannot be read
    uses_tls: bool  # crypto/tls.(*Conn).Read and .Write are linked in
    functions: dict[str, GoFunction] = field(default_factory=dict)  # from .symtab
    problem: str = ""  # why it cannot be probed; "" when it can


def is_go_elf(elf: ELFFile) -> bool:
    """A Go executable: the Go linker always writes build info and a pclntab section."""
    names = {section.name for section in elf.iter_sections()}
    return (
        ".go.buildinfo" in names
        or ".note.go.buildid" in names
        or any(name.endswith("gopclntab") for name in names)
    )


def inspect_go_binary(path: str) -> GoBinary | None:
    """A GoBinary for a Go executable, None for anything else (other ELF files, scripts).

    Raises OSError when the file cannot be read; a malformed ELF is "not Go" (None).
    """
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
        f.seek(0)
        try:
            elf = ELFFile(f)
            if not is_go_elf(elf):
                return None
            return _inspect(path, f, elf)
        except (ELFError, ValueError, struct.error, LookupError, AttributeError, TypeError) as exc:
            # A damaged file (pyelftools raises several kinds): skipped, never a crash of
            # the capture thread that scans every executable it sees.
            return GoBinary(path, "", uses_tls=False, problem=f"unreadable Go binary: {exc}")


def _inspect(path: str, f: BinaryIO, elf: ELFFile) -> GoBinary:
    version = build_version(elf, f)
    functions = _symtab_functions(elf, GO_TLS_FUNCTIONS)
    if functions is None:
        # No symbol table: look for the names where the Go runtime keeps them.
        uses_tls = _in_pclntab(elf, GO_TLS_FUNCTIONS[:2])
        problem = (
            "stripped Go binary (no symbol table, built with -ldflags=-s or stripped): "
            "its crypto/tls functions cannot be located; build it without -s to capture it"
        )
        return GoBinary(path, version, uses_tls, problem=problem)
    uses_tls = all(name in functions for name in GO_TLS_FUNCTIONS[:2])
    return GoBinary(path, version, uses_tls, functions, _abi_problem(elf, version))


def _abi_problem(elf: ELFFile, version: str) -> str:
    """Why the probes' register assumptions do not hold for this binary, or ""."""
    if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
        return f"Go binary for {elf['e_machine']}: only x86-64 Go binaries are probed"
    if not version:
        return "Go version unknown (no readable .go.buildinfo): cannot tell its calling convention"
    minor = go_minor(version)
    if minor is None:
        return f"unrecognised Go version {version!r}: cannot tell its calling convention"
    if minor < MIN_GO_MINOR:
        return f"{version} passes arguments on the stack; only Go >= 1.{MIN_GO_MINOR} is probed"
    return ""


def go_minor(version: str) -> int | None:
    """The minor version of "go1.19.8", "go1.22rc1", "devel go1.23-abcdef ..."."""
    match = re.search(r"go1\.(\d+)", version)
    return int(match.group(1)) if match else None


def build_version(elf: ELFFile, f: BinaryIO) -> str:
    """The Go version recorded by the linker in .go.buildinfo, or ""."""
    section = elf.get_section_by_name(".go.buildinfo")
    if section is None:
        return ""
    head = section.data()[:64]
    if not head.startswith(_BUILDINFO_MAGIC) or len(head) < 32:
        return ""
    ptr_size, flags = head[14], head[15]
    if flags & 2:
        # Go >= 1.18: the version follows the 32-byte header as a varint-prefixed string.
        length, pos = _uvarint(head, 32)
        data = section.data()[pos : pos + length]
        return data.decode("utf-8", "replace")
    # Go <= 1.17: a pointer to a Go string header (data pointer, length).
    if ptr_size not in (4, 8):
        return ""
    order = ">" if flags & 1 else "<"
    word = order + ("Q" if ptr_size == 8 else "I")
    (string_ptr,) = struct.unpack_from(word, head, 16)
    header = _read_vaddr(elf, f, string_ptr, 2 * ptr_size)
    if header is None:
        return ""
    data_ptr, length = struct.unpack(order + word[1] * 2, header)
    if not 0 < length < 128:
        return ""
    data = _read_vaddr(elf, f, data_ptr, length)
    return data.decode("utf-8", "replace") if data else ""


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint in .go.buildinfo")


def _read_vaddr(elf: ELFFile, f: BinaryIO, vaddr: int, size: int) -> bytes | None:
    for seg in elf.iter_segments():
        if (
            seg["p_type"] == "PT_LOAD"
            and seg["p_vaddr"] <= vaddr
            and vaddr + size <= seg["p_vaddr"] + seg["p_filesz"]
        ):
            f.seek(vaddr - seg["p_vaddr"] + seg["p_offset"])
            return f.read(size)
    return None


def _symtab_functions(elf: ELFFile, names: tuple[str, ...]) -> dict[str, GoFunction] | None:
    """Which of `names` .symtab defines as functions; None without a .symtab.

    Parsed by hand: a Go binary has tens of thousands of symbols and pyelftools builds an
    object per symbol (seconds for a large binary); this takes milliseconds.
    """
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None or symtab["sh_type"] != "SHT_SYMTAB":
        return None
    strtab = elf.get_section(symtab["sh_link"]).data()
    wanted: dict[int, str] = {}
    for name in names:
        needle = b"\0" + name.encode() + b"\0"
        pos = strtab.find(needle)
        while pos != -1:
            wanted[pos + 1] = name
            pos = strtab.find(needle, pos + 1)
    if not wanted or elf.elfclass != 64:
        return {}
    data = symtab.data()
    found: dict[str, GoFunction] = {}
    for st_name, st_info, _other, shndx, value, size in _SYM64.iter_unpack(
        data[: len(data) - len(data) % 24]
    ):
        name = wanted.get(st_name)
        if name and (st_info & 0xF) == _STT_FUNC and shndx != 0 and value:
            found[name] = GoFunction(name, value, size)
    return found


def _in_pclntab(elf: ELFFile, names: tuple[str, ...]) -> bool:
    for section in elf.iter_sections():
        if section.name.endswith("gopclntab"):
            data = section.data()
            return all(b"\0" + name.encode() + b"\0" in data for name in names)
    return False
