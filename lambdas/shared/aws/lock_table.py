"""The per-target lock table (DynamoDB): conditional put, read, conditional delete.

Item: {target (partition key, S), holder (S), expiresAt (N, epoch seconds, the table's TTL attribute),
acquiredAt (N)}. A lock is free when the item is absent or expired (DynamoDB's TTL deletes expired items
only eventually, so every request compares expiresAt itself). Who may take a lock is the caller's decision;
this adapter only states the conditions in DynamoDB's terms and reports their outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client

_CONDITION_FAILED = "ConditionalCheckFailedException"
# Free, expired, or already ours (a retried acquire by the same execution refreshes its expiry).
_ACQUIRE_CONDITION = "attribute_not_exists(#t) OR expiresAt < :now OR holder = :me"


@dataclass(frozen=True)
class LockItem:
    target: str
    holder: str
    expires_at: int
    acquired_at: int | None = None


@dataclass(frozen=True)
class PutOutcome:
    """`written`: the lock is ours now. `previous`: the item before the call (the blocking one when not written)."""

    written: bool
    previous: LockItem | None


def _to_item(raw: dict[str, Any] | None) -> LockItem | None:
    if not raw or "target" not in raw:
        return None
    acquired = raw.get("acquiredAt", {}).get("N")
    return LockItem(
        target=raw["target"]["S"],
        holder=raw.get("holder", {}).get("S", ""),
        expires_at=int(raw.get("expiresAt", {}).get("N", "0")),
        acquired_at=int(acquired) if acquired is not None else None,
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class LockTable:
    def __init__(self, table_name: str, dynamodb: Any = None) -> None:
        self._table = table_name
        self._dynamodb = adapter_client(dynamodb, "dynamodb")

    def put_if_free(self, target: str, *, holder: str, now: int, expires_at: int) -> PutOutcome:
        """PutItem unless another holder's unexpired lock exists (then nothing is written)."""
        try:
            response = self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    "target": {"S": target},
                    "holder": {"S": holder},
                    "expiresAt": {"N": str(expires_at)},
                    "acquiredAt": {"N": str(now)},
                },
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
