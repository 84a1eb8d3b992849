"""End to end: the real sensor, as root, puts the `app` context (app identification,
inheritance, profiles) and the `web` context (calls made from a browser page) on the
events of real clients calling the HTTPS fake provider inside a network namespace.

The clients are installed the way the real apps are, and only their install layout
makes them that app:
* `aider`: a pip-style entry-point script in a `bin/` directory, run by its shebang
  (python's argv[1] is the script, as for a real `pip install aider-chat`); it runs the
  OpenAI SDK client, and before that a tool command (curl) as a child process;
* Claude Code (npm): `node .../node_modules/@anthropic-ai/claude-code/cli.js`, calling
  Anthropic (inside its profile) and then OpenAI (outside it);
* Claude Code (native installer): the program started as `.../claude/versions/<v>`;
* browser-like clients: curl sending a page's Origin, Referer and Sec-Fetch-Site.
One sensor records every scenario; it is stopped before any assertion.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import REPO, RunningSensor, ai_events

pytestmark = pytest.mark.kernel

PY_CLIENT = REPO / "tests/clients/py_openai_chat.py"
NODE_ANTHROPIC = REPO / "tests/clients/node/anthropic_messages.mjs"
NODE_FETCH = REPO / "tests/clients/node/fetch_chat.mjs"

AIDER_SCRIPT = """#!{python}
# Stands in for the `aider` entry point pip installs: same layout, runs a test client.
import json, os, runpy, subprocess, sys
tool = os.environ.get("AIDER_TOOL_CMD")
if tool:  # an agent runs tools as child processes
    subprocess.run(json.loads(tool), check=True, stdout=subprocess.DEVNULL)
