"""Fail the run when kernel-capture tests were skipped.

The point of the suite is that capture works against the real kernel; a run where those
tests silently skipped (not root, no BTF, no BPF object) must not look green. Set
OISP_ALLOW_KERNEL_SKIP=1 to run the rest on a machine that cannot capture.
"""

from __future__ import annotations

import os

import pytest

_skipped: list[str] = []
_ran: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "kernel" not in report.keywords:
        return
    if report.skipped:
        _skipped.append(report.nodeid)
    elif report.when == "call":
        _ran.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and not os.environ.get("OISP_ALLOW_KERNEL_SKIP"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        verdict = (
            "allowed by OISP_ALLOW_KERNEL_SKIP"
            if os.environ.get("OISP_ALLOW_KERNEL_SKIP")
            else "FAILING the run"
        )
        terminalreporter.write_line(f"kernel-capture tests skipped: {len(_skipped)} ({verdict})", red=True)
        for nodeid in _skipped[:20]:
            terminalreporter.write_line(f"  skipped: {nodeid}")
    terminalreporter.write_line(f"kernel-capture tests run: {len(_ran)}")
