"""`docker` stand-in for the Docker-based CI example (no Docker daemon on this machine).

The example's container is the sensor image (examples/ci/Dockerfile: ENTRYPOINT
oisp-sensor) run with --privileged --pid=host, i.e. as root seeing every host process:
here its command runs directly on the host, with the container's -e variables and -w
directory. `build` checks the Dockerfile exists; `run -d`, `logs`, `stop`, `rm`, `run
--rm` behave as docker's do for one named container. State lives in $DOCKER_SHIM_STATE.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("DOCKER_SHIM_STATE", "/tmp/oisp-docker-shim"))
IMAGE = "oisp-sensor"


def _run(argv: list[str]) -> int:
    detach = False
    name = ""
    env = dict(os.environ)
    workdir = os.getcwd()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-d", "--detach"):
            detach = True
        elif arg in ("--rm", "--privileged"):
            pass
        elif arg == "--pid":
            i += 1
        elif arg.startswith("--pid="):
            pass
        elif arg == "--name":
            i += 1
            name = argv[i]
        elif arg in ("-v", "--volume"):
            i += 1
            src, _, dst = argv[i].partition(":")
            if src != dst.split(":")[0]:
                print(f"docker stand-in: only same-path volumes ({argv[i]})", file=sys.stderr)
                return 125
        elif arg in ("-w", "--workdir"):
            i += 1
            workdir = argv[i]
        elif arg in ("-e", "--env"):
            i += 1
            key, _, value = argv[i].partition("=")
            env[key] = value
        elif arg.startswith("-"):
            print(f"docker stand-in: unsupported option {arg}", file=sys.stderr)
            return 125
        else:
            break
        i += 1
    if i >= len(argv) or argv[i] != IMAGE:
        print(f"docker stand-in: only the {IMAGE} image", file=sys.stderr)
        return 125
    cmd = ["oisp-sensor", *argv[i + 1 :]]
    if not detach:
        return subprocess.call(cmd, cwd=workdir, env=env)
    STATE.mkdir(parents=True, exist_ok=True)
    log = open(STATE / f"{name}.log", "wb")  # noqa: SIM115 - the container's output
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    (STATE / f"{name}.pid").write_text(str(proc.pid))
    print(f"{name}-{proc.pid}")
    return 0


def _pid(name: str) -> int:
    return int((STATE / f"{name}.pid").read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose (its parent, the shim of `run -d`, has exited)
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def main(argv: list[str]) -> int:
    if not argv:
        return 1
    cmd, rest = argv[0], argv[1:]
    if cmd == "build":
        dockerfile = rest[rest.index("-f") + 1] if "-f" in rest else os.path.join(rest[-1], "Dockerfile")
        if not os.path.isfile(dockerfile):
            print(f"docker stand-in: no Dockerfile {dockerfile}", file=sys.stderr)
            return 1
        print(f"docker stand-in: (not built, no daemon here) {dockerfile}")
        return 0
    if cmd == "run":
        return _run(rest)
    if cmd == "logs":
        sys.stdout.write((STATE / f"{rest[-1]}.log").read_text(errors="replace"))
        return 0
    if cmd == "stop":
        name = rest[-1]
        grace = float(rest[rest.index("--time") + 1]) if "--time" in rest else 10.0
        pid = _pid(name)
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        print(name)
        return 0
    if cmd == "rm":
        for suffix in (".pid", ".log"):
            (STATE / f"{rest[-1]}{suffix}").unlink(missing_ok=True)
        return 0
    print(f"docker stand-in: unsupported command {cmd}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
