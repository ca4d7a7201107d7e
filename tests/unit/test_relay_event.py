"""relay_event: resume the execution waiting for an instance refresh or image build when AWS reports it."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from relay_event import logic
from relay_event.models import EventBridgeEvent, RelayEventEnvironment

from shared.aws.task_tokens import TaskTokens, TokenDelivery, WaitItem, WaitTable
from shared.config import ConfigurationError
from shared.environment import load_environment
from shared.observability import logger
from tests.conftest import ACCOUNT, REGION
from tests.unit.tables import coordination_table_fixtures

TABLE = "web-app-locks"
NOW = 1_750_000_000
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:deploy:run-1"
TOKEN = "AQB8AAAAKgAAAAMAAAAAAAAAAQ-token-1"
NEWER_TOKEN = "AQB8AAAAKgAAAAMAAAAAAAAAAQ-token-2"
GROUP = "web-app-test"
REFRESH_ID = "c613620e-07e2-4ed2-a9e2-ef8258911ade"
IMAGE_ARN = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/web-app-app/1.0.0/7"
REFRESH_EVENTS = {
    "EC2 Auto Scaling Instance Refresh Succeeded": "Successful",
    "EC2 Auto Scaling Instance Refresh Failed": "Failed",
    "EC2 Auto Scaling Instance Refresh Cancelled": "Cancelled",
    "EC2 Auto Scaling Instance Refresh Rollback Succeeded": "RollbackSuccessful",
    "EC2 Auto Scaling Instance Refresh Rollback Failed": "RollbackFailed",
    "EC2 Auto Scaling Instance Refresh Checkpoint Reached": "InProgress",
}


def refresh_event(detail_type: str, refresh_id: str | None = REFRESH_ID) -> dict[str, Any]:
    """An Auto Scaling instance refresh event as the user guide documents it."""
    detail: dict[str, Any] = {"AutoScalingGroupName": GROUP}
    if refresh_id is not None:
        detail["InstanceRefreshId"] = refresh_id
    if detail_type.endswith("Checkpoint Reached"):
        detail.update({"CheckpointPercentage": "50", "CheckpointDelay": "300"})
    return {
        "version": "0",
        "id": "12345678-1234-1234-1234-123456789012",
        "detail-type": detail_type,
        "source": "aws.autoscaling",
        "account": ACCOUNT,
        "time": "2025-06-15T12:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:uuid:autoScalingGroupName/{GROUP}"],
        "detail": detail,
    }


def image_event(status: str, previous: str = "TESTING", resources: list[str] | None = None) -> dict[str, Any]:
    """An Image Builder image state change event as the Image Builder user guide documents it."""
    return {
        "version": "0",
        "id": "a1b2c3d4-5678-90ab-cdef-111111111111",
        "detail-type": "EC2 Image Builder Image State Change",
        "source": "aws.imagebuilder",
        "account": ACCOUNT,
        "time": "2025-06-15T12:00:00Z",
        "region": REGION,
        "resources": [IMAGE_ARN] if resources is None else resources,
        "detail": {"previous-state": {"status": previous}, "state": {"status": status}},
    }


def as_sent(output: dict[str, Any]) -> str:
    return json.dumps(output, sort_keys=True, separators=(",", ":"))


_table, dynamodb = coordination_table_fixtures(TABLE, REGION)


@pytest.fixture
def stepfunctions() -> Iterator[tuple[Any, Stubber]]:
    """A Step Functions client behind a Stubber: an unexpected SendTaskSuccess fails the test."""
    client = boto3.client("stepfunctions", region_name=REGION)
    with Stubber(client) as stub:
        yield client, stub


def items(dynamodb: Any) -> dict[str, dict[str, str]]:
    found = dynamodb.scan(TableName=TABLE)["Items"]
    return {i["target"]["S"]: {k: next(iter(v.values())) for k, v in i.items() if k != "target"} for i in found}


def wait_for(dynamodb: Any, kind: str, resource_id: str, token: str = TOKEN) -> None:
    """The item register_wait writes."""
    WaitTable(TABLE, dynamodb).put(
        WaitItem(kind=kind, resource_id=resource_id, task_token=token, execution_id=EXECUTION, expires_at=NOW + 7200)
    )


def relay(event: dict[str, Any], dynamodb: Any, sfn: Any) -> dict[str, Any]:
    output = logic.run(EventBridgeEvent.model_validate(event), waits=WaitTable(TABLE, dynamodb), tokens=TaskTokens(sfn))
    return output.model_dump(by_alias=True, mode="json")


# --- resuming ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("detail_type", "status"), list(REFRESH_EVENTS.items()))
def test_relay_resumes_the_waiting_execution_on_each_handled_refresh_event(
    dynamodb: Any, stepfunctions: tuple[Any, Stubber], detail_type: str, status: str
) -> None:
    # Given an execution waiting for the refresh
    sfn, stub = stepfunctions
    wait_for(dynamodb, "refresh", REFRESH_ID)
    stub.add_response(
        "send_task_success",
        {},
        {
            "taskToken": TOKEN,
            "output": as_sent(
                {
                    "source": "event",
                    "detailType": detail_type,
                    "kind": "refresh",
                    "resourceId": REFRESH_ID,
                    "status": status,
                }
            ),
        },
    )
    # When Auto Scaling reports the refresh
    output = relay(refresh_event(detail_type), dynamodb, sfn)
    # Then the waiting task is resumed with the event's status, and the wait item is gone
    assert output == {
        "resumed": True,
        "kind": "refresh",
        "resourceId": REFRESH_ID,
        "reason": f"resumed execution {EXECUTION}",
    }
    assert items(dynamodb) == {}
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("status", ["AVAILABLE", "FAILED", "CANCELLED", "DEPRECATED", "DELETED", "DISABLED"])
def test_relay_resumes_the_waiting_execution_on_a_final_image_status(
    dynamodb: Any, stepfunctions: tuple[Any, Stubber], status: str
) -> None:
    # Given an execution waiting for the image build
    sfn, stub = stepfunctions
    wait_for(dynamodb, "image", IMAGE_ARN)
    stub.add_response(
        "send_task_success",
        {},
        {
            "taskToken": TOKEN,
            "output": as_sent(
                {
                    "source": "event",
                    "detailType": "EC2 Image Builder Image State Change",
                    "kind": "image",
                    "resourceId": IMAGE_ARN,
                    "status": status,
                }
            ),
        },
    )
    # When Image Builder reports the final status
    output = relay(image_event(status), dynamodb, sfn)
    # Then the task is resumed and the item deleted
    assert (output["resumed"], output["kind"], output["resourceId"]) == (True, "image", IMAGE_ARN)
    assert items(dynamodb) == {}
    stub.assert_no_pending_responses()


# --- ignoring ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["PENDING", "CREATING", "BUILDING", "TESTING", "DISTRIBUTING", "INTEGRATING"])
def test_relay_ignores_image_statuses_that_are_not_final(
    dynamodb: Any, stepfunctions: tuple[Any, Stubber], status: str
) -> None:
    # Given an execution waiting for the image build
    sfn, _ = stepfunctions
    wait_for(dynamodb, "image", IMAGE_ARN)
    # When Image Builder reports an intermediate status
    output = relay(image_event(status, previous="BUILDING"), dynamodb, sfn)
    # Then nothing is resumed (the stub has no SendTaskSuccess) and the wait stands
    assert output == {
        "resumed": False,
        "kind": "image",
        "resourceId": IMAGE_ARN,
        "reason": f"image status {status} is not final",
    }
    assert items(dynamodb)[f"wait#image#{IMAGE_ARN}"]["taskToken"] == TOKEN


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            {**image_event("AVAILABLE"), "source": "aws.ec2", "detail-type": "EC2 AMI State Change"},
            "events from source 'aws.ec2' are not relayed",
        ),
        ({"source": "custom.deploy", "detail-type": "Anything", "detail": {}}, "source 'custom.deploy'"),
        ({}, "events from source '' are not relayed"),
        (
            refresh_event("EC2 Auto Scaling Instance Refresh Started"),
            "'EC2 Auto Scaling Instance Refresh Started' is not",
        ),
        (
            refresh_event("EC2 Auto Scaling Instance Refresh Rollback Started"),
            "'EC2 Auto Scaling Instance Refresh Rollback Started' is not one that ends a wait",
        ),
        (refresh_event("EC2 Instance-launch Lifecycle Action"), "'EC2 Instance-launch Lifecycle Action' is not"),
        (
            {**image_event("AVAILABLE"), "detail-type": "EC2 Image Builder CVE Detected"},
            "'EC2 Image Builder CVE Detected' is not one that ends a wait",
        ),
        (
            refresh_event("EC2 Auto Scaling Instance Refresh Succeeded", refresh_id=None),
            "without detail.InstanceRefreshId",
        ),
        (image_event("AVAILABLE", resources=[]), "without resources[0]"),
    ],
)
def test_relay_ignores_other_sources_unknown_detail_types_and_incomplete_events(
    dynamodb: Any, stepfunctions: tuple[Any, Stubber], event: dict[str, Any], reason: str
) -> None:
    # Given executions waiting for both the refresh and the image build
    sfn, _ = stepfunctions
    wait_for(dynamodb, "refresh", REFRESH_ID)
    wait_for(dynamodb, "image", IMAGE_ARN)
    # When an event the relay does not handle arrives
    output = relay(event, dynamodb, sfn)
    # Then it resumes nothing, says why, and both waits stand
    assert output["resumed"] is False
    assert reason in output["reason"]
    assert len(items(dynamodb)) == 2


# --- nobody waiting, or too late -----------------------------------------------------------------


def test_relay_with_no_waiting_execution_resumes_nothing(dynamodb: Any, stepfunctions: tuple[Any, Stubber]) -> None:
    # Given no wait item (the deployment already polled past the refresh, or it is not ours)
    sfn, _ = stepfunctions
    # When the refresh's success event arrives
    output = relay(refresh_event("EC2 Auto Scaling Instance Refresh Succeeded"), dynamodb, sfn)
    # Then nothing is resumed
    assert output == {
        "resumed": False,
        "kind": "refresh",
        "resourceId": REFRESH_ID,
        "reason": f"no execution is waiting for refresh {REFRESH_ID}",
    }


@pytest.mark.parametrize("code", ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"])
def test_relay_when_the_task_already_closed_deletes_the_item_and_reports_not_resumed(
    dynamodb: Any, stepfunctions: tuple[Any, Stubber], code: str
) -> None:
    # Given a wait item whose task already timed out into the fallback poll
    sfn, stub = stepfunctions
    wait_for(dynamodb, "image", IMAGE_ARN)
    stub.add_client_error("send_task_success", service_error_code=code, service_message="Task Timed Out")
    # When the image's final event arrives
    output = relay(image_event("AVAILABLE"), dynamodb, sfn)
    # Then the stale item is deleted and the answer says the execution moved on
    assert output["resumed"] is False
    assert output["reason"] == (
        f"the task of execution {EXECUTION} is already closed ({code}: Task Timed Out): "
        "it moved on with its fallback poll"
    )
    assert items(dynamodb) == {}


def test_relay_lets_other_step_functions_errors_through_and_keeps_the_item_for_the_retry(
    dynamodb: Any, stepfunctions: tuple[Any, Stubber]
) -> None:
    # Given a waiting execution, and Step Functions failing for another reason
    sfn, stub = stepfunctions
    wait_for(dynamodb, "refresh", REFRESH_ID)
    stub.add_client_error("send_task_success", service_error_code="KmsThrottlingException")
    # When / Then the error propagates (EventBridge retries the target) and the wait item stays
    with pytest.raises(ClientError, match="KmsThrottlingException"):
        relay(refresh_event("EC2 Auto Scaling Instance Refresh Failed"), dynamodb, sfn)
    assert items(dynamodb)[f"wait#refresh#{REFRESH_ID}"]["taskToken"] == TOKEN


class ReRegisteringTokens:
    """Step Functions, with the state machine registering a new token for the resource while the relay sends."""

    def __init__(self, dynamodb: Any) -> None:
        self.dynamodb = dynamodb
        self.sent: list[str] = []

    def send_success(self, task_token: str, output: Mapping[str, Any]) -> TokenDelivery:
        self.sent.append(task_token)
        wait_for(self.dynamodb, "refresh", REFRESH_ID, token=NEWER_TOKEN)
        return TokenDelivery(delivered=False, code="TaskTimedOut", message="Task Timed Out")


def test_relay_conditional_delete_keeps_the_item_of_a_newer_token(dynamodb: Any) -> None:
    # Given a wait item with an old token, replaced by a newer registration while the relay resumes the old one
    wait_for(dynamodb, "refresh", REFRESH_ID)
    tokens = ReRegisteringTokens(dynamodb)
    # When the event is relayed
    output = logic.run(
        EventBridgeEvent.model_validate(refresh_event("EC2 Auto Scaling Instance Refresh Checkpoint Reached")),
        waits=WaitTable(TABLE, dynamodb),
        tokens=tokens,
    )
    # Then the old token was the one sent, and the newer token's item is still there
    assert tokens.sent == [TOKEN]
    assert output.resumed is False
    assert items(dynamodb)[f"wait#refresh#{REFRESH_ID}"]["taskToken"] == NEWER_TOKEN


def test_adapter_delete_only_removes_the_item_holding_the_given_token(dynamodb: Any) -> None:
    # Given an item re-registered with a newer token
    table = WaitTable(TABLE, dynamodb)
    wait_for(dynamodb, "image", IMAGE_ARN)
    wait_for(dynamodb, "image", IMAGE_ARN, token=NEWER_TOKEN)
    # When the old token's item is deleted, then the newer one's
    old = table.delete_if_token("image", IMAGE_ARN, TOKEN)
    kept = table.get("image", IMAGE_ARN)
    new = table.delete_if_token("image", IMAGE_ARN, NEWER_TOKEN)
    # Then only the second delete removes it
    assert (old, new) == (False, True)
    assert kept == WaitItem(
        kind="image", resource_id=IMAGE_ARN, task_token=NEWER_TOKEN, execution_id=EXECUTION, expires_at=NOW + 7200
    )
    assert table.get("image", IMAGE_ARN) is None


def test_adapter_reads_the_wait_item_with_a_consistent_read() -> None:
    # Given DynamoDB behind a Stubber that checks the exact request
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    with Stubber(dynamodb) as stub:
        stub.add_response(
            "get_item",
            {},
            {"TableName": TABLE, "Key": {"target": {"S": f"wait#image#{IMAGE_ARN}"}}, "ConsistentRead": True},
        )
        # When the item is read
        found = WaitTable(TABLE, dynamodb).get("image", IMAGE_ARN)
        stub.assert_no_pending_responses()
    # Then there is none
    assert found is None


# --- environment and handler ---------------------------------------------------------------------


def test_relay_event_environment_requires_the_table_name() -> None:
    with pytest.raises(ConfigurationError, match="relay_event function environment: LOCK_TABLE_NAME: required"):
        load_environment(RelayEventEnvironment, "relay_event", {})


@pytest.fixture
def handler(dynamodb: Any, stepfunctions: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LOCK_TABLE_NAME", TABLE)
    module = importlib.import_module("relay_event.handler")
    monkeypatch.setattr(module, "wait_table", lambda: WaitTable(TABLE, dynamodb))
    monkeypatch.setattr(module, "task_tokens", lambda: TaskTokens(stepfunctions[0]))
    return module


def _emf_documents(stdout: str) -> list[dict[str, Any]]:
    """The metrics documents log_metrics printed (CloudWatch embedded metric format)."""
    return [json.loads(line) for line in stdout.splitlines() if '"_aws"' in line]


def test_handler_relays_a_refresh_event_with_the_refresh_as_correlation_id_and_counts_it(
    handler: Any,
    dynamodb: Any,
    stepfunctions: tuple[Any, Stubber],
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an execution waiting for the refresh
    _, stub = stepfunctions
    wait_for(dynamodb, "refresh", REFRESH_ID)
    detail_type = "EC2 Auto Scaling Instance Refresh Succeeded"
    stub.add_response(
        "send_task_success",
        {},
        {
            "taskToken": TOKEN,
            "output": as_sent(
                {
                    "source": "event",
                    "detailType": detail_type,
                    "kind": "refresh",
                    "resourceId": REFRESH_ID,
                    "status": "Successful",
                }
            ),
        },
    )
    # When EventBridge delivers the success event
    output = handler.lambda_handler(refresh_event(detail_type), lambda_context)
    # Then the JSON answer has the documented shape, the logs carry the refresh id, and EventsRelayed is counted
    assert output == {
        "resumed": True,
        "kind": "refresh",
        "resourceId": REFRESH_ID,
        "reason": f"resumed execution {EXECUTION}",
    }
    assert logger.get_correlation_id() == REFRESH_ID
    emf = _emf_documents(capsys.readouterr().out)
    assert emf[-1]["EventsRelayed"] == [1.0]
    assert items(dynamodb) == {}
    stub.assert_no_pending_responses()


def test_handler_counts_an_event_nobody_waits_for_as_unmatched(
    handler: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no wait item
    # When an image's final event arrives
    output = handler.lambda_handler(image_event("FAILED"), lambda_context)
    # Then it is answered and counted as unmatched
    assert output["resumed"] is False
    assert logger.get_correlation_id() == IMAGE_ARN
    emf = _emf_documents(capsys.readouterr().out)
    assert emf[-1]["EventsUnmatched"] == [1.0]
