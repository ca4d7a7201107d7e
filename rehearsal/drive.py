"""The harness's side of a running execution: it waits, delivers events, answers approvals like a person."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

from rehearsal.clock import Event, SimClock

RUN_TIMEOUT_SECONDS = 60  # real seconds; a scenario may allow more ("wallTimeoutSeconds")
# How often the harness looks at the execution and its inbox. Each look is two moto calls that hold the GIL
# the interpreter thread needs: looking every 10 ms cost more CPU than the deployment itself.
POLL_SECONDS = 0.05


def notification_of(body: str) -> dict[str, Any]:
    """A message the topic delivered to the inbox, as the harness reads it: `event`, `stage`, `executionId`, `error`.

    The queue gets the publish's "default" message (MessageStructure=json: "sqs" falls back to "default"; moto 5.2.5
    does the same for a raw-delivery SQS subscription): for the workflow's own notifications an Amazon Q Developer
    custom notification whose structured event is `metadata.additionalContext.detail` (shared.notifications.event_of,
    the reader the notifications' own module documents); the EventBridge rules' alerts are plain JSON."""
    notifications = importlib.import_module("shared.notifications")  # the Lambda code root, on the path by now
    event: dict[str, Any] = notifications.event_of(body)
    return event


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
    answer: Callable[[str, str, str, str], None] | None = None,
    published: list[str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run until every execution ends: deliver due AWS events, answer approvals as the scenario says ("approve",
    "reject", or "ignore": nobody answers), collect every notification (one more pass after the end: the final one
    is already in the queue). `start_more()` may start another execution of the same state machine (its ARN, else
    None), driven alongside. Returns each execution's description, the first one's first, and every notification
    (each naming its execution). `answer(execution, stage, decision, reason)` answers an approval the way
    scripts/approval.py does (shared.aws.task_tokens.answer_approval: the token from the wait item, never from the
    mail); `published` receives every message body as the topic delivered it (the invariants look for tokens)."""
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
            if published is not None:
                published.append(message["Body"])
            body = notification_of(message["Body"])
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
                answered = {"approve": "approved", "reject": "rejected"}.get(decision, decision)
                events.append(Event(time.time(), f"approval requested for stage {body['stage']}: {answered}"))
                if answer is None:
                    raise RuntimeError("an approval was requested and the harness has no way to answer it")
                answer(str(body["executionId"]), str(body["stage"]), decision, f"stage {body['stage']} {answered}")
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


def approver(region: str, table: str, emulated: Any, events: list[Event]) -> Callable[[str, str, str, str], None]:
    """Answers approvals through scripts/approval.py's own path (shared.aws.task_tokens.answer_approval): the token
    is read from the stage's wait item in the lock table, the task answered, the item deleted. Run as the harness
    (a person's calls are not the workflow's: not counted)."""
    import boto3

    def answer(execution: str, stage: str, decision: str, reason: str) -> None:
        task_tokens = importlib.import_module("shared.aws.task_tokens")  # the Lambda code root, on the path by now
        counting, emulated.counting = emulated.counting, False
        try:
            done = task_tokens.answer_approval(
                task_tokens.WaitTable(table, boto3.client("dynamodb", region_name=region)),
                task_tokens.TaskTokens(boto3.client("stepfunctions", region_name=region)),
                execution,
                stage,
                decision,
                reason,
            )
        except task_tokens.NoPendingApprovalError as exc:
            events.append(Event(time.time(), f"approval of stage {stage} not answered: {exc}"))
            return
        finally:
            emulated.counting = counting
        if not done.delivered:
            events.append(Event(time.time(), f"approval of stage {stage} already closed: {done.code}"))

    return answer
