"""Shared by the CI end-to-end tests: the job environment (stand-ins on PATH, the
installer's settings, the namespace filter) and the checks of a job's outcome."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import ci_runner as ci
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import REPO

EXAMPLES = REPO / "examples" / "ci"
SEEDS = REPO / "tests" / "fixtures" / "ci" / "seed"
MESSAGE = "Say hello from CI"
ANSWER = f"Hello! You said: {MESSAGE}"
# One `npm test`: one openai SDK process making two chat completions on one connection.
CLIENT_RUNS = [["--model", "gpt-4o-mini", "--message", MESSAGE, "--n-requests", "2"]]


@dataclass
class CiEnv:
    fake: FakeProviderHandle
    shims: Path
    bin_dir: Path
    results: Path
    env: dict[str, str]

    def workspace(self, tmp_path: Path) -> Path:
        """The user's repository: the policy file where the examples expect it."""
        ws = tmp_path / "repo"
        (ws / "examples" / "ci").mkdir(parents=True)
        shutil.copy(EXAMPLES / "oisp-policy.toml", ws / "examples" / "ci" / "oisp-policy.toml")
        return ws

    def client_results(self) -> list[dict[str, Any]]:
        lines = self.results.read_text().splitlines() if self.results.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]

    def secrets(self) -> dict[str, str]:
        return {"secrets.OPENAI_API_KEY": self.fake.openai_api_key}


def events_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_captured_the_tests(env: CiEnv, events_file: Path) -> list[dict[str, Any]]:
    """Both calls of `npm test` are in the file, complete, as requests and responses."""
    (client,) = env.client_results()
    assert client["ok"] and len(client["results"]) == 2
    raw = events_file.read_bytes()
    assert raw.endswith(b"\n")
    events = events_of(events_file)
    mine = [e for e in events if e["process"]["pid"] == client["pid"]]
    assert [e["event_type"] for e in mine if e["event_type"].startswith("ai.")] == [
        "ai.request",
        "ai.response",
    ] * 2
    assert all(
        e["data"]["choices"][0]["message"]["content"] == ANSWER
        for e in mine
        if e["event_type"] == "ai.response"
    )
    assert b'"event_type":"ai.request"' in raw  # the seed's grep
    return events


def assert_validated(output: str) -> None:
    summary = [line for line in output.splitlines() if line.startswith("validate:")]
    assert summary and summary[-1].endswith(": OK"), output
    assert "FAIL" not in output
    # every check of examples/ci/oisp-policy.toml ran
    for name in ("expect provider openai", "only providers openai", "max tokens 10000", "no secrets", "no personal data",
                 "forbid files /var/log/oisp/*", "expect model gpt-4o-mini", "max errors 0"):  # fmt: skip
        assert f"PASS  {name}" in output, (name, output)


def assert_junit(path: Path, failures: int = 0) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("failures") == str(failures)
    assert int(root.get("tests", "0")) >= 14


def make_ci_env(fake_provider: FakeProviderHandle, root: Path) -> CiEnv:
    results = root / "clients.jsonl"
    client_env = {k: v for k, v in fake_provider.env().items() if v is not None}
    shims = ci.write_shims(root / "shims", fake_provider.ns.name, client_env, CLIENT_RUNS, results)
    bin_dir = root / "bin"
    env = ci.base_env(
        shims,
        bin_dir,
        {
            # scripts/install.sh: this checkout, into the venv the tests run from (its fast path)
            "OISP_SENSOR_SOURCE": str(REPO),
            "OISP_VENV": str(REPO / ".venv"),
            "OISP_BIN_DIR": str(bin_dir),
            "OISP_CAPTURE__NETNS": json.dumps([f"/run/netns/{fake_provider.ns.name}"]),
            "DOCKER_SHIM_STATE": str(root / "docker"),
            "OPENAI_API_KEY": fake_provider.openai_api_key,
        },
    )
    return CiEnv(fake_provider, shims, bin_dir, results, env)
