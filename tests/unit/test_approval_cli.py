"""scripts/approval.py: answer a stage's approval with the token from its wait item, under the caller's identity."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from shared.aws.task_tokens import WaitItem, WaitTable
from tests.conftest import REGION
from tests.unit.tables import coordination_table_fixtures

approval = importlib.import_module("scripts.approval")

TABLE = "web-app-locks"
STACK = "web-app-ami-pipeline"
MACHINE = f"arn:aws:states:{REGION}:123456789012:stateMachine:web-app-deploy"
EXECUTION = f"arn:aws:states:{REGION}:123456789012:execution:web-app-deploy:push-3f2c1e9"
OTHER_REGION_EXECUTION = "arn:aws:states:us-east-2:123456789012:execution:web-app-deploy:push-3f2c1e9"
TOKEN = "AQB8AAAAKgAAAAMAAAAAAAAAAQ-approval-token"


class Session:
    """A boto3 Session's two parts the command uses: moto's DynamoDB, stubbed Step Functions and CloudFormation
    (a call without a queued response fails the test: Stubber validates every request)."""

    def __init__(self, dynamodb: Any, region: str | None = REGION) -> None:
        self.region_name = region
        self.dynamodb = dynamodb
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.cloudformation = boto3.client("cloudformation", region_name=REGION)
        self.sfn_stub = Stubber(self.sfn)
        self.cfn_stub = Stubber(self.cloudformation)
        self.regions: list[str | None] = []

    def client(self, service: str, region_name: str | None = None) -> Any:
        self.regions.append(region_name)
        return {"dynamodb": self.dynamodb, "stepfunctions": self.sfn, "cloudformation": self.cloudformation}[service]

    def expect_running(self, execution: str = EXECUTION, status: str = "RUNNING") -> None:
        self.sfn_stub.add_response(
            "describe_execution",
            {
                "executionArn": execution,
                "stateMachineArn": MACHINE,
                "status": status,
                "startDate": "2025-06-15T15:00:00Z",
            },
            {"executionArn": execution},
        )

    def expect_outputs(self, **outputs: str) -> None:
        self.cfn_stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": STACK,
                        "CreationTime": "2025-06-01T00:00:00Z",
                        "StackStatus": "UPDATE_COMPLETE",
                        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                    }
                ]
            },
            {"StackName": STACK},
        )


_table, dynamodb = coordination_table_fixtures(TABLE, REGION)


@pytest.fixture
def session(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    for variable in ("STATE_MACHINE_ARN", "LOCK_TABLE_NAME"):
        monkeypatch.delenv(variable, raising=False)
    stubbed = Session(dynamodb)
    with stubbed.sfn_stub, stubbed.cfn_stub:
        yield stubbed
        stubbed.sfn_stub.assert_no_pending_responses()
        stubbed.cfn_stub.assert_no_pending_responses()


def pending(dynamodb: Any, stage: str = "prod", execution: str = EXECUTION, token: str = TOKEN) -> None:
    """The item register_wait writes for the stage's approval."""
    resource = f"{execution}#{stage}"
    WaitTable(TABLE, dynamodb).put(
        WaitItem(kind="approval", resource_id=resource, task_token=token, execution_id=execution, expires_at=1)
    )


def keys(dynamodb: Any) -> list[str]:
    return sorted(i["target"]["S"] for i in dynamodb.scan(TableName=TABLE)["Items"])


