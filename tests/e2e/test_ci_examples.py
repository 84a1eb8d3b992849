"""The CI examples (examples/ci/) and the CI/CD seed's own recipes, executed as written.

Each test parses a CI configuration, runs its shell steps in order with bash (see
tests/support/ci_runner.py for the conventions and the stand-ins: `npm test` is a real
openai SDK client calling the fake provider, `curl ...install.sh` serves
scripts/install.sh, which then really runs, idempotently, against this checkout's venv),
and checks the outcome: exit codes, the events file, JUnit XML, the job summary.

The sensor records system-wide; the tests keep it to the fake provider's network
namespace with `OISP_CAPTURE__NETNS` in the job's environment (a config override, so the
documented commands stay untouched) because other test runs may share this machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import ci_runner as ci
from tests.support.ci_env import (
    EXAMPLES,
    SEEDS,
    CiEnv,
    assert_captured_the_tests,
    assert_junit,
    assert_validated,
    make_ci_env,
)
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import REPO

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def ci_env(fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory) -> CiEnv:
    return make_ci_env(fake_provider, tmp_path_factory.mktemp("ci"))


@pytest.fixture
def fresh(ci_env: CiEnv) -> Iterator[CiEnv]:
    """No client results and no /tmp/events.jsonl (the path the recipes use) before a test."""
    ci_env.results.unlink(missing_ok=True)
    Path("/tmp/events.jsonl").unlink(missing_ok=True)
    yield ci_env
    Path("/tmp/events.jsonl").unlink(missing_ok=True)


# ---- the examples --------------------------------------------------------------------------


def test_github_actions_example(fresh: CiEnv, tmp_path: Path) -> None:
    ws = fresh.workspace(tmp_path)
    steps = ci.github_steps(EXAMPLES / "github-actions.yml", context=fresh.secrets())
    assert [s.name for s in steps] == [
        "Install OISP Sensor", "Install dependencies", "Run tests under the sensor", "Validate AI activity", "Report",
    ]  # fmt: skip
    run = ci.run_steps(steps, ws, fresh.env)
    assert run.ok, run.log()
    assert "oisp-sensor install: ready" in run.step("Install OISP Sensor").output
    assert "verdict: READY" in run.step("Install OISP Sensor").output
    assert_captured_the_tests(fresh, Path("/tmp/events.jsonl"))
    assert_validated(run.step("Validate AI activity").output)
    assert_junit(ws / "oisp-junit.xml")
    assert run.summary.startswith("## AI activity (oisp-sensor)")
    assert "| openai | 2 | 0 |" in run.summary
    report = json.loads((ws / "oisp-report.json").read_text())
    assert report["by_model"]["gpt-4o-mini"]["requests"] == 2


def test_github_benchmark_example(fresh: CiEnv, tmp_path: Path) -> None:
    """record & ... kill + wait: complete without sleep; the baseline comparison passes for
    the same usage and fails (exit 1, in the summary) when usage grew."""
    ws = fresh.workspace(tmp_path)
    baseline = ws / "oisp-baseline.json"
    steps = ci.github_steps(EXAMPLES / "github-benchmark.yml", context=fresh.secrets())
    # the baseline: one call of the two (a run in which the tests made half the calls)
    base_events = tmp_path / "base.jsonl"
    base_events.write_text("")
    run = ci.run_steps(steps[:2], ws, fresh.env)
    assert run.ok, run.log()
    events = assert_captured_the_tests(fresh, Path("/tmp/events.jsonl"))
    first_call = [e for e in events if e["event_type"] in ("ai.request", "ai.response")][:2]
    base_events.write_text("".join(json.dumps(e) + "\n" for e in first_call))
    subprocess.run(
        [
            str(fresh.bin_dir / "oisp-sensor"),
            "report",
            str(base_events),
            "--format",
            "json",
            "-o",
            str(baseline),
        ],
        check=True,
    )
    compare = ci.run_steps(steps[2:], ws, fresh.env)
    assert not compare.ok
    assert compare.results[0].code == 1
    assert "| AI calls | 1 | 2 | +100.0% | +10% | :x: |" in compare.summary
    assert "baseline: AI calls, tokens, cost (USD) grew more than 10%" in compare.results[0].output
    # the same usage as the baseline passes
    subprocess.run(
        [
            str(fresh.bin_dir / "oisp-sensor"),
            "report",
            "/tmp/events.jsonl",
            "--format",
            "json",
            "-o",
            str(baseline),
        ],
        check=True,
    )
    again = ci.run_steps(steps[2:], ws, fresh.env)
    assert again.ok, again.log()
    assert "| tokens |" in again.summary and ":x:" not in again.summary


def test_gitlab_example(fresh: CiEnv, tmp_path: Path) -> None:
    ws = fresh.workspace(tmp_path)
    job = ci.gitlab_script(EXAMPLES / "gitlab-ci.yml", "ai_activity")
    run = ci.run_steps([job], ws, fresh.env, shell=("bash", "-e"))
    assert run.ok, run.log()
    assert_captured_the_tests(fresh, ws / "events.jsonl")
    assert_validated(run.results[0].output)
    assert "oisp-sensor report: events.jsonl" in run.results[0].output
    assert_junit(ws / "oisp-junit.xml")  # artifacts:reports:junit


def test_jenkins_example(fresh: CiEnv, tmp_path: Path) -> None:
    ws = fresh.workspace(tmp_path)
    steps, post = ci.jenkins_steps(EXAMPLES / "Jenkinsfile")
    assert [s.name for s in steps] == ["Setup", "Setup", "Test with OISP", "Validate", "Validate"]
    run = ci.run_steps(steps, ws, fresh.env, shell=("sh", "-xe"))  # how Jenkins runs `sh`
    assert run.ok, run.log()
    assert_captured_the_tests(fresh, ws / "events.jsonl")
    assert_validated(run.results[3].output)
    # post { always { junit ...; archiveArtifacts ... } } find their files
    for directive in post:
        m = re.search(r"(?:testResults|artifacts):\s*'([^']+)'", directive)
        assert m and (ws / m.group(1)).is_file(), directive
    assert_junit(ws / "oisp-junit.xml")


def test_circleci_example(fresh: CiEnv, tmp_path: Path) -> None:
    ws = fresh.workspace(tmp_path)
    steps = ci.circleci_steps(EXAMPLES / "circleci" / "config.yml", "test")
    assert [s.background for s in steps] == [False, False, True, False, False, False, False]
    run = ci.run_steps(steps, ws, fresh.env, shell=("/bin/bash", "-eo", "pipefail"))
    assert run.ok, run.log()
    assert_captured_the_tests(fresh, Path("/tmp/events.jsonl"))
    assert_validated(run.step("Validate events").output)
    assert_junit(ws / "test-results" / "oisp" / "junit.xml")  # store_test_results


def test_docker_example(fresh: CiEnv, tmp_path: Path) -> None:
    ws = fresh.workspace(tmp_path)
    # the second checkout: the sensor's repository (its Dockerfile)
    (ws / ".oisp-sensor" / "examples" / "ci").mkdir(parents=True)
    shutil.copy(EXAMPLES / "Dockerfile", ws / ".oisp-sensor" / "examples" / "ci" / "Dockerfile")
    subprocess.run(
        ["sh", str(REPO / "scripts" / "install.sh")], env=fresh.env, check=True, capture_output=True
    )
    steps = ci.github_steps(EXAMPLES / "docker-github-actions.yml", context=fresh.secrets())
    run = ci.run_steps(steps, ws, fresh.env)
    assert run.ok, run.log()
    assert "capture attached" in run.step("Stop the sensor").output
    assert_captured_the_tests(fresh, ws / "events.jsonl")
    assert_validated(run.step("Validate").output)


# ---- the seed's recipes, verbatim ------------------------------------------------------------


def test_seed_github_quick_start_as_written(fresh: CiEnv, tmp_path: Path) -> None:
    """The seed's workflow: record & in one step, PID through GITHUB_ENV, `sudo kill` in a
    later step, then grep. Its `sleep 2` is the seed's guess at attach time; on this loaded
    test machine attaching can take longer, so `npm test` waits for the attach line."""
    ws = fresh.workspace(tmp_path)
    steps = ci.github_steps(SEEDS / "github-actions.yml", context=fresh.secrets())
    env = {**fresh.env, "OISP_TEST_WAIT_ATTACHED": str(ws / ".ci")}
    run = ci.run_steps(steps, ws, env)
    assert run.ok, run.log()
    pid = int(run.env["SENSOR_PID"])
    assert ci.wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 60)
    assert_captured_the_tests(fresh, Path("/tmp/events.jsonl"))
    assert "AI activity captured successfully" in run.step("Validate events").output


def test_seed_gitlab_job_as_written(fresh: CiEnv, tmp_path: Path) -> None:
    ws = fresh.workspace(tmp_path)
    job = ci.gitlab_script(SEEDS / "gitlab-ci.yml", "test_ai_integration")
    env = {**fresh.env, "OISP_TEST_WAIT_ATTACHED": str(ws / ".ci")}
    run = ci.run_steps([job], ws, env, shell=("bash", "-e"))
    assert run.ok, run.log()
    assert "AI activity validated" in run.results[0].output
    assert_captured_the_tests(fresh, Path("/tmp/events.jsonl"))


# ---- stopping: the file is complete once the sensor has exited ---------------------------------


def test_kill_then_read_with_and_without_wait(fresh: CiEnv, tmp_path: Path) -> None:
    """`kill $PID; wait $PID` leaves a complete file. Read right after `kill` without
    `wait`, the file holds whole lines only, and the calls that had finished before the
    signal are already in it (they are written within ~0.1 s, not at exit)."""
    script = tmp_path / "recipe.sh"
    script.write_text(
        "set -e\n"
        'oisp-sensor record --output "$OUT" --no-ui --ephemeral 2> sensor.log &\n'
        "SENSOR_PID=$!\n"
        "until grep -q 'capture attached' sensor.log; do sleep 0.1; done\n"
        "npm test\n"
        "kill $SENSOR_PID\n"
        'cp "$OUT" at-kill.jsonl\n'
        "wait $SENSOR_PID\n"
        'echo "exit $?"\n'
    )
    out = tmp_path / "events.jsonl"
    res = subprocess.run(["bash", str(script)], cwd=tmp_path, env={**fresh.env, "OUT": str(out)},
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0 and res.stdout.strip().endswith("exit 0"), res.stdout + res.stderr
    assert_captured_the_tests(fresh, out)
    at_kill = (tmp_path / "at-kill.jsonl").read_bytes()
    assert at_kill == b"" or at_kill.endswith(b"\n")
    early = [json.loads(line) for line in at_kill.splitlines()]  # whole lines only
    assert out.read_bytes().startswith(at_kill)
    (client,) = fresh.client_results()
    assert [e["event_type"] for e in early if e["process"]["pid"] == client["pid"] and e["event_type"].startswith("ai.")] == [
        "ai.request", "ai.response"] * 2  # fmt: skip
    assert "stopped:" in (tmp_path / "sensor.log").read_text()


# ---- --ephemeral ---------------------------------------------------------------------------


def _written_paths(trace: str) -> set[str]:
    """Files strace saw created, opened for writing, renamed, removed, made or linked."""
    paths: set[str] = set()
    for line in trace.splitlines():
        if "= -1" in line:
            continue
        m = re.search(r'(openat|open|creat)\((?:AT_FDCWD, )?"([^"]+)", ([A-Z_|]+)', line)
        if m and any(flag in m.group(3) for flag in ("O_WRONLY", "O_RDWR", "O_CREAT")):
            paths.add(m.group(2))
        for m in re.finditer(
            r'\b(?:mkdir|mkdirat|rename|renameat2?|unlink|unlinkat|link|linkat|symlink|symlinkat)\((?:AT_FDCWD, )?"([^"]+)"',
            line,
        ):
            paths.add(m.group(1))
    return {p for p in paths if not p.startswith(("/dev/", "/proc/", "/sys/"))}


def _traced_record(tmp_path: Path, env: dict[str, str], *flags: str) -> tuple[set[str], Path]:
    out = tmp_path / "events.jsonl"
    trace = tmp_path / "trace.txt"
    proc = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=%file", "--",
         sys.executable, "-m", "oisp_sensor", "record", "--output", str(out), "--no-ui", *flags],
        cwd=tmp_path, env=env, stderr=open(tmp_path / "sensor.log", "wb"),  # noqa: SIM115
    )  # fmt: skip
    log = tmp_path / "sensor.log"
    assert ci.wait_for(lambda: "capture attached" in log.read_text(errors="replace"), 180), log.read_text()
    subprocess.run(["npm", "test"], env=env, check=True, capture_output=True, timeout=120)
    time.sleep(1.5)  # the status file is refreshed every second: give it the chance
    sensor_pid = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
    os.kill(sensor_pid, signal.SIGTERM)  # the sensor itself (strace only relays)
    assert proc.wait(timeout=120) == 0, log.read_text()
    return _written_paths(trace.read_text()), out


def test_ephemeral_writes_nothing_but_the_output(fresh: CiEnv, tmp_path: Path) -> None:
    stamp = tmp_path / "stamp"
    stamp.write_text("")
    written, out = _traced_record(tmp_path, fresh.env, "--ephemeral")
    assert written == {str(out)}, written
    assert_captured_the_tests(fresh, out)
    # and on the file system: nothing named after the sensor appeared anywhere it could write
    found = subprocess.run(
        ["find", "/var", "/run", "/root", "/etc", "/tmp", "-xdev", "-newer", str(stamp),
         "(", "-iname", "*oisp*", "-o", "-name", "*.jsonl", ")", "-not", "-path", f"{tmp_path}*",
         "-not", "-path", "/tmp/pytest-of-*", "-not", "-path", "/run/netns/*"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert not [p for p in found if "/run/oisp-sensor" in p or p.startswith("/var/log/oisp")], found
    # the seed's retention check, as written
    ret = subprocess.run(["bash", str(SEEDS / "validate-retention.sh")], capture_output=True, text=True)
    assert ret.returncode == 0 and "Ephemeral storage validated" in ret.stdout, ret.stdout
    # without --ephemeral the same tracing sees the status file: the method can see writes
    plain = tmp_path / "plain"
    plain.mkdir()
    written, _ = _traced_record(plain, fresh.env)
    assert any(p.startswith("/run/oisp-sensor/") for p in written), written


def test_ephemeral_refuses_what_would_write_elsewhere(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "oisp_sensor", "record", "--ephemeral", "--output", str(tmp_path / "e.jsonl"),
         "--save-raw", str(tmp_path / "r.raw"), "--no-ui"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--ephemeral writes nothing but --output" in res.stderr
    assert not (tmp_path / "r.raw").exists() and not (tmp_path / "e.jsonl").exists()


def test_output_belongs_to_the_sudo_user(fresh: CiEnv, tmp_path: Path) -> None:
    """`sudo oisp-sensor run --output F`: the user who ran sudo can read F afterwards
    (the seed greps it without sudo)."""
    shared = Path(tempfile.mkdtemp(prefix="oisp-sudo-", dir="/tmp"))  # tmp_path's parents are 0700
    shared.chmod(0o755)
    out = shared / "events.jsonl"
    env = {**fresh.env, "SUDO_UID": "65534", "SUDO_GID": "65534"}
    res = subprocess.run(
        [sys.executable, "-m", "oisp_sensor", "run", "--output", str(out), "--no-ui", "--ephemeral", "--", "true"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    st = out.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o600)
    read = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(out)],
                          capture_output=True)  # fmt: skip
    shutil.rmtree(shared)
    assert read.returncode == 0, read.stderr
