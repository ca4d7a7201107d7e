"""The per-target lock table (DynamoDB): locks and queued deployments; conditional put, read, conditional delete.

Lock item: {target (partition key, S) = the Auto Scaling group name, holder (S), expiresAt (N, epoch seconds, the
table's TTL attribute), acquiredAt (N)}. A lock is free when the item is absent or expired (DynamoDB's TTL deletes
expired items only eventually, so every request compares expiresAt itself). Who may take a lock is the caller's
decision; this adapter only states the conditions in DynamoDB's terms and reports their outcome.

Queued deployment (a push that found its targets locked and waits for them, lambdas/lock): {target (S) =
"queue#<execution ARN>", executionId (S), targets (L of S, sorted group names), action (S), commit (S)?,
branch (S)?, trigger (S), startedAt (N, the execution's start), queuedAt (N, when it first queued), blockedBy (S)?,
taskToken (S: the waiting task's, a secret never logged or printed), expiresAt (N)}. Group names are at most 255
characters and a queue key holds an execution ARN after its prefix, so neither kind is mistaken for the other;
the wait items of shared.aws.task_tokens ("wait#...") share the table too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client

_CONDITION_FAILED = "ConditionalCheckFailedException"
QUEUE_PREFIX = "queue#"
# Free, expired, or already ours (a retried acquire by the same execution refreshes its expiry).
_ACQUIRE_CONDITION = "attribute_not_exists(#t) OR expiresAt < :now OR holder = :me"


@dataclass(frozen=True)
class LockItem:
    target: str
    holder: str
    expires_at: int
    acquired_at: int | None = None
    # What the holder deploys, when it said so: a queued push older than a pushed deployment holding all its
    # targets is superseded by it (lambdas/lock). None for locks written before the queue existed.
    action: str | None = None
    when_busy: str | None = None
    started_at: int | None = None


@dataclass(frozen=True)
class PutOutcome:
    """`written`: the lock is ours now. `previous`: the item before the call (the blocking one when not written)."""

    written: bool
    previous: LockItem | None


@dataclass(frozen=True)
class QueuedDeployment:
    """A deployment waiting for its targets' locks. `started_at` orders pushes: the later one supersedes."""

    execution_id: str
    targets: tuple[str, ...]
    action: str
    trigger: str
    started_at: int
    queued_at: int
    task_token: str
    expires_at: int
    commit: str | None = None
    branch: str | None = None
    blocked_by: str | None = None


def queue_key(execution_id: str) -> str:
    return f"{QUEUE_PREFIX}{execution_id}"


def _to_item(raw: dict[str, Any] | None) -> LockItem | None:
    if not raw or "target" not in raw or "holder" not in raw:
        return None
    acquired = raw.get("acquiredAt", {}).get("N")
    started = raw.get("startedAt", {}).get("N")
    return LockItem(
        target=raw["target"]["S"],
        holder=raw.get("holder", {}).get("S", ""),
        expires_at=int(raw.get("expiresAt", {}).get("N", "0")),
        acquired_at=int(acquired) if acquired is not None else None,
        action=raw.get("action", {}).get("S"),
        when_busy=raw.get("whenBusy", {}).get("S"),
        started_at=int(started) if started is not None else None,
    )


