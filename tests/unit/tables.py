"""The coordination table as the stack creates it (locks and wait tokens), for moto-backed tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def create_coordination_table(client: Any, table_name: str) -> None:
    """Partition key `target` (string), on-demand: what stacks/deploy_workflow.py deploys."""
    client.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": "target", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "target", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def coordination_table_fixtures(table_name: str, region: str) -> tuple[Any, Any]:
    """`_table, dynamodb = coordination_table_fixtures(TABLE, REGION)` in a test module: one moto table per module
    (and xdist worker), since creating it is most of a test's time, and `dynamodb`, that table emptied after each
    test."""
    import boto3
    import pytest
    from moto import mock_aws

    @pytest.fixture(scope="module")
    def _table() -> Iterator[Any]:
        with mock_aws():
            client = boto3.client("dynamodb", region_name=region)
            create_coordination_table(client, table_name)
            yield client

    @pytest.fixture
    def dynamodb(_table: Any) -> Iterator[Any]:
        yield _table
        for item in _table.scan(TableName=table_name)["Items"]:
            _table.delete_item(TableName=table_name, Key={"target": item["target"]})

    return _table, dynamodb
