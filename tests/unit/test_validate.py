"""`oisp-sensor validate` over a file the real sensor recorded (tests/fixtures/ci/session.jsonl:
the openai SDK plain, streamed, with a tool round trip and a 429; curl to Anthropic), and
variants of it made to break each check."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from tests.support.fixtures import make_openai_key

from oisp_sensor.cli import main

SESSION = Path(__file__).resolve().parents[1] / "fixtures" / "ci" / "session.jsonl"


def events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SESSION.read_text().splitlines()]


def write(tmp_path: Path, evs: list[dict[str, Any]], name: str = "e.jsonl", tail: str = "") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in evs) + tail)
    return str(path)


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["validate", *args])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def line(lines: list[str], start: str) -> str:
    found = [x for x in lines if x.startswith(start)]
    assert len(found) == 1, (start, lines)
    return found[0]


def test_recorded_file_passes_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = validate(
        capsys, str(SESSION),
        "--expect-type", "ai.request", "--expect-type", "agent.*",
        "--expect-provider", "OpenAI", "--expect-provider", "anthropic",
        "--expect-model", "gpt-4o-mini", "--only-providers", "openai,anthropic",
        "--only-models", "gpt-4o*,claude-*,error-*", "--max-tokens", "63", "--max-cost", "0.01",
        "--max-latency-ms", "5000", "--max-requests", "6", "--max-errors", "1",
        "--response-contains", "Hello! You said: Say hello plain", "--no-secrets", "--no-pii",
        "--forbid-type", "file.*",
    )  # fmt: skip
    assert code == 0, lines
    assert err == ""
    assert all(x.startswith("PASS  ") for x in lines[:-1])
    assert len(lines) == 17 + 1
    assert lines[-1] == f"validate: 17 passed, 0 failed ({SESSION}): OK"
    assert (
        line(lines, "PASS  max tokens 63")
        == "PASS  max tokens 63: 63 tokens in 5 responses (1 without usage)"
    )
    assert "5 AI calls" in line(lines, "PASS  expect provider OpenAI")


def test_default_checks_are_the_seed_greps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, lines, _ = validate(capsys, str(SESSION))
    assert code == 0
    assert [x.split(":")[0] for x in lines[1:3]] == [
        "PASS  expect type ai.request",
        "PASS  expect type ai.response",
    ]
    only_requests = write(tmp_path, [e for e in events() if e["event_type"] != "ai.response"])
    code, lines, _ = validate(capsys, only_requests)
    assert code == 1
    assert line(lines, "FAIL  expect type ai.response").startswith(
        "FAIL  expect type ai.response: no ai.response event (types seen: process.exec, process.fork, process.exit, ai.streaming_chunk, ai.request, "
    )
    assert lines[-1].startswith("validate: 2 passed, 1 failed")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--expect-provider", "gemini"], "FAIL  expect provider gemini: no AI call to gemini (providers seen: anthropic, openai)"),
        (["--expect-model", "gpt-5*"], "FAIL  expect model gpt-5*: no AI call with model gpt-5* (models seen: "),
        (["--only-providers", "openai"], "FAIL  only providers openai: 1 AI call to anthropic; first: ai.request "),
        (["--only-models", "gpt-4o-mini"], "FAIL  only models gpt-4o-mini: 4 AI calls with claude-3-5-haiku-20241022, error-429, gpt-4o; first: ai.request"),
        (["--max-tokens", "62"], "FAIL  max tokens 62: 63 tokens in 5 responses (1 without usage) > 62; largest: 16 tokens, ai.response "),
        (["--max-cost", "0.0001"], "FAIL  max cost $0.0001: $0.000245 for 5 priced responses (1 without a known price) > $0.0001; costliest: "),
        (["--max-requests", "5"], "FAIL  max requests 5: 6 AI calls > 5"),
        (["--max-errors", "0"], "FAIL  max errors 0: 1 failed response > 0; first: ai.response "),
        (["--response-contains", "Goodbye"], "FAIL  response contains 'Goodbye': in none of 6 responses"),
        (["--forbid-type", "agent.tool_*"], "FAIL  forbid type agent.tool_*: 2 events; first: agent.tool_call "),
        (["--expect-type", "file.write"], "FAIL  expect type file.write: no file.write event (types seen: "),
    ],
)  # fmt: skip
def test_each_check_fails_with_its_reason(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code, lines, _ = validate(capsys, str(SESSION), *args)
    assert code == 1
    fail = line(lines, "FAIL")
    assert fail.startswith(expected), fail
    assert lines[-1].startswith("validate: 1 passed, 1 failed")


def test_failures_name_the_event(capsys: pytest.CaptureFixture[str]) -> None:
    _, lines, _ = validate(capsys, str(SESSION), "--max-errors", "0", "--only-providers", "openai")
    error = next(e for e in events() if e["event_type"] == "ai.response" and not e["data"]["success"])
    assert f"{error['event_id']} by python[{error['process']['pid']}]" in line(lines, "FAIL  max errors")
    assert "(openai error-429) status 429" in line(lines, "FAIL  max errors")
    curl = next(e for e in events() if e["event_type"] == "ai.request" and e["process"]["name"] == "curl")
    assert f"ai.request {curl['event_id']} by curl[" in line(lines, "FAIL  only providers")


def test_max_latency(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    evs = events()
    slowest = max(e["data"]["latency_ms"] for e in evs if e["event_type"] == "ai.response")
    code, lines, _ = validate(capsys, str(SESSION), "--max-latency-ms", str(slowest))
    assert code == 0 and line(lines, "PASS  max latency").endswith(f"slowest of 6 responses: {slowest:g} ms")
    resp = next(e for e in evs if e["event_type"] == "ai.response" and e["process"]["name"] == "curl")
    resp["data"]["latency_ms"] = 12_345
    code, lines, _ = validate(capsys, write(tmp_path, evs), "--max-latency-ms", "5000")
    assert code == 1
    assert line(lines, "FAIL  max latency 5000 ms").endswith(
        f"1 response slower; slowest: 12345 ms, ai.response {resp['event_id']} by curl[{resp['process']['pid']}] "
        f"at {resp['timestamp']} (anthropic claude-3-5-haiku-20241022)"
    )


def test_secret_in_a_response_fails_without_printing_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = make_openai_key()
    evs = events()
    resp = next(e for e in evs if e["event_type"] == "ai.response" and e["data"].get("choices"))
    resp["data"]["choices"][0]["message"]["content"] = f"use this key: {key} thanks"
    code, lines, err = validate(capsys, write(tmp_path, evs), "--no-secrets", "--no-pii")
    assert code == 1
    fail = line(lines, "FAIL  no secrets")
    assert fail.startswith(
        "FAIL  no secrets: 1 credential found; first: api_key in data.choices[0].message.content of ai.response "
    )
    assert key not in "\n".join(lines) + err
    assert key[8:20] not in "\n".join(lines)
    assert line(lines, "PASS  no personal data")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("mail me at jane.doe@example.com", "email"),
        ("card 4111 1111 1111 1111", "credit_card"),
        ("ssn 123-45-6789", "ssn"),
    ],
)
def test_personal_data_fails_no_pii(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, kind: str
) -> None:
    evs = events()
    req = next(e for e in evs if e["event_type"] == "ai.request")
    req["data"]["messages"][0]["content"] = text
    code, lines, _ = validate(capsys, write(tmp_path, evs), "--no-pii", "--no-secrets")
    assert code == 1
    assert line(lines, "FAIL  no personal data").startswith(
        f"FAIL  no personal data: 1 item found; first: {kind} in data.messages[0].content of ai.request "
    )
    assert line(lines, "PASS  no secrets")


def test_redaction_markers_are_not_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """The recorded curl command line carries `x-api-key: [REDACTED:api_key]`."""
    assert "x-api-key: [REDACTED:api_key]" in SESSION.read_text()
    code, lines, _ = validate(capsys, str(SESSION), "--no-secrets")
    assert code == 0, lines


def test_minimal_redaction_is_explained(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    evs = events()
    for e in evs:
        for choice in e["data"].get("choices") or [] if e["event_type"] == "ai.response" else []:
            msg = choice.get("message") or {}
            if "content" in msg:
                msg["content_hash"] = "sha256:00"
                del msg["content"]
    code, lines, _ = validate(capsys, write(tmp_path, evs), "--response-contains", "Hello")
    assert code == 1
    assert line(lines, "FAIL  response contains").endswith(
        "responses carry no content (recorded with redaction `minimal`)"
    )


def test_forbid_files_on_disk_and_in_events(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    persisted = tmp_path / "var-log-oisp"
    code, lines, _ = validate(capsys, str(SESSION), "--forbid-files", f"{persisted}/*")
    assert code == 0 and line(lines, "PASS  forbid files").endswith("no such file, no file event")
    persisted.mkdir()
    (persisted / "events.jsonl").write_text("{}\n")
    code, lines, _ = validate(capsys, str(SESSION), "--forbid-files", f"{persisted}/*")
    assert code == 1 and line(lines, "FAIL  forbid files").endswith(f"{persisted}/events.jsonl exists")
    evs = events()
    opened = copy.deepcopy(evs[0])
    opened.update(event_type="file.open", data={"path": "/var/log/oisp/events.jsonl", "flags": "w"})
    code, lines, _ = validate(capsys, write(tmp_path, [*evs, opened]), "--forbid-files", "/var/log/oisp/*")
    assert code == 1
    assert line(lines, "FAIL  forbid files").startswith(
        "FAIL  forbid files /var/log/oisp/*: 1 file event; first: /var/log/oisp/events.jsonl, file.open "
    )


def test_policy_file_and_flags_combine(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'expect_types = ["ai.request", "ai.response"]\nexpect_providers = "openai"\n'
        "max_tokens = 10\nno_secrets = true\nforbid_types = ['file.*']\n"
    )
    code, lines, _ = validate(capsys, str(SESSION), "--policy", str(policy))
    assert code == 1
    assert [x.split(":")[0] for x in lines[:-1]] == [
        f"PASS  events file {SESSION}", "PASS  expect type ai.request", "PASS  expect type ai.response",
        "PASS  expect provider openai", "FAIL  max tokens 10", "PASS  no secrets", "PASS  forbid type file.*",
    ]  # fmt: skip
    # flags add to the lists and replace the numbers
    code, lines, _ = validate(
        capsys, str(SESSION), "--policy", str(policy), "--max-tokens", "100", "--expect-provider", "anthropic"
    )
    assert code == 0, lines
    assert "PASS  expect provider anthropic: 1 AI call" in lines
    table = tmp_path / "table.toml"
    table.write_text("[validate]\nmax_requests = 1\n")
    code, lines, _ = validate(capsys, str(SESSION), "--policy", str(table))
    assert code == 1 and line(lines, "FAIL").startswith("FAIL  max requests 1: 6 AI calls > 1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_tokenz = 3\n", "policy error: {p}: max_tokenz: unknown key"),
        ("max_tokens = 'lots'\n", "policy error: {p}: max_tokens: input should be a valid integer"),
        (
            "max_cost = -1\n",
            "policy error: {p}: max_cost: input should be greater than or equal to 0 (got -1)",
        ),
        ("max_tokens = \n", "policy error: {p}: not valid TOML: "),
        ("expect_types = [1]\n", "policy error: {p}: expect_types.0: input should be a valid string (got 1)"),
    ],
)
def test_bad_policy_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text(text)
    code, lines, err = validate(capsys, str(SESSION), "--policy", str(policy))
    assert code == 2 and lines == []
    assert err.startswith("oisp-sensor: " + message.format(p=policy)), err
    assert len(err.strip().splitlines()) == 1
    code, _, err = validate(capsys, str(SESSION), "--policy", str(tmp_path / "none.toml"))
    assert code == 2 and "policy file" in err and "not found" in err


def test_malformed_lines_fail_the_file_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = SESSION.read_text()
    path = tmp_path / "cut.jsonl"
    path.write_text(text + '{"event_type":"ai.request","data":{"mod\n' + "[1, 2]\n")
    code, lines, err = validate(capsys, str(path), "--no-secrets")
    assert code == 1 and err == ""
    assert line(lines, "FAIL  events file") == (
        f"FAIL  events file {path}: 68 events and 2 malformed lines (first: line 69, not JSON (truncated line?))"
    )
    assert "PASS  no secrets: no credential in 68 events" in lines


def test_secret_in_a_malformed_line_is_found(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key = make_openai_key()
    path = tmp_path / "cut.jsonl"
    path.write_text(SESSION.read_text() + f'{{"event_type":"ai.request","data":{{"content":"{key}\n')
    code, lines, _ = validate(capsys, str(path), "--no-secrets")
    assert code == 1
    assert line(lines, "FAIL  no secrets").endswith("first: api_key in malformed line #1")


def test_empty_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, lines, err = validate(capsys, str(empty))
    assert code == 1 and err == ""
    assert lines[0] == f"FAIL  events file {empty}: empty: no events were captured"
    code, lines, _ = validate(capsys, str(empty), "--allow-empty", "--forbid-type", "ai.*")
    assert code == 0, lines
    assert lines[0] == f"PASS  events file {empty}: empty: no events were captured (allowed)"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json at all\n", "is not an oisp-sensor events file (JSON lines): line 1 is not JSON"),
        (b'[{"event_type": "ai.request"}]\n', "line 1 is a JSON list, not an event object"),
        (b'{"hello": 1}\n', "line 1 is a JSON object without event_type"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "line 1 is not JSON"),
    ],
)
def test_not_an_events_file_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    code, lines, err = validate(capsys, str(path))
    assert code == 2 and lines == []
    assert message in err and len(err.strip().splitlines()) == 1


def test_unreadable_inputs_are_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = validate(capsys, str(tmp_path / "missing.jsonl"))
    assert code == 2 and err.strip() == f"oisp-sensor: cannot read {tmp_path}/missing.jsonl: no such file"
    code, _, err = validate(capsys, str(tmp_path))
    assert code == 2 and "is a directory" in err
    code, _, err = validate(capsys, str(SESSION), "--junit", "/proc/oisp/junit.xml")
    assert code == 2 and "cannot write JUnit XML to /proc/oisp/junit.xml" in err


def test_junit_xml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    junit = tmp_path / "reports" / "oisp.xml"
    code, _lines, _ = validate(
        capsys,
        str(SESSION),
        "--junit",
        str(junit),
        "--max-tokens",
        "10",
        "--no-secrets",
        "--expect-provider",
        "openai",
    )
    assert code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "4" and root.get("failures") == "1"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "oisp-sensor validate" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        f"events file {SESSION}",
        "expect provider openai",
        "max tokens 10",
        "no secrets",
    ]
    assert all(c.get("classname") == "oisp-sensor.validate" for c in cases)
    failure = cases[2].find("failure")
    assert failure is not None and failure.get("message", "").startswith("63 tokens in 5 responses")
    assert cases[1].find("failure") is None and cases[1].findtext("system-out") == "5 AI calls"


def test_quiet_prints_only_failures(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = validate(capsys, str(SESSION), "-q", "--max-tokens", "1", "--no-pii")
    assert code == 1 and len(lines) == 2 and lines[0].startswith("FAIL  max tokens 1")


def test_cli_never_tracebacks(tmp_path: Path) -> None:
    """Through the real entry point: exit codes and one-line errors."""
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe garbage\n")
    cases = [(["validate", str(bad)], 2), (["validate", str(SESSION), "--max-tokens", "1"], 1)]
    for args, expected in cases:
        res = subprocess.run(
            [sys.executable, "-m", "oisp_sensor", *args], capture_output=True, text=True, timeout=60
        )
        assert res.returncode == expected, (args, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr
