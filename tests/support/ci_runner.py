"""Run the shell steps of CI configurations locally, as the CI system would.

The examples in examples/ci/ and action.yml are parsed (PyYAML for GitHub Actions, GitLab
CI and CircleCI, a small Groovy string reader for Jenkinsfiles), and their `run`/`script`/
`sh` steps executed as written with bash, in order, with the CI system's conventions
(GitHub: GITHUB_ENV/GITHUB_OUTPUT/GITHUB_STEP_SUMMARY files, `if: always()`; GitLab: one
shell for before_script + script; CircleCI: `background: true`, `when: always`).

What a CI machine has and this one cannot have is replaced by stand-ins on PATH
(:func:`write_shims`): `npm` (the project's tests: real SDK clients calling the fake
provider), `curl` for the install URL only (serves scripts/install.sh), `sudo` (we are
root already), `apt-get` (the image's packages are here), `docker` (no daemon here: the
container's command runs on the host, as --privileged --pid=host makes it do).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
INSTALL_URL = "https://sensor.oisp.dev/install.sh"
_EXPR_RE = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


@dataclass
class Step:
    name: str
    script: str
    always: bool = False  # runs even after a failed step
    background: bool = False  # CircleCI background step
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class StepResult:
    name: str
    code: int
    output: str


@dataclass
class JobRun:
    results: list[StepResult]
    env: dict[str, str]
    summary: str = ""
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.code == 0 for r in self.results)

    def step(self, name: str) -> StepResult:
        return next(r for r in self.results if r.name == name)

    def log(self) -> str:
        return "\n".join(f"--- {r.name} (exit {r.code})\n{r.output}" for r in self.results)


def expand(text: str, context: Mapping[str, str]) -> str:
    """GitHub `${{ secrets.X }}` / `${{ inputs.x }}` expressions from `context` ('' if unknown)."""
    return _EXPR_RE.sub(lambda m: str(context.get(m.group(1), "")), text)


# ---- parsers ----------------------------------------------------------------------------


def github_steps(path: Path, job: str | None = None, context: Mapping[str, str] = {}) -> list[Step]:
    doc = yaml.safe_load(path.read_text())
    jobs = doc["jobs"]
    spec = jobs[job or next(iter(jobs))]
    steps: list[Step] = []
    for i, raw in enumerate(spec["steps"]):
        if "run" not in raw:
            continue  # `uses:` actions (checkout, upload-artifact) are the CI system's own
        cond = str(raw.get("if", ""))
        steps.append(
            Step(
                name=raw.get("name", f"step {i}"),
                script=expand(raw["run"], context),
                always="always()" in cond,
                env={k: expand(str(v), context) for k, v in (raw.get("env") or {}).items()},
            )
        )
    return steps


def action_steps(path: Path, context: Mapping[str, str]) -> list[Step]:
    """The composite action's steps, `${{ inputs.* }}`, `${{ steps.*.outputs.* }}` left
    for :func:`run_steps` to expand as it goes."""
    doc = yaml.safe_load(path.read_text())
    assert doc["runs"]["using"] == "composite"
    out: list[Step] = []
    for raw in doc["runs"]["steps"]:
        assert raw["shell"] == "bash"
        out.append(
            Step(
                name=raw.get("id") or raw["name"],
                script=raw["run"],
                always="always()" in str(raw.get("if", "")),
                env={k: str(v) for k, v in (raw.get("env") or {}).items()},
            )
        )
    return out


def gitlab_script(path: Path, job: str) -> Step:
    """before_script + script of `job`: GitLab runs them in one shell session."""
    spec = yaml.safe_load(path.read_text())[job]
    lines = [*spec.get("before_script", []), *spec["script"]]
    return Step(
        name=job, script="\n".join(lines), env={k: str(v) for k, v in (spec.get("variables") or {}).items()}
    )


def circleci_steps(path: Path, job: str) -> list[Step]:
    spec = yaml.safe_load(path.read_text())["jobs"][job]
    steps: list[Step] = []
    for raw in spec["steps"]:
        if not isinstance(raw, dict) or "run" not in raw:
            continue  # checkout, store_artifacts, store_test_results
        run = raw["run"]
        if isinstance(run, str):
            run = {"command": run}
        steps.append(
            Step(
                name=run.get("name", run["command"][:40]),
                script=run["command"],
                always=run.get("when") == "always",
                background=bool(run.get("background")),
            )
        )
    return steps


_GROOVY_STRING_RE = re.compile(
    r"'''(.*?)'''|\"\"\"(.*?)\"\"\"|'((?:[^'\\\n]|\\.)*)'|\"((?:[^\"\\\n]|\\.)*)\"", re.S
)


def _strip_groovy_comments(text: str) -> str:
    """Groovy without // and /* */ comments (strings kept intact)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        m = _GROOVY_STRING_RE.match(text, i)
        if m:
            out.append(m.group(0))
            i = m.end()
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def jenkins_steps(path: Path) -> tuple[list[Step], list[str]]:
    """(every `sh` step of the stages in order, the `post { always { ... } }` directives).

    `sh 'x'`, `sh "x"` and the triple-quoted forms; a double-quoted string using `${...}`
    Groovy interpolation is refused (the examples must not depend on it)."""
    text = _strip_groovy_comments(path.read_text())
    post_at = text.find("post {")
    stages, post = (text[:post_at], text[post_at:]) if post_at >= 0 else (text, "")
    steps: list[Step] = []
    for m in re.finditer(r"\bsh\s*\(?\s*(?:script:\s*)?", stages):
        s = _GROOVY_STRING_RE.match(stages, m.end())
        if s is None:
            continue
        body = next(g for g in s.groups() if g is not None)
        if s.group(0).startswith('"') and "${" in body:
            raise ValueError(f"Groovy interpolation in {s.group(0)[:60]}")
        stage = re.findall(r"stage\('([^']+)'\)", stages[: m.start()])
        steps.append(Step(name=stage[-1] if stage else "sh", script=body.replace("\\'", "'")))
    always = re.search(r"always\s*\{(.*?)\n\s*\}", post, re.S)
    directives = [line.strip() for line in (always.group(1) if always else "").splitlines() if line.strip()]
    return steps, directives


