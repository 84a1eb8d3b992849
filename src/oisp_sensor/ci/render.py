"""The report as text (terminal, CI log) or Markdown ($GITHUB_STEP_SUMMARY, MR notes)."""

from __future__ import annotations

from typing import Any

from .stats import GROUPS


def _cost(usd: float) -> str:
    return f"${usd:.4f}" if usd >= 0.01 or usd == 0 else f"${usd:.6f}"


def _ms(value: float) -> str:
    return f"{value:g}"


_COLUMNS = ("requests", "errors", "tokens", "cost", "p50 ms", "p95 ms", "max ms")


def _row(t: dict[str, Any]) -> list[str]:
    lat = t["latency_ms"]
    return [
        str(t["requests"]),
        str(t["errors"]),
        str(t["total_tokens"]),
        _cost(t["cost_usd"]),
        _ms(lat["p50"]),
        _ms(lat["p95"]),
        _ms(lat["max"]),
    ]


def _summary_lines(r: dict[str, Any]) -> list[tuple[str, str]]:
    t = r["totals"]
    lat = t["latency_ms"]
    ttft = t["time_to_first_token_ms"]
    rows = [
        ("AI calls", f"{t['requests']} ({t['streaming']} streamed, {t['incomplete']} without response)"),
        ("errors", str(t["errors"])),
        ("tokens", f"{t['total_tokens']} (prompt {t['prompt_tokens']}, completion {t['completion_tokens']})"),
        (
            "cost",
            _cost(t["cost_usd"])
            + (f" ({t['unpriced_responses']} unpriced)" if t["unpriced_responses"] else ""),
        ),
        ("latency ms", " ".join(f"{k} {_ms(v)}" for k, v in lat.items() if k != "count")),
        ("tool calls", str(t["tool_calls"])),
    ]
    if ttft["count"]:
        rows.insert(5, ("first token ms", f"p50 {_ms(ttft['p50'])} p95 {_ms(ttft['p95'])}"))
    return rows


def _table_text(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    return [fmt(header), *(fmt(r) for r in rows)]


def render_text(r: dict[str, Any], comparison: list[str] | None = None) -> str:
    span = f", {r['first_event']} .. {r['last_event']}" if r["first_event"] else ""
    lines = [f"oisp-sensor report: {r['source']} ({r['events']} events{span})"]
    if r["malformed_lines"]:
        lines.append(f"  ({r['malformed_lines']} malformed lines skipped)")
    width = max(len(k) for k, _ in _summary_lines(r))
    lines += [f"  {k.ljust(width)}  {v}" for k, v in _summary_lines(r)]
    for group in GROUPS:
        rows = [[key, *_row(t)] for key, t in r[f"by_{group}"].items()]
        if rows:
            lines += ["", *_table_text([group, *_COLUMNS], rows)]
    if r["tools"]:
        lines += ["", *_table_text(["tool", "calls"], [[k, str(v)] for k, v in r["tools"].items()])]
    if comparison:
        lines += ["", *comparison]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table_md(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(
    r: dict[str, Any], comparison_rows: list[list[str]] | None = None, verdict: str = ""
) -> str:
    lines = ["## AI activity (oisp-sensor)", ""]
    lines += _table_md(["", "value"], [[k, v] for k, v in _summary_lines(r)])
    for group in GROUPS:
        rows = [[key, *_row(t)] for key, t in r[f"by_{group}"].items()]
        if rows:
            lines += ["", f"### By {group}", "", *_table_md([group, *_COLUMNS], rows)]
    if r["tools"]:
        lines += [
            "",
            "### Tool calls",
            "",
            *_table_md(["tool", "calls"], [[k, str(v)] for k, v in r["tools"].items()]),
        ]
    if comparison_rows:
        lines += ["", "### Compared with the baseline", ""]
        lines += _table_md(["metric", "baseline", "current", "change", "limit", ""], comparison_rows)
        if verdict:
            lines += ["", verdict]
    note = f"{r['events']} events from `{r['source']}`"
    if r["malformed_lines"]:
        note += f", {r['malformed_lines']} malformed lines skipped"
    return "\n".join([*lines, "", f"<sub>{note}</sub>", ""])
