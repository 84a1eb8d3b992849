"""Process filters: pids, name globs, uids, exclusions."""

from __future__ import annotations

from oisp_sensor.enrich.filters import ProcessFilter


def test_no_criteria_allows_everything() -> None:
    f = ProcessFilter()
    assert not f.active and f.allows(1, "anything", 0)


def test_all_given_criteria_must_hold() -> None:
    f = ProcessFilter(pids=[10, 11], comms=["python*", "node"], uids=[1000])
    assert f.allows(10, "python3", 1000)
    assert f.allows(11, "node", 1000)
    assert not f.allows(12, "python3", 1000)  # pid
    assert not f.allows(10, "curl", 1000)  # name
    assert not f.allows(10, "nodejs", 1000)  # a glob matches the whole name
    assert not f.allows(10, "python3", 0)  # uid
    assert f.dropped == 4


def test_exclusions() -> None:
    f = ProcessFilter(exclude_comms=["pip*", "apt*"])
    assert f.allows(1, "python3") and not f.allows(1, "pip3") and not f.allows(1, "apt-get")
