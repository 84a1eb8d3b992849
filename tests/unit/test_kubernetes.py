"""Kubernetes context from a fabricated node: the kubelet's /var/log/pods and
/var/log/containers trees as a kubelet lays them out, and cgroup paths of both drivers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from oisp_sensor.config import KubernetesConfig, SensorConfig
from oisp_sensor.enrich import kubernetes
from oisp_sensor.enrich.kubernetes import (
    PodInfo,
    PodResolver,
    parse_container_log_name,
    parse_pod_dir_name,
    pod_uid_from_cgroup,
)
from oisp_sensor.enrich.process import ProcessInfo

UID = "7c1b2a3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CID = "ab12" * 16
CID2 = "cd34" * 16
STATIC_UID = "0f9e8d7c6b5a49382716a5b4c3d2e1f0"


def make_node(root: Path) -> tuple[Path, Path]:
    """A node with: pod agent-7f9c in namespace ai-apps (two containers, app's symlink
    present), and static pod etcd-node1 in kube-system (one container, no symlink yet)."""
    pods, containers = root / "var/log/pods", root / "var/log/containers"
    for ns, pod, uid, names in (
        ("ai-apps", "agent-7f9c", UID, ["app", "sidecar"]),
        ("kube-system", "etcd-node1", STATIC_UID, ["etcd"]),
    ):
        for name in names:
            d = pods / f"{ns}_{pod}_{uid}" / name
            d.mkdir(parents=True)
            (d / "0.log").write_text("")
    containers.mkdir(parents=True)
    (containers / f"agent-7f9c_ai-apps_app-{CID}.log").symlink_to(
        pods / f"ai-apps_agent-7f9c_{UID}" / "app" / "0.log"
    )
    (containers / "not-a-container-log.txt").write_text("")
    return pods, containers


@pytest.mark.parametrize(
    ("cgroup", "uid"),
    [
        # systemd cgroup driver: UID dashes become underscores
        (
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
            + UID.replace("-", "_")
            + f".slice/cri-containerd-{CID}.scope\n",
            UID,
        ),
        (f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{CID}.scope\n", UID),
        # cgroupfs driver, cgroup v1 lines first
        (f"12:memory:/kubepods/besteffort/pod{UID}/{CID}\n0::/\n", UID),
        (f"0::/kubepods/pod{STATIC_UID}/{CID}\n", STATIC_UID),
        (f"0::/system.slice/docker-{CID}.scope\n", ""),
        ("0::/user.slice/user-1000.slice/session-2.scope\n", ""),
        ("0::/kubepods/burstable/podnot-a-uid/x\n", ""),
        ("", ""),
    ],
)
def test_pod_uid_from_cgroup(cgroup: str, uid: str) -> None:
    assert pod_uid_from_cgroup(cgroup) == uid


def test_file_names() -> None:
    assert parse_container_log_name(f"web-0_prod_nginx-sidecar-{CID}.log") == (
        CID,
        PodInfo("prod", "web-0", "", "nginx-sidecar"),
    )
    for bad in (f"web-0_prod-{CID}.log", f"a_b_c-{CID[:-1]}.log", f"a_b_c-{CID}.txt", f"_b_c-{CID}.log"):
        assert parse_container_log_name(bad) is None
    assert parse_pod_dir_name(f"prod_web-0.v2_{UID}") == PodInfo("prod", "web-0.v2", UID)
    assert parse_pod_dir_name(f"prod_web_0_{UID}") is None
    assert parse_pod_dir_name("prod_web-0_nouid") is None


def test_resolver_by_container_id_and_by_pod_uid(tmp_path: Path) -> None:
    pods, containers = make_node(tmp_path)
    resolver = PodResolver(str(pods), str(containers), rescan_s=60)
    # the container's symlink: pod, namespace, container name, and the UID from the pod dir
    assert resolver.resolve(CID) == PodInfo("ai-apps", "agent-7f9c", UID, "app")
    # no symlink for the sidecar: found through the cgroup's pod UID; two containers, so
    # which one is not guessed
    sidecar_cgroup = f"0::/kubepods/burstable/pod{UID}/{CID2}\n"
    assert resolver.resolve(CID2, sidecar_cgroup) == PodInfo("ai-apps", "agent-7f9c", UID, "")
    # a static pod with one container: that container
    static_cgroup = f"0::/kubepods.slice/kubepods-pod{STATIC_UID}.slice/cri-containerd-{'ef' * 32}.scope\n"
    assert resolver.resolve("ef" * 32, static_cgroup) == PodInfo(
        "kube-system", "etcd-node1", STATIC_UID, "etcd"
    )
    # not a Kubernetes container
    assert resolver.resolve("99" * 32, f"0::/system.slice/docker-{'99' * 32}.scope\n") is None
    assert resolver.scans == 1  # all from one scan: misses wait for the rescan interval


def test_new_pods_are_found_after_the_rescan_interval(tmp_path: Path) -> None:
    pods, containers = make_node(tmp_path)
    resolver = PodResolver(str(pods), str(containers), rescan_s=0.0)
    new = "12" * 32
    assert resolver.resolve(new) is None
    (pods / f"batch_job-x_{UID[:-1]}9").mkdir()
    (containers / f"job-x_batch_worker-{new}.log").symlink_to(pods / f"batch_job-x_{UID[:-1]}9")
    assert resolver.resolve(new) == PodInfo("batch", "job-x", UID[:-1] + "9", "worker")
    # a pod gone from the node is forgotten at the next scan (tables never grow unbounded)
    (containers / f"job-x_batch_worker-{new}.log").unlink()
    assert resolver.resolve("34" * 32) is None
    assert not resolver.knows(new)


def test_no_kubernetes_on_this_machine(tmp_path: Path) -> None:
    resolver = PodResolver(str(tmp_path / "none"), str(tmp_path / "none2"), rescan_s=0.0)
    assert resolver.resolve(CID, f"0::/kubepods/pod{UID}/{CID}\n") is None


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[Path]:
    pods, containers = make_node(tmp_path)
    kubernetes.configure(KubernetesConfig(pods_log_dir=str(pods), containers_log_dir=str(containers)))
    yield tmp_path
    kubernetes.configure(KubernetesConfig())


def test_events_of_a_pod_process_carry_pod_and_namespace(configured: Path) -> None:
    info = ProcessInfo(pid=2**22 + 7, name="python", container_id=CID, container_runtime="containerd")
    context = info.process_context()
    assert context["container_id"] == CID
    assert context["kubernetes"] == {
        "namespace": "ai-apps",
        "pod": "agent-7f9c",
        "pod_uid": UID,
        "container": "app",
    }
    plain = ProcessInfo(pid=2**22 + 8, name="python", container_id="99" * 32, container_runtime="docker")
    assert "kubernetes" not in plain.process_context()
    assert "kubernetes" not in ProcessInfo(pid=1, name="init").process_context()


def test_node_name_from_config_or_downward_api_variable(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oisp_sensor.pipeline import Pipeline

    monkeypatch.setenv("NODE_NAME", "node-from-env")
    assert kubernetes.configure(KubernetesConfig()) == "node-from-env"
    assert kubernetes.configure(KubernetesConfig(node_name="node-7")) == "node-7"
    assert kubernetes.configure(KubernetesConfig(enabled=False)) == ""
    config = SensorConfig.model_validate({"kubernetes": {"node_name": "node-7"}})
    assert Pipeline(config, []).host["node_name"] == "node-7"
    monkeypatch.delenv("NODE_NAME")
    assert "node_name" not in Pipeline(SensorConfig(), []).host
