"""Kubernetes context: the node a sensor runs on, and the pod and namespace of a container.

No API server is asked (a node agent should not need cluster credentials to label its own
events): the kubelet leaves everything needed on the node's disk.

- `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`: one symlink per
  container, made by the kubelet for log collectors; it maps a container id (which the
  sensor already reads from the process's cgroup, see container.py) straight to its pod,
  namespace and container name.
- `/var/log/pods/<namespace>_<pod>_<pod uid>/<container>/`: one directory per pod, found
  from the pod UID in the cgroup path (`kubepods-burstable-pod<uid>.slice`,
  `/kubepods/besteffort/pod<uid>/`) when the container's symlink is not there (yet).

Pod, namespace and container names are DNS labels or subdomains, so they never contain
`_`: the file names split unambiguously. The node name comes from `[kubernetes] node_name`
or the `NODE_NAME` variable a DaemonSet sets from the downward API (`spec.nodeName`).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

#: The pod UID in a cgroup path: a UUID (dashes written as `_` by the systemd cgroup
#: driver) or, for static pods, the 32-hex-digit hash of the pod's manifest.
_POD_UID = re.compile(
    r"[/-]pod([0-9a-f]{8}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{12})"
    r"(?:\.slice)?(?:/|$)"
)
_CID = re.compile(r"^[0-9a-f]{64}$")
_POD_DIR_UID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    pod: str
    pod_uid: str = ""
    container: str = ""

    def context(self) -> dict[str, str]:
        """The `process.kubernetes` object of an event (empty values left out)."""
        out = {"namespace": self.namespace, "pod": self.pod}
        if self.pod_uid:
            out["pod_uid"] = self.pod_uid
        if self.container:
            out["container"] = self.container
        return out


def pod_uid_from_cgroup(text: str) -> str:
    """The pod UID (with dashes) from the content of /proc/PID/cgroup, or ""."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        match = _POD_UID.search(path) if "kubepods" in path else None
        if match:
            return match.group(1).replace("_", "-")
    return ""


def parse_container_log_name(name: str) -> tuple[str, PodInfo] | None:
    """`<pod>_<namespace>_<container>-<id>.log` as (container id, pod), or None."""
    if not name.endswith(".log"):
        return None
    head, _, cid = name[:-4].rpartition("-")
    parts = head.split("_")
    if not _CID.match(cid) or len(parts) != 3 or not all(parts):
        return None
    pod, namespace, container = parts
    return cid, PodInfo(namespace=namespace, pod=pod, container=container)


def parse_pod_dir_name(name: str) -> PodInfo | None:
    """`<namespace>_<pod>_<uid>` (a directory of /var/log/pods) as a pod, or None."""
    parts = name.split("_")
    if len(parts) != 3 or not parts[0] or not parts[1] or not _POD_DIR_UID.match(parts[2]):
        return None
    return PodInfo(namespace=parts[0], pod=parts[1], pod_uid=parts[2])


class PodResolver:
    """Container id -> pod, from the kubelet's log directories, cached.

    A miss rescans the directories, at most once per `rescan_s` (a container started after
    the last scan is found on the next one; a machine without Kubernetes costs one failed
    listdir per interval)."""

    def __init__(
        self,
        pods_dir: str = "/var/log/pods",
        containers_dir: str = "/var/log/containers",
        rescan_s: float = 2.0,
    ) -> None:
        self.pods_dir = pods_dir
        self.containers_dir = containers_dir
        self.rescan_s = rescan_s
        self._by_cid: dict[str, PodInfo] = {}
        self._by_uid: dict[str, PodInfo] = {}
        self._scanned_at = -1e9
        self._lock = threading.Lock()
        self.scans = 0

    def resolve(self, container_id: str, cgroup_text: str = "") -> PodInfo | None:
        """The pod of a container, by its id, else by the pod UID of its cgroup path."""
        uid = pod_uid_from_cgroup(cgroup_text) if cgroup_text else ""
        with self._lock:
            found = self._lookup(container_id, uid)
            if found is None and time.monotonic() - self._scanned_at >= self.rescan_s:
                self._scan()
                found = self._lookup(container_id, uid)
        return found

    def knows(self, container_id: str) -> bool:
        """Whether the container's pod is known without a rescan."""
        return container_id in self._by_cid

    def _lookup(self, container_id: str, uid: str) -> PodInfo | None:
        pod = self._by_cid.get(container_id)
        if pod is None and uid:
            pod = self._by_uid.get(uid)
            if pod is not None:
                pod = self._with_container(pod)
        return pod

    def _with_container(self, pod: PodInfo) -> PodInfo:
        """A pod with a single container: that container is the one (log dir per container)."""
        try:
            names = os.listdir(os.path.join(self.pods_dir, f"{pod.namespace}_{pod.pod}_{pod.pod_uid}"))
        except OSError:
            return pod
        return PodInfo(pod.namespace, pod.pod, pod.pod_uid, names[0]) if len(names) == 1 else pod

    def _scan(self) -> None:
        self._scanned_at = time.monotonic()
        self.scans += 1
        by_uid: dict[str, PodInfo] = {}
        for name in _listdir(self.pods_dir):
            pod = parse_pod_dir_name(name)
            if pod is not None:
                by_uid[pod.pod_uid] = pod
        by_cid: dict[str, PodInfo] = {}
        for name in _listdir(self.containers_dir):
            parsed = parse_container_log_name(name)
            if parsed is None:
                continue
            cid, pod = parsed
            # The pod's UID, when its directory is known (the symlink's name lacks it).
            uid = next(
                (u for u, p in by_uid.items() if p.namespace == pod.namespace and p.pod == pod.pod), ""
            )
            by_cid[cid] = PodInfo(pod.namespace, pod.pod, uid, pod.container)
        # Pods come and go: the tables are rebuilt, never grown without bound.
        self._by_uid, self._by_cid = by_uid, by_cid


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


_resolver: PodResolver | None = PodResolver()


def configure(config: Any) -> str:
    """Apply `[kubernetes]` (a KubernetesConfig): the resolver the process contexts use.
    Returns the node name ("" when neither configured nor in the environment)."""
    global _resolver
    _resolver = PodResolver(config.pods_log_dir, config.containers_log_dir) if config.enabled else None
    return config.node_name or (os.environ.get("NODE_NAME", "") if config.enabled else "")


def pod_context(container_id: str, pid: int) -> dict[str, str] | None:
    """`process.kubernetes` for a process in container `container_id`, or None."""
    resolver = _resolver
    if resolver is None or not container_id:
        return None
    cgroup = ""
    if not resolver.knows(container_id):  # only then is the pod UID worth a read
        try:
            with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
                cgroup = f.read()
        except OSError:
            pass
    pod = resolver.resolve(container_id, cgroup)
    return pod.context() if pod is not None else None
