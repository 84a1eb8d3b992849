"""Container ids from cgroup paths, and what must not be taken for one."""

from __future__ import annotations

import pytest

from oisp_sensor.enrich.container import container_from_cgroup

CID = "3f4e" * 16


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"0::/system.slice/docker-{CID}.scope\n", (CID, "docker")),
        (f"12:memory:/docker/{CID}\n0::/\n", (CID, "docker")),
        (
            f"0::/system.slice/containerd.service/kubepods-burstable-podx.slice:cri-containerd:{CID}\n",
            (CID, "containerd"),
        ),
        (f"0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{CID}.scope\n", (CID, "containerd")),
        (f"0::/machine.slice/libpod-{CID}.scope/container\n", (CID, "podman")),
        (f"0::/kubepods/besteffort/pod1234/{CID}\n", (CID, "kubernetes")),
        (f"0::/crio-{CID}.scope\n", (CID, "cri-o")),
        ("0::/user.slice/user-1000.slice/session-2.scope\n", None),
        ("4:memory:/process_api/d5034657381fe5045f2e8b13675de01a\n0::/\n", None),  # 32 hex: a sandbox
        ("", None),
    ],
)
def test_container_from_cgroup(text: str, expected: tuple[str, str] | None) -> None:
    assert container_from_cgroup(text) == expected
