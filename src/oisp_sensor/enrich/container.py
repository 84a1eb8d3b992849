"""Container identity from a process's cgroup paths.

Container runtimes name a container's cgroup after its 64-hex-digit id: Docker
(`/docker/<id>` or `docker-<id>.scope`), containerd and CRI (`cri-containerd-<id>.scope`),
CRI-O (`crio-<id>.scope`), Podman (`libpod-<id>.scope`), Kubernetes pods nesting those under
`kubepods`. Only a full 64-digit id counts: shorter hex names (sandboxes, session scopes)
are not containers.
"""

from __future__ import annotations

import re

_ID = re.compile(
    r"(?:^|[/:])(?:(docker|cri-containerd|crio|libpod|containerd)[-:])?([0-9a-f]{64})(?:\.scope)?(?:/|$)"
)
_RUNTIME_BY_PREFIX = {"docker": "docker", "cri-containerd": "containerd", "containerd": "containerd",
                      "crio": "cri-o", "libpod": "podman"}  # fmt: skip


def container_from_cgroup(text: str) -> tuple[str, str] | None:
    """(container id, runtime) from the content of /proc/PID/cgroup, or None."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        match = _ID.search(path)
        if match:
            prefix, cid = match.group(1), match.group(2)
            runtime = _RUNTIME_BY_PREFIX.get(prefix or "", "")
            if not runtime:
                runtime = (
                    "kubernetes" if "kubepods" in path else ("docker" if "/docker/" in path else "unknown")
                )
            return cid, runtime
    return None