def _to_queued(raw: dict[str, Any]) -> QueuedDeployment | None:
    if not raw.get("target", {}).get("S", "").startswith(QUEUE_PREFIX) or "taskToken" not in raw:
        return None

    def text(name: str) -> str | None:
        value = raw.get(name, {}).get("S")
        return str(value) if value is not None else None

    return QueuedDeployment(
        execution_id=raw["executionId"]["S"],
        targets=tuple(sorted(t["S"] for t in raw.get("targets", {}).get("L", []))),
        action=raw.get("action", {}).get("S", ""),
        trigger=raw.get("trigger", {}).get("S", ""),
        started_at=int(raw.get("startedAt", {}).get("N", "0")),
        queued_at=int(raw.get("queuedAt", {}).get("N", "0")),
        task_token=raw["taskToken"]["S"],
        expires_at=int(raw.get("expiresAt", {}).get("N", "0")),
        commit=text("commit"),
        branch=text("branch"),
        blocked_by=text("blockedBy"),
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class LockTable:
    def __init__(self, table_name: str, dynamodb: Any = None) -> None:
        self._table = table_name
        self._dynamodb = adapter_client(dynamodb, "dynamodb")

    def put_if_free(self, lock: LockItem) -> PutOutcome:
        """PutItem `lock` unless another holder's lock is unexpired at its `acquired_at`, the time of the request
        (then nothing is written)."""
        if lock.acquired_at is None:
            raise ValueError("a lock is put with the time it is acquired at")
        now, holder = lock.acquired_at, lock.holder
        item: dict[str, Any] = {
            "target": {"S": lock.target},
            "holder": {"S": holder},
            "expiresAt": {"N": str(lock.expires_at)},
            "acquiredAt": {"N": str(now)},
        }
        for name, value in (("action", lock.action), ("whenBusy", lock.when_busy)):
            if value is not None:
                item[name] = {"S": value}
        if lock.started_at is not None:
            item["startedAt"] = {"N": str(lock.started_at)}
        try:
            response = self._dynamodb.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=_ACQUIRE_CONDITION,
                ExpressionAttributeNames={"#t": "target"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":me": {"S": holder}},
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) != _CONDITION_FAILED:
                raise
            return PutOutcome(written=False, previous=_to_item(exc.response.get("Item")))
        return PutOutcome(written=True, previous=_to_item(response.get("Attributes")))

    def get(self, target: str) -> LockItem | None:
        response = self._dynamodb.get_item(TableName=self._table, Key={"target": {"S": target}}, ConsistentRead=True)
        return _to_item(response.get("Item"))

    def delete_if_held_by(self, target: str, holder: str) -> bool:
        """DeleteItem when `holder` holds the lock; False when it does not (someone else's, or already gone)."""
        try:
            self._dynamodb.delete_item(
                TableName=self._table,
                Key={"target": {"S": target}},
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": holder}},
            )
        except ClientError as exc:
            if _code(exc) == _CONDITION_FAILED:
                return False
            raise
        return True

    def _scan(self) -> Iterator[dict[str, Any]]:
        """Every item, paginated, strongly consistent: the table holds one item per locked target, queued
        deployment and open wait (tens, not thousands), so a Scan is the simple reader."""
        for page in self._dynamodb.get_paginator("scan").paginate(TableName=self._table, ConsistentRead=True):
            yield from page.get("Items", [])

    def locks(self) -> list[LockItem]:
        """Every per-target lock, expired ones included (the caller compares expiresAt), sorted by target."""
        found = [
            item
            for raw in self._scan()
            if not raw.get("target", {}).get("S", "").startswith(QUEUE_PREFIX)
            and "taskToken" not in raw
            and (item := _to_item(raw)) is not None
        ]
        return sorted(found, key=lambda item: item.target)

    def queued(self) -> list[QueuedDeployment]:
        """Every queued deployment, the earliest started first."""
        found = [entry for raw in self._scan() if (entry := _to_queued(raw)) is not None]
        return sorted(found, key=lambda entry: (entry.started_at, entry.execution_id))

    def get_queued(self, execution_id: str) -> QueuedDeployment | None:
        response = self._dynamodb.get_item(
            TableName=self._table, Key={"target": {"S": queue_key(execution_id)}}, ConsistentRead=True
        )
        raw = response.get("Item")
        return _to_queued(raw) if raw else None

    def put_queued(self, entry: QueuedDeployment) -> None:
        """PutItem, replacing this execution's earlier entry (a re-queued execution waits with a new token)."""
        item: dict[str, Any] = {
            "target": {"S": queue_key(entry.execution_id)},
            "executionId": {"S": entry.execution_id},
            "targets": {"L": [{"S": t} for t in entry.targets]},
            "action": {"S": entry.action},
            "trigger": {"S": entry.trigger},
            "startedAt": {"N": str(entry.started_at)},
            "queuedAt": {"N": str(entry.queued_at)},
            "taskToken": {"S": entry.task_token},
            "expiresAt": {"N": str(entry.expires_at)},
        }
        for name, value in (("commit", entry.commit), ("branch", entry.branch), ("blockedBy", entry.blocked_by)):
            if value is not None:
                item[name] = {"S": value}
        self._dynamodb.put_item(TableName=self._table, Item=item)

    def delete_queued(self, execution_id: str, task_token: str | None = None) -> bool:
        """DeleteItem of the execution's entry; with `task_token`, only while it still holds that token (an
        execution that re-queued meanwhile keeps its new entry). False when it was not there (or held another)."""
        condition = "attribute_exists(#t)" + (" AND taskToken = :token" if task_token is not None else "")
        try:
            self._dynamodb.delete_item(
                TableName=self._table,
                Key={"target": {"S": queue_key(execution_id)}},
                ConditionExpression=condition,
                ExpressionAttributeNames={"#t": "target"},
                **({"ExpressionAttributeValues": {":token": {"S": task_token}}} if task_token is not None else {}),
            )
        except ClientError as exc:
            if _code(exc) == _CONDITION_FAILED:
                return False
            raise
        return True