# ---- running ------------------------------------------------------------------------------


def _read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (and KEY<<EOF heredocs) of GITHUB_ENV / GITHUB_OUTPUT."""
    out: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and "=" not in line.split("<<")[0]:
            key, delim = line.split("<<", 1)
            j = lines.index(delim, i + 1)
            out[key] = "\n".join(lines[i + 1 : j])
            i = j + 1
            continue
        if "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
        i += 1
    return out


def run_steps(
    steps: list[Step],
    workspace: Path,
    env: Mapping[str, str],
    shell: tuple[str, ...] = ("bash", "--noprofile", "--norc", "-eo", "pipefail"),
    timeout: float = 300,
    expression_context: dict[str, str] | None = None,
) -> JobRun:
    """Run `steps` like a GitHub Actions job (the other systems' shape is the same):
    in `workspace`, each with `shell` + a script file, env files carried between steps."""
    state = workspace / ".ci"
    state.mkdir(exist_ok=True)
    job_env = {**env}
    files = {name: state / name.lower() for name in ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")}
    for f in files.values():
        f.write_text("")  # a new job: a new summary
    job_env.update({k: str(v) for k, v in files.items()})
    job_env.setdefault("GITHUB_WORKSPACE", str(workspace))
    job_env.setdefault("RUNNER_TEMP", str(state))
    context = expression_context if expression_context is not None else {}
    results: list[StepResult] = []
    outputs: dict[str, dict[str, str]] = {}
    failed = False
    for index, step in enumerate(steps):
        if failed and not step.always:
            continue
        files["GITHUB_OUTPUT"].write_text("")
        script = state / f"step{index}.sh"
        script.write_text(expand(step.script, context))
        log = state / f"step{index}.log"
        step_env = {**job_env, **{k: expand(v, context) for k, v in step.env.items()}}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*shell, str(script)], cwd=workspace, env=step_env, stdout=out, stderr=subprocess.STDOUT
            )
            if step.background:  # CircleCI: the job goes on while it runs
                results.append(StepResult(step.name, 0, f"(background, pid {proc.pid})"))
                continue
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        results.append(StepResult(step.name, code, log.read_text(errors="replace")))
        failed = failed or code != 0
        job_env.update(_read_env_file(files["GITHUB_ENV"]))
        outputs[step.name] = _read_env_file(files["GITHUB_OUTPUT"])
        for key, value in outputs[step.name].items():
            context[f"steps.{step.name}.outputs.{key}"] = value
    return JobRun(results, job_env, files["GITHUB_STEP_SUMMARY"].read_text(), outputs)


# ---- stand-ins ---------------------------------------------------------------------------------

_NPM = """#!/bin/sh
# npm stand-in: `npm test` / `npm run ...` are the project's tests: real openai SDK calls to
# the fake provider (in its network namespace); `npm ci` / `npm install` have nothing to do.
case "$1" in
  ci|install) echo "npm $*: (stand-in) dependencies present"; exit 0 ;;
