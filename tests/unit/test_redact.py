"""Redaction modes on whole events: what each mode keeps, adds and never changes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from oisp_sensor.config import ConfigError, RedactionConfig, SensorConfig, load_config
from oisp_sensor.redact import (
    DETECTOR_NAMES,
    Redactor,
    exporter_modes,
    full_mode_warnings,
    sha256,
)

KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 3


def _event() -> dict[str, Any]:
    return {
        "event_type": "ai.request",
        "event_id": "01JCTESTTESTTESTTESTTESTTE",
        "host": {"hostname": "box", "device_id": "0123456789abcdef0123456789abcdef"},
        "actor": {"uid": 1000, "username": "dev"},
        "process": {"pid": 7, "name": "python3", "cmdline": ["python3", "agent.py"], "cwd": "/home/dev/proj"},
        "data": {
            "provider": {
                "id": "openai",
                "name": "OpenAI",
                "endpoint": "https://api.openai.com/v1/chat/completions",
            },
            "model": {"id": "gpt-4o", "family": "gpt-4"},
            "auth": {"type": "bearer", "key_prefix": "sk-proj-"},
            "system_prompt_hash": "sha256:" + "ab" * 32,
            "messages": [
                {"role": "system", "content": "You are helpful.", "content_length": 16},
                {"role": "user", "content": f"my key is {KEY} and mail me at jane.doe@example.com"},
            ],
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": "ok",
                        "tool_calls": [
                            {
                                "id": "call_abc123",
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
    assert data["redaction"]["mode"] == "safe"
    # the hash of each changed content field's original, beside it
    original = _event()["data"]["messages"][1]["content"]
    assert data["messages"][1]["content_hash"] == sha256(original)
    assert "content_hash" not in data["messages"][0]  # unchanged: the content itself is there


def test_apply_never_mutates_and_shares_untouched_parts() -> None:
    event = _event()
    before = copy.deepcopy(event)
    for mode in ("safe", "minimal", "full"):
        out = Redactor("safe").apply(event, mode)
        assert event == before, mode
        assert out is not event
        assert out["host"] is event["host"]  # structural sharing of what was not changed
        assert out["actor"] is event["actor"]
    out = Redactor().apply(event, "safe")
    assert out["data"]["messages"][0] is event["data"]["messages"][0]
    assert out["data"]["model"] is event["data"]["model"]


def test_minimal_keeps_no_content() -> None:
    event = Redactor("minimal").apply(_event())
    blob = orjson.dumps(event).decode()
    assert "You are helpful." not in blob and KEY not in blob and '"content"' not in blob
    assert '"arguments"' not in blob
    msg = event["data"]["messages"][0]
    assert msg["content_length"] == len("You are helpful.")
    assert msg["content_hash"] == sha256("You are helpful.")
    call = event["data"]["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "f"
    assert call["function"]["arguments_length"] == len(f'{{"k": "{KEY}"}}')
    assert call["function"]["arguments_hash"].startswith("sha256:")
    assert event["data"]["messages_redacted"] is True
    assert event["data"]["redaction"]["mode"] == "minimal"
    assert event["data"]["redaction"]["content_removed"] == 4
    # metadata stays
    assert event["data"]["provider"]["endpoint"] == "https://api.openai.com/v1/chat/completions"
    assert event["data"]["model"] == {"id": "gpt-4o", "family": "gpt-4"}


def test_minimal_structured_content_gets_length_and_hash() -> None:
    event = {
        "event_type": "agent.tool_call",
        "data": {"tool": {"name": "read_file"}, "arguments": {"path": "/x"}},
    }
    out = Redactor("minimal").apply(event)
    assert "arguments" not in out["data"]
    assert out["data"]["arguments_length"] == len('{"path":"/x"}')
    assert out["data"]["arguments_hash"] == sha256('{"path":"/x"}')
    assert out["data"]["tool"] == {"name": "read_file"}


def test_full_changes_no_content() -> None:
    original = _event()
    out = Redactor("full").apply(copy.deepcopy(original))
    assert out == original


def test_auth_is_left_as_is_in_every_mode() -> None:
    for mode in ("safe", "minimal", "full"):
        out = Redactor().apply(_event(), mode)
        assert out["data"]["auth"] == {"type": "bearer", "key_prefix": "sk-proj-"}, mode


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
    # a credential on a command line is never exported, not even in full mode
    full = Redactor("full").apply({"process": {"cmdline": cmdline}})
    assert full["process"]["cmdline"][2] == "Authorization: [REDACTED:bearer_token]"
    assert full["process"]["cmdline"][3] == cmdline[3]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tool", "--api-key", KEY], ["tool", "--api-key", "[REDACTED:secret]"]),
        (["tool", "--password", "hunter"], ["tool", "--password", "[REDACTED:secret]"]),
        (["tool", "--token=abcdefgh"], ["tool", "--token=[REDACTED:secret]"]),
        (["curl", "-u", "bob:s3cret"], ["curl", "-u", "bob:[REDACTED:password]"]),
        (["tool", "--verbose", "file.txt"], ["tool", "--verbose", "file.txt"]),
        (["tool", "--keyboard-layout", "us"], ["tool", "--keyboard-layout", "us"]),
    ],
)
def test_argv_flags_naming_secrets(args: list[str], expected: list[str]) -> None:
    out = Redactor("safe").apply({"process": {"cmdline": args}, "data": {}})
    assert out["process"]["cmdline"] == expected


def test_env_secret_names_are_replaced_whole() -> None:
    env = {"PATH": "/usr/bin", "OPENAI_API_KEY": "abc", "DB_PASSWORD": "x", "NOTE": "mail jane@example.com"}
    for mode in ("safe", "minimal"):
        out = Redactor().apply(
            {"process": {"env": env}, "data": {"env": [f"{k}={v}" for k, v in env.items()]}}, mode
        )
        assert out["process"]["env"] == {
            "PATH": "/usr/bin",
            "OPENAI_API_KEY": "[REDACTED:secret]",
            "DB_PASSWORD": "[REDACTED:secret]",
            "NOTE": "mail [REDACTED:email]",
        }
        assert out["data"]["env"][1] == "OPENAI_API_KEY=[REDACTED:secret]"
    full = Redactor().apply({"process": {"env": env}}, "full")
    assert full["process"]["env"]["OPENAI_API_KEY"] == "[REDACTED:secret]"
    assert full["process"]["env"]["NOTE"] == "mail jane@example.com"  # personal data: full keeps it


def test_credential_headers_never_leave_in_any_mode() -> None:
    headers = {
        "Authorization": f"Bearer {KEY}",
        "x-api-key": "abcdefabcdefabcdef0123",
        "Cookie": "session=abcdef",
        "Content-Type": "application/json",
    }
    pairs = [["authorization", "Basic dXNlcjpwYXNz"], ["accept", "*/*"]]
    for mode in ("safe", "minimal", "full"):
        out = Redactor().apply({"data": {"http": {"headers": headers, "request_headers": pairs}}}, mode)
        h = out["data"]["http"]["headers"]
        assert h["Authorization"] == h["x-api-key"] == h["Cookie"] == "[REDACTED:auth_header]", mode
        assert h["Content-Type"] == "application/json"
        assert out["data"]["http"]["request_headers"] == [
            ["authorization", "[REDACTED:auth_header]"],
            ["accept", "*/*"],
        ]
        assert out["data"]["redaction"]["redaction_count"] == 4


def test_urls_lose_credentials_in_every_mode() -> None:
    url = "https://bob:pw12345@example.com/v1beta/models?key=AIzaNotARealKeyButLongEnough12345678&alt=sse"
    for mode in ("safe", "minimal", "full"):
        out = Redactor().apply(
            {"data": {"provider": {"endpoint": url}, "http": {"path": "/x?token=abc123&a=1"}}}, mode
        )
        endpoint = out["data"]["provider"]["endpoint"]
        assert "pw12345" not in endpoint and "AIzaNot" not in endpoint, mode
        assert endpoint.startswith("https://bob:[REDACTED:url_password]@example.com/v1beta/models?key=")
        assert endpoint.endswith("&alt=sse")
        assert out["data"]["http"]["path"] == "/x?token=[REDACTED:secret]&a=1"


def test_url_personal_data_in_safe_but_not_full() -> None:
    url = "https://example.com/users/jane.doe@example.com/profile"
    assert "jane.doe" not in Redactor().apply({"data": {"url": url}}, "safe")["data"]["url"]
    assert Redactor().apply({"data": {"url": url}}, "full")["data"]["url"] == url


def test_any_string_under_data_is_scanned() -> None:
    # a field no decoder produces today: scanned because it is not a known-safe key
    event = {"data": {"error": {"type": "invalid_request", "message": f"bad key {KEY}"}, "id": KEY}}
    out = Redactor().apply(event, "safe")
    assert out["data"]["error"]["message"] == "bad key [REDACTED:api_key]"
    assert out["data"]["id"] == KEY  # ids are known-safe keys: not scanned (no false positives)


def test_structured_content_is_all_content() -> None:
    event = {"data": {"arguments": {"path": "/home/jane/a.txt", "note": "ssn 123-45-6789"}}}
    out = Redactor().apply(event, "safe")
    assert out["data"]["arguments"] == {"path": "/home/jane/a.txt", "note": "ssn [REDACTED:ssn]"}
    assert out["data"]["messages_redacted"] is True


def test_file_paths_only_when_configured() -> None:
    event = {
        "event_type": "file.open",
        "process": {"cwd": "/home/jane/x"},
        "data": {"path": "/home/jane/notes.txt"},
    }
    assert Redactor().apply(event, "safe")["data"]["path"] == "/home/jane/notes.txt"
    out = Redactor(redact_paths=True).apply(event, "safe")
    assert out["data"]["path"] == "/home/[REDACTED:username]/notes.txt"
    assert out["process"]["cwd"] == "/home/[REDACTED:username]/x"
    assert Redactor(redact_paths=True).apply(event, "full")["data"]["path"] == "/home/jane/notes.txt"


def test_detector_switches() -> None:
    text = "call +1 415-555-0132 or mail jane@example.com"
    event = {"data": {"messages": [{"role": "user", "content": text}]}}
    out = Redactor(detectors={"phone": False}).apply(event)
    assert out["data"]["messages"][0]["content"] == "call +1 415-555-0132 or mail [REDACTED:email]"
    with pytest.raises(ValueError, match="unknown detector"):
        Redactor(detectors={"phones": False})


def test_credentials_on_metadata_even_when_switched_off() -> None:
    redactor = Redactor(detectors={"api_keys": False, "bearer": False})
    out = redactor.apply(
        {
            "process": {"cmdline": ["x", f"--header=Authorization: Bearer {KEY}"]},
            "data": {"messages": [{"content": KEY}]},
        }
    )
    assert KEY not in orjson.dumps(out["process"]).decode()
    assert out["data"]["messages"][0]["content"] == KEY  # content honours the switch


def test_counters_per_mode() -> None:
    redactor = Redactor()
    redactor.apply(_event(), "safe")
    redactor.apply(_event(), "minimal")
    redactor.apply({"data": {"messages": [{"content": "hello there"}]}}, "safe")
    stats = redactor.stats()
    assert stats["by_mode"]["safe"]["events"] == 2
    assert stats["by_mode"]["safe"]["events_redacted"] == 1
    assert stats["by_mode"]["safe"]["items_redacted"] == 3
    assert stats["by_mode"]["safe"]["patterns"] == {"api_key": 2, "email": 1}
    assert stats["by_mode"]["minimal"]["content_removed"] == 4
    assert redactor.events_redacted == 2


def test_unknown_mode() -> None:
    with pytest.raises(ValueError):
        Redactor("loose")
    with pytest.raises(ValueError):
        Redactor().apply({}, "loose")


# ---- configuration -------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def test_config_detector_names_match_the_detectors() -> None:
    assert tuple(RedactionConfig().detectors.model_dump()) == DETECTOR_NAMES


def test_from_config(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[redaction]
mode = "minimal"
redact_paths = true
[redaction.detectors]
phone = false
[[redaction.custom_patterns]]
name = "employee_id"
pattern = 'EMP-\\d{6}'
[[redaction.custom_patterns]]
name = "project"
pattern = "Project (?:Falcon|Osprey)"
enabled = false
""",
    )
    config, _ = load_config(path, environ={})
    redactor = Redactor.from_config(config.redaction)
    assert redactor.mode == "minimal"
    assert "phone" not in redactor.detectors and "email" in redactor.detectors
    assert redactor.redact_paths
    text = "EMP-123456 on Project Falcon, call +1 415-555-0132"
    out = redactor.apply({"data": {"messages": [{"content": text}]}}, "safe")
    assert (
        out["data"]["messages"][0]["content"]
        == "[REDACTED:employee_id] on Project Falcon, call +1 415-555-0132"
    )


