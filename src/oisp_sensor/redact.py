"""Redaction of everything that leaves the sensor: secrets and personal data.

Modes (the Event Schema seed): `safe` (default) keeps content but replaces secrets and
personal data with `[REDACTED:<kind>]`, counting them and hashing the original;
`full` changes nothing (development only); `minimal` removes all content and keeps
lengths and hashes. Credentials in headers never get this far: decoders only keep
`auth.key_prefix`.

Content is found at the places the AI decoders put it: `messages[].content`,
`choices[].message.content`, tool call arguments, and `tool.arguments`/`result` of
agent events.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# (kind, pattern). Ordered: specific key formats before generic ones.
_DETECTORS: list[tuple[str, str]] = [
    ("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"),
    ("api_key", r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{20,}"),
    ("api_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    ("api_key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    ("api_key", r"\bgsk_[A-Za-z0-9]{20,}\b"),
    ("api_key", r"\bxai-[A-Za-z0-9]{20,}\b"),
    ("api_key", r"\bhf_[A-Za-z0-9]{30,}\b"),
    ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b"),
    ("slack_token", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ("bearer_token", r"\b[Bb](?i:earer)\s+[A-Za-z0-9._~+/\-]{16,}=*"),
    ("url_password", r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
    ("email", r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"),
]
_COMBINED = re.compile("|".join(f"(?P<k{i}>{p})" for i, (_, p) in enumerate(_DETECTORS)))
_KINDS = {f"k{i}": kind for i, (kind, _) in enumerate(_DETECTORS)}


def sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class RedactionResult:
    count: int = 0
    kinds: set[str] = field(default_factory=set)
    originals: list[str] = field(default_factory=list)


def scrub_text(text: str, result: RedactionResult) -> str:
    """Replace every detected secret or personal datum in `text`."""
    if not text:
        return text

    def _replace(match: re.Match[str]) -> str:
        kind = _KINDS[match.lastgroup or ""]
        result.count += 1
        result.kinds.add(kind)
        return f"[REDACTED:{kind}]"

    return _COMBINED.sub(_replace, text)


class Redactor:
    """Applies one mode to OISP event data in place."""

    def __init__(self, mode: str = "safe") -> None:
        if mode not in ("safe", "full", "minimal"):
            raise ValueError(f"unknown redaction mode {mode!r}")
        self.mode = mode
        self.events_redacted = 0
        self.items_redacted = 0
        self._cmdlines: dict[tuple[str, ...], tuple[list[str], int]] = {}

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "full":
            return event
        process = event.get("process")
        if isinstance(process, dict) and process.get("cmdline"):
            # `curl -H "Authorization: Bearer sk-..."` puts the key on the command line.
            process["cmdline"] = self._scrub_cmdline(process["cmdline"])
        data = event.get("data")
        if not isinstance(data, dict):
            return event
        if isinstance(data.get("args"), list):  # process.exec arguments: same as a command line
            data["args"] = self._scrub_cmdline(data["args"])
        result = RedactionResult()
        originals: list[str] = []
        self._walk_content(data, result, originals)
        if originals:
            data["messages_redacted"] = result.count > 0 or self.mode == "minimal"
            if result.count or self.mode == "minimal":
                data["redaction"] = {
                    "original_hash": sha256("\x1e".join(originals)),
                    "patterns_found": sorted(result.kinds),
                    "redaction_count": result.count,
                    "mode": self.mode,
                }
        if result.count:
            self.events_redacted += 1
            self.items_redacted += result.count
        return event

    def _scrub_cmdline(self, cmdline: list[str]) -> list[str]:
        key = tuple(cmdline)
        cached = self._cmdlines.get(key)
        if cached is None:
            result = RedactionResult()
            cached = ([scrub_text(arg, result) for arg in cmdline], result.count)
            if len(self._cmdlines) > 4096:
                self._cmdlines.clear()
            self._cmdlines[key] = cached
        if cached[1]:
            self.items_redacted += cached[1]
        return cached[0]

    def _content(
        self, holder: dict[str, Any], key: str, result: RedactionResult, originals: list[str]
    ) -> None:
        value = holder.get(key)
        if not isinstance(value, str):
            return
        originals.append(value)
        if self.mode == "minimal":
            holder.pop(key)
            holder.setdefault(f"{key}_length", len(value))
            holder.setdefault(f"{key}_hash", sha256(value))
        else:
            holder[key] = scrub_text(value, result)

    def _walk_content(self, data: dict[str, Any], result: RedactionResult, originals: list[str]) -> None:
        visit: Callable[[dict[str, Any], str], None] = lambda d, k: self._content(d, k, result, originals)  # noqa: E731
        for message in data.get("messages") or ():
            if isinstance(message, dict):
                visit(message, "content")
                self._tool_calls(message.get("tool_calls"), visit)
        for choice in data.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                visit(message, "content")
                self._tool_calls(message.get("tool_calls"), visit)
        for key in ("arguments", "result", "prompt", "input", "delta"):
            visit(data, key)

    @staticmethod
    def _tool_calls(calls: Any, visit: Callable[[dict[str, Any], str], None]) -> None:
        for call in calls or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                visit(function, "arguments")
