"""`report --baseline OLD`: compare with an earlier report (JSON) or events file and fail
when requests, tokens or cost grew beyond `--max-increase` (the seed's
compare-benchmark.sh, built in)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from .events import EventsFileError, read_events
from .stats import REPORT_VERSION, build_report

METRICS = (("requests", "AI calls"), ("total_tokens", "tokens"), ("cost_usd", "cost (USD)"))
_PCT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


class BaselineError(ValueError):
    """The baseline cannot be used; str() is one line."""


def parse_increase(text: str) -> float:
    """ "10%" or "10" -> 0.10; raises ValueError."""
    m = _PCT_RE.match(text)
    if not m:
        raise ValueError(f"--max-increase {text!r}: give a percentage such as 10%")
    return float(m.group(1)) / 100


def load_baseline(path: str) -> dict[str, Any]:
    """A report JSON (from `report --format json`) or an events file, as a report."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    try:
        whole = orjson.loads(head) if head.lstrip().startswith(b"{") and b"oisp_report" in head else None
    except orjson.JSONDecodeError:
        whole = None  # an events file whose first line happens to mention it
    if whole is None and b"oisp_report" in head[:200]:
        with open(path, "rb") as f:
            try:
                whole = orjson.loads(f.read())
            except orjson.JSONDecodeError:
                raise BaselineError(f"baseline {path}: not a valid report JSON") from None
    if isinstance(whole, dict) and "oisp_report" in whole:
        if whole.get("oisp_report") != REPORT_VERSION or not isinstance(whole.get("totals"), dict):
            raise BaselineError(f"baseline {path}: report format {whole.get('oisp_report')!r} not understood")
        return whole
    try:
        ef = read_events(path)
    except EventsFileError as exc:
        raise BaselineError(f"baseline: {exc}") from None
    return build_report(ef.events, path, ef.malformed)


@dataclass(frozen=True)
class Change:
    metric: str
    label: str
    baseline: float
    current: float
    limit: float

    @property
    def ratio(self) -> float | None:
        """Relative change; None when the baseline is 0 (any growth is unbounded)."""
        return None if self.baseline == 0 else (self.current - self.baseline) / self.baseline

    @property
    def exceeded(self) -> bool:
        if self.baseline == 0:
            return self.current > 0
        return self.current > self.baseline * (1 + self.limit) + 1e-12

    def change_text(self) -> str:
        if self.ratio is None:
            return "new" if self.current > 0 else "0%"
        return f"{self.ratio * 100:+.1f}%"

    def value_text(self, value: float) -> str:
        return f"${value:.6f}" if self.metric == "cost_usd" else f"{value:g}"


def compare(current: dict[str, Any], baseline: dict[str, Any], limit: float) -> list[Change]:
    cur, base = current["totals"], baseline["totals"]
    return [
        Change(key, label, float(base.get(key) or 0), float(cur.get(key) or 0), limit)
        for key, label in METRICS
    ]


def comparison_text(changes: list[Change], baseline_source: str) -> list[str]:
    lines = [f"compared with baseline {baseline_source} (max increase {changes[0].limit * 100:g}%):"]
    for ch in changes:
        verdict = "FAIL" if ch.exceeded else "ok"
        lines.append(
            f"  {verdict:4}  {ch.label}: {ch.value_text(ch.baseline)} -> {ch.value_text(ch.current)} ({ch.change_text()})"
        )
    bad = [ch.label for ch in changes if ch.exceeded]
    lines.append(
        f"baseline: {', '.join(bad)} grew more than {changes[0].limit * 100:g}%"
        if bad
        else "baseline: within limits"
    )
    return lines


def comparison_rows(changes: list[Change]) -> list[list[str]]:
    return [
        [
            ch.label,
            ch.value_text(ch.baseline),
            ch.value_text(ch.current),
            ch.change_text(),
            f"+{ch.limit * 100:g}%",
            ":x:" if ch.exceeded else ":white_check_mark:",
        ]
        for ch in changes
    ]
