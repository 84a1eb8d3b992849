"""Where exactly to put each uprobe in an OpenSSL copy, so that probing costs little.

A uprobe on an instruction the kernel cannot emulate is single-stepped out of line:
here (a VM) that costs about 11 us per hit, and Debian's libssl starts SSL_read,
SSL_write and their _ex variants with `sub $N,%rsp`. A uretprobe needs a probe at
function entry, so it pays the same. `push`, `call`, `jmp` and `nop` are emulated and
cost about 1 us.

OpenSSL 3 implements SSL_read/SSL_read_ex (and the write pair) as thin wrappers that
call one internal function with the _ex signature: `int f(SSL *, void *buf, size_t num,
size_t *bytes)`, returning > 0 with `*bytes` set on success. When disassembly shows both
wrappers calling the same function, and that function starts with an emulated
instruction, one entry probe and one return probe there cover both wrappers at a
fraction of the cost. When the pattern is not there, the exported functions are probed
as they are (always correct, just slower). Node's static OpenSSL starts its exported
functions with `push %rbp`, so those are probed directly.

Go's crypto/tls (see plan_go_probes) is never given a uretprobe: Go moves and walks its
goroutine stacks, and a rewritten return address crashes the program. Its returns are
probed at every RET instruction of the function instead.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import capstone
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .elfid import build_id
from .gobinary import GO_TLS_FUNCTIONS, GoFunction, inspect_go_binary

# Entry and return BPF programs by the calling convention of the probed function.
PLAIN_READ = ("oisp_ssl_read_entry", "oisp_ssl_read_return")
EX_READ = ("oisp_ssl_read_ex_entry", "oisp_ssl_read_return")
PLAIN_WRITE = ("oisp_ssl_write_entry", "oisp_ssl_write_return")
EX_WRITE = ("oisp_ssl_write_ex_entry", "oisp_ssl_write_return")
FREE = ("oisp_ssl_free", None)
RESOLVER = ("oisp_getaddrinfo_entry", "oisp_getaddrinfo_return")
# Go: plain uprobes only (bpf/oisp_go_tls.bpf.h).
GO_WRITE = "oisp_go_tls_write"
GO_READ_ENTRY = "oisp_go_tls_read_entry"
GO_READ_RET = "oisp_go_tls_read_ret"
GO_CLOSE = "oisp_go_tls_close"

# enum oisp_data_source: passed as the attach cookie, stamped on every data record.
SOURCE_OPENSSL = 0
SOURCE_GNUTLS = 2
SOURCE_GO = 3

_EMULATED = {"push", "call", "jmp", "nop"}
_SCAN_BYTES = 160  # enough for the wrappers' prologue up to their call


@dataclass(frozen=True, slots=True)
class ProbePoint:
    """One place to attach: an entry program, and a return program when data is read at return."""

    name: str  # the exported function, or "internal:<wrapper>" for the shared implementation
    file_offset: int
    entry_program: str
    return_program: str | None
    fast: bool  # the probed instruction is emulated (no single-step)
    cookie: int = SOURCE_OPENSSL  # which TLS library (enum oisp_data_source)


class _Binary:
    """Symbols and code bytes of one ELF file, read once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.elf = ELFFile(self._f)
        table = self.elf.get_section_by_name(".gnu.hash") or self.elf.get_section_by_name(".hash")
        self._lookup = table.get_symbol if table is not None and hasattr(table, "get_symbol") else None
        self._segments = [
            s for s in self.elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_flags"] & 1
        ]
        self._md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)

    def close(self) -> None:
        self._f.close()

    def symbol(self, name: str) -> int | None:
        if self._lookup is None:
            return None
        sym = self._lookup(name)
        if sym is None or sym["st_shndx"] == "SHN_UNDEF" or sym["st_info"]["type"] != "STT_FUNC":
            return None
        return int(sym["st_value"])

    def file_offset(self, vaddr: int) -> int | None:
        for seg in self._segments:
            if seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_filesz"]:
                return vaddr - seg["p_vaddr"] + seg["p_offset"]
        return None

    def instructions(self, vaddr: int, count: int) -> list[capstone.CsInsn]:
        return list(self._md.disasm(self.code(vaddr, _SCAN_BYTES), vaddr, count))

    def code(self, vaddr: int, size: int) -> bytes:
        """Up to `size` bytes of code at `vaddr` (fewer at the end of a segment)."""
        offset = self.file_offset(vaddr)
        if offset is None:
            return b""
        self._f.seek(offset)
        return self._f.read(size)


def _entry_point(binary: _Binary, vaddr: int) -> tuple[int, bool]:
    """Probe address for a function's entry, and whether it is emulated.

    Skips a leading endbr64 (it neither moves the stack nor changes registers, so a
    return probe placed after it still finds the return address at the top of stack).
    """
    insns = binary.instructions(vaddr, 2)
    if not insns:
        return vaddr, False
    first = insns[0]
    if first.mnemonic == "endbr64" and len(insns) > 1:
        first = insns[1]
    return first.address, first.mnemonic in _EMULATED