runpy.run_path(os.environ["OISP_TEST_CLIENT"], run_name="__main__")
"""
CLAUDE_CLI = """// Stands in for Claude Code's npm entry point: same path, runs a test client.
const {{ pathToFileURL }} = require('node:url');
import(pathToFileURL(process.env.OISP_TEST_CLIENT).href).catch((err) => {{
  console.error(err);
  process.exit(1);
}});
"""

AIDER = {"id": "aider", "name": "Aider", "tier": "identified", "category": "agent"}
CLAUDE = {"id": "claude-code", "name": "Claude Code", "tier": "profiled", "category": "agent"}


@dataclass
class Recording:
    sensor: RunningSensor
    events: list[dict[str, Any]]
    results: dict[str, Any] = field(default_factory=dict)

    def call(self, pid: int) -> list[dict[str, Any]]:
        """The ai.request and ai.response of the one call process `pid` made."""
        events = ai_events(self.events, pid)
        assert [e["event_type"] for e in events] == ["ai.request", "ai.response"], events
        assert events[1]["data"]["related_event_id"] == events[0]["event_id"]
        return events

    def with_message(self, text: str) -> list[dict[str, Any]]:
        requests = [
            e
            for e in self.events
            if e["event_type"] == "ai.request"
            and any(m.get("content") == text for m in e["data"].get("messages", []))
        ]
        assert len(requests) == 1, f"expected one request with message {text!r}, got {len(requests)}"
        return self.call(requests[0]["process"]["pid"])


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _json_line(res: Any) -> dict[str, Any]:
    assert res.returncode == 0, res.stderr + res.stdout
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def _curl(fake: FakeProviderHandle, message: str, *headers: str) -> Any:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": message}]}
    cmd = ["curl", "-sS", "--fail-with-body", "https://api.openai.com/v1/chat/completions",
           "-H", f"Authorization: Bearer {fake.openai_api_key}", "-H", "Content-Type: application/json",
           "-d", json.dumps(body)]  # fmt: skip
    for header in headers:
        cmd += ["-H", header]
    return fake.run(cmd, timeout=60)


@pytest.fixture(scope="module")
def recording(fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    root = tmp_path_factory.mktemp("apps")
    python = os.path.abspath(REPO / ".venv/bin/python")
    aider = _executable(root / "home/dev/.local/bin/aider", AIDER_SCRIPT.format(python=python))
    claude_npm = _executable(
        root / "usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", CLAUDE_CLI.format()
    )
    claude_native = root / "home/dev/.local/share/claude/versions/2.0.14"
    claude_native.parent.mkdir(parents=True)
    claude_native.symlink_to("/usr/bin/node")

    out = tmp_path_factory.mktemp("capture") / "events.jsonl"
    sensor = RunningSensor(out).start()
    results: dict[str, Any] = {}
    try:
        tool = ["curl", "-sS", "--fail-with-body", "https://api.openai.com/v1/chat/completions",
                "-H", f"Authorization: Bearer {fake_provider.openai_api_key}",
                "-H", "Content-Type: application/json",
                "-d", json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "aider tool"}]})]  # fmt: skip
        results["aider"] = _json_line(
            fake_provider.run(
                [str(aider), "--model", "gpt-4o-mini", "--message", "hello from aider"],
                env={"OISP_TEST_CLIENT": str(PY_CLIENT), "AIDER_TOOL_CMD": json.dumps(tool)},
                timeout=120,
            )
        )
        results["claude_anthropic"] = _json_line(
            fake_provider.run(
                ["node", str(claude_npm), "--message", "hello from claude code"],
                env={"OISP_TEST_CLIENT": str(NODE_ANTHROPIC)},
            )
        )
        results["claude_openai"] = _json_line(
            fake_provider.run(
                ["node", str(claude_npm), "--message", "claude code calling openai"],
                env={"OISP_TEST_CLIENT": str(NODE_FETCH)},
            )
        )
        results["claude_native"] = _json_line(
            fake_provider.run(
                [str(claude_native), str(NODE_ANTHROPIC), "--message", "hello from native claude"]
            )
        )
        for name, headers in {
            "chatgpt": ("Origin: https://chatgpt.com", "Referer: https://chatgpt.com/c/abc?x=1",
                        "Sec-Fetch-Site: cross-site"),
            "embedded": ("Origin: https://helpdesk.example.com",
                         "Referer: https://helpdesk.example.com/tickets/42?token=abc"),
        }.items():  # fmt: skip
            res = _curl(fake_provider, f"browser {name}", *headers)
            assert res.returncode == 0, res.stderr
    finally:
        code = sensor.stop(signal.SIGTERM)
    assert code == 0, sensor.stderr
    return Recording(sensor, sensor.events(), results)


def test_every_event_has_an_app(recording: Recording) -> None:
    assert recording.events
    for event in recording.events:
        app = event["app"]
        assert {"id", "name", "tier", "category"} <= set(app)
        assert app["tier"] in ("unknown", "identified", "profiled")
        if app["tier"] == "unknown":
            assert app == {"id": "unknown", "name": "Unknown", "tier": "unknown", "category": "unknown"}


def test_pip_installed_agent_script_is_identified(recording: Recording) -> None:
    pid = recording.results["aider"]["pid"]
    req, resp = recording.call(pid)
    assert req["process"]["cmdline"][1].endswith("/home/dev/.local/bin/aider")
    for event in (req, resp):
        assert event["app"] == {**AIDER, "via": "script"}
    assert req["data"]["messages"][0]["content"] == "hello from aider"
    # from its exec on (before: the pid was the test runner's fork, then `ip netns exec`),
    # every event of the process carries it
    events = [e for e in recording.events if e["process"]["pid"] == pid]
    start = next(
        i
        for i, e in enumerate(events)
        if e["event_type"] == "process.exec" and e["process"]["name"] == "aider"
    )
    assert [e["app"]["id"] for e in events[start:]] == ["aider"] * len(events[start:])
    assert {e["event_type"] for e in events[start:]} >= {"process.exec", "ai.request", "process.exit"}


def test_a_tool_run_by_the_agent_inherits_it(recording: Recording) -> None:
    aider_pid = recording.results["aider"]["pid"]
    req, resp = recording.with_message("aider tool")
    assert req["process"]["name"] == "curl" and req["process"]["ppid"] == aider_pid
    for event in (req, resp):
        assert event["app"] == {**AIDER, "via": "parent", "ancestor_pid": aider_pid}


def test_npm_installed_agent_inside_its_profile(recording: Recording) -> None:
    req, resp = recording.call(recording.results["claude_anthropic"]["pid"])
    assert req["data"]["provider"]["id"] == "anthropic"
    for event in (req, resp):
        assert event["app"] == {**CLAUDE, "via": "script"}


def test_call_outside_the_profile_is_flagged(recording: Recording) -> None:
    req, resp = recording.call(recording.results["claude_openai"]["pid"])
    assert req["data"]["provider"]["id"] == "openai"
    for event in (req, resp):
        assert event["app"] == {
            **CLAUDE,
            "via": "script",
            "profile_violation": True,
            "unexpected": {"provider": "openai", "host": "api.openai.com"},
        }


def test_native_install_is_identified_by_its_executable_path(recording: Recording) -> None:
    req, resp = recording.call(recording.results["claude_native"]["pid"])
    assert req["process"]["cmdline"][0].endswith("/claude/versions/2.0.14")
    for event in (req, resp):
        assert event["app"] == {**CLAUDE, "via": "exe"}


def test_browser_like_client_gets_the_web_context(recording: Recording) -> None:
    req, resp = recording.with_message("browser chatgpt")
    assert req["process"]["name"] == "curl"
    expected = {
        "origin": "https://chatgpt.com",
        "referer": "https://chatgpt.com/c/abc",
        "web_app_id": "chatgpt-web",
        "web_app_name": "ChatGPT",
        "web_app_type": "direct",
        "fetch_site": "cross-site",
    }
    assert req["web"] == expected and resp["web"] == expected
    assert list(req).index("web") == list(req).index("app") + 1
    assert req["data"]["http"]["origin"] == "https://chatgpt.com"
    assert req["data"]["http"]["referer"] == "https://chatgpt.com/c/abc"


def test_unknown_site_is_embedded_and_page_queries_are_dropped(recording: Recording) -> None:
    req, resp = recording.with_message("browser embedded")
    for event in (req, resp):
        assert event["web"] == {
            "origin": "https://helpdesk.example.com",
            "referer": "https://helpdesk.example.com/tickets/42",
            "web_app_id": "unknown",
            "web_app_name": "Unknown",
            "web_app_type": "embedded",
        }
    # (curl's own command line, in process.cmdline, still shows what the user typed)
    for event in recording.events:
        for part in (event.get("web", {}), event["data"].get("http", {})):
            assert "token=abc" not in json.dumps(part) and "x=1" not in json.dumps(part)


def test_calls_not_from_a_page_have_no_web_context(recording: Recording) -> None:
    for key in ("aider", "claude_anthropic", "claude_openai", "claude_native"):
        for event in recording.call(recording.results[key]["pid"]):
            assert "web" not in event
    assert "Traceback" not in recording.sensor.stderr