esac
set -e
if [ -n "${OISP_TEST_WAIT_ATTACHED:-}" ]; then
  # only for recipes that `sleep 2` after starting the sensor in the background: on a
  # loaded test machine attaching can take longer than that (see tests/e2e/test_ci_examples.py)
  timeout 120 sh -c 'until grep -qs "capture attached" "$OISP_TEST_WAIT_ATTACHED"/*.log; do sleep 0.1; done'
fi
for args in {client_runs}; do
  eval "set -- $args"
  ip netns exec {ns} env {client_env} {python} {client} "$@" >> {results} 2>> {results}.err
done
echo "npm $*: (stand-in) tests passed"
"""

_CURL = """#!/bin/sh
# curl stand-in: the installer URL serves this checkout's scripts/install.sh; anything else
# is the real curl.
for a in "$@"; do
  if [ "$a" = "{url}" ]; then cat {install}; exit 0; fi
done
exec /usr/bin/curl "$@"
"""

_SUDO = """#!/bin/sh
# sudo stand-in: the tests run as root already. Options are those the examples use.
while [ $# -gt 0 ]; do
  case "$1" in
    -E|--preserve-env) shift ;;
    -u) shift; [ "$1" = root ] || [ "$1" = "$(id -un)" ] || {{ echo "sudo stand-in: -u $1" >&2; exit 1; }}; shift ;;
    --) shift; break ;;
    -*) echo "sudo stand-in: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
exec "$@"
"""

_APT = """#!/bin/sh
echo "apt-get $*: (stand-in) the image's packages are installed on this machine"
"""


def write_shims(
    directory: Path,
    netns: str,
    client_env: Mapping[str, str],
    client_runs: list[list[str]],
    results: Path,
) -> Path:
    """The stand-ins, in `directory` (put it first on PATH). `client_runs`: the argument
    lists of tests/clients/py_openai_chat.py that one `npm test` runs; each client's JSON
    line is appended to `results`."""
    directory.mkdir(parents=True, exist_ok=True)
    env_words = " ".join(shlex.quote(f"{k}={v}") for k, v in client_env.items())
    runs = " ".join(shlex.quote(shlex.join(args)) for args in client_runs)
    files = {
        "npm": _NPM.replace("{client_runs}", runs)
        .replace("{ns}", shlex.quote(netns))
        .replace("{client_env}", env_words)
        .replace("{python}", shlex.quote(str(REPO / ".venv" / "bin" / "python")))
        .replace("{client}", shlex.quote(str(REPO / "tests" / "clients" / "py_openai_chat.py")))
        .replace("{results}", shlex.quote(str(results))),
        "curl": _CURL.format(url=INSTALL_URL, install=shlex.quote(str(REPO / "scripts" / "install.sh"))),
        "sudo": _SUDO.format(),
        "apt-get": _APT,
        "docker": f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).with_name("docker_shim.py")))} "$@"\n',
    }
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
    return directory


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def base_env(shims: Path, bin_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A CI job's environment: stand-ins and the installed `oisp-sensor` first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "GITHUB_", "OISP_"))}
    env["PATH"] = f"{shims}:{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    env["CI"] = "true"
    env.update(extra or {})
    return env
