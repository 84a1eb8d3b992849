"""Find the TLS libraries to probe: OpenSSL (shared libssl files and executables that
export the SSL_* functions: Node links OpenSSL statically and exports them), GnuTLS
(libgnutls, used by Debian's libcurl3-gnutls, wget, gnutls-cli and others) and Go's
crypto/tls (linked into each Go executable; found through /proc/PID/exe, see gobinary).

Targets are deduplicated by (device, inode): the same file seen through different paths
(symlinks, /proc/PID/root of another mount namespace) is probed once.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from .elfid import build_id
from .gobinary import inspect_go_binary

# Functions with a probe, per TLS library; the first two decide that a file is one.
SSL_FUNCTIONS = ("SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex", "SSL_free")
GNUTLS_FUNCTIONS = ("gnutls_record_send", "gnutls_record_recv", "gnutls_record_send2", "gnutls_deinit")
FAMILIES = {"openssl": SSL_FUNCTIONS, "gnutls": GNUTLS_FUNCTIONS}
LIBRARY_STEMS = {"libssl": "openssl", "libgnutls": "gnutls"}
LIB_DIRS = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
)
# Runtimes known to carry a static OpenSSL with exported symbols, looked up on PATH at start.
RUNTIME_NAMES = ("node", "nodejs")


@dataclass(slots=True)
class Target:
    """One file to attach uprobes to."""

    path: str  # a path that opens the file from the sensor's mount namespace
    dev: int
    inode: int
    kind: str  # "library" | "executable"
    functions: tuple[str, ...]  # which of the family's probe functions it exports
    found_by: str = ""  # "system", "maps:PID", "exec:PID", "path"
    family: str = "openssl"  # "openssl" | "gnutls" | "go"
    version: str = ""  # the Go version of a Go executable
    problem: str = ""  # found but not probeable (a stripped Go binary): why


@dataclass
class TargetScanner:
    """Remembers which files were examined, so rescans only look at what is new."""

    examined: dict[tuple[int, int], Target | None] = field(default_factory=dict)
    builds: dict[bytes, Target] = field(default_factory=dict)  # build id -> a TLS stack seen
    errors: int = 0

    def examine(self, path: str, found_by: str) -> Target | None:
        """Return a new Target for `path` if it exports SSL_write and was not seen before."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino)
        if key in self.examined:
            return None
        # A copy of a library already examined (same build): same functions, no parsing.
        ident = build_id(path)
        known = self.builds.get(ident) if ident else None
        if known is not None:
            target = dataclasses.replace(known, path=path, dev=st.st_dev, inode=st.st_ino, found_by=found_by)
            self.examined[key] = target
            return target
        target = self._examine(path, st, found_by)
        self.examined[key] = target
        if ident and target is not None:
            self.builds[ident] = target
        return target

    def _examine(self, path: str, st: os.stat_result, found_by: str) -> Target | None:
        target = None
        for family, names in FAMILIES.items():
            functions = exported_functions(path, names)
            if functions is None:
                self.errors += 1
                break
            if names[0] in functions and names[1] in functions:
                kind = "library" if ".so" in os.path.basename(path) else "executable"
                target = Target(path, st.st_dev, st.st_ino, kind, functions, found_by, family)
                break
        else:
            target = self._go_target(path, st, found_by)
        return target

    def _go_target(self, path: str, st: os.stat_result, found_by: str) -> Target | None:
        """A Go executable that links crypto/tls: probeable, or found with a `problem`."""
        try:
            go = inspect_go_binary(path)
        except OSError:
            self.errors += 1
            return None
        if go is None or not go.uses_tls:
            return None
        functions = tuple(go.functions)
        return Target(
            path, st.st_dev, st.st_ino, "executable", functions, found_by, "go", go.version, go.problem
        )

    def system_libraries(self) -> list[Target]:
        """libssl from the loader cache and the usual directories."""
        found = []
        for path in _system_libssl_paths():
            target = self.examine(path, "system")
            if target:
                found.append(target)
        return found

    def runtimes_on_path(self) -> list[Target]:
        found = []
        for directory in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":"):
            for name in RUNTIME_NAMES:
                path = os.path.join(directory, name)
                if os.path.isfile(path):
                    target = self.examine(os.path.realpath(path), "path")
                    if target:
                        found.append(target)
        return found

    def process(self, pid: int, found_by: str) -> list[Target]:
        """The executable of one process and every libssl it has mapped."""
        found = []
        root = f"/proc/{pid}/root"
        for path in _process_candidates(pid):
            target = self.examine(_stable_path(root, path), found_by)
            if target:
                found.append(target)
        return found

    def executable(self, pid: int, found_by: str) -> Target | None:
        """The executable a process runs, if it is a TLS stack of its own (one readlink;
        a file already examined costs nothing more)."""
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return None
        if exe.endswith(" (deleted)"):
            return None
        return self.examine(_stable_path(f"/proc/{pid}/root", exe), found_by)

    def opened_library(self, pid: int, path: str, found_by: str) -> Target | None:
        """A library the kernel saw `pid` open (`path` is in the process's mount namespace)."""
        if not path.startswith("/"):
            return None
        return self.examine(_stable_path(f"/proc/{pid}/root", path), found_by)

    def all_processes(self, skip_pids: Iterable[int] = ()) -> list[Target]:
        skip = set(skip_pids)
        found = []
        for pid in _pids():
            if pid not in skip:
                found.extend(self.process(pid, f"maps:{pid}"))
        return found