def test_approve_answers_with_the_items_token_and_deletes_the_item(
    session: Session, dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given prod's pending approval and its running execution
    pending(dynamodb)
    session.expect_running()
    session.sfn_stub.add_response(
        "send_task_success",
        {},
        {"taskToken": TOKEN, "output": '{"decision":"approved","stage":"prod"}'},
    )
    # When an approver approves it by the execution's ARN
    code = approval.main(["approve", EXECUTION, "--stage", "prod", "--table", TABLE], session=session)
    # Then the task got the item's token, the item is gone, and the command says what it did
    assert code == 0
    assert keys(dynamodb) == []
    assert capsys.readouterr().out == f"approved: stage prod of {EXECUTION}\n"


def test_reject_sends_the_error_the_asl_reads_as_a_rejection_with_the_reason(
    session: Session, dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pending(dynamodb)
    session.expect_running()
    session.sfn_stub.add_response(
        "send_task_failure", {}, {"taskToken": TOKEN, "error": "Rejected", "cause": "error rate up in test"}
    )

    code = approval.main(
        ["reject", EXECUTION, "--stage", "prod", "--reason", "error rate up in test", "--table", TABLE],
        session=session,
    )

    assert code == 0
    assert keys(dynamodb) == []
    assert capsys.readouterr().out == f"rejected: stage prod of {EXECUTION}\n"


def test_an_execution_name_is_found_on_the_stacks_state_machine_and_the_table_from_its_outputs(
    session: Session, dynamodb: Any
) -> None:
    # Given only the execution's name: the stack's outputs name the state machine and the table
    pending(dynamodb)
    session.expect_outputs(StateMachineArn=MACHINE, LockTableName=TABLE)
    session.expect_outputs(StateMachineArn=MACHINE, LockTableName=TABLE)
    session.expect_running()
    session.sfn_stub.add_response("send_task_failure", {}, {"taskToken": TOKEN, "error": "Rejected", "cause": "no"})
    # When
    code = approval.main(["reject", "push-3f2c1e9", "--stage", "prod", "--reason", "no"], session=session)
    # Then
    assert code == 0
    assert keys(dynamodb) == []


def test_the_region_is_the_executions_own(session: Session, dynamodb: Any) -> None:
    # Given an execution in another region than the caller's configuration: every client is made for its region
    session.expect_running(OTHER_REGION_EXECUTION, status="SUCCEEDED")

    code = approval.main(["approve", OTHER_REGION_EXECUTION, "--stage", "prod", "--table", TABLE], session=session)

    assert code == 2
    assert set(session.regions) == {"us-east-2"}


def test_no_pending_approval_is_said_and_nothing_is_answered(
    session: Session, dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    session.expect_running()

    code = approval.main(["approve", EXECUTION, "--stage", "prod", "--table", TABLE], session=session)

    assert code == 2
    assert "no pending approval for stage 'prod'" in capsys.readouterr().err


def test_an_ended_execution_has_nothing_to_approve(
    session: Session, dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pending(dynamodb)
    session.expect_running(status="FAILED")

    code = approval.main(["approve", EXECUTION, "--stage", "prod", "--table", TABLE], session=session)

    assert code == 2
    assert f"{EXECUTION} is FAILED: nothing waits for approval" in capsys.readouterr().err
    assert keys(dynamodb) == [f"wait#approval#{EXECUTION}#prod"]


@pytest.mark.parametrize("closed", ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"])
def test_an_approval_already_answered_or_expired_changes_nothing_and_its_stale_item_goes(
    session: Session, dynamodb: Any, capsys: pytest.CaptureFixture[str], closed: str
) -> None:
    # Given an item whose task is closed (answered by someone else a moment ago, or timed out)
    pending(dynamodb)
    session.expect_running()
    session.sfn_stub.add_client_error("send_task_success", closed, "closed")
    # When
    code = approval.main(["approve", EXECUTION, "--stage", "prod", "--table", TABLE], session=session)
    # Then exit 1, the reason named, the item deleted
    assert code == 1
    assert f"already answered or has expired ({closed}: closed)" in capsys.readouterr().err
    assert keys(dynamodb) == []


def test_without_stage_the_one_configured_approval_stage_pending_is_answered(
    session: Session, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(approval, "approval_stages", lambda: ["staging", "prod"])
    pending(dynamodb, "prod")
    session.expect_running()
    session.sfn_stub.add_response("send_task_failure", {}, {"taskToken": TOKEN, "error": "Rejected", "cause": "x"})

    code = approval.main(["reject", EXECUTION, "--reason", "x", "--table", TABLE], session=session)

    assert code == 0
    assert keys(dynamodb) == []


def test_without_stage_two_pending_stages_ask_for_one(
    session: Session, dynamodb: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(approval, "approval_stages", lambda: ["staging", "prod"])
    pending(dynamodb, "staging")
    pending(dynamodb, "prod")
    session.expect_running()

    code = approval.main(["approve", EXECUTION, "--table", TABLE], session=session)

    assert code == 2
    assert "several stages wait for approval" in capsys.readouterr().err
    assert len(keys(dynamodb)) == 2


def test_without_the_approvers_policy_the_denial_names_it(
    session: Session, dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    session.sfn_stub.add_client_error("describe_execution", "AccessDeniedException", "not authorized")

    code = approval.main(["approve", EXECUTION, "--stage", "prod", "--table", TABLE], session=session)

    assert code == 2
    assert "attach the stack's ApproverPolicyArn policy" in capsys.readouterr().err


def test_no_region_is_said_when_neither_an_arn_nor_the_configuration_gives_one(
    dynamodb: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)

    code = approval.main(["approve", "push-3f2c1e9", "--stage", "prod"], session=Session(dynamodb, region=None))

    assert code == 2
    assert "no region: pass the execution's ARN, --region, or set AWS_REGION" in capsys.readouterr().err


def test_no_credentials_is_said_before_anything_is_answered(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a shell with no credentials anywhere botocore looks (and no instance metadata)
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                     "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                     "AWS_WEB_IDENTITY_TOKEN_FILE"):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # When
    code = approval.main(["approve", EXECUTION, "--stage", "prod", "--table", TABLE], session=boto3.Session())
    # Then
    assert code == 2
    assert "no AWS credentials" in capsys.readouterr().err
