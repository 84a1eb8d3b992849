"""Reading a recorded events file for `validate` and `report`.

A file the sensor wrote holds one JSON object per line. Anything else (a truncated last
line after a crash, a stray log line, a JSON array) is counted, never a traceback: the
caller decides whether malformed lines fail the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


class EventsFileError(Exception):
    """The file cannot be used at all (missing, unreadable, not JSONL); str() is one line."""


@dataclass
class EventsFile:
    path: str
    events: list[dict[str, Any]] = field(default_factory=list)
    malformed: int = 0
    first_malformed: int = 0  # line number (1-based), 0 when none
    first_problem: str = ""
    # Text of the malformed lines (bounded), so the secret checks can scan them too.
    malformed_text: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.events and not self.malformed


_MAX_KEPT = 1000


def _parse(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """(event, "") or (None, why the line is not an event)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, "not JSON" + (" (truncated line?)" if line.lstrip().startswith(b"{") else "")
    if not isinstance(value, dict):
        return None, f"a JSON {type(value).__name__}, not an event object"
    if not isinstance(value.get("event_type"), str):
        return None, "a JSON object without event_type"
    return value, ""


def read_events(path: str) -> EventsFile:
    """Every event of `path`; raises EventsFileError when the file cannot be read or no
    line of a non-empty file is an event."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise EventsFileError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise EventsFileError(f"cannot read {path}: is a directory") from None
    except OSError as exc:
        raise EventsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    result = EventsFile(path)
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        event, problem = _parse(line)
        if event is not None:
            result.events.append(event)
            continue
        result.malformed += 1
        if not result.first_malformed:
            result.first_malformed, result.first_problem = number, problem
        if len(result.malformed_text) < _MAX_KEPT:
            result.malformed_text.append(line.decode("utf-8", "replace"))
    if result.malformed and not result.events:
        raise EventsFileError(
            f"{path} is not an oisp-sensor events file (JSON lines): line {result.first_malformed} "
            f"is {result.first_problem}"
        )
    return result


def malformed_note(ef: EventsFile) -> str:
    """`3 malformed lines (first: line 17, not JSON)`."""
    s = "s" if ef.malformed != 1 else ""
    return f"{ef.malformed} malformed line{s} (first: line {ef.first_malformed}, {ef.first_problem})"
