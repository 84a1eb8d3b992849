"""Host context: what machine the events come from. Computed once per sensor run."""

from __future__ import annotations

import hashlib
import platform
import socket
from pathlib import Path
from typing import Any


def _os_release() -> dict[str, str]:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        fields = {}
        for line in text.splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                fields[key.strip()] = value.strip().strip('"')
        return fields
    return {}


def device_id() -> str:
    """A stable id for this machine that does not reveal the machine id itself."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            machine_id = Path(path).read_text().strip()
        except OSError:
            continue
        if machine_id:
            return hashlib.sha256(b"oisp-sensor device:" + machine_id.encode()).hexdigest()[:32]
    # No machine id: fall back to the hostname, still hashed.
    return hashlib.sha256(b"oisp-sensor host:" + socket.gethostname().encode()).hexdigest()[:32]


def host_context() -> dict[str, Any]:
    release = _os_release()
    uname = platform.uname()
    return {
        "hostname": socket.gethostname(),
        "os": "linux",
        "os_version": release.get("VERSION_ID") or uname.release,
        "distro": release.get("PRETTY_NAME", ""),
        "kernel": uname.release,
        "arch": uname.machine,
        "device_id": device_id(),
    }
