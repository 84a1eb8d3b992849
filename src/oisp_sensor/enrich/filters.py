"""Which processes the user wants to hear about: pids, process-name globs, uids.

Applied to every record before decoding, so filtered-out traffic costs almost nothing.
An empty list means "no restriction" for that criterion; all given criteria must hold.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

_MAX_PIDS = 65536
_MAX_COMMS = 4096  # distinct process names (comm is at most 15 bytes)


class ProcessFilter:
    def __init__(
        self,
        pids: Iterable[int] = (),
        comms: Iterable[str] = (),
        uids: Iterable[int] = (),
        exclude_comms: Iterable[str] = (),
        descendants_of: int = 0,
    ) -> None:
        self.pids = frozenset(pids)
        # The process tree under `descendants_of` (not the root itself), grown from the
        # fork and exec records' parent pids and pruned at exit.
        self.tree: set[int] | None = set() if descendants_of else None
        self.tree_root = descendants_of
        self.uids = frozenset(uids)
        comm_list, exclude_list = list(comms), list(exclude_comms)
        self._comm = re.compile("|".join(fnmatch.translate(g) for g in comm_list)) if comm_list else None
        self._exclude = (
            re.compile("|".join(fnmatch.translate(g) for g in exclude_list)) if exclude_list else None
        )
        self.active = bool(self.pids or self.uids or self._comm or self._exclude or self.tree is not None)
        # Verdicts of the name globs by comm: the only costly part, and comms repeat (pids
        # do not: a cache keyed by pid grows with every short-lived process).
        self._comm_ok: dict[str, bool] = {}
        # Records without a uid (exit, fork, file close) take the one last seen for the pid;
        # a pid is forgotten at its exit.
        self._uid_of: dict[int, int] = {}
        self.dropped = 0

    def allows(self, pid: int, comm: str, uid: int = -1, exited: bool = False) -> bool:
        """Whether a record of this process is kept (`exited`: its exit record, the last)."""
        if not self.active:
            return True
        if self.uids:
            if uid < 0:
                uid = self._uid_of.pop(pid, -1) if exited else self._uid_of.get(pid, -1)
            elif exited:
                self._uid_of.pop(pid, None)
            elif self._uid_of.get(pid) != uid:
                if len(self._uid_of) >= _MAX_PIDS:  # exits lost with their records
                    self._uid_of.clear()
                self._uid_of[pid] = uid
        verdict = (not self.pids or pid in self.pids) and (not self.uids or uid in self.uids)
        if self.tree is not None:
            verdict = verdict and pid in self.tree
            if exited:
                self.tree.discard(pid)
        if verdict and (self._comm is not None or self._exclude is not None):
            verdict = self._comm_allowed(comm)
        if not verdict:
            self.dropped += 1
        return verdict

    def note_child(self, pid: int, ppid: int) -> None:
        """A fork or exec record: `pid` joins the tree when its parent is in it."""
        if self.tree is not None and (ppid == self.tree_root or ppid in self.tree):
            self.tree.add(pid)

    def forget(self, pid: int) -> None:
        """A process exited whose exit record another filter dropped: its pid leaves the
        tree (a later process given the same pid is not the command's) and the uid map."""
        if self.tree is not None:
            self.tree.discard(pid)
        self._uid_of.pop(pid, None)

    def _comm_allowed(self, comm: str) -> bool:
        allowed = self._comm_ok.get(comm)
        if allowed is None:
            allowed = (self._comm is None or bool(self._comm.match(comm))) and (
                self._exclude is None or not self._exclude.match(comm)
            )
            if len(self._comm_ok) >= _MAX_COMMS:
                self._comm_ok.clear()
            self._comm_ok[comm] = allowed
        return allowed

    def tracked_pids(self) -> int:
        return len(self._uid_of)