def _call_target(insn: capstone.CsInsn) -> int | None:
    if insn.mnemonic != "call":
        return None
    try:
        return int(insn.op_str, 16)
    except ValueError:
        return None  # an indirect call


def _shared_internal(binary: _Binary, plain: int, ex: int) -> int | None:
    """The function both wrappers call, if `ex` is `[endbr64] [sub $N,%rsp] call F` and `plain` calls F too."""
    target = None
    for insn in binary.instructions(ex, 4):
        if insn.mnemonic == "endbr64" or (insn.mnemonic == "sub" and insn.op_str.startswith("rsp,")):
            continue
        target = _call_target(insn)
        break
    if target is None:
        return None
    for insn in binary.instructions(plain, 32):
        if insn.mnemonic == "ret":
            break
        if _call_target(insn) == target:
            return target
    return None


def _pair(
    binary: _Binary,
    functions: tuple[str, ...],
    plain_name: str,
    ex_name: str,
    plain_programs: tuple[str, str],
    ex_programs: tuple[str, str],
) -> list[ProbePoint]:
    plain = binary.symbol(plain_name) if plain_name in functions else None
    ex = binary.symbol(ex_name) if ex_name in functions else None
    points: list[ProbePoint] = []
    if plain is not None and ex is not None:
        internal = _shared_internal(binary, plain, ex)
        if internal is not None:
            addr, fast = _entry_point(binary, internal)
            offset = binary.file_offset(addr)
            if fast and offset is not None:
                return [ProbePoint(f"internal:{ex_name}", offset, *ex_programs, fast=True)]
    for vaddr, name, programs in ((plain, plain_name, plain_programs), (ex, ex_name, ex_programs)):
        if vaddr is None:
            continue
        addr, fast = _entry_point(binary, vaddr)
        offset = binary.file_offset(addr if fast else vaddr)
        if offset is not None:
            points.append(ProbePoint(name, offset, *programs, fast=fast))
    return points


def _single(binary: _Binary, name: str, programs: tuple[str, str | None], cookie: int) -> ProbePoint | None:
    vaddr = binary.symbol(name)
    if vaddr is None:
        return None
    addr, fast = _entry_point(binary, vaddr)
    offset = binary.file_offset(addr if fast else vaddr)
    if offset is None:
        return None
    return ProbePoint(name, offset, programs[0], programs[1], fast=fast, cookie=cookie)


def _gnutls(binary: _Binary, functions: tuple[str, ...]) -> list[ProbePoint]:
    """GnuTLS: `gnutls_record_send` is a tail call into `gnutls_record_send2` (same first
    three arguments, returns the bytes sent); probing send2 covers both, and it starts
    with `push`. Reads and session teardown are probed as they are."""
    points: list[ProbePoint] = []
    send = None
    if "gnutls_record_send2" in functions:
        send = _single(binary, "gnutls_record_send2", PLAIN_WRITE, SOURCE_GNUTLS)
        if send is not None and not send.fast:
            send = None
    if send is None and "gnutls_record_send" in functions:
        send = _single(binary, "gnutls_record_send", PLAIN_WRITE, SOURCE_GNUTLS)
    for point in (
        send,
        _single(binary, "gnutls_record_recv", PLAIN_READ, SOURCE_GNUTLS),
        _single(binary, "gnutls_deinit", FREE, SOURCE_GNUTLS) if "gnutls_deinit" in functions else None,
    ):
        if point is not None:
            points.append(point)
    return points


def _go_instructions(binary: _Binary, fn: GoFunction) -> list[capstone.CsInsn]:
    """Every instruction of a Go function, by a linear sweep over its symbol's extent.

    A linear sweep is exact here: Go puts no data (jump tables, literals) in its code on
    amd64. A sweep that stops early (bytes capstone cannot decode) could miss a RET, so
    it is an error rather than a partial answer.
    """
    if fn.size <= 0:
        raise ValueError(f"{fn.name} has no size in the symbol table")
    code = binary.code(fn.vaddr, fn.size)
    if len(code) < fn.size:
        raise ValueError(f"{fn.name} at 0x{fn.vaddr:x} lies outside the file's code segments")
    insns = list(binary._md.disasm(code, fn.vaddr))
    end = insns[-1].address + insns[-1].size if insns else fn.vaddr
    if end != fn.vaddr + fn.size:
        raise ValueError(
            f"{fn.name}: cannot disassemble past 0x{end:x} (function ends at 0x{fn.vaddr + fn.size:x})"
        )
    return insns