def exported_ssl_functions(path: str) -> tuple[str, ...] | None:
    """Which SSL_* probe functions the ELF file defines (see exported_functions)."""
    return exported_functions(path, SSL_FUNCTIONS)


def exported_functions(path: str, names: tuple[str, ...]) -> tuple[str, ...] | None:
    """Which of `names` the ELF file defines as functions in its dynamic symbol table.

    None when the file is not a readable ELF. Static (.symtab) symbols are not used:
    stripped binaries lack them and exported symbols are what libbpf resolves.
    """
    wanted = set(names)
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return ()
            f.seek(0)
            elf = ELFFile(f)
            # Most executables a host runs (compilers, shells) have none of these names:
            # the dynamic string table says so at once, where parsing the symbol hash
            # table takes far longer for a large binary.
            strings = elf.get_section_by_name(".dynstr")
            if strings is None:
                return ()
            data = strings.data()
            if not any(b"\0" + name.encode() + b"\0" in data for name in names[:2]):
                return ()
            # The hash tables answer a lookup without walking every symbol (Node exports
            # tens of thousands: a full walk takes over a second).
            table = elf.get_section_by_name(".gnu.hash") or elf.get_section_by_name(".hash")
            if table is not None and hasattr(table, "get_symbol"):
                lookup = table.get_symbol
            else:
                section = elf.get_section_by_name(".dynsym")
                if not isinstance(section, SymbolTableSection):
                    return ()
                by_name = {sym.name: sym for sym in section.iter_symbols() if sym.name in wanted}
                lookup = by_name.get
            found = []
            for name in names:
                sym = lookup(name)
                if (
                    sym is not None
                    and sym["st_shndx"] != "SHN_UNDEF"
                    and sym["st_info"]["type"] == "STT_FUNC"
                ):
                    found.append(name)
            return tuple(found)
    except (OSError, ELFError, ValueError):
        return None


def system_libc_paths() -> list[str]:
    """The C libraries whose getaddrinfo() gives DNS events (the loader cache's libc.so.6)."""
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    candidates = [line.split("=>", 1)[1].strip() for line in _ldconfig().splitlines()
                  if "libc.so.6" in line and "=>" in line]  # fmt: skip
    candidates += [os.path.join(d, "libc.so.6") for d in LIB_DIRS]
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            found.append(path)
    return found


def _ldconfig() -> str:
    try:
        return subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _system_libssl_paths() -> Iterator[str]:
    seen: set[str] = set()
    for line in _ldconfig().splitlines():
        if ("libssl.so" in line or "libgnutls.so" in line) and "=>" in line:
            path = line.split("=>", 1)[1].strip()
            if path not in seen:
                seen.add(path)
                yield path
    for directory in LIB_DIRS:
        for path in glob.glob(os.path.join(directory, "libssl.so*")) + glob.glob(
            os.path.join(directory, "libgnutls.so*")
        ):
            if path not in seen and not path.endswith(".a"):
                seen.add(path)
                yield path


def _process_candidates(pid: int) -> Iterator[str]:
    """The exe path and mapped libssl paths of a process (in its own mount namespace)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    if exe and not exe.endswith(" (deleted)"):
        yield exe
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            maps = f.read()
    except OSError:
        return
    if b"libssl" not in maps and b"libgnutls" not in maps:
        return
    seen = set()
    for line in maps.split(b"\n"):
        if b"libssl" in line or b"libgnutls" in line:
            path = line.split(None, 5)[-1].decode("utf-8", "replace")
            if path.startswith("/") and path not in seen and not path.endswith(" (deleted)"):
                seen.add(path)
                yield path


def _stable_path(root: str, path: str) -> str:
    """How to open `path`, a path in the mount namespace of the process whose root is `root`.

    Through /proc/PID/root in general; but the plain path when it names the same file here,
    because that one stays valid after the process exits: a short-lived program (a Go
    client, whose executable is the target) is often gone before its probes are attached.
    """
    inside = root + path
    try:
        st_inside = os.stat(inside)
    except OSError:
        return path
    try:
        st_here = os.stat(path)
    except OSError:
        return inside
    same = (st_inside.st_dev, st_inside.st_ino) == (st_here.st_dev, st_here.st_ino)
    return path if same else inside


def _pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)
