"""The terminal UI (Textual): live timeline of AI calls, totals, exchanges, process tree,
agent sessions, over the same EventStore as the web dashboard.

Entry point, for the CLI (`record`/`replay` with `--tui`, the default on a terminal)::

    from oisp_sensor.ui.tui import run_tui
    run_tui(store, title="OISP sensor", stop=stop_event)

* runs in the main thread and returns when the user quits (q or Ctrl+C) or when
  `stop` (a threading.Event) is set by someone else (SIGTERM); the caller then shuts the
  sensor down. Capture keeps running in its own threads: the UI only reads the store,
  polling `store.version` a few times a second, and never blocks an `add`.
* raises `TuiUnavailable` without touching the terminal when stdin or stdout is not a
  terminal (piped, CI, systemd): the caller goes on without a UI.
* while it runs, log lines that would go to the terminal's stderr (and garble the
  screen) are held back and printed after it exits.

Keys: t timeline, s stats, p processes, a agent sessions, / filter (`provider:openai
model:gpt-4o app:X pid:N status:error` and free text), e errors only, Enter open,
Esc back / clear the filter, q quit. Arrows, PgUp/PgDn, Home/End move; space folds a
process in the tree.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator

from ..store import EventStore

__all__ = ["TuiUnavailable", "is_terminal", "run_tui"]

# Log lines kept while the UI owns the terminal (the last ones matter most).
_MAX_HELD_LOG_CHARS = 200_000


class TuiUnavailable(RuntimeError):
    """The terminal UI cannot run here (no terminal); str() says why."""


def is_terminal() -> bool:
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def run_tui(
    store: EventStore,
    title: str | None = None,
    stop: threading.Event | None = None,
    poll_s: float = 0.25,
) -> None:
    """Show the terminal UI over `store` until the user quits or `stop` is set."""
    if not is_terminal():
        raise TuiUnavailable("stdin/stdout is not a terminal")
    from .app import SensorTui  # Textual is imported only when a UI is really shown

    app = SensorTui(store, title=title, stop=stop, poll_s=poll_s)
    with _logs_held():
        app.run()


@contextlib.contextmanager
def _logs_held() -> Iterator[None]:
    """Point the logging handlers that write to the terminal at a buffer while the UI
    runs, then write what they logged to stderr."""
    terminal = {id(s) for s in (sys.stderr, sys.__stderr__, sys.stdout, sys.__stdout__) if s is not None}
    buffer = io.StringIO()
    moved: list[tuple[logging.StreamHandler[io.TextIOWrapper], object]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and id(handler.stream) in terminal:
            moved.append((handler, handler.setStream(buffer)))  # type: ignore[arg-type]
    try:
        yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)  # type: ignore[arg-type]
        held = buffer.getvalue()
        if held:
            if len(held) > _MAX_HELD_LOG_CHARS:
                held = "(earlier log lines dropped)\n" + held[-_MAX_HELD_LOG_CHARS:]
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(held)
                sys.stderr.flush()
