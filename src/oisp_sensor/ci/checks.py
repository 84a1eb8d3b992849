"""The built-in checks of `oisp-sensor validate`: each returns one PASS/FAIL result with
the reason, naming the event that broke it (never the secret it found)."""

from __future__ import annotations

import glob
import os
import re
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from ..redact import CREDENTIAL_DETECTORS, DETECTOR_NAMES, Scanner
from . import fields as f
from .events import EventsFile, malformed_note

Events = list[dict[str, Any]]


@dataclass(frozen=True)
class Result:
    name: str  # what was checked, e.g. "max tokens 10000"
    passed: bool
    detail: str  # why it passed or failed


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _types_seen(events: Events, limit: int = 8) -> str:
    counts = Counter(str(e.get("event_type")) for e in events)
    shown = ", ".join(t for t, _ in counts.most_common(limit))
    return (shown + (", ..." if len(counts) > limit else "")) or "none"


def events_file(ef: EventsFile, allow_empty: bool) -> Result:
    name = f"events file {ef.path}"
    if ef.malformed:
        return Result(name, False, f"{_plural(len(ef.events), 'event')} and {malformed_note(ef)}")
    if not ef.events:
        return Result(
            name, allow_empty, "empty: no events were captured" + (" (allowed)" if allow_empty else "")
        )
    return Result(name, True, _plural(len(ef.events), "event"))


def expect_type(events: Events, pattern: str) -> Result:
    n = sum(1 for e in events if fnmatchcase(str(e.get("event_type")), pattern))
    if n:
        return Result(f"expect type {pattern}", True, _plural(n, "event"))
    return Result(f"expect type {pattern}", False, f"no {pattern} event (types seen: {_types_seen(events)})")


def _providers_seen(calls: list[tuple[dict[str, Any], Any]]) -> str:
    return ", ".join(sorted({f.provider_id(req) or "?" for req, _ in calls})) or "no AI calls"


def _models_of(req: dict[str, Any], resp: dict[str, Any] | None) -> list[str]:
    """The model the app asked for and the one that answered (e.g. a dated version)."""
    models = [m for m in (f.model_id(req), f.model_id(resp) if resp else None) if m]
    return list(dict.fromkeys(models))


def expect_provider(events: Events, pattern: str) -> Result:
    calls = f.ai_calls(events)
    n = sum(1 for req, _ in calls if any(f.matches(v, [pattern]) for v in f.provider_names(req)))
    name = f"expect provider {pattern}"
    if n:
        return Result(name, True, _plural(n, "AI call"))
    return Result(name, False, f"no AI call to {pattern} (providers seen: {_providers_seen(calls)})")


def expect_model(events: Events, pattern: str) -> Result:
    calls = f.ai_calls(events)
    n = sum(1 for req, resp in calls if any(f.matches(m, [pattern]) for m in _models_of(req, resp)))
    name = f"expect model {pattern}"
    if n:
        return Result(name, True, _plural(n, "AI call"))
    seen = ", ".join(sorted({m for req, resp in calls for m in _models_of(req, resp)})) or "none"
    return Result(name, False, f"no AI call with model {pattern} (models seen: {seen})")


def only_providers(events: Events, patterns: list[str]) -> Result:
    calls = f.ai_calls(events)
    bad = [req for req, _ in calls if not any(f.matches(v, patterns) for v in f.provider_names(req))]
    name = f"only providers {', '.join(patterns)}"
    if not bad:
        return Result(name, True, f"{_plural(len(calls), 'AI call')}, all to {', '.join(patterns)}")
    others = ", ".join(sorted({f.provider_id(e) or "?" for e in bad}))
    return Result(name, False, f"{_plural(len(bad), 'AI call')} to {others}; first: {f.describe(bad[0])}")


