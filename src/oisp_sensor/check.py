"""`oisp-sensor check`: can this machine capture? Each check says what it found and why
it matters; the verdict is the exit code."""

from __future__ import annotations

import ctypes
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from .capture.loader import default_bpf_object
from .capture.probe_points import plan_probes
from .capture.targets import Target, TargetScanner

_FAMILY_NAMES = {"openssl": "OpenSSL", "gnutls": "GnuTLS", "go": "Go crypto/tls"}


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _capabilities() -> tuple[bool, str]:
    if os.geteuid() == 0:
        return True, "running as root"
    try:
        status = Path("/proc/self/status").read_text()
        eff = int(next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1], 16)
    except (OSError, StopIteration, ValueError):
        eff = 0
    cap_bpf, cap_perfmon, cap_sys_admin = 1 << 39, 1 << 38, 1 << 21
    if eff & cap_sys_admin or (eff & cap_bpf and eff & cap_perfmon):
        return True, "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) present"
    return False, "not root and without CAP_BPF+CAP_PERFMON: run with sudo"


def _try_load(bpf_object: Path) -> tuple[bool, str]:
    """Load the programs for real (the verifier's verdict), then release them."""
    from .capture.libbpf import Libbpf

    bpf = Libbpf()
    bpf.silence()
    obj = bpf.lib.bpf_object__open(str(bpf_object).encode())
    if not obj:
        return False, f"cannot open {bpf_object}: {os.strerror(ctypes.get_errno())}"
    try:
        err = bpf.lib.bpf_object__load(obj)
        if err:
            return False, f"the kernel refused the BPF programs: {os.strerror(abs(err))}"
        return True, "BPF programs pass the kernel verifier"
    finally:
        bpf.lib.bpf_object__close(obj)


def run_checks() -> list[CheckResult]:
    results: list[CheckResult] = []
    ok, detail = _capabilities()
    results.append(CheckResult("privileges", ok, detail))
    results.append(
        CheckResult("kernel", True, f"Linux {platform.release()} ({platform.machine()})", required=False)
    )
    btf = Path("/sys/kernel/btf/vmlinux")
    results.append(
        CheckResult(
            "btf",
            btf.exists(),
            "kernel BTF at /sys/kernel/btf/vmlinux"
            if btf.exists()
            else "no /sys/kernel/btf/vmlinux: the kernel lacks CONFIG_DEBUG_INFO_BTF, CO-RE programs cannot load",
        )
    )
    uprobes = Path("/sys/bus/event_source/devices/uprobe").exists()
    results.append(
        CheckResult("uprobes", uprobes, "uprobe PMU present" if uprobes else "kernel lacks CONFIG_UPROBES")
    )
    try:
        from .capture.libbpf import Libbpf

        Libbpf()
        results.append(CheckResult("libbpf", True, "libbpf.so.1 loads"))
        libbpf_ok = True
    except OSError as exc:
        results.append(CheckResult("libbpf", False, str(exc)))
        libbpf_ok = False
    bpf_object = default_bpf_object()
    if not bpf_object.is_file():
        results.append(CheckResult("bpf-object", False, f"{bpf_object} missing: run `make bpf`"))
    elif libbpf_ok and ok and btf.exists():
        loaded, detail = _try_load(bpf_object)
        results.append(CheckResult("bpf-load", loaded, detail))
    else:
        results.append(CheckResult("bpf-object", True, f"{bpf_object} present (load not tried)"))
    scanner = TargetScanner()
    targets = scanner.system_libraries() + scanner.runtimes_on_path()
    if ok:
        targets += scanner.all_processes(skip_pids=[os.getpid()])
    probeable: dict[str, int] = {}
    for target in targets:
        planned, detail = _describe_target(target)
        if planned:
            name = _FAMILY_NAMES.get(target.family, target.family)
            probeable[name] = probeable.get(name, 0) + 1
        results.append(CheckResult(f"tls:{target.kind}", planned, detail, required=False))
    results.append(_targets_summary(probeable, len(targets)))
    return results


def _targets_summary(probeable: dict[str, int], found: int) -> CheckResult:
    count = sum(probeable.values())
    if count:
        families = ", ".join(f"{name}: {n}" for name, n in probeable.items())
        detail = f"{count} TLS target{'' if count == 1 else 's'} to probe ({families})"
    else:
        detail = "no probeable OpenSSL, GnuTLS or Go crypto/tls found: TLS traffic cannot be captured"
    if found > count:
        detail += f"; {found - count} found but not probeable"
    return CheckResult("tls-targets", count > 0, detail)


def _describe_target(target: Target) -> tuple[bool, str]:
    """One line per TLS stack found: what would be probed, or why it cannot be."""
    name = _FAMILY_NAMES.get(target.family, target.family)
    what = f"{name} {target.version}".rstrip() + f" in {target.path}"
    try:
        points = plan_probes(target.path, target.functions, target.family)
    except (OSError, ValueError) as exc:
        return False, f"{what}: found, NOT probeable: {exc} (found by {target.found_by})"
    if not points:
        return False, f"{what}: found, NOT probeable: no probe point (found by {target.found_by})"
    # Go's names are long ("crypto/tls.(*Conn).Read"): the method name says enough.
    functions = ", ".join(f.rsplit(".", 1)[-1] if target.family == "go" else f for f in target.functions)
    probes = sum(1 + (p.return_program is not None) for p in points)
    return True, f"{what} ({functions}; {probes} probes; found by {target.found_by})"


def format_results(results: list[CheckResult]) -> tuple[str, bool]:
    lines = []
    ready = all(r.ok for r in results if r.required)
    for r in results:
        mark = "ok  " if r.ok else ("FAIL" if r.required else "warn")
        lines.append(f"[{mark}] {r.name:<12} {r.detail}")
    lines.append("verdict: READY to capture" if ready else "verdict: NOT READY (see FAIL lines)")
    return "\n".join(lines), ready