def test_from_config_uses_the_registry_prefixes() -> None:
    from oisp_sensor.decode.providers.registry import Provider

    extra = Provider(id="acme", name="Acme AI", key_prefixes=("acme_live_",))
    redactor = Redactor.from_config(RedactionConfig(), providers=[extra])
    text = "key acme_live_Q1w2E3r4T5y6U7i8O9p0"
    assert redactor.scrub_text(text) == "key [REDACTED:api_key]"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[[redaction.custom_patterns]]\nname = 'x'\npattern = '(abc'\n",
            "redaction.custom_patterns.0.pattern:",
        ),
        ("[[redaction.custom_patterns]]\nname = 'x'\npattern = 'a*'\n", "matches the empty string"),
        (
            "[[redaction.custom_patterns]]\nname = 'Bad Name'\npattern = 'a'\n",
            "redaction.custom_patterns.0.name:",
        ),
        ("[redaction.detectors]\nemial = false\n", "redaction.detectors.emial: unknown key"),
        ("[export.jsonl]\nredaction = 'partial'\n", "export.jsonl.redaction:"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, toml), environ={})
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_bad_regex_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a valid regular expression: missing \)"):
        load_config(
            _write(tmp_path, "[[redaction.custom_patterns]]\nname = 'x'\npattern = '(abc'\n"), environ={}
        )


def test_detector_switch_from_environment() -> None:
    config, _ = load_config(None, environ={"OISP_REDACTION__DETECTORS__PHONE": "false", "OISP_CONFIG": ""})
    assert config.redaction.detectors.phone is False


def test_per_exporter_modes_and_warnings() -> None:
    config = SensorConfig.model_validate(
        {
            "redaction": {"mode": "safe"},
            "export": {
                "jsonl": {"redaction": "full"},
                "kafka": {"enabled": True},
                "otlp": {"redaction": "minimal"},
            },
        }
    )
    assert exporter_modes(config) == {"jsonl": "full", "kafka": "safe"}  # otlp is not enabled
    warnings = full_mode_warnings(config)
    assert len(warnings) == 1 and "[export.jsonl]" in warnings[0] and "\n" not in warnings[0]
    config = SensorConfig.model_validate({"redaction": {"mode": "full"}})
    assert full_mode_warnings(config) and "full" in full_mode_warnings(config)[0]
