"""Keep Python's cyclic garbage collector from pausing capture.

The dashboard store keeps up to 100,000 events as dicts: close to a million tracked
objects. A full collection walks all of them (about 2 s on this machine) while every
thread, the ring-buffer poller included, waits. Kept events hold no reference cycles,
so reference counting frees them; the collector only needs to look at what is new.

`GcCheckpoint.note(n)` counts objects made long-lived; every `every` of them it runs one
full collection (cheap: only what is not frozen yet) and then `gc.freeze()`s the
survivors, which moves them out of every later collection. Frozen objects are still freed
by reference counting when the store drops them.
"""

from __future__ import annotations

import gc
import threading


class GcCheckpoint:
    def __init__(self, every: int = 5000) -> None:
        self.every = every
        self._pending = 0
        self._lock = threading.Lock()
        self.checkpoints = 0

    def note(self, n: int) -> None:
        with self._lock:
            self._pending += n
            if self._pending < self.every:
                return
            self._pending = 0
        gc.collect()
        gc.freeze()
        self.checkpoints += 1


# One for the process: freezing is process-wide.
checkpoint = GcCheckpoint()
