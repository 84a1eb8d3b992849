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


def test_descendants_only_follow_forks_and_execs_and_forget_exits() -> None:
    f = ProcessFilter(descendants_of=100)
    assert f.active and not f.allows(100, "sensor")  # the root itself is not recorded
    f.note_child(200, 100)  # the command
    f.note_child(300, 200)  # what it starts
    f.note_child(400, 999)  # an unrelated process
    assert f.allows(200, "npm") and f.allows(300, "node")
    assert not f.allows(400, "python3")
    assert f.allows(300, "node", exited=True)  # its exit record is the last one kept
    assert not f.allows(300, "node")  # the pid may be reused by anybody


def test_an_exit_another_filter_drops_still_prunes_the_tree() -> None:
    """`run --netns ...`: the netns filter may drop the exit record of a tree member (it
    entered another namespace); its pid must leave the tree all the same."""
    from oisp_sensor.capture.records import ExecRecord, ProcessExitRecord
    from oisp_sensor.config import SensorConfig
    from oisp_sensor.pipeline import Pipeline

    config = SensorConfig()
    config.capture.descendants_of = 100
    pipeline = Pipeline(config, [])

    class DropsExits:
        active = True
        dropped = 0

        def allows(self, pid: int, ppid: int, *, fork: bool, exec_: bool, exited: bool) -> bool:
            return not exited

    pipeline.netns = DropsExits()  # type: ignore[assignment]
    exec_record = ExecRecord(pid=200, tid=200, ppid=100, uid=0, gid=0, ts_ns=1, comm="sh", filename="/bin/sh",
                             args=["sh"], cwd="/")  # fmt: skip
    pipeline.process_record(exec_record)
    assert 200 in (pipeline.filter.tree or set())
    pipeline.process_record(ProcessExitRecord(pid=200, ts_ns=2, exit_code=0, start_ns=1, comm="sh"))
    assert 200 not in (pipeline.filter.tree or set())
