"""How the terminal UI writes figures and captured content: pure functions, no Textual.

Everything captured is shown through `rich.text.Text` objects, never console markup,
so a prompt containing "[bold]" or "[/]" is shown as typed and cannot break the screen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from rich.text import Text

from ..store import parse_timestamp

DASH = "-"


def clock(timestamp: object) -> str:
    """HH:MM:SS.mmm in local time (the envelope's RFC 3339 UTC timestamp)."""
    ts = parse_timestamp(timestamp)
    if ts is None:
        return DASH
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def when(timestamp: object) -> str:
    """Date and time in local time, for detail views."""
    ts = parse_timestamp(timestamp)
    if ts is None:
        return DASH
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def tokens(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return DASH
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    return str(int(value))


def cost(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return DASH
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.4f}"
    return f"${value:.6f}"


def ms(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return DASH
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms"


def status(row: dict[str, Any]) -> Text:
    """HTTP status with a mark: pending (no response yet), ok, error; `~` when partial."""
    success = row.get("success")
    code = row.get("status")
    if success is None:
        return Text("pending", style="yellow")
    label = str(code) if isinstance(code, int) else "no status"
    if not row.get("complete", True):
        label += " ~"
    if success:
        return Text(f"{label} ok", style="green")
    return Text(f"{label} error", style="bold red")


def app_name(app: object) -> str:
    if not isinstance(app, dict):
        return DASH
    name = app.get("name") or app.get("id")
    return str(name) if name else DASH


def process_name(proc: object) -> str:
    if not isinstance(proc, dict):
        return DASH
    name = proc.get("name") or DASH
    pid = proc.get("pid")
    return f"{name}:{pid}" if pid is not None else str(name)


TIMELINE_COLUMNS = (
    ("time", "Time"),
    ("app", "App"),
    ("process", "Process"),
    ("provider", "Provider"),
    ("model", "Model"),
    ("in", "In"),
    ("out", "Out"),
    ("cost", "Cost"),
    ("latency", "Latency"),
    ("status", "Status"),
)


def timeline_cells(row: dict[str, Any]) -> tuple[str | Text, ...]:
    """One /api/calls row as the timeline's cells (in TIMELINE_COLUMNS order)."""
    model = row.get("model") or DASH
    if row.get("streaming"):
        model = f"{model} (stream)"
    if row.get("tool_calls"):
        model = f"{model} +{row['tool_calls']} tool"
    return (
        clock(row.get("timestamp")),
        app_name(row.get("app")),
        process_name(row.get("process")),
        row.get("provider") or DASH,
        model,
        tokens(row.get("input_tokens")),
        tokens(row.get("output_tokens")),
        cost(row.get("cost_usd")),
        ms(row.get("latency_ms")),
        status(row),
    )


AGG_COLUMNS = ("Requests", "Errors", "In tokens", "Out tokens", "Cost", "p50", "p95")


def agg_cells(agg: dict[str, Any]) -> tuple[str, ...]:
    lat = agg.get("latency_ms") if isinstance(agg.get("latency_ms"), dict) else {}
    return (
        str(agg.get("requests", 0)),
        str(agg.get("errors", 0)),
        tokens(agg.get("input_tokens")),
        tokens(agg.get("output_tokens")),
        cost(agg.get("cost_usd")),
        ms(lat.get("p50")),
        ms(lat.get("p95")),
    )


def agg_key(agg: dict[str, Any]) -> str:
    name, key = agg.get("name"), agg.get("key")
    if name and key is not None and str(name) != str(key):
        return f"{name} ({key})"
    return str(name or key or "(none)")


def process_label(proc: dict[str, Any]) -> Text:
    """A process-tree line: name (pid), app, and its AI activity when it has any."""
    text = Text()
    text.append(str(proc.get("name") or "?"), style="bold" if proc.get("ai_calls") else "")
    text.append(f" ({proc.get('pid')})", style="dim")
    app = app_name(proc.get("app"))
    if app != DASH and app != "Unknown":
        text.append(f" {app}", style="cyan")
    calls = proc.get("ai_calls") or 0
    if calls:
        text.append(
            f"  {calls} AI call{'s' if calls != 1 else ''}, "
            f"{tokens(proc.get('input_tokens'))}/{tokens(proc.get('output_tokens'))} tok, "
            f"{cost(proc.get('cost_usd'))}",
            style="green",
        )
    if proc.get("exited"):
        code = proc.get("exit_code")
        text.append(f"  exited{f' {code}' if code is not None else ''}", style="dim")
    return text


def pretty_json(value: object) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return repr(value)


def short(value: object, limit: int = 120) -> str:
    text = value if isinstance(value, str) else pretty_json(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
