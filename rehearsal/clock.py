"""Simulated time and the workflow's activity: what lets a rehearsal skip every wait and still keep order.

- `SimClock`: real elapsed time plus every wait the seam skipped (a Wait state, a Retry interval, a
  timed-out task token), so a 4-hour bake costs no real time.
- `EventQueue`: AWS events (a build or refresh ending) due at a simulated time, delivered in time order
  once every branch of the workflow is waiting.
- `Activity`: whether anything is happening, so a task token nobody will answer times out only when all
  else is quiet.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

IDLE_SECONDS = 0.05  # no activity for this long: an unanswered task token can time out
QUIET_SECONDS = 0.05  # no activity for this long: every branch waits, the next AWS event may happen


class EventQueue:
    """AWS events due at a simulated time: delivered in time order when the workflow is waiting."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, str, str]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def push(self, at: float, kind: str, resource_id: str, status: str) -> None:
        with self._lock:
            heapq.heappush(self._heap, (at, next(self._seq), kind, resource_id, status))

    def pop(self) -> tuple[float, str, str, str] | None:
        with self._lock:
            if not self._heap:
                return None
            at, _, kind, resource_id, status = heapq.heappop(self._heap)
            return at, kind, resource_id, status

    def __len__(self) -> int:
        return len(self._heap)


class Activity:
    """What the rehearsal is doing: tokens nobody will answer time out once everything else is quiet."""

    def __init__(self, queue: EventQueue | None = None) -> None:
        self._last = time.time()
        self._busy = 0
        self._unanswered = 0
        self._lock = threading.Lock()
        self._queue = queue if queue is not None else EventQueue()

    def unanswered_token(self) -> None:
        with self._lock:
            self._unanswered += 1

    def take_timeout(self) -> bool:
        """True once per unanswered token, when nothing else is happening."""
        with self._lock:
            if (
                self._unanswered
                and not self._busy
                and not len(self._queue)
                and time.time() - self._last >= IDLE_SECONDS
            ):
                self._unanswered -= 1
                return True
            return False

    def touch(self) -> None:
        self._last = time.time()

    def quiet_for(self) -> float:
        return 0.0 if self._busy else time.time() - self._last

    def begin(self) -> None:
        with self._lock:
            self._busy += 1
        self.touch()

    def end(self) -> None:
        with self._lock:
            self._busy -= 1
        self.touch()


class SimClock:
    """Real elapsed time plus every wait the seam skipped: the deployment's simulated time."""

    def __init__(self) -> None:
        self._start = time.time()
        self._lock = threading.Lock()
        self._real: list[float] = [self._start]
        self._offset: list[float] = [0.0]

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._real.append(time.time())
            self._offset.append(self._offset[-1] + max(0.0, seconds))

    def at(self, real_timestamp: float) -> float:
        index = bisect.bisect_right(self._real, real_timestamp) - 1
        return real_timestamp - self._start + self._offset[max(index, 0)]

    def now(self) -> float:
        return self.at(time.time())


# The state machine's Lambda invocation running on this thread (rehearsal.timeline.Source), if any.
_running = threading.local()


def running_invocation() -> tuple[str, str, int] | None:
    """The invocation whose thread this is: what an event made now belongs to (None: the harness's own thread)."""
    source: tuple[str, str, int] | None = getattr(_running, "source", None)
    return source


@contextlib.contextmanager
def attributed_to(source: tuple[str, str, int]) -> Iterator[None]:
    """Every Event made on this thread inside the block belongs to `source`; a nested invocation (relay_event
    from register_wait's hook) stays the outer one's: its state is the one that caused it."""
    outer = running_invocation()
    _running.source = outer or source
    try:
        yield
    finally:
        _running.source = outer


@dataclass
class Event:
    """Something that happened in the emulated world, said in words. `source` is the state machine's invocation
    it happened during (set from the thread that made it), so the timeline can put it under the state that caused
    it rather than under whichever state another branch entered meanwhile."""

    real: float
    text: str
    source: tuple[str, str, int] | None = field(default_factory=running_invocation)
