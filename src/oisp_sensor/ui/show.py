"""`oisp-sensor show`: a recorded JSONL file as one readable line per event.

    12:30:01.123  ai.response   python3[4242]  openai/gpt-4o  200  20→10 tok  $0.00031  812 ms  "Sunny in Paris"

Colours only when writing to a terminal (and NO_COLOR is not set). Lines that are not
events are counted and reported once at the end, never a traceback. `--follow` keeps
reading as the sensor appends, across rotation (a new file under the name) and
truncation.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from .store import _type_matcher

_COLORS = {"ai": "36", "agent": "35", "process": "33", "file": "32", "network": "34"}
_ERROR = "31"
_DIM = "2"
PREVIEW = 60


@dataclass
class Counts:
    shown: int = 0
    skipped: int = 0  # filtered out by --type
    malformed: int = 0
    first_malformed: int | None = None  # line number
    extra: dict[str, int] = field(default_factory=dict)


def _preview(text: object, width: int = PREVIEW) -> str:
    if not isinstance(text, str) or not text:
        return ""
    flat = " ".join(text.split())
    if len(flat) > width:
        flat = flat[: width - 1] + "…"
    return '"' + flat + '"'


def _last_user_text(messages: object) -> object:
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                parts = [
                    p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
                ]
                return " ".join(parts)
            return content
    return None


def _answer_text(choices: object) -> object:
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict):
            if message.get("content"):
                return message.get("content")
            calls = message.get("tool_calls")
            if isinstance(calls, list) and calls:
                names = [
                    (c.get("function") or {}).get("name", "?") if isinstance(c, dict) else "?" for c in calls
                ]
                return "tool calls: " + ", ".join(str(n) for n in names)
    return None


def _tokens(usage: object) -> str:
    if not isinstance(usage, dict):
        return ""
    pin, pout = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if pin is None and pout is None:
        return ""
    text = f"{pin if pin is not None else '?'}→{pout if pout is not None else '?'} tok"
    return text + ("~" if usage.get("estimated") else "")


def _model(data: dict[str, Any]) -> str:
    provider = data.get("provider")
    model = data.get("model")
    pid = provider.get("id") if isinstance(provider, dict) else None
    mid = model.get("id") if isinstance(model, dict) else None
    if pid and mid:
        return f"{pid}/{mid}"
    return str(pid or mid or "")


def describe(event: dict[str, Any]) -> tuple[list[str], bool]:
    """The fields after time, type and process; and whether the event reports a failure."""
    etype = event.get("event_type", "")
    data = event.get("data")
    data = data if isinstance(data, dict) else {}
    failed = data.get("success") is False
    parts: list[str] = []
    if etype == "ai.request":
        parts += [_model(data), str(data.get("request_type") or "")]
        if data.get("streaming"):
            parts.append("stream")
        n = data.get("message_count")
        if isinstance(n, int):
            parts.append(f"{n} msg")
        parts.append(_preview(_last_user_text(data.get("messages")) or data.get("prompt")))
    elif etype == "ai.response":
        parts += [_model(data), str(data.get("status_code", "-")), _tokens(data.get("usage"))]
        cost = data.get("cost")
        if isinstance(cost, dict) and isinstance(cost.get("usd"), int | float):
            parts.append(f"${cost['usd']:.5f}")
        if isinstance(data.get("latency_ms"), int | float):
            parts.append(f"{data['latency_ms']} ms")
        error = data.get("error")
        if failed and isinstance(error, dict):
            parts.append(_preview(error.get("message") or error.get("type")))
        else:
            parts.append(_preview(_answer_text(data.get("choices"))))
    elif etype == "ai.streaming_chunk":
        parts += [_model(data), f"#{data.get('chunk_index', '?')}", _preview(data.get("delta"), 40)]
    elif etype == "ai.embedding":
        parts += [
            _model(data),
            f"{data.get('input_count', '?')} inputs",
            f"{data.get('dimensions', '?')} dims",
        ]
    elif etype == "agent.tool_call":
        tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
        args = data.get("arguments")
        parts += [
            str(tool.get("name") or "?"),
            _preview(orjson.dumps(args).decode() if args is not None else ""),
        ]
    elif etype == "agent.tool_result":
        tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
        parts += [
            str(tool.get("name") or "?"),
            "ok" if not failed else "failed",
            f"{data.get('result_length', 0)} chars",
        ]
    elif etype == "agent.plan_step":
        parts += [f"step {data.get('step', '?')}", str(data.get("action") or "")]
        tools = data.get("tools_requested")
        if isinstance(tools, list) and tools:
            parts.append(", ".join(str(t.get("name")) for t in tools if isinstance(t, dict)))
    elif etype == "agent.session":
        parts += [str(data.get("session_id") or ""), str(data.get("action") or "")]
        if data.get("action") == "end":
            parts += [f"{data.get('turns', 0)} turns", f"{data.get('tool_calls', 0)} tool calls"]
    elif etype == "process.exec":
        args = data.get("args")
        cmd = " ".join(str(a) for a in args) if isinstance(args, list) else ""
        parts += [str(data.get("exe") or ""), _preview(cmd)]
    elif etype == "process.exit":
        parts.append(f"exit {data.get('exit_code', '?')}")
        failed = isinstance(data.get("exit_code"), int) and data["exit_code"] != 0
    elif etype == "process.fork":
        parts.append(f"child of {data.get('ppid', '?')}")
    elif etype.startswith("file."):
        parts.append(str(data.get("path") or ""))
        size = data.get("size")
        if isinstance(size, int):
            parts.append(f"{size} B")
    elif etype == "network.connect":
        remote = data.get("remote") if isinstance(data.get("remote"), dict) else {}
        where = remote.get("hostname") or remote.get("ip") or "?"
        parts.append(f"{where}:{remote.get('port', '?')}")
    elif etype == "network.dns":
        answers = data.get("answers")
        parts += [
            str(data.get("query") or ""),
            "→ " + ", ".join(str(a) for a in answers[:3]) if isinstance(answers, list) else "",
        ]
    return [p for p in parts if p], failed


def format_line(event: dict[str, Any], color: bool) -> str:
    ts = event.get("timestamp")
    when = ts[11:23] if isinstance(ts, str) and len(ts) >= 23 else str(ts or "-")
    etype = str(event.get("event_type") or "?")
    proc = event.get("process") if isinstance(event.get("process"), dict) else {}
    who = f"{proc.get('name') or '?'}[{proc.get('pid', '?')}]"
    rest, failed = describe(event)
    if not color:
        return "  ".join([when, f"{etype:<18}", f"{who:<20}", *rest])
    code = _ERROR if failed else _COLORS.get(etype.split(".", 1)[0], "0")
    return "  ".join([f"\x1b[{_DIM}m{when}\x1b[0m", f"\x1b[{code}m{etype:<18}\x1b[0m", f"{who:<20}", *rest])


def read_lines(
    path: str, follow: bool, poll_s: float = 0.2, stop: Callable[[], bool] | None = None
) -> Iterator[bytes]:
    """The complete lines of `path`; with `follow`, then those appended, forever (reopened
    when the file is replaced or truncated)."""
    f = open(path, "rb")  # noqa: SIM115 - closed in finally; reopened on rotation
    try:
        ino = os.fstat(f.fileno()).st_ino
        pending = b""
        while True:
            chunk = f.read(1 << 16)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from lines
                continue
            if not follow:
                if pending.strip():
                    yield pending  # a last line without its newline
                return
            if stop is not None and stop():
                return
            time.sleep(poll_s)
            try:
                st = os.stat(path)
            except OSError:
                continue  # between rotation's rename and the new file: wait
            if st.st_ino != ino:
                # Rotated: read what is left of the old file, then follow the new one.
                rest = f.read()
                if rest:
                    pending += rest
                    *lines, pending = pending.split(b"\n")
                    yield from lines
                f.close()
                f = open(path, "rb")  # noqa: SIM115
                ino = os.fstat(f.fileno()).st_ino
                pending = b""
            elif st.st_size < f.tell():
                f.seek(0)  # truncated: start again from the top
                pending = b""
    finally:
        f.close()


def parse_event(line: bytes) -> dict[str, Any] | None:
    """One JSONL line as an event; None when it is not one."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
        return None
    return event


def show(
    path: str,
    follow: bool = False,
    types: str | None = None,
    fmt: str = "text",
    out: IO[str] | None = None,
    color: bool | None = None,
    stop: Callable[[], bool] | None = None,
) -> Counts:
    out = out or sys.stdout
    if color is None:
        color = out.isatty() and not os.environ.get("NO_COLOR")
    wanted = _type_matcher(types)
    counts = Counts()
    number = 0
    for line in read_lines(path, follow, stop=stop):
        number += 1
        if not line.strip():
            continue
        event = parse_event(line)
        if event is None:
            counts.malformed += 1
            if counts.first_malformed is None:
                counts.first_malformed = number
            continue
        if wanted is not None and not wanted(event["event_type"]):
            counts.skipped += 1
            continue
        counts.shown += 1
        if fmt == "json":
            out.write(orjson.dumps(event).decode() + "\n")
        else:
            out.write(format_line(event, color) + "\n")
        if follow:
            out.flush()
    return counts
