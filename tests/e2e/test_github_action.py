"""The GitHub Action (action.yml) executed locally: its composite steps parsed and run
with bash as the runner would, `${{ inputs.* }}` from the inputs (or their defaults),
`${{ steps.run.outputs.* }}` from the step's GITHUB_OUTPUT, against the real sensor and a
real SDK client (the `npm test` stand-in of tests/support/ci_runner.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.support import ci_runner as ci
from tests.support.ci_env import CiEnv, assert_captured_the_tests, assert_junit, assert_validated, make_ci_env
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import REPO

pytestmark = pytest.mark.kernel

ACTION = REPO / "action.yml"


@pytest.fixture(scope="module")
def ci_env(fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory) -> CiEnv:
    return make_ci_env(fake_provider, tmp_path_factory.mktemp("action"))


@pytest.fixture
def fresh(ci_env: CiEnv) -> Iterator[CiEnv]:
    ci_env.results.unlink(missing_ok=True)
    yield ci_env


def run_action(env: CiEnv, workspace: Path, **inputs: str) -> ci.JobRun:
    spec = yaml.safe_load(ACTION.read_text())
    declared = spec["inputs"]
    unknown = set(inputs) - set(declared)
    assert not unknown, unknown
    context = {f"inputs.{name}": str(inp.get("default", "")) for name, inp in declared.items()}
    context.update({f"inputs.{k}": v for k, v in inputs.items()})
    context["github.action_path"] = str(REPO)
    return ci.run_steps(ci.action_steps(ACTION, context), workspace, env.env, expression_context=context)


def test_action_metadata() -> None:
    spec = yaml.safe_load(ACTION.read_text())
    assert spec["runs"]["using"] == "composite"
    assert spec["inputs"]["command"]["required"] is True
    assert set(spec["outputs"]) == {"events", "exit-code"}
    assert all(step["shell"] == "bash" for step in spec["runs"]["steps"])
    # nothing is uploaded by default
    assert not any("upload" in json.dumps(step) for step in spec["runs"]["steps"])


def test_action_runs_validates_and_summarises(fresh: CiEnv, tmp_path: Path) -> None:
    ws = fresh.workspace(tmp_path)
    run = run_action(
        fresh, ws,
        command="npm test",
        policy="examples/ci/oisp-policy.toml",
        **{"validate-args": "--max-requests 2 --response-contains Hello!", "junit": "oisp-junit.xml"},
    )  # fmt: skip
    assert run.ok, run.log()
    assert [r.name for r in run.results] == [
        "Install the sensor",
        "run",
        "Validate the AI activity",
        "Report",
    ]
    events = Path(run.outputs["run"]["events"])
    assert events == ws / ".ci" / "oisp-events.jsonl"  # $RUNNER_TEMP
    assert run.outputs["run"]["exit-code"] == "0"
    assert_captured_the_tests(fresh, events)
    validate = run.step("Validate the AI activity").output
    assert_validated(validate)
    assert "PASS  max requests 2: 2 AI calls" in validate and "PASS  response contains 'Hello!'" in validate
    assert_junit(ws / "oisp-junit.xml")
    assert run.summary.startswith("## AI activity (oisp-sensor)") and "| gpt-4o-mini | 2 | 0 |" in run.summary
    # a second run with this one as the baseline: within limits, and said so in the summary
    baseline = tmp_path / "baseline.json"
    subprocess.run(["oisp-sensor", "report", str(events), "--format", "json", "-o", str(baseline)],
                   env=fresh.env, check=True)  # fmt: skip
    fresh.results.unlink()
    again = run_action(fresh, ws, command="npm test", baseline=str(baseline), install="false")
    assert again.ok, again.log()
    assert "no policy and no validate-args: not validating" in again.step("Validate the AI activity").output
    assert "baseline: within limits" in again.summary


def test_action_failing_command_still_validates_and_reports(fresh: CiEnv, tmp_path: Path) -> None:
    """The command's exit code is the step's; validation and the report still run (and a
    failed check fails the job)."""
    ws = fresh.workspace(tmp_path)
    run = run_action(
        fresh, ws,
        command="npm test && exit 3",
        install="false",
        **{"validate-args": "--max-tokens 1 --expect-provider openai"},
    )  # fmt: skip
    assert not run.ok
    codes = {r.name: r.code for r in run.results}
    assert codes == {"Install the sensor": 0, "run": 3, "Validate the AI activity": 1, "Report": 0}, run.log()
    assert run.outputs["run"]["exit-code"] == "3"
    validate = run.step("Validate the AI activity").output
    assert "FAIL  max tokens 1:" in validate and "PASS  expect provider openai: 2 AI calls" in validate
    assert "| openai | 2 | 0 |" in run.summary
