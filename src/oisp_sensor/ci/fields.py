"""Reading the fields `validate` and `report` need from OISP events, tolerating any shape.

Files may come from other versions or be edited by hand: a field of the wrong type is
treated as absent, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

AI_REQUEST = "ai.request"
AI_RESPONSE = "ai.response"


def data(event: dict[str, Any]) -> dict[str, Any]:
    value = event.get("data")
    return value if isinstance(value, dict) else {}


def _sub(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def provider_id(event: dict[str, Any]) -> str | None:
    value = _sub(data(event), "provider").get("id")
    return value if isinstance(value, str) else None


def provider_names(event: dict[str, Any]) -> list[str]:
    """The id and display name ("openai", "OpenAI"): a pattern may name either."""
    prov = _sub(data(event), "provider")
    return [v for v in (prov.get("id"), prov.get("name")) if isinstance(v, str)]


def model_id(event: dict[str, Any]) -> str | None:
    value = _sub(data(event), "model").get("id")
    return value if isinstance(value, str) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def tokens(event: dict[str, Any]) -> dict[str, int]:
    """prompt / completion / total tokens of an ai.response (total from the parts if absent)."""
    usage = _sub(data(event), "usage")
    out = {
        k: int(v)
        for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        if (v := _num(usage.get(k))) is not None
    }
    if "total_tokens" not in out and ("prompt_tokens" in out or "completion_tokens" in out):
        out["total_tokens"] = out.get("prompt_tokens", 0) + out.get("completion_tokens", 0)
    return out


def cost_usd(event: dict[str, Any]) -> float | None:
    return _num(_sub(data(event), "cost").get("usd"))


def latency_ms(event: dict[str, Any]) -> float | None:
    return _num(data(event).get("latency_ms"))


def is_error(event: dict[str, Any]) -> bool:
    return data(event).get("success") is False


def response_texts(event: dict[str, Any]) -> Iterator[str]:
    """The answer's text: choices[].message.content (a string or text parts), choices[].text."""
    choices = data(event).get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            yield choice["text"]
        content = _sub(choice, "message").get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]


def has_content_hash_only(event: dict[str, Any]) -> bool:
    """An answer whose text redaction `minimal` removed (hash and length only)."""
    choices = data(event).get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and "content_hash" in _sub(c, "message") for c in choices
    )


def process_name(event: dict[str, Any]) -> str:
    value = _sub(event, "process").get("name")
    return value if isinstance(value, str) and value else "?"


def app_id(event: dict[str, Any]) -> str:
    app = _sub(event, "app")
    value = app.get("id") or app.get("name")
    return value if isinstance(value, str) and value else "unknown"


def describe(event: dict[str, Any]) -> str:
    """How a failure names an event: type, id, process, time, provider and model."""
    proc = _sub(event, "process")
    parts = [str(event.get("event_type")), str(event.get("event_id", "?"))]
    who = f"{process_name(event)}[{proc.get('pid', '?')}]"
    ts = event.get("timestamp")
    parts.append(f"by {who}" + (f" at {ts}" if isinstance(ts, str) else ""))
    prov, model = provider_id(event), model_id(event)
    if prov:
        parts.append(f"({prov}{' ' + model if model else ''})")
    return " ".join(parts)


def matches(value: str, patterns: list[str]) -> bool:
    """Case-insensitive glob match against any pattern."""
    low = value.lower()
    return any(fnmatchcase(low, p.lower()) for p in patterns)


def ai_calls(events: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each AI call as (request, response or None); a response whose request is not in
    the file is a call of its own (request = the response)."""
    responses: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("event_type") == AI_RESPONSE:
            rel = data(e).get("related_event_id")
            if isinstance(rel, str):
                responses[rel] = e
    calls: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    seen: set[str] = set()
    for e in events:
        if e.get("event_type") == AI_REQUEST:
            eid = e.get("event_id")
            resp = responses.get(eid) if isinstance(eid, str) else None
            calls.append((e, resp))
            if isinstance(eid, str):
                seen.add(eid)
    for rel, resp in responses.items():
        if rel not in seen:
            calls.append((resp, resp))
    for e in events:
        if e.get("event_type") == AI_RESPONSE and not isinstance(data(e).get("related_event_id"), str):
            calls.append((e, e))
    return calls


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside `value`, with its path (`data.messages[0].content`)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")