def only_models(events: Events, patterns: list[str]) -> Result:
    calls = f.ai_calls(events)
    bad = [req for req, resp in calls if not any(f.matches(m, patterns) for m in _models_of(req, resp))]
    name = f"only models {', '.join(patterns)}"
    if not bad:
        return Result(name, True, f"{_plural(len(calls), 'AI call')}, all with {', '.join(patterns)}")
    others = ", ".join(sorted({f.model_id(e) or "unknown" for e in bad}))
    return Result(name, False, f"{_plural(len(bad), 'AI call')} with {others}; first: {f.describe(bad[0])}")


def _responses(events: Events) -> Events:
    return [e for e in events if e.get("event_type") == f.AI_RESPONSE]


def max_tokens(events: Events, limit: int) -> Result:
    counted = [(f.tokens(e).get("total_tokens"), e) for e in _responses(events)]
    known = [(n, e) for n, e in counted if n is not None]
    total = sum(n for n, _ in known)
    name = f"max tokens {limit}"
    detail = f"{total} tokens in {_plural(len(known), 'response')}"
    if len(known) < len(counted):
        detail += f" ({len(counted) - len(known)} without usage)"
    if total <= limit:
        return Result(name, True, detail)
    top_n, top = max(known, key=lambda item: item[0])
    return Result(name, False, f"{detail} > {limit}; largest: {top_n} tokens, {f.describe(top)}")


def max_cost(events: Events, limit: float) -> Result:
    priced = [(c, e) for e in _responses(events) if (c := f.cost_usd(e)) is not None]
    total = sum(c for c, _ in priced)
    unpriced = len(_responses(events)) - len(priced)
    name = f"max cost ${limit:g}"
    detail = f"${total:.6f} for {_plural(len(priced), 'priced response')}"
    if unpriced:
        detail += f" ({unpriced} without a known price)"
    if total <= limit:
        return Result(name, True, detail)
    top_c, top = max(priced, key=lambda item: item[0])
    return Result(name, False, f"{detail} > ${limit:g}; costliest: ${top_c:.6f}, {f.describe(top)}")


def max_latency(events: Events, limit: float) -> Result:
    timed = [(ms, e) for e in _responses(events) if (ms := f.latency_ms(e)) is not None]
    name = f"max latency {limit:g} ms"
    if not timed:
        return Result(name, True, "no timed responses")
    slow = [(ms, e) for ms, e in timed if ms > limit]
    worst_ms, worst = max(timed, key=lambda item: item[0])
    if not slow:
        return Result(name, True, f"slowest of {_plural(len(timed), 'response')}: {worst_ms:g} ms")
    return Result(
        name, False, f"{_plural(len(slow), 'response')} slower; slowest: {worst_ms:g} ms, {f.describe(worst)}"
    )


def max_requests(events: Events, limit: int) -> Result:
    n = len(f.ai_calls(events))
    return Result(
        f"max requests {limit}", n <= limit, f"{_plural(n, 'AI call')}" + (f" > {limit}" if n > limit else "")
    )


def max_errors(events: Events, limit: int) -> Result:
    errors = [e for e in _responses(events) if f.is_error(e)]
    name = f"max errors {limit}"
    if len(errors) <= limit:
        return Result(name, True, f"{_plural(len(errors), 'failed response')}")
    first = errors[0]
    status = f.data(first).get("status_code")
    return Result(
        name,
        False,
        f"{_plural(len(errors), 'failed response')} > {limit}; first: {f.describe(first)}"
        + (f" status {status}" if status is not None else ""),
    )


def response_contains(events: Events, phrase: str) -> Result:
    responses = _responses(events)
    name = f"response contains {phrase!r}"
    hits = [e for e in responses if any(phrase in text for text in f.response_texts(e))]
    if hits:
        return Result(name, True, f"in {_plural(len(hits), 'response')}; first: {f.describe(hits[0])}")
    if not responses:
        return Result(name, False, "no ai.response events")
    texts = sum(1 for e in responses for _ in f.response_texts(e))
    if not texts and any(f.has_content_hash_only(e) for e in responses):
        return Result(name, False, "responses carry no content (recorded with redaction `minimal`)")
    return Result(name, False, f"in none of {_plural(len(responses), 'response')}")


