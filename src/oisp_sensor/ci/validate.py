"""`oisp-sensor validate FILE`: the policy's checks over a recorded events file.

One PASS/FAIL line per check with its reason, a summary line, exit 0 when every check
passed, 1 when one failed, 2 when the file or the policy cannot be used.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from . import checks as c
from .events import EventsFileError, read_events
from .junit import write_junit
from .policy import Policy, PolicyError, load_policy

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# With no check asked for: what every recipe of the CI/CD seed greps for.
DEFAULT_TYPES = ["ai.request", "ai.response"]


def _split(values: list[str] | None) -> list[str]:
    """Repeatable flags that also take comma-separated lists."""
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


_LISTS = {
    "expect_type": "expect_types",
    "expect_provider": "expect_providers",
    "expect_model": "expect_models",
    "only_providers": "only_providers",
    "only_models": "only_models",
    "response_contains": "response_contains",
    "forbid_type": "forbid_types",
    "forbid_files": "forbid_files",
}
_SCALARS = (
    "max_tokens",
    "max_cost",
    "max_latency_ms",
    "max_requests",
    "max_errors",
    "no_secrets",
    "no_pii",
    "allow_empty",
)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    over: dict[str, Any] = {}
    for flag, key in _LISTS.items():
        values = getattr(args, flag)
        if values:
            # a phrase may contain commas: only list-of-names flags are split
            over[key] = list(values) if flag == "response_contains" else _split(values)
    for key in _SCALARS:
        if getattr(args, key) is not None:
            over[key] = getattr(args, key)
    return over


def plan(policy: Policy) -> list[Callable[[Any], c.Result]]:
    """The checks of `policy`, in a fixed order, each a function of the events file."""
    steps: list[Callable[[Any], c.Result]] = []
    types = policy.expect_types or ([] if not policy.is_empty() else DEFAULT_TYPES)
    steps += [lambda ef, t=t: c.expect_type(ef.events, t) for t in types]
    steps += [lambda ef, p=p: c.expect_provider(ef.events, p) for p in policy.expect_providers]
    steps += [lambda ef, m=m: c.expect_model(ef.events, m) for m in policy.expect_models]
    if policy.only_providers:
        steps.append(lambda ef: c.only_providers(ef.events, policy.only_providers))
    if policy.only_models:
        steps.append(lambda ef: c.only_models(ef.events, policy.only_models))
    if policy.max_requests is not None:
        steps.append(lambda ef: c.max_requests(ef.events, policy.max_requests))
    if policy.max_errors is not None:
        steps.append(lambda ef: c.max_errors(ef.events, policy.max_errors))
    if policy.max_tokens is not None:
        steps.append(lambda ef: c.max_tokens(ef.events, policy.max_tokens))
    if policy.max_cost is not None:
        steps.append(lambda ef: c.max_cost(ef.events, policy.max_cost))
    if policy.max_latency_ms is not None:
        steps.append(lambda ef: c.max_latency(ef.events, policy.max_latency_ms))
    steps += [lambda ef, t=t: c.response_contains(ef.events, t) for t in policy.response_contains]
    if policy.no_secrets:
        steps.append(c.no_secrets)
    if policy.no_pii:
        steps.append(c.no_pii)
    steps += [lambda ef, t=t: c.forbid_type(ef.events, t) for t in policy.forbid_types]
    steps += [lambda ef, g=g: c.forbid_files(ef.events, g) for g in policy.forbid_files]
    return steps


def _err(message: str) -> None:
    print(f"oisp-sensor: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        policy = load_policy(args.policy, overrides(args))
    except PolicyError as exc:
        _err(f"policy error: {exc}")
        return EXIT_USAGE
    try:
        ef = read_events(args.file)
    except EventsFileError as exc:
        _err(str(exc))
        return EXIT_USAGE
    results = [c.events_file(ef, policy.allow_empty)]
    results += [step(ef) for step in plan(policy)]
    failed = [r for r in results if not r.passed]
    for r in results:
        if r.passed and args.quiet:
            continue
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}: {r.detail}", flush=True)
    print(
        f"validate: {len(results) - len(failed)} passed, {len(failed)} failed ({args.file})"
        + ("" if failed else ": OK"),
        flush=True,
    )
    if args.junit:
        try:
            write_junit(args.junit, results, args.file, time.monotonic() - started)
        except OSError as exc:
            _err(f"cannot write JUnit XML to {args.junit}: {exc.strerror or exc}")
            return EXIT_USAGE
    return EXIT_FAILED if failed else EXIT_OK
