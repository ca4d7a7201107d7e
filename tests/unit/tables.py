"""The coordination table as the stack creates it (locks and wait tokens), for moto-backed tests."""

from __future__ import annotations

from typing import Any


def create_coordination_table(client: Any, table_name: str) -> None:
    """Partition key `target` (string), on-demand: what stacks/deploy_workflow.py deploys."""
    client.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": "target", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "target", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
