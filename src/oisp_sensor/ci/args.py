"""Command-line arguments of `validate` and `report`, kept free of heavy imports: the
parser is built for every command."""

from __future__ import annotations

import argparse


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="events file (JSONL) written by record/run --output")
    p.add_argument("--policy", metavar="TOML", help="policy file; its keys are these flags' names")
    p.add_argument("--junit", metavar="PATH", help="also write the results as JUnit XML")
    add = p.add_argument
    add("--expect-type", action="append", metavar="TYPE", help="at least one event of TYPE (glob)")
    add("--expect-provider", action="append", metavar="P", help="at least one AI call to provider P")
    add("--expect-model", action="append", metavar="M", help="at least one AI call with model M (glob)")
    add("--only-providers", action="append", metavar="P,..", help="every AI call goes to these providers")
    add("--only-models", action="append", metavar="M,..", help="every AI call uses these models (globs)")
    add("--max-tokens", type=int, metavar="N", help="total tokens of all responses at most N")
    add("--max-cost", type=float, metavar="USD", help="total cost at most USD")
    add("--max-latency-ms", type=float, metavar="MS", help="no response slower than MS")
    add("--max-requests", type=int, metavar="N", help="at most N AI calls")
    add("--max-errors", type=int, metavar="N", help="at most N failed responses")
    add("--response-contains", action="append", metavar="TEXT", help="some response contains TEXT")
    add("--no-secrets", action="store_true", default=None, help="no credential in any event")
    add("--no-pii", action="store_true", default=None, help="no personal data in any event")
    add("--forbid-type", action="append", metavar="TYPE", help="no event of TYPE (glob)")
    add("--forbid-files", action="append", metavar="GLOB", help="no file event on GLOB and no such file")
    add("--allow-empty", action="store_true", default=None, help="an empty events file passes")
    add("-q", "--quiet", action="store_true", help="print only failures and the summary")


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="events file (JSONL) written by record/run --output")
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text", help="default: text")
    p.add_argument("--baseline", metavar="OLD", help="an earlier report (--format json) or events file")
    p.add_argument(
        "--max-increase",
        default="10%",
        metavar="PCT",
        help="with --baseline: fail when requests, tokens or cost grew more than this (default 10%%)",
    )
    p.add_argument("-o", "--output", metavar="PATH", help="write the report to PATH instead of stdout")
