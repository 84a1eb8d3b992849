"""Tables the sensor keeps per process, per call or per string stay bounded under a steady
stream of new keys (the soak's finding, issue 9: ~8 short-lived processes a second)."""

from __future__ import annotations

from oisp_sensor.enrich.filters import ProcessFilter


def test_process_filter_forgets_exited_pids_and_caches_by_name_only() -> None:
    f = ProcessFilter(comms=["sh", "cat", "curl"], uids=[1000])
    for pid in range(10_000, 60_000):
        comm = ("sh", "cat", "rm")[pid % 3]
        kept = f.allows(pid, comm, 1000)
        assert kept is (comm != "rm")
        assert f.allows(pid, comm, -1) is kept  # a record without a uid takes the pid's
        assert f.allows(pid, comm, -1, exited=True) is kept
    assert f.tracked_pids() == 0
    assert len(f._comm_ok) == 3
    # A pid that exited and comes back is judged on its own uid again.
    assert not f.allows(10_000, "sh", -1)
    assert f.allows(10_000, "sh", 1000)


def test_process_filter_pid_table_has_a_ceiling_when_exits_are_lost() -> None:
    f = ProcessFilter(uids=[1000])
    for pid in range(200_000):
        f.allows(pid, "x", 1000)  # never an exit record
    assert f.tracked_pids() <= 65536
