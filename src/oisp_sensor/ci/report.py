"""`oisp-sensor report FILE`: totals and breakdowns as text, Markdown or JSON, optionally
compared with a baseline (exit 1 when requests, tokens or cost grew too much)."""

from __future__ import annotations

import argparse
import sys

import orjson

from .baseline import BaselineError, compare, comparison_rows, comparison_text, load_baseline, parse_increase
from .events import EventsFileError, malformed_note, read_events
from .render import render_markdown, render_text
from .stats import build_report

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _err(message: str) -> None:
    print(f"oisp-sensor: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        limit = parse_increase(args.max_increase)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_USAGE
    try:
        ef = read_events(args.file)
    except EventsFileError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if ef.malformed:
        _err(f"{args.file}: {malformed_note(ef)} skipped")
    if ef.empty:
        _err(f"{args.file} is empty: no events were captured")
    report = build_report(ef.events, args.file, ef.malformed)
    changes = None
    if args.baseline:
        try:
            base = load_baseline(args.baseline)
        except BaselineError as exc:
            _err(str(exc))
            return EXIT_USAGE
        changes = compare(report, base, limit)
        report["baseline"] = {
            "source": base.get("source", args.baseline),
            "max_increase": limit,
            "changes": {
                ch.metric: {"baseline": ch.baseline, "current": ch.current, "exceeded": ch.exceeded}
                for ch in changes
            },
        }
    if args.format == "json":
        text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"
    elif args.format == "markdown":
        rows = comparison_rows(changes) if changes else None
        verdict = comparison_text(changes, args.baseline)[-1] if changes else ""
        text = render_markdown(report, rows, verdict)
    else:
        text = render_text(report, comparison_text(changes, args.baseline) if changes else None)
    if args.output:
        try:
            with open(args.output, "w") as out:
                out.write(text)
        except OSError as exc:
            _err(f"cannot write the report to {args.output}: {exc.strerror or exc}")
            return EXIT_USAGE
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if changes and any(ch.exceeded for ch in changes):
        if args.format != "text" or args.output:  # the text already says it on stdout
            for line in comparison_text(changes, args.baseline):
                _err(line)
        return EXIT_FAILED
    return EXIT_OK
