"""A task's TimeoutSeconds and HeartbeatSeconds deadlines on simulated time (rehearsal.clock.TaskDeadlines), the
rules the seam's token wait is judged by, without moto."""

from __future__ import annotations

import pytest

from rehearsal.clock import HEARTBEAT_TIMEOUT, TIMEOUT, TaskClock, TaskDeadlines


def test_an_answer_counts_until_the_task_timeout_and_not_after() -> None:
    # Given a task started at 100 s with a 60 s timeout and no heartbeat
    deadlines = TaskDeadlines(100.0, 60.0, None, simulated=True)
    # When answers arrive / Then one at the deadline is on time, one after it finds the task timed out
    assert deadlines.missed(160.0) is None
    assert deadlines.missed(160.5) == TIMEOUT


def test_each_heartbeat_restarts_the_heartbeat_clock() -> None:
    # Given a 200 s task with a 30 s heartbeat, started at 0
    deadlines = TaskDeadlines(0.0, 200.0, 30.0, simulated=True)
    # When heartbeats come every 25 s / Then each is on time, though the first deadline (30 s) has passed
    for at in (25.0, 50.0, 75.0):
        assert deadlines.heartbeat(at) is None
    # and a heartbeat more than 30 s after the last one comes too late
    assert deadlines.heartbeat(106.0) == HEARTBEAT_TIMEOUT


def test_heartbeats_do_not_extend_the_task_timeout() -> None:
    # Given a 100 s task with a 30 s heartbeat, its heartbeats on time up to 90 s
    deadlines = TaskDeadlines(0.0, 100.0, 30.0, simulated=True)
    for at in (25.0, 50.0, 75.0, 90.0):
        assert deadlines.heartbeat(at) is None
    # When the answer comes at 101 s / Then the task has timed out, whatever the heartbeats said
    assert deadlines.missed(101.0) == TIMEOUT


def test_a_heartbeat_deadline_past_the_task_timeout_is_the_timeout() -> None:
    # Given a 20 s task whose heartbeat interval (30 s) outlasts it
    deadlines = TaskDeadlines(0.0, 20.0, 30.0, simulated=True)
    # When an answer comes at 31 s, or nobody answers / Then the task timed out, at 20 s
    assert deadlines.missed(31.0) == TIMEOUT
    assert deadlines.unanswered(5.0) == (TIMEOUT, 15.0)


@pytest.mark.parametrize(("at", "expected"), [(10.0, (HEARTBEAT_TIMEOUT, 20.0)), (40.0, (HEARTBEAT_TIMEOUT, 0.0))])
def test_an_unanswered_task_ends_at_its_first_deadline(at: float, expected: tuple[str, float]) -> None:
    # Given a 300 s task with a 30 s heartbeat, started at 0, that nobody will answer
    deadlines = TaskDeadlines(0.0, 300.0, 30.0, simulated=True)
    # When the wait gives up at `at` / Then the clock moves to the heartbeat deadline (never backwards)
    assert deadlines.unanswered(at) == expected


def test_without_the_simulated_clock_nothing_is_late_and_a_missed_deadline_costs_its_interval() -> None:
    # Given deadlines without a simulated clock
    deadlines = TaskDeadlines(0.0, 60.0, None, simulated=False)
    # When an answer comes at any time / Then it counts, and an unanswered task costs its whole timeout
    assert deadlines.missed(1e9) is None
    assert deadlines.unanswered(0.0) == (TIMEOUT, 60.0)


def test_a_task_deadlines_count_from_its_start_or_from_now_if_its_start_was_not_seen() -> None:
    # Given a task clock at simulated time 10 s, and a task started then
    now = [10.0]
    clock = TaskClock(lambda: now[0])
    task, unseen = _Task(), _Task()
    clock.started(task)
    # When its deadlines are asked for at 50 s
    now[0] = 50.0
    deadlines, unseen_deadlines = clock.deadlines(task, 60.0, None), clock.deadlines(unseen, 60.0, None)
    # Then its 60 s timeout ends at 70 s; the unseen task's at 110 s
    assert deadlines.missed(70.0) is None
    assert deadlines.missed(71.0) == TIMEOUT
    assert unseen_deadlines.missed(110.0) is None
    assert unseen_deadlines.missed(111.0) == TIMEOUT


class _Task:
    """A running task, as the task clock keys it (weakly: moto's environment of the task)."""
