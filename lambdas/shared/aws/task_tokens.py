"""Event-driven waits: wait items in the coordination table (DynamoDB) and Step Functions SendTaskSuccess.

A wait item says "this execution's task token waits for this resource to finish". It lives in the lock
table, beside the per-target locks, under its own key prefix:
{target (partition key, S) = "wait#<kind>#<resourceId>", taskToken (S), executionId (S), kind (S),
resourceId (S), expiresAt (N, epoch seconds, the table's TTL attribute)}.
Lock items carry a `holder` and never start with "wait#", so neither kind of item can be mistaken for the other.

Putting an item overwrites the previous one of the same resource (the newest token wins); deleting is
conditional on the token, so a relay that read an old token never removes the item of a newer one.
SendTaskSuccess answering that the task is already closed (TaskTimedOut, InvalidToken, TaskDoesNotExist,
botocore's stepfunctions model) is an outcome, not an error: the execution moved on without the event.

Approvals are wait items too (kind "approval", resource id "<execution ARN>#<stage>"): the token never leaves
the table, and `answer_approval` is the one way to answer one, for scripts/approval.py (under the approver's
own IAM identity) and for the rehearsal alike. Who may read the items is the approvers' managed policy
(stacks/approvals.py: `dynamodb:LeadingKeys` on "wait#approval#<this state machine's executions>").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client

KEY_PREFIX = "wait#"
APPROVAL = "approval"  # the wait kind of an approval
APPROVAL_PREFIX = f"{KEY_PREFIX}{APPROVAL}#"
# The error a rejection sends (SendTaskFailure); the ASL's WaitForApproval ends any error but States.Timeout as
# ApprovalRejected. botocore's stepfunctions model: SendTaskFailure `error` is at most 256 characters, `cause`
# at most 32,768.
REJECTED = "Rejected"
MAX_CAUSE_LENGTH = 32768
_CONDITION_FAILED = "ConditionalCheckFailedException"
# SendTaskSuccess errors meaning the task this token stood for is closed, or never was one.
TASK_CLOSED_CODES = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


def wait_key(kind: str, resource_id: str) -> str:
    return f"{KEY_PREFIX}{kind}#{resource_id}"


def approval_resource_id(execution_arn: str, stage: str) -> str:
    """The resource id of a stage's approval in one execution (the ASL builds the same with States.Format):
    stage names never hold '#' (shared.config.Stage), so the stage is what follows the last one."""
    return f"{execution_arn}#{stage}"


@dataclass(frozen=True)
class WaitItem:
    kind: str
    resource_id: str
    task_token: str
    execution_id: str
    expires_at: int
    created_at: int | None = None  # epoch seconds; what `make status` shows as "since" (None: written before it)


@dataclass(frozen=True)
class TokenDelivery:
    """`delivered`: the waiting task was resumed. Otherwise `code`/`message` say why the task is closed."""

    delivered: bool
    code: str | None = None
    message: str = ""


def _to_item(raw: dict[str, Any] | None) -> WaitItem | None:
    if not raw or "taskToken" not in raw:
        return None
    return WaitItem(
        kind=raw.get("kind", {}).get("S", ""),
        resource_id=raw.get("resourceId", {}).get("S", ""),
        task_token=raw["taskToken"]["S"],
        execution_id=raw.get("executionId", {}).get("S", ""),
        expires_at=int(raw.get("expiresAt", {}).get("N", "0")),
        created_at=int(raw["createdAt"]["N"]) if "createdAt" in raw else None,
    )


def _error(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", ""))


class WaitTable:
    def __init__(self, table_name: str, dynamodb: Any = None) -> None:
        self._table = table_name
        self._dynamodb = adapter_client(dynamodb, "dynamodb")

    def put(self, item: WaitItem) -> None:
        """PutItem, replacing any earlier wait for the same resource."""
        record: dict[str, Any] = {
            "target": {"S": wait_key(item.kind, item.resource_id)},
            "taskToken": {"S": item.task_token},
            "executionId": {"S": item.execution_id},
            "kind": {"S": item.kind},
            "resourceId": {"S": item.resource_id},
            "expiresAt": {"N": str(item.expires_at)},
        }
        if item.created_at is not None:
            record["createdAt"] = {"N": str(item.created_at)}
        self._dynamodb.put_item(TableName=self._table, Item=record)

    def get(self, kind: str, resource_id: str) -> WaitItem | None:
        response = self._dynamodb.get_item(
            TableName=self._table, Key={"target": {"S": wait_key(kind, resource_id)}}, ConsistentRead=True
        )
        return _to_item(response.get("Item"))

    def delete_if_token(self, kind: str, resource_id: str, task_token: str) -> bool:
        """DeleteItem when it still holds `task_token`; False when it holds another token or is gone."""
        try:
            self._dynamodb.delete_item(
                TableName=self._table,
                Key={"target": {"S": wait_key(kind, resource_id)}},
                ConditionExpression="taskToken = :token",
                ExpressionAttributeValues={":token": {"S": task_token}},
            )
        except ClientError as exc:
            if _error(exc)[0] == _CONDITION_FAILED:
                return False
            raise
        return True


class TaskTokens:
    def __init__(self, stepfunctions: Any = None) -> None:
        self._sfn = adapter_client(stepfunctions, "stepfunctions")

    def send_success(self, task_token: str, output: Mapping[str, Any]) -> TokenDelivery:
        """SendTaskSuccess with `output` as compact JSON (sorted keys); a closed task is an outcome."""
        return _deliver(
            lambda: self._sfn.send_task_success(
                taskToken=task_token, output=json.dumps(output, sort_keys=True, separators=(",", ":"))
            )
        )

    def send_failure(self, task_token: str, error: str, cause: str) -> TokenDelivery:
        """SendTaskFailure (the cause cut to the API's 32,768 characters); a closed task is an outcome."""
        return _deliver(
            lambda: self._sfn.send_task_failure(taskToken=task_token, error=error, cause=cause[:MAX_CAUSE_LENGTH])
        )


def _deliver(send: Callable[[], object]) -> TokenDelivery:
    """One SendTask* call: delivered, or the task was already closed (an outcome, not an error)."""
    try:
        send()
    except ClientError as exc:
        code, message = _error(exc)
        if code in TASK_CLOSED_CODES:
            return TokenDelivery(delivered=False, code=code, message=message)
        raise
    return TokenDelivery(delivered=True)


Decision = Literal["approve", "reject"]


class NoPendingApprovalError(LookupError):
    """No approval item for this execution and stage: never requested, already answered, or not yet written."""


@dataclass(frozen=True)
class ApprovalAnswer:
    """What answering did. `delivered` False: the task was already closed (`code`: TaskTimedOut, InvalidToken...),
    the answer changed nothing; the stale item is deleted either way."""

    execution_id: str
    stage: str
    decision: Decision
    delivered: bool
    code: str | None = None
    message: str = ""
    item_deleted: bool = False


def answer_approval(
    waits: WaitTable,
    tokens: TaskTokens,
    execution_arn: str,
    stage: str,
    decision: Decision,
    reason: str | None = None,
) -> ApprovalAnswer:
    """Approve (SendTaskSuccess) or reject (SendTaskFailure, error `Rejected`) the stage's pending approval with the
    token its wait item holds, then delete the item if it still holds that token. Raises NoPendingApprovalError."""
    resource_id = approval_resource_id(execution_arn, stage)
    item = waits.get(APPROVAL, resource_id)
    if item is None:
        raise NoPendingApprovalError(
            f"no pending approval for stage {stage!r} of {execution_arn} (never requested, already answered, "
            "or requested a moment ago and not written yet)"
        )
    if decision == "approve":
        output: dict[str, Any] = {"decision": "approved", "stage": stage}
        if reason:
            output["reason"] = reason
        delivery = tokens.send_success(item.task_token, output)
    else:
        delivery = tokens.send_failure(item.task_token, REJECTED, reason or f"stage {stage} rejected")
    deleted = waits.delete_if_token(APPROVAL, resource_id, item.task_token)
    return ApprovalAnswer(
        execution_id=execution_arn,
        stage=stage,
        decision=decision,
        delivered=delivery.delivered,
        code=delivery.code,
        message=delivery.message,
        item_deleted=deleted,
    )
