"""Redaction modes on AI event data."""

from __future__ import annotations

import copy

import orjson

from oisp_sensor.redact import Redactor

KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 3


def _event() -> dict[str, object]:
    return {
        "event_type": "ai.request",
        "data": {
            "auth": {"type": "bearer", "key_prefix": "sk-proj-"},
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": f"my key is {KEY} and mail me at jane.doe@example.com"},
            ],
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": "ok",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": f'{{"k": "{KEY}"}}'},
                            }
                        ],
                    }
                }
            ],
        },
    }


def test_safe_replaces_secrets_and_counts() -> None:
    event = Redactor("safe").apply(_event())
    blob = orjson.dumps(event).decode()
    assert KEY not in blob
    assert "jane.doe@example.com" not in blob
    data = event["data"]
    assert data["messages"][1]["content"] == "my key is [REDACTED:api_key] and mail me at [REDACTED:email]"
    assert data["messages"][0]["content"] == "You are helpful."
    assert data["messages_redacted"] is True
    assert data["redaction"]["redaction_count"] == 3
    assert data["redaction"]["patterns_found"] == ["api_key", "email"]
    assert data["redaction"]["original_hash"].startswith("sha256:")


def test_minimal_keeps_no_content() -> None:
    event = Redactor("minimal").apply(_event())
    blob = orjson.dumps(event).decode()
    assert "You are helpful." not in blob and KEY not in blob and '"content"' not in blob
    msg = event["data"]["messages"][0]
    assert msg["content_length"] == len("You are helpful.")
    assert msg["content_hash"].startswith("sha256:")


def test_full_changes_nothing() -> None:
    original = _event()
    assert Redactor("full").apply(copy.deepcopy(original)) == original


def test_clean_content_is_not_marked() -> None:
    event = {
        "data": {"messages": [{"role": "user", "content": "What is 2+2? See https://example.com/a?b=c"}]}
    }
    out = Redactor("safe").apply(event)
    assert out["data"]["messages"][0]["content"] == "What is 2+2? See https://example.com/a?b=c"
    assert out["data"]["messages_redacted"] is False
    assert "redaction" not in out["data"]


def test_cmdline_secrets_are_scrubbed_but_cache_untouched() -> None:
    cmdline = ["curl", "-H", f"Authorization: Bearer {KEY}", "https://api.openai.com/v1/x"]
    event = {"process": {"cmdline": cmdline}, "data": {}}
    out = Redactor("safe").apply(event)
    assert KEY not in orjson.dumps(out).decode()
    assert out["process"]["cmdline"][2] == "Authorization: [REDACTED:bearer_token]"
    assert cmdline[2].endswith(KEY)  # the process cache's own list is not modified
    assert Redactor("full").apply({"process": {"cmdline": cmdline}})["process"]["cmdline"] == cmdline
