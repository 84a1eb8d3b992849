"""deploy/: Kubernetes manifests checked against the Kubernetes OpenAPI schemas (the
kubernetes-validate package carries them; strict: unknown fields are errors), the config
each ConfigMap carries loaded by the sensor's own config loader, the systemd unit checked
by `systemd-analyze verify` and the logrotate file by `logrotate --debug`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from oisp_sensor.config import load_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").rglob("*.yaml"))
# The oldest Kubernetes still commonly run, and the newest the package knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(DEPLOY)))
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifest_is_valid_kubernetes(path: Path, version: str) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_a_broken_manifest() -> None:
    (ds,) = _docs(DEPLOY / "kubernetes" / "daemonset.yaml")
    ds["spec"]["template"]["spec"]["hostPID"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, K8S_VERSIONS[0], strict=True)
    (ds,) = _docs(DEPLOY / "kubernetes" / "daemonset.yaml")
    ds["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {"privileged": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, K8S_VERSIONS[0], strict=True)


def test_daemonset_has_what_the_sensor_needs() -> None:
    (ds,) = _docs(DEPLOY / "kubernetes" / "daemonset.yaml")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True and pod["hostNetwork"] is True
    assert pod["serviceAccountName"] == "oisp-sensor"
    (container,) = pod["containers"]
    assert container["securityContext"]["privileged"] is True
    assert container["resources"]["limits"]["memory"] and container["resources"]["limits"]["cpu"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in (
        "/sys/kernel/btf",
        "/sys/fs/bpf",
        "/sys/kernel/debug",
        "/var/log/pods",
        "/var/log/containers",
    ):
        assert volumes[mounts[path]]["hostPath"]["path"] == path
    assert volumes[mounts["/etc/oisp-sensor"]]["configMap"]["name"] == "oisp-sensor-config"
    # the memory ceiling of the sensor is under the container's limit (it sheds first)
    config = _configmap_config(DEPLOY / "kubernetes" / "configmap.yaml", Path("/tmp"))
    limit_mi = int(container["resources"]["limits"]["memory"].removesuffix("Mi"))
    assert 0 < config.limits.max_memory_mb < limit_mi


def _configmap_config(path: Path, tmp: Path) -> Any:
    (cm,) = _docs(path)
    toml = tmp / f"{path.stem}.toml"
    toml.write_text(cm["data"]["config.toml"])
    config, _ = load_config(str(toml), environ={})
    return config


@pytest.mark.parametrize(
    ("name", "exporter"),
    [
        ("configmap.yaml", "jsonl"),
        ("examples/kafka-configmap.yaml", "kafka"),
        ("examples/otlp-configmap.yaml", "otlp"),
    ],
)
def test_configmaps_carry_configs_the_sensor_accepts(name: str, exporter: str, tmp_path: Path) -> None:
    config = _configmap_config(DEPLOY / "kubernetes" / name, tmp_path)
    assert getattr(config.export, exporter).enabled
    assert config.export.jsonl.path.startswith("/var/lib/oisp-sensor/")
    assert not config.ui.web
    if exporter == "kafka":
        assert config.export.kafka.key == "host" and len(config.export.kafka.brokers) == 2


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (DEPLOY / "systemd" / "oisp-sensor.service").read_text()
    assert "ExecStart=/opt/oisp-sensor/.venv/bin/oisp-sensor daemon start --foreground" in unit
    # verify checks that ExecStart exists: point it at this checkout's command
    local = tmp_path / "oisp-sensor.service"
    local.write_text(
        unit.replace(
            "/opt/oisp-sensor/.venv/bin/oisp-sensor", str(Path(sys.executable).parent / "oisp-sensor")
        )
    )
    res = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0 and "oisp-sensor.service" not in res.stderr, res.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(local.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    res = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, check=False
    )
    assert "broken.service:" in res.stderr and "sometimes" in res.stderr  # it does catch mistakes


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate not installed")
def test_logrotate_config_parses(tmp_path: Path) -> None:
    conf = tmp_path / "oisp-sensor"
    conf.write_text((DEPLOY / "logrotate" / "oisp-sensor").read_text())
    conf.chmod(0o644)
    res = subprocess.run(
        ["logrotate", "--debug", "--state", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and "error" not in res.stderr.lower(), res.stderr
    assert "/var/log/oisp-sensor/sensor.log" in res.stderr


def test_containerfile_builds_the_bpf_object_and_runs_the_daemon() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert "debian:12" in text and "oisp.bpf.o" in text and "python3 -m venv" in text
    assert 'CMD ["daemon", "start", "--foreground"]' in text
