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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client

KEY_PREFIX = "wait#"
_CONDITION_FAILED = "ConditionalCheckFailedException"
# SendTaskSuccess errors meaning the task this token stood for is closed, or never was one.
TASK_CLOSED_CODES = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


def wait_key(kind: str, resource_id: str) -> str:
    return f"{KEY_PREFIX}{kind}#{resource_id}"


@dataclass(frozen=True)
class WaitItem:
    kind: str
    resource_id: str
    task_token: str
    execution_id: str
    expires_at: int


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
        self._dynamodb.put_item(
            TableName=self._table,
            Item={
                "target": {"S": wait_key(item.kind, item.resource_id)},
                "taskToken": {"S": item.task_token},
                "executionId": {"S": item.execution_id},
                "kind": {"S": item.kind},
                "resourceId": {"S": item.resource_id},
                "expiresAt": {"N": str(item.expires_at)},
            },
        )

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
        try:
            self._sfn.send_task_success(
                taskToken=task_token, output=json.dumps(output, sort_keys=True, separators=(",", ":"))
            )
        except ClientError as exc:
            code, message = _error(exc)
            if code in TASK_CLOSED_CODES:
                return TokenDelivery(delivered=False, code=code, message=message)
            raise
        return TokenDelivery(delivered=True)
