"""Streams that arrive as one HTTP body rather than as SSE: NDJSON and JSON arrays.

Ollama streams newline-delimited JSON objects; Gemini's `:streamGenerateContent`
without `alt=sse` streams one JSON array whose elements arrive over time. The HTTP
decoder only hands over the finished body, so these helpers split it back into
(byte offset, object) pairs, in body order. A cut or garbled element ends the split
and is counted, never raised.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


def split_ndjson(body: bytes) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """(offset, object) for each JSON-object line, and how many lines were not one."""
    items: list[tuple[int, dict[str, Any]]] = []
    bad = 0
    offset = 0
    for line in body.split(b"\n"):
        start = offset
        offset += len(line) + 1
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if isinstance(obj, dict):
            items.append((start, obj))
        else:
            bad += 1
    return items, bad


def looks_like_ndjson(body: bytes) -> bool:
    """Two or more JSON objects, one per line (a single object is an ordinary body)."""
    stripped = body.strip()
    return stripped.startswith(b"{") and b"}\n{" in stripped.replace(b"\r\n", b"\n")


def split_json_array(body: bytes) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """(offset, object) for each element of a top-level JSON array; True if it was complete.

    The fast path parses the whole array at once (offsets are then element order,
    exact offsets only matter for ordering); a cut array is scanned element by element
    so everything before the cut is kept.
    """
    try:
        whole = orjson.loads(body)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        return [(i, obj) for i, obj in enumerate(whole) if isinstance(obj, dict)], True
    text = body.decode("utf-8", "replace")
    pos = text.find("[")
    items: list[tuple[int, dict[str, Any]]] = []
    if pos < 0:
        return items, False
    pos += 1
    end = len(text)
    while pos < end:
        while pos < end and (text[pos] in _WS or text[pos] == ","):
            pos += 1
        if pos >= end or text[pos] == "]":
            return items, pos < end
        try:
            obj, nxt = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError):  # nesting deeper than the stack: a hostile body
            return items, False
        if isinstance(obj, dict):
            items.append((pos, obj))
        pos = nxt
    return items, False
