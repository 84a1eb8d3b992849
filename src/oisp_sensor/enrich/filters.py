"""Which processes the user wants to hear about: pids, process-name globs, uids.

Applied to every record before decoding, so filtered-out traffic costs almost nothing.
An empty list means "no restriction" for that criterion; all given criteria must hold.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable


class ProcessFilter:
    def __init__(
        self,
        pids: Iterable[int] = (),
        comms: Iterable[str] = (),
        uids: Iterable[int] = (),
        exclude_comms: Iterable[str] = (),
    ) -> None:
        self.pids = frozenset(pids)
        self.uids = frozenset(uids)
        comm_list, exclude_list = list(comms), list(exclude_comms)
        self._comm = re.compile("|".join(fnmatch.translate(g) for g in comm_list)) if comm_list else None
        self._exclude = (
            re.compile("|".join(fnmatch.translate(g) for g in exclude_list)) if exclude_list else None
        )
        self.active = bool(self.pids or self.uids or self._comm or self._exclude)
        self._cache: dict[tuple[int, str, int], bool] = {}
        # Records without a uid (exit, fork, file close) take the one last seen for the pid.
        self._uid_of: dict[int, int] = {}
        self.dropped = 0

    def allows(self, pid: int, comm: str, uid: int = -1) -> bool:
        if not self.active:
            return True
        if self.uids:
            if uid < 0:
                uid = self._uid_of.get(pid, -1)
            elif self._uid_of.get(pid) != uid:
                if len(self._uid_of) > 65536:
                    self._uid_of.clear()
                self._uid_of[pid] = uid
        key = (pid, comm, uid)
        verdict = self._cache.get(key)
        if verdict is None:
            verdict = (
                (not self.pids or pid in self.pids)
                and (not self.uids or uid in self.uids)
                and (self._comm is None or bool(self._comm.match(comm)))
                and (self._exclude is None or not self._exclude.match(comm))
            )
            if len(self._cache) > 65536:
                self._cache.clear()
            self._cache[key] = verdict
        if not verdict:
            self.dropped += 1
        return verdict
