"""stacks/approvals.py: the approvers' managed policy reads and deletes approval items of this state machine only,
answers tasks, describes this state machine's executions; the outputs scripts/approval.py reads."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from rehearsal.iam import AuthorizationRequest
from rehearsal.iam.policy import evaluate
from shared.aws import task_tokens
from shared.aws.task_tokens import APPROVAL_PREFIX, wait_key
from shared.lock_items import STATUS_ATTRIBUTES
from stacks import approvals
from tests.infra.conftest import Synthesized

PARTITION, REGION, ACCOUNT = "aws", "eu-west-1", "123456789012"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/web-app-ami-pipeline/0a1b2c3d"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/web-app-locks"
EXECUTIONS = f"arn:aws:states:{REGION}:{ACCOUNT}:execution"
MINE = f"{EXECUTIONS}:web-app-deploy:push-3f2c1e9"


def rendered(value: Any, table_id: str) -> Any:
    """The policy as IAM sees it in account ACCOUNT: pseudo parameters, the table's ARN and Fn::Join resolved."""
    if isinstance(value, list):
        return [rendered(v, table_id) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(rendered(p, table_id)) for p in parts)
    if "Ref" in value:
        pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackId": STACK_ID,
        }
        return pseudo[value["Ref"]]
    if "Fn::GetAtt" in value:
        assert value["Fn::GetAtt"] == [table_id, "Arn"], value
        return TABLE_ARN
    return {k: rendered(v, table_id) for k, v in value.items()}


@pytest.fixture(scope="module")
def policy(synthesized: Synthesized) -> dict[str, Any]:
    (managed,) = [
        p for p in synthesized.resources("AWS::IAM::ManagedPolicy").values()
        if "approval stages" in p["Properties"].get("Description", "")
    ]  # fmt: skip
    (table_id,) = synthesized.resources("AWS::DynamoDB::Table")
    return dict(managed["Properties"]) | {"rendered": rendered(managed["Properties"]["PolicyDocument"], table_id)}


def decide(policy: dict[str, Any], action: str, resource: str, leading_keys: tuple[str, ...] | None = None) -> str:
    context = {"dynamodb:LeadingKeys": leading_keys} if leading_keys is not None else {}
    keys = frozenset({"dynamodb:LeadingKeys"}) if action.startswith("dynamodb:") else frozenset()
    request = AuthorizationRequest(action=action, resource=resource, context=context, condition_keys=keys)
    return evaluate({"approvers": policy["rendered"]}, request).decision


@pytest.mark.parametrize("action", ["dynamodb:GetItem", "dynamodb:DeleteItem"])
@pytest.mark.parametrize(
    ("key", "decision"),
    [
        (wait_key("approval", f"{MINE}#prod"), "Allow"),
        (wait_key("approval", f"{EXECUTIONS}:other-app-deploy:push-1#prod"), "ImplicitDeny"),  # another machine's
        (wait_key("refresh", "c613620e-07e2-4ed2-a9e2-ef8258911ade"), "ImplicitDeny"),  # a build's or refresh's token
        (wait_key("image", "arn:aws:imagebuilder:eu-west-1:123456789012:image/web-app-app/1.0.0/7"), "ImplicitDeny"),
        ("web-app-test", "ImplicitDeny"),  # a lock
    ],
)
def test_approvers_read_and_delete_only_this_state_machines_approval_items(
    policy: dict[str, Any], action: str, key: str, decision: str
) -> None:
    assert decide(policy, action, TABLE_ARN, (key,)) == decision


