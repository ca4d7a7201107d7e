"""The harness's side of a running execution: it waits, delivers events, answers approvals like a person."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from rehearsal.clock import Event, SimClock

RUN_TIMEOUT_SECONDS = 60  # real seconds; a scenario may allow more ("wallTimeoutSeconds")
# How often the harness looks at the execution and its inbox. Each look is two moto calls that hold the GIL
# the interpreter thread needs: looking every 10 ms cost more CPU than the deployment itself.
POLL_SECONDS = 0.05


def drive(
    sfn: Any,
    sqs: Any,
    queue_url: str,
    execution: str,
    scenario: dict[str, Any],
    events: list[Event],
    clock: SimClock,
    deliver: Any = lambda: None,
    lock_taken: Any = lambda stage: None,
    unanswered: Any = lambda: None,
    ended: Any = lambda description: None,
    start_more: Callable[[], str | None] = lambda: None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run until every execution ends: deliver due AWS events, answer approvals as the scenario says ("approve",
    "reject", or "ignore": nobody answers), collect every notification (one more pass after the end: the final one
    is already in the queue). `start_more()` may start another execution of the same state machine (its ARN, else
    None), driven alongside. Returns each execution's description, the first one's first, and every notification
    (each naming its execution)."""
    approvals = dict(scenario.get("approvals", {}))
    notifications: list[dict[str, Any]] = []
    wall_timeout = float(scenario.get("wallTimeoutSeconds", RUN_TIMEOUT_SECONDS))
    deadline = time.time() + wall_timeout
    drained = False
    executions = [execution]
    finished: set[str] = set()
    while True:
        started = start_more()
        if started is not None:
            executions.append(started)
        deliver()
        descriptions = [sfn.describe_execution(executionArn=arn) for arn in executions]
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            if body.get("event") == "ApprovalRequested":
                notifications.append(
                    {"event": "ApprovalRequested", "stage": body["stage"], "executionId": body.get("executionId")}
                )
                decision = approvals.get(body["stage"], "approve")
                if body["stage"] in scenario.get("lockTakenDuringApproval", []):
                    lock_taken(body["stage"])
                if decision == "ignore":  # nobody answers: the task token times out at approval.timeoutHours
                    unanswered()
                    events.append(Event(time.time(), f"approval requested for stage {body['stage']}: nobody answers"))
                    continue
                clock.advance(float(scenario.get("approvalDelaySeconds", 600)))  # the person takes ten minutes
                events.append(Event(time.time(), f"approval requested for stage {body['stage']}: {decision}d"))
                if decision == "approve":
                    sfn.send_task_success(taskToken=body["taskToken"], output="{}")
                else:
                    sfn.send_task_failure(
                        taskToken=body["taskToken"], error="Rejected", cause=f"stage {body['stage']} rejected"
                    )
            else:
                notifications.append(body)
                events.append(Event(time.time(), f"notification: {body.get('event')}"))
        for description in descriptions:
            if description["status"] != "RUNNING" and description["executionArn"] not in finished:
                finished.add(description["executionArn"])
                ended(description)  # EventBridge delivers the execution's status change
        if all(d["status"] != "RUNNING" for d in descriptions):
            if drained:
                return descriptions, notifications
            drained = True  # one more pass: the final notification is already in the queue
            continue
        if time.time() > deadline:
            # Stopped, and reported as it stands (the invariants name the timeout): a hang is a finding too.
            cause = f"the rehearsal did not finish within {wall_timeout:.0f}s of real time"
            for description in descriptions:
                if description["status"] == "RUNNING":
                    sfn.stop_execution(executionArn=description["executionArn"], error="RehearsalTimeout", cause=cause)
            events.append(Event(time.time(), f"rehearsal stopped the execution: {cause}"))
            deadline = float("inf")
        time.sleep(POLL_SECONDS)
