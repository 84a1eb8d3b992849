"""The `/` filter line: `provider:openai model:gpt-4o app:cursor pid:42 status:error weather`.

Words of the form key:value become the store's filters; everything else is the text
search (`q`, case-insensitive, over the redacted events).
"""

from __future__ import annotations

from typing import Any

KEYS = ("provider", "model", "app", "pid", "status")
# Filters that store.stats() understands (it has no text search or status filter).
STATS_KEYS = ("provider", "model", "app", "pid")


class FilterError(ValueError):
    """str() is the message shown to the user."""


def parse(text: str) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    words: list[str] = []
    for word in text.split():
        key, sep, value = word.partition(":")
        key = key.lower()
        if not sep or key not in KEYS:
            words.append(word)
            continue
        if not value:
            raise FilterError(f"{key}: needs a value, e.g. {key}:{_example(key)}")
        if key == "pid":
            if not value.isdigit():
                raise FilterError(f"pid must be a number, not {value!r}")
            filters["pid"] = int(value)
        elif key == "status":
            value = value.lower()
            if value not in ("ok", "error"):
                raise FilterError("status must be ok or error")
            filters["status"] = value
        else:
            filters[key] = value
    if words:
        filters["q"] = " ".join(words)
    return filters


def describe(filters: dict[str, Any]) -> str:
    """The filter line back as text (what the status bar and the input show)."""
    parts = [f"{k}:{filters[k]}" for k in KEYS if k in filters]
    if filters.get("q"):
        parts.append(str(filters["q"]))
    return " ".join(parts)


def for_stats(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if k in STATS_KEYS}


def _example(key: str) -> str:
    return {"provider": "openai", "model": "gpt-4o", "app": "cursor", "pid": "1234", "status": "error"}[key]