@pytest.mark.parametrize("action", ["dynamodb:Scan", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"])
def test_approvers_neither_scan_nor_write_the_table(policy: dict[str, Any], action: str) -> None:
    # A Scan carries no LeadingKeys: ForAllValues alone would allow it, the Null check does not
    assert decide(policy, action, TABLE_ARN, None if action == "dynamodb:Scan" else (APPROVAL_PREFIX,)) != "Allow"
    assert decide(policy, "dynamodb:GetItem", TABLE_ARN, None) == "ImplicitDeny"


@pytest.mark.parametrize(
    ("action", "resource", "decision"),
    [
        ("states:SendTaskSuccess", "*", "Allow"),
        ("states:SendTaskFailure", "*", "Allow"),
        ("states:SendTaskHeartbeat", "*", "ImplicitDeny"),
        ("states:DescribeExecution", MINE, "Allow"),
        ("states:DescribeExecution", f"{EXECUTIONS}:other-app-deploy:push-1", "ImplicitDeny"),
        ("states:GetExecutionHistory", MINE, "ImplicitDeny"),  # the history shows every task's token
        ("states:StopExecution", MINE, "ImplicitDeny"),
        ("cloudformation:DescribeStacks", STACK_ID, "Allow"),
    ],
)
def test_approvers_answer_tasks_and_describe_this_state_machines_executions(
    policy: dict[str, Any], action: str, resource: str, decision: str
) -> None:
    assert decide(policy, action, resource) == decision


def test_the_policy_is_attached_to_nobody_by_the_stack(policy: dict[str, Any]) -> None:
    # Who approves is the account's decision: attach the ApproverPolicyArn output's policy to them.
    assert not {"Roles", "Users", "Groups"} & set(policy)


def test_the_stack_outputs_what_scripts_approval_reads(synthesized: Synthesized) -> None:
    script = importlib.import_module("scripts.approval")
    outputs = synthesized.json["Outputs"]
    (policy_id,) = [
        k for k, p in synthesized.resources("AWS::IAM::ManagedPolicy").items()
        if "approval stages" in p["Properties"].get("Description", "")
    ]  # fmt: skip
    (table_id,) = synthesized.resources("AWS::DynamoDB::Table")

    assert script.POLICY_OUTPUT == approvals.POLICY_OUTPUT
    assert script.TABLE_OUTPUT == approvals.TABLE_OUTPUT
    assert outputs[approvals.POLICY_OUTPUT]["Value"] == {"Ref": policy_id}
    assert outputs[approvals.TABLE_OUTPUT]["Value"] == {"Ref": table_id}


def test_the_policys_key_prefix_is_the_approval_items_own() -> None:
    assert approvals.APPROVAL_PREFIX == APPROVAL_PREFIX == wait_key(task_tokens.APPROVAL, "")
    # what the ASL's WaitForApproval builds with States.Format('{}#{}', $.executionId, $.stage.name) (test_asl.py)
    assert task_tokens.approval_resource_id("EXECUTION", "STAGE") == "EXECUTION#STAGE"
    assert task_tokens.APPROVAL == "approval"


def test_register_wait_may_mail_the_approval_request_to_the_topic(synthesized: Synthesized) -> None:
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    functions = synthesized.resources("AWS::Lambda::Function").values()
    (register,) = [f for f in functions if "register_wait" in str(f["Properties"].get("Handler", ""))]
    role = register["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for p in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]

    assert register["Properties"]["Environment"]["Variables"]["NOTIFICATION_TOPIC_ARN"] == {"Ref": topic_id}
    assert any(s["Action"] == "sns:Publish" and s["Resource"] == {"Ref": topic_id} for s in statements)


# --- the status readers' policy (scripts/status.py) ------------------------------------------------------------

READABLE = STATUS_ATTRIBUTES  # what scripts/status_fleet.py projects


@pytest.fixture(scope="module")
def status_policy(synthesized: Synthesized) -> dict[str, Any]:
    (managed,) = [
        p for p in synthesized.resources("AWS::IAM::ManagedPolicy").values()
        if "scripts/status.py" in p["Properties"].get("Description", "")
    ]  # fmt: skip
    (table_id,) = synthesized.resources("AWS::DynamoDB::Table")
    return {"rendered": rendered(managed["Properties"]["PolicyDocument"], table_id)}


def scan(policy: dict[str, Any], attributes: tuple[str, ...] | None, select: str | None) -> str:
    context: dict[str, Any] = {}
    if attributes is not None:
        context["dynamodb:Attributes"] = attributes
    if select is not None:
        context["dynamodb:Select"] = (select,)  # a single-valued key: one value
    keys = frozenset({"dynamodb:Attributes", "dynamodb:Select"})
    request = AuthorizationRequest(action="dynamodb:Scan", resource=TABLE_ARN, context=context, condition_keys=keys)
    return evaluate({"status": policy["rendered"]}, request).decision


def test_status_readers_scan_the_table_with_the_scripts_projection(status_policy: dict[str, Any]) -> None:
    assert scan(status_policy, READABLE, "SPECIFIC_ATTRIBUTES") == "Allow"


@pytest.mark.parametrize(
    ("attributes", "select"),
    [
        ((*READABLE, "taskToken"), "SPECIFIC_ATTRIBUTES"),  # asks for the tokens
        (None, "ALL_ATTRIBUTES"),  # no projection: every attribute
        (None, None),  # no projection, no Select
    ],
)
def test_status_readers_never_read_a_task_token(
    status_policy: dict[str, Any], attributes: tuple[str, ...] | None, select: str | None
) -> None:
    assert scan(status_policy, attributes, select) != "Allow"


def test_the_status_attributes_never_include_the_task_token() -> None:
    assert "taskToken" not in STATUS_ATTRIBUTES


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("states:ListExecutions", f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:web-app-deploy"),
        ("states:GetExecutionHistory", MINE),
        ("states:DescribeExecution", MINE),
        ("autoscaling:DescribeAutoScalingGroups", "*"),
        ("autoscaling:DescribeInstanceRefreshes", "*"),
        ("ec2:DescribeLaunchTemplateVersions", "*"),
        ("ec2:DescribeImages", "*"),
        ("cloudformation:DescribeStacks", STACK_ID),
    ],
)
def test_status_readers_read_what_status_and_history_show(
    status_policy: dict[str, Any], action: str, resource: str
) -> None:
    request = AuthorizationRequest(action=action, resource=resource, context={}, condition_keys=frozenset())
    assert evaluate({"status": status_policy["rendered"]}, request).decision == "Allow"


@pytest.mark.parametrize(
    "action", ["dynamodb:GetItem", "dynamodb:DeleteItem", "states:SendTaskSuccess", "states:StopExecution"]
)
def test_status_readers_change_nothing(status_policy: dict[str, Any], action: str) -> None:
    resource = TABLE_ARN if action.startswith("dynamodb") else MINE
    request = AuthorizationRequest(action=action, resource=resource, context={}, condition_keys=frozenset())
    assert evaluate({"status": status_policy["rendered"]}, request).decision != "Allow"