def go_stack_check(insns: list[capstone.CsInsn], fn: GoFunction) -> capstone.CsInsn:
    """The `jbe` of the function's stack-growth check: `cmp 0x10(%r14),%rsp|%r12; jbe morestack`.

    The entry probes sit there (bpf/oisp_go_tls.bpf.h says why): a conditional jump is
    emulated by the kernel, the arguments are still in RAX/RBX/RCX, and the flags say
    whether the stack is about to grow and the function to start over.
    """
    for prev, insn in itertools.pairwise(insns[:7]):
        if (
            insn.mnemonic == "jbe"
            and prev.mnemonic == "cmp"
            and prev.op_str.replace(" ", "") in ("rsp,qwordptr[r14+0x10]", "r12,qwordptr[r14+0x10]")
        ):
            target = _jump_target(insn)
            if target is not None and fn.vaddr <= target < fn.vaddr + fn.size:
                return insn
    raise ValueError(
        f"{fn.name}: no stack-growth check (cmp [r14+0x10]; jbe) among its first instructions: "
        "this Go version's function prologue is not recognised"
    )


def _jump_target(insn: capstone.CsInsn) -> int | None:
    try:
        return int(insn.op_str, 16)
    except ValueError:
        return None


def go_returns(insns: list[capstone.CsInsn]) -> list[int]:
    """Addresses of the RET instructions (each return path of the function has its own)."""
    return [insn.address for insn in insns if insn.mnemonic == "ret"]


def plan_go_probes(binary: _Binary) -> list[ProbePoint]:
    """crypto/tls.(*Conn) Write, Read and Close of an unstripped Go executable.

    Write: one probe at entry (its data is complete there). Read: entry, plus one probe
    on every RET (the data exists only once it returns); never a uretprobe. Close: entry.
    Raises ValueError with the reason when the binary cannot be probed (stripped, old Go,
    not x86-64, unrecognised code).
    """
    go = inspect_go_binary(binary.path)
    if go is None:
        raise ValueError(f"{binary.path}: not a Go executable")
    if go.problem:
        raise ValueError(go.problem)
    if not go.uses_tls:
        raise ValueError(f"{binary.path}: does not link crypto/tls")
    write_name, read_name, close_name = GO_TLS_FUNCTIONS
    points: list[ProbePoint] = []

    def at(vaddr: int, name: str, program: str, fast: bool) -> None:
        offset = binary.file_offset(vaddr)
        if offset is None:
            raise ValueError(f"{name}: address 0x{vaddr:x} is not in a code segment")
        points.append(ProbePoint(name, offset, program, None, fast=fast, cookie=SOURCE_GO))

    write = go.functions[write_name]
    at(go_stack_check(_go_instructions(binary, write), write).address, write_name, GO_WRITE, True)
    read = go.functions[read_name]
    read_insns = _go_instructions(binary, read)
    at(go_stack_check(read_insns, read).address, read_name, GO_READ_ENTRY, True)
    returns = go_returns(read_insns)
    if not returns:
        raise ValueError(f"{read_name}: no RET instruction found, so its results cannot be seen")
    for vaddr in returns:
        # A RET is single-stepped (about 10 us); only one of them runs per call.
        at(vaddr, f"{read_name}+0x{vaddr - read.vaddr:x}:ret", GO_READ_RET, False)
    close = go.functions.get(close_name)
    if close is not None:
        at(go_stack_check(_go_instructions(binary, close), close).address, close_name, GO_CLOSE, True)
    return points


def plan_resolver_probes(path: str) -> list[ProbePoint]:
    """getaddrinfo() in a libc: the name a process resolves and the addresses it gets."""
    try:
        binary = _Binary(path)
    except ELFError as exc:
        raise ValueError(f"{path}: not a usable ELF file: {exc}") from None
    try:
        point = _single(binary, "getaddrinfo", RESOLVER, 0)
        return [point] if point is not None else []
    finally:
        binary.close()


# Plans by (build id, family, functions): a copy of a library already planned (a container's
# or a venv's libssl.so.3, the same build) is probed without disassembling it again. When
# a process opens a new copy its first TLS call can follow within milliseconds.
_PLANS: dict[tuple[bytes, str, tuple[str, ...]], list[ProbePoint]] = {}


def plan_probes(path: str, functions: tuple[str, ...], family: str = "openssl") -> list[ProbePoint]:
    """Every probe to attach to `path` (a TLS library or executable). Raises OSError/ValueError."""
    ident = build_id(path)
    key = (ident, family, functions) if ident else None
    if key is not None and key in _PLANS:
        return list(_PLANS[key])
    points = _plan(path, functions, family)
    if key is not None:
        _PLANS[key] = list(points)
    return points


def _plan(path: str, functions: tuple[str, ...], family: str) -> list[ProbePoint]:
    try:
        binary = _Binary(path)
    except ELFError as exc:
        raise ValueError(f"{path}: not a usable ELF file: {exc}") from None
    try:
        if family == "go":
            return plan_go_probes(binary)
        if family == "gnutls":
            return _gnutls(binary, functions)
        points = _pair(binary, functions, "SSL_read", "SSL_read_ex", PLAIN_READ, EX_READ)
        points += _pair(binary, functions, "SSL_write", "SSL_write_ex", PLAIN_WRITE, EX_WRITE)
        if "SSL_free" in functions:
            free = _single(binary, "SSL_free", FREE, SOURCE_OPENSSL)
            if free is not None:
                points.append(free)
        return points
    finally:
        binary.close()