# The detectors are those of the sensor's redaction: a value the sensor would have
# replaced is one that should not be in the file.
SECRET_KINDS = frozenset(CREDENTIAL_DETECTORS)
PII_KINDS = frozenset(DETECTOR_NAMES) - SECRET_KINDS


@lru_cache(maxsize=4)
def _scanner(detectors: frozenset[str]) -> Scanner:
    from ..decode.providers.registry import builtin_providers

    prefixes = sorted({p for provider in builtin_providers() for p in provider.key_prefixes})
    return Scanner(detectors, prefixes, cache_chars=0)


# What the sensor put in place of a secret: `x-api-key: [REDACTED:api_key]` is not a
# credential assignment, so markers are blanked before scanning.
_MARKER_RE = re.compile(r"\[REDACTED:[a-z0-9_]{1,40}\]")


def _hits(scanner: Scanner, text: str) -> list[tuple[int, int, str]]:
    if len(text) < scanner.min_length:
        return []
    if "[REDACTED:" in text:
        text = _MARKER_RE.sub(" ", text)
    return scanner.find(text)


def _find(ef: EventsFile, detectors: frozenset[str]) -> tuple[int, str]:
    """(number of hits, where the first is): path and kind, never the value."""
    scanner = _scanner(detectors)
    count, first = 0, ""
    for event in ef.events:
        for path, text in f.strings(event):
            hits = _hits(scanner, text)
            if hits:
                count += len(hits)
                if not first:
                    kinds = ", ".join(sorted({kind for _, _, kind in hits}))
                    first = f"{kinds} in {path} of {f.describe(event)}"
    for index, line in enumerate(ef.malformed_text):
        hits = _hits(scanner, line)
        if hits:
            count += len(hits)
            if not first:
                first = f"{', '.join(sorted({k for _, _, k in hits}))} in malformed line #{index + 1}"
    return count, first


def no_secrets(ef: EventsFile) -> Result:
    count, first = _find(ef, SECRET_KINDS)
    if not count:
        return Result("no secrets", True, f"no credential in {_plural(len(ef.events), 'event')}")
    return Result("no secrets", False, f"{_plural(count, 'credential')} found; first: {first}")


def no_pii(ef: EventsFile) -> Result:
    count, first = _find(ef, PII_KINDS)
    if not count:
        return Result("no personal data", True, f"none in {_plural(len(ef.events), 'event')}")
    return Result("no personal data", False, f"{_plural(count, 'item')} found; first: {first}")


def forbid_type(events: Events, pattern: str) -> Result:
    bad = [e for e in events if fnmatchcase(str(e.get("event_type")), pattern)]
    if not bad:
        return Result(f"forbid type {pattern}", True, "none")
    return Result(
        f"forbid type {pattern}", False, f"{_plural(len(bad), 'event')}; first: {f.describe(bad[0])}"
    )


def forbid_files(events: Events, pattern: str) -> Result:
    """No file event touched a path matching `pattern`, and no such file exists now
    (the seed's retention check: nothing persisted beyond the run)."""
    name = f"forbid files {pattern}"
    touched = [
        e
        for e in events
        if str(e.get("event_type")).startswith("file.")
        and isinstance(path := f.data(e).get("path"), str)
        and fnmatchcase(path, pattern)
    ]
    if touched:
        path = f.data(touched[0]).get("path")
        return Result(
            name, False, f"{_plural(len(touched), 'file event')}; first: {path}, {f.describe(touched[0])}"
        )
    present = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.exists(p))
    if present:
        return Result(
            name,
            False,
            f"{present[0]} exists" + (f" (and {len(present) - 1} more)" if len(present) > 1 else ""),
        )
    return Result(name, True, "no such file, no file event")
