"""Simulated time and the workflow's activity: what lets a rehearsal skip every wait and still keep order.

- `SimClock`: real elapsed time plus every wait the seam skipped (a Wait state, a Retry interval, a
  timed-out task token), so a 4-hour bake costs no real time.
- `EventQueue`: AWS events (a build or refresh ending) due at a simulated time, delivered in time order
  once every branch of the workflow is waiting.
- `Activity`: whether anything is happening, so a task token nobody will answer times out only when all
  else is quiet.
- `TaskClock` and `TaskDeadlines`: when each task started, and whether an answer or heartbeat on simulated time
  comes before the task's TimeoutSeconds and HeartbeatSeconds deadlines.
- `SleepAdvances`: a stand-in for the `time` module whose `sleep` moves the simulated clock instead.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

IDLE_SECONDS = 0.05  # no activity for this long: an unanswered task token can time out
QUIET_SECONDS = 0.05  # no activity for this long: every branch waits, the next AWS event may happen
MAX_REAL_WAIT_SECONDS = 30.0  # a token unanswered this long in real time is a rehearsal bug: time it out
TOKEN_POLL_SECONDS = 0.02  # how often a token wait looks for its answer (real time)
# The errors of a task that missed a deadline (AWS Step Functions Developer Guide, "Handling errors in Step
# Functions workflows", error names).
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"


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


class SleepAdvances:
    """Stands in for the `time` module: sleeping advances the simulated clock; everything else is `time`'s."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        self._advance = advance

    def sleep(self, seconds: float) -> None:
        self._advance(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class TaskClock:
    """When each running task started, on the simulated clock `now` (None: no simulated clock, every task starts
    at 0 and nothing arrives late)."""

    def __init__(self, now: Callable[[], float] | None) -> None:
        self._now = now
        self._started: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def now(self) -> float:
        return self._now() if self._now is not None else 0.0

    def started(self, task: Any) -> None:
        """The task starts (before its service call): its deadlines count from here.

        AWS States Language, Task state: TimeoutSeconds "If the task runs longer than the specified seconds,
        this state fails"; moto's own note on the field: "The count begins after the task has been started"."""
        self._started[task] = self.now()

    def deadlines(self, task: Any, timeout_seconds: float, heartbeat_seconds: float | None) -> TaskDeadlines:
        """The task's deadlines, counted from its start (now, if its start was not seen)."""
        start = self._started.pop(task, None)
        start = self.now() if start is None else start
        return TaskDeadlines(start, timeout_seconds, heartbeat_seconds, simulated=self._now is not None)


class TaskDeadlines:
    """A task's TimeoutSeconds deadline and, if it has HeartbeatSeconds, its heartbeat's.

    AWS Step Functions API Reference, SendTaskHeartbeat: "The Timeout of a task ... is its maximum allowed
    duration, regardless of the number of SendTaskHeartbeat requests received. Use HeartbeatSeconds to
    configure the timeout interval for heartbeats"; each heartbeat "resets the Heartbeat clock"."""

    def __init__(
        self, start: float, timeout_seconds: float, heartbeat_seconds: float | None, *, simulated: bool
    ) -> None:
        self._timeout_seconds = timeout_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._simulated = simulated
        self._deadline = start + timeout_seconds
        self._beat_deadline = start + heartbeat_seconds if heartbeat_seconds is not None else None

    def missed(self, at: float) -> str | None:
        """What an answer or heartbeat arriving at simulated time `at` finds: None while the task still waits,
        else the error of the deadline it has missed (TIMEOUT or HEARTBEAT_TIMEOUT)."""
        if not self._simulated:
            return None
        if self._beat_deadline is not None and at > self._beat_deadline and self._beat_deadline < self._deadline:
            return HEARTBEAT_TIMEOUT
        if at > self._deadline:
            return TIMEOUT
        return None

    def heartbeat(self, at: float) -> str | None:
        """A heartbeat at `at`: the deadline it came too late for, or None and the heartbeat clock starts again."""
        missed = self.missed(at)
        if missed is None:
            self._beat_deadline = at + float(self._heartbeat_seconds or 0)
        return missed

    def unanswered(self, at: float) -> tuple[str, float]:
        """Nobody will answer: the deadline the task misses first, and the simulated seconds from `at` to it
        (without the simulated clock, the whole interval)."""
        if self._beat_deadline is not None and self._beat_deadline < self._deadline:
            return HEARTBEAT_TIMEOUT, self._until(self._beat_deadline, at, self._heartbeat_seconds or 0.0)
        return TIMEOUT, self._until(self._deadline, at, self._timeout_seconds)

    def _until(self, deadline: float, at: float, full: float) -> float:
        return max(0.0, deadline - at) if self._simulated else full


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
