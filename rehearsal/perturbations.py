"""What happens in the world while the deployment runs, as the scenario says: AWS's completion events,
another deployment holding or taking a lock, an alarm going off."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from rehearsal.clock import QUIET_SECONDS, Activity, Event, EventQueue, SimClock
from rehearsal.invariants import history_of


def relay_completion(
    dispatcher: Any,
    emulated: Any,
    clock: SimClock,
    scenario: dict[str, Any],
    events: list[Event],
    queue: EventQueue,
) -> Any:
    """After register_wait: the resource will end at a simulated time, and AWS will emit its event then.

    The harness delivers it (to the real relay_event handler, as EventBridge would) when the workflow
    is waiting, unless the scenario loses it (`lostEvents`): then the task token times out and the
    fallback poll takes over.
    """
    lost = {kind: int(count) for kind, count in scenario.get("lostEvents", {}).items()}

    def after_register(event: dict[str, Any], result: dict[str, Any]) -> None:
        if result.get("alreadyDone") or event["kind"] == "approval":  # a person answers an approval (drive.py)
            return
        kind, resource_id = event["kind"], event["resourceId"]
        status, seconds = emulated.finish(kind, resource_id)
        if status is None:
            dispatcher.activity.unanswered_token()  # still running for good: only the fallback poll can see it
            return
        if lost.get(kind, 0) > 0:
            lost[kind] -= 1
            events.append(Event(time.time(), f"{kind} {status}: its event will be lost (scenario)"))
            dispatcher.activity.unanswered_token()
            return
        queue.push(clock.now() + seconds, kind, resource_id, status)

    return after_register


def foreign_lock_release(after: int, emulated: Any, events: list[Event], table: str) -> Any:
    """The other deployment finishes and releases its lock after `after` acquire attempts of ours."""
    import boto3

    def release(event: dict[str, Any], attempt: int) -> None:
        if event.get("action") != "acquire" or attempt <= after:
            return
        dynamodb = boto3.client("dynamodb")
        emulated.counting = False
        try:
            for item in dynamodb.scan(TableName=table)["Items"]:
                if item["holder"]["S"] != event["executionId"]:
                    dynamodb.delete_item(TableName=table, Key={"target": item["target"]})
                    events.append(
                        Event(time.time(), f"the other deployment released its lock on {item['target']['S']}")
                    )
        finally:
            emulated.counting = True

    return release


def alarm_during_soak(alarm: str, emulated: Any, events: list[Event]) -> Any:
    """The alarm goes off while green soaks (at its first soaking check): green must be given up."""
    import boto3

    def fire(event: dict[str, Any], result: dict[str, Any]) -> None:
        if result.get("verdict") != "Soaking":
            return
        emulated.counting = False
        try:
            boto3.client("cloudwatch").set_alarm_state(
                AlarmName=alarm, StateValue="ALARM", StateReason="rehearsal: 5XX from the green instances"
            )
        finally:
            emulated.counting = True
        events.append(Event(time.time(), f"alarm {alarm} went to ALARM while green soaked"))

    return fire


def deliverer(dispatcher: Any, emulated: Any, clock: SimClock, queue: EventQueue, activity: Activity) -> Any:
    """Deliver the next due AWS event once the workflow has gone quiet (every branch is waiting)."""

    def deliver() -> None:
        if not len(queue) or activity.quiet_for() < QUIET_SECONDS:
            return
        due = queue.pop()
        if due is None:
            return
        at, kind, resource_id, status = due
        clock.advance(max(0.0, at - clock.now()))
        # EventBridge invokes relay_event (its rules' target; the function's resource policy allows the rules).
        dispatcher.invoke(dispatcher.arn_of("relay_event"), json.dumps(emulated.event(kind, resource_id, status)))

    return deliver


def lock_taken_meanwhile(
    stage: str, execution: str, events: list[Event], world: Any, sim_epoch: Callable[[], float] = time.time
) -> None:
    """While the stage waits for approval, our locks on its targets expire and another deployment takes them
    (for an hour of simulated time: the lock function compares expiries with the simulated clock)."""
    import boto3

    dynamodb = boto3.client("dynamodb")
    config = world.config
    groups = [t["autoScalingGroupName"] for s in config["stages"] if s["name"] == stage for t in s["targets"]]
    other = execution.rsplit(":", 1)[0] + ":a-later-push"
    for group in groups:
        dynamodb.put_item(
            TableName=world.lock_table,
            Item={"target": {"S": group}, "holder": {"S": other}, "expiresAt": {"N": str(int(sim_epoch()) + 3600)}},
        )
    events.append(Event(time.time(), f"our locks on {', '.join(groups)} expired; {other.rsplit(':', 1)[-1]} took them"))


def execution_ended(dispatcher: Any, state_machine: str, description: dict[str, Any], events: list[Event]) -> None:
    """Step Functions emits "Step Functions Execution Status Change" to EventBridge when an execution ends (Amazon
    EventBridge events reference, "AWS Step Functions events"; best effort); the stack's rule sends FAILED,
    TIMED_OUT and ABORTED to finish_execution. The harness delivers it as EventBridge would."""
    if description["status"] not in ("FAILED", "TIMED_OUT", "ABORTED"):
        return
    detail = {
        "executionArn": description["executionArn"],
        "stateMachineArn": state_machine,
        "name": description.get("name"),
        "status": description["status"],
        "startDate": int(description["startDate"].timestamp() * 1000) if description.get("startDate") else None,
        "stopDate": int(description["stopDate"].timestamp() * 1000) if description.get("stopDate") else None,
        "error": description.get("error"),
        "cause": description.get("cause"),
    }
    event = {
        "version": "0",
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": detail,
    }
    dispatcher.invoke(dispatcher.arn_of("finish_execution"), json.dumps(event))
    events.append(Event(time.time(), f"EventBridge: execution {description['status']} → finish_execution"))


class SecondExecution:
    """`alsoStart`: another deployment starts on the same state machine while the first runs.

    `{"input": {...}, "when": "<state>", "holdUntil": "<state>", "after": "first" | "previous"}`: once the watched
    execution (the first, or with `after: previous` the one the scenario's previous `alsoStart` started) has
    entered the state `when`, the harness calls StartExecution with `input`, as another push or a person would, and
    drives all of them to their end. Until the new execution has itself entered `holdUntil` (default `when`; a
    queued push reaches `JoinQueue`, never the state the first is in), or ended, no AWS event is delivered and no
    unanswered task token times out: its first steps take seconds where a bake takes minutes, so the simulated
    clock does not jump past the first execution's build before the new one has caught up. Each execution's
    history is read only until it is seen in the state looked for.

    The hold is on real time, so a loaded machine makes it longer, never shorter: letting the world move on
    before the new execution is where the scenario puts it would rehearse another story (the first finishes and
    the queued push takes the lock before the newer push arrives). If it is not there after `HOLD_REAL_SECONDS`,
    the world moves on and `late` says so: the harness invariant fails the scenario with that reason.
    """

    HOLD_REAL_SECONDS = 180.0

    def __init__(
        self,
        sfn: Any,
        state_machine: str,
        first: str | Callable[[], str | None],
        spec: dict[str, Any],
        execution_input: dict[str, Any],
        name: str,
        activity: Activity,
        clock: SimClock,
        events: list[Event],
    ) -> None:
        self._sfn = sfn
        self._machine = state_machine
        self._first = first
        self.when = str(spec["when"])
        self.hold_until = str(spec.get("holdUntil", self.when))
        self._input = execution_input
        self._name = name
        self._activity = activity
        self._clock = clock
        self._events = events
        self.execution: str | None = None
        self.started_at: float | None = None  # simulated seconds
        self.never: str | None = None  # why it was never started
        self._held_since: float | None = None
        self.late: str | None = None  # why the world moved on before the execution reached `holdUntil`
        # The `alsoStart` that watches this one (`after: previous`): the world stays held until it has started too,
        # or it never will, so nothing moves between this execution reaching `holdUntil` and the next one starting.
        self.successor: SecondExecution | None = None

    def _entered(self, execution: str, state: str) -> tuple[bool, bool]:
        """(has it entered `state`, has it ended)."""
        history = history_of(self._sfn, execution)
        entered = any(
            e["type"].endswith("StateEntered") and e["stateEnteredEventDetails"]["name"] == state for e in history
        )
        ended = any(e["type"] in _EXECUTION_ENDED for e in history)
        return entered, ended

    def poll(self) -> str | None:
        """Called by the harness at every look: the second execution's ARN when it starts now, else None."""
        if self.never is not None:
            return None
        if self.execution is None:
            watched = self._first() if callable(self._first) else self._first
            if watched is None:
                return None  # the execution to watch has not started yet
            entered, ended = self._entered(watched, self.when)
            if not entered:
                if ended:
                    who = "the first execution" if not callable(self._first) else watched.rsplit(":", 1)[-1]
                    self.never = f"{who} ended without entering {self.when}"
                return None
            self._activity.begin()  # hold the world still while the second deployment starts
            self._held_since = time.time()
            self.execution = str(
                self._sfn.start_execution(
                    stateMachineArn=self._machine, name=self._name, input=json.dumps(self._input)
                )["executionArn"]
            )
            self.started_at = self._clock.now()
            self._events.append(
                Event(
                    time.time(),
                    f"another deployment starts: {self._name} ({watched.rsplit(':', 1)[-1]} in {self.when})",
                )
            )
            return self.execution
        if self._held_since is not None:
            entered, ended = self._entered(self.execution, self.hold_until)
            overdue = time.time() - self._held_since > self.HOLD_REAL_SECONDS
            successor = self.successor
            handed_over = successor is None or successor.execution is not None or successor.never is not None
            if ((entered or ended) and handed_over) or overdue:
                self._held_since = None
                self._activity.end()
                why = f"is in {self.hold_until}" if entered else ("ended" if ended else "is slow to start")
                if not (entered or ended):
                    self.late = (
                        f"{self._name} did not reach {self.hold_until} within {self.HOLD_REAL_SECONDS:.0f}s of real "
                        "time: the world moved on without it, so the scenario's story did not happen"
                    )
                self._events.append(Event(time.time(), f"{self._name} {why}: AWS events are delivered again"))
        return None

    @property
    def held(self) -> bool:
        """The world is held until this execution has reached `holdUntil`."""
        return self._held_since is not None

    def release(self) -> None:
        """The run is over: never leave the world held."""
        if self._held_since is not None:
            self._held_since = None
            self._activity.end()


class StopWhen:
    """`stopWhen: {"state": "<state>"}`: a person stops the first execution (StopExecution) once it has entered the
    state, as from the console or `aws stepfunctions stop-execution`. Step Functions runs no Catch then: the
    execution ends ABORTED ("StopExecution", AWS Step Functions API Reference), and its status change reaches
    finish_execution through EventBridge (the harness's `ended` hook)."""

    def __init__(self, sfn: Any, execution: str, spec: dict[str, Any], events: list[Event]) -> None:
        self._sfn = sfn
        self._execution = execution
        self.state = str(spec["state"])
        self._events = events
        self.stopped = False

    def poll(self) -> None:
        if self.stopped:
            return
        history = history_of(self._sfn, self._execution)
        if any(e["type"] in _EXECUTION_ENDED for e in history):
            self.stopped = True  # ended before the state: nothing to stop (the scenario's expect says so)
            return
        if any(
            e["type"].endswith("StateEntered") and e["stateEnteredEventDetails"]["name"] == self.state for e in history
        ):
            self._sfn.stop_execution(
                executionArn=self._execution, error="StoppedByOperator", cause=f"stopped in {self.state}"
            )
            self.stopped = True
            self._events.append(Event(time.time(), f"an operator stops the execution while it is in {self.state}"))


_EXECUTION_ENDED = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}
