"""Headless Chromium (Debian's package) driven by Playwright, for the dashboard's tests.

Playwright never downloads a browser here: it is launched with ``executable_path`` pointing
at ``/usr/bin/chromium`` (``apt-get install chromium``, in the Makefile's APT_PACKAGES).
Every page records its console errors and uncaught exceptions, so a test can assert that
the dashboard ran cleanly, and screenshots go to ``tests/artifacts/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("OISP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def require_chromium() -> None:
    """Skip (with the fix) when Chromium or Playwright is missing."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (make deps)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is missing: pip install -e '.[dev]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PageLog:
    """What the page reported: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def assert_clean(self, allow: tuple[str, ...] = ()) -> None:
        bad = [e for e in self.errors if not any(a in e for a in allow)]
        assert not bad, "the page reported errors:\n" + "\n".join(bad)


@contextmanager
def chromium(width: int = 1600, height: int = 1000) -> Iterator[Any]:
    """A browser context (one window size); closed afterwards."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # root in a container: no user-namespace sandbox; no GPU in CI machines
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
            yield context
            context.close()
        finally:
            browser.close()


def open_page(context: Any, url: str) -> tuple[Any, PageLog]:
    """Open `url` in a new page that records its errors."""
    page = context.new_page()
    log = PageLog()
    page.on("pageerror", lambda exc: log.errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: log.errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    page.goto(url)
    return page, log


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def canvas_ink(page: Any, selector: str) -> int:
    """How many pixels of the canvas are painted (non-transparent): > 0 means it drew."""
    count: int = page.eval_on_selector(
        selector,
        """(c) => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return n;
        }""",
    )
    return count
