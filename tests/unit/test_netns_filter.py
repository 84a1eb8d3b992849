"""The network-namespace filter against real namespaces (needs root for `unshare -n`)."""

from __future__ import annotations

import os
import subprocess

import pytest

from oisp_sensor.config import ConfigError, load_config
from oisp_sensor.enrich.netns import NetnsFilter, netns_inode


def test_specs_and_config_errors(tmp_path: object) -> None:
    me = os.stat("/proc/self/ns/net").st_ino
    assert netns_inode("self") == me == netns_inode("/proc/self/ns/net") == netns_inode(str(me))
    with pytest.raises(ConfigError, match=r"capture\.netns.*/run/netns/nope"):
        load_config(None, {"capture": {"netns": ["/run/netns/nope"]}}, environ={})
    with pytest.raises(ConfigError, match=r"capture\.netns"):
        load_config(None, {"capture": {"netns": ["relative"]}}, environ={})
    config, _ = load_config(None, {"capture": {"netns": ["self"]}}, environ={})
    assert config.capture.netns == ["self"]


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare -n needs root")
def test_only_processes_of_the_given_namespace() -> None:
    other = subprocess.Popen(["unshare", "-n", "sleep", "30"])
    try:
        for _ in range(100):  # unshare has execed sleep once the namespace differs
            if os.stat(f"/proc/{other.pid}/ns/net").st_ino != netns_inode("self"):
                break
            subprocess.run(["sleep", "0.02"], check=True)
        f = NetnsFilter(["self"])
        assert f.active and not NetnsFilter([]).active
        assert f.allows(os.getpid())
        f.note_exec(other.pid)
        assert not f.allows(other.pid)
        # a child forked by the other process inherits its namespace, even once gone
        assert not f.allows(999_999_001, ppid=other.pid, fork=True)
        assert not f.allows(999_999_001)
        # a child of ours that is gone before anything was read: its parent's namespace
        assert f.allows(999_999_002, ppid=os.getpid())
        # nothing known at all: dropped and counted
        assert not f.allows(999_999_003)
        assert f.unknown == 1 and f.dropped == 4
        # exit forgets the pid (pids are reused)
        assert not f.allows(999_999_001, exited=True)
        assert not f.allows(999_999_001)
    finally:
        other.kill()
        other.wait()
