"""Every role of every synthesized variant: each mutating action is scoped (a resource other than "*", or a
condition), and the launch, blue-green, SendTask and build-instance grants are as least as issue #14 asks.

Actions are classified by the access level the Service Authorization Reference gives them
(https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html,
one page per service: "Access level" column). The table lists every action the templates grant; an action it
lacks fails the test, so a new grant must be classified (and, if it mutates on "*", justified) here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from stacks.steps import STEPS
from tests.infra.conftest import Synthesized
from tests.infra.test_stack import render, statements_of

VARIANTS = ("synthesized", "synthesized_github", "synthesized_fleet", "synthesized_github_fleet")
READ, LIST, WRITE, TAGGING, PERMISSIONS = "Read", "List", "Write", "Tagging", "Permissions management"
MUTATING = {WRITE, TAGGING, PERMISSIONS}

# action (as the policies write it) -> SAR access level
ACCESS_LEVELS: dict[str, str] = {
    **dict.fromkeys(
        [
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:DescribeInstanceRefreshes",
            "autoscaling:DescribeLoadBalancerTargetGroups",
            "autoscaling:DescribeScalingActivities",
            "cloudformation:DescribeStacks",
            "cloudwatch:DescribeAlarms",
            "ec2:DescribeImageReferences",
            "ec2:DescribeImages",
            "ec2:DescribeInstances",
            "ec2:DescribeLaunchTemplateVersions",
            "ec2:DescribeLaunchTemplates",
            "ec2:DescribeSnapshots",
            "imagebuilder:ListContainerRecipes",
            "imagebuilder:ListImagePackages",
            "imagebuilder:ListImageRecipes",
            "logs:DescribeLogGroups",
            "logs:DescribeLogStreams",
            "logs:DescribeResourcePolicies",
            "logs:ListLogDeliveries",
            "ssm:DescribeParameters",
            "ssm:ListAssociations",
            "ssm:ListInstanceAssociations",
            "states:ListExecutions",  # the status readers' policy (stacks/approvals.py)
        ],
        LIST,
    ),
    **dict.fromkeys(
        [
            "codecommit:GetCommit",
            "codecommit:GitPull",
            "dynamodb:BatchGetItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:DescribeTable",
            "dynamodb:GetItem",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:Query",
            "dynamodb:Scan",
            "ec2messages:GetEndpoint",
            "ec2messages:GetMessages",
            "elasticloadbalancing:DescribeTargetHealth",
            "imagebuilder:GetComponent",
            "imagebuilder:GetContainerRecipe",
            "imagebuilder:GetDistributionConfiguration",
            "imagebuilder:GetImage",
            "imagebuilder:GetImagePipeline",
            "imagebuilder:GetImageRecipe",
            "imagebuilder:GetInfrastructureConfiguration",
            "logs:GetLogDelivery",
            "s3:GetObject",
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "ssm:DescribeAssociation",
            "ssm:DescribeDocument",
            "ssm:GetDeployablePatchSnapshotForInstance",
            "ssm:GetDocument",
            "ssm:GetManifest",
            "ssm:GetParameter",
            "ssm:GetParameters",
            "states:DescribeExecution",
            "states:GetExecutionHistory",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
        ],
        READ,
    ),
    **dict.fromkeys(
        [
            "autoscaling:AttachLoadBalancerTargetGroups",
            "autoscaling:CancelInstanceRefresh",
            "autoscaling:CreateAutoScalingGroup",
            "autoscaling:DeleteAutoScalingGroup",
            "autoscaling:DetachLoadBalancerTargetGroups",
            "autoscaling:RollbackInstanceRefresh",
            "autoscaling:SetDesiredCapacity",
            "autoscaling:StartInstanceRefresh",
            "autoscaling:UpdateAutoScalingGroup",
            "dynamodb:BatchWriteItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "ec2:CreateLaunchTemplateVersion",
            "ec2:DeleteLaunchTemplateVersions",
            "ec2:DeleteSnapshot",
            "ec2:DeregisterImage",
            "ec2:ModifyLaunchTemplate",
            "ec2:RunInstances",
            "ec2messages:AcknowledgeMessage",
            "ec2messages:DeleteMessage",
            "ec2messages:FailMessage",
            "ec2messages:SendReply",
            "iam:PassRole",
            "imagebuilder:CancelImageCreation",
            "imagebuilder:CreateImage",
            "imagebuilder:CreateImageRecipe",
            "imagebuilder:StartImagePipelineExecution",
            "kms:Decrypt",
            "kms:GenerateDataKey*",
            "lambda:InvokeFunction",
            "logs:CreateLogDelivery",
            "logs:CreateLogStream",
            "logs:DeleteLogDelivery",
            "logs:PutLogEvents",
            "logs:UpdateLogDelivery",
            "s3:PutObject",
            "sns:Publish",
            "sqs:SendMessage",
            "ssm:PutComplianceItems",
            "ssm:PutConfigurePackageResult",
            "ssm:PutInventory",
            "ssm:UpdateAssociationStatus",
            "ssm:UpdateInstanceAssociationStatus",
            "ssm:UpdateInstanceInformation",
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
            "states:SendTaskFailure",
            "states:SendTaskHeartbeat",
            "states:SendTaskSuccess",
            "states:StartExecution",
            "xray:PutTelemetryRecords",
            "xray:PutTraceSegments",
        ],
        WRITE,
    ),
    "autoscaling:CreateOrUpdateTags": TAGGING,
    "ec2:CreateTags": TAGGING,
    "imagebuilder:TagResource": TAGGING,
    "logs:PutResourcePolicy": PERMISSIONS,
}

# Mutating actions allowed on "*" without a condition, each with the reason.
UNSCOPED: dict[str, str] = {
    **dict.fromkeys(
        ["states:SendTaskSuccess", "states:SendTaskFailure"],
        "The SAR lists no resource types (the task token is the authorization): a statement naming the state "
        "machine never applies (the steps resume waits, approvers answer approvals)",
    ),
    **dict.fromkeys(
        ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "The SAR lists no resource types (Lambda tracing)"
    ),
    **dict.fromkeys(
        ["logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:UpdateLogDelivery", "logs:PutResourcePolicy"],
        "Step Functions' vended-logs delivery: the SAR lists no resource types for the delivery actions, and "
        "CloudWatch Logs' own resource policy is account-wide",
    ),
    **dict.fromkeys(
        [
            "ssm:PutComplianceItems",
            "ssm:PutConfigurePackageResult",
            "ssm:PutInventory",
            "ssm:UpdateAssociationStatus",
            "ssm:UpdateInstanceAssociationStatus",
            "ssm:UpdateInstanceInformation",
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
            "ec2messages:AcknowledgeMessage",
            "ec2messages:DeleteMessage",
            "ec2messages:FailMessage",
            "ec2messages:SendReply",
        ],
        "An instance's SSM agent (build instances, the example fleet) reports and takes commands for its own "
        "instance, as AmazonSSMManagedInstanceCore grants them (on *)",
    ),
}

# AWS managed policies a role may hold, with the reason.
MANAGED_POLICIES = {
    "EC2InstanceProfileForImageBuilder": "Image Builder's instance permissions; no SSM parameter read",
}


@dataclass(frozen=True)
class Grant:
    where: str  # the policy (or role) logical id
    roles: tuple[str, ...]
    statement: dict[str, Any]

    @property
    def actions(self) -> list[str]:
        actions = self.statement.get("Action", [])
        return actions if isinstance(actions, list) else [actions]

    @property
    def resources(self) -> list[Any]:
        resources = self.statement.get("Resource", [])
        return resources if isinstance(resources, list) else [resources]


def grants(synth: Synthesized) -> Iterator[Grant]:
    """Every identity-policy statement of the template: AWS::IAM::Policy, ManagedPolicy, a Role's inline policies."""
    for logical_id, resource in synth.json["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        documents: list[tuple[dict[str, Any], tuple[str, ...]]] = []
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = tuple(r["Ref"] for r in props.get("Roles", []) if isinstance(r, dict) and "Ref" in r)
            documents.append((props["PolicyDocument"], roles))
        elif kind == "AWS::IAM::Role":
            documents += [(p["PolicyDocument"], (logical_id,)) for p in props.get("Policies", [])]
        for document, roles in documents:
            statements = document["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                yield Grant(logical_id, roles, statement)


def managed_policy_names(synth: Synthesized) -> dict[str, set[str]]:
    """role logical id -> the AWS managed policies it holds (by name)."""
    out: dict[str, set[str]] = {}
    for logical_id, role in synth.resources("AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            name = str(render(arn)).rsplit(":policy/", 1)[-1]
            out.setdefault(logical_id, set()).add(name)
    return out


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> Synthesized:
    synth: Synthesized = request.getfixturevalue(request.param)
    return synth


def test_every_granted_action_has_a_known_access_level(variant: Synthesized) -> None:
    unknown = sorted({a for g in grants(variant) for a in g.actions if a not in ACCESS_LEVELS})
    notaction = [g.where for g in grants(variant) if "NotAction" in g.statement or "NotResource" in g.statement]
    assert unknown == [], "classify these in ACCESS_LEVELS (SAR access level)"
    assert notaction == []


def test_every_mutating_action_is_scoped_or_an_acknowledged_exception(variant: Synthesized) -> None:
    unscoped = sorted(
        {
            (g.where, action)
            for g in grants(variant)
            if g.statement.get("Effect") == "Allow" and "*" in g.resources and not g.statement.get("Condition")
            for action in g.actions
            if ACCESS_LEVELS.get(action) in MUTATING and action not in UNSCOPED
        }
    )
    assert unscoped == []


def test_every_exception_is_still_needed(request: pytest.FixtureRequest) -> None:
    # An exception that no variant grants unscoped any more must be dropped, so the list cannot hide a new grant.
    used = {
        action
        for name in VARIANTS
        for g in grants(request.getfixturevalue(name))
        if "*" in g.resources and not g.statement.get("Condition")
        for action in g.actions
    }
    assert sorted(set(UNSCOPED) - used) == []
    assert all(ACCESS_LEVELS[action] in MUTATING for action in UNSCOPED)


def test_only_the_listed_aws_managed_policies_are_attached(variant: Synthesized) -> None:
    held = {name for names in managed_policy_names(variant).values() for name in names}
    assert held <= set(MANAGED_POLICIES)


def test_no_instance_role_reads_an_ssm_parameter(variant: Synthesized) -> None:
    # Given every role EC2 instances assume (build instances, the example fleet)
    instance_roles = [
        lid
        for lid, role in variant.resources("AWS::IAM::Role").items()
        if "ec2.amazonaws.com" in str(role["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert instance_roles
    for role in instance_roles:
        actions = {a.lower() for g in grants(variant) if role in g.roles for a in g.actions}
        assert not {a for a in actions if a.startswith("ssm:getparameter") or a in ("ssm:*", "*")}, role
        assert "AmazonSSMManagedInstanceCore" not in managed_policy_names(variant).get(role, set()), role


def test_the_build_instance_reads_no_ssm_parameter(variant: Synthesized) -> None:
    (role,) = [lid for lid in variant.resources("AWS::IAM::Role") if lid.startswith("ImagesBuildInstanceRole")]
    assert managed_policy_names(variant)[role] == {"EC2InstanceProfileForImageBuilder"}
    actions = {a.lower() for g in grants(variant) if role in g.roles for a in g.actions}
    assert not {a for a in actions if a.startswith("ssm:getparameter") or a in ("ssm:*", "*")}
    # and keeps what the SSM agent needs to run the components (Run Command, registration)
    assert {"ssm:updateinstanceinformation", "ec2messages:getmessages", "ssmmessages:createcontrolchannel"} <= actions


def test_send_task_actions_are_granted_on_star_to_the_steps_that_resume_waits(variant: Synthesized) -> None:
    send = [g for g in grants(variant) if any(a.startswith("states:SendTask") for a in g.actions)]
    assert send, "register_wait and relay_event resume waits with SendTaskSuccess"
    assert not any("states:SendTaskHeartbeat" in g.actions for g in send)  # nothing sends heartbeats
    assert all(g.resources == ["*"] for g in send)
    for step in ("register_wait", "relay_event"):
        assert any(
            s.get("Action") == "states:SendTaskSuccess" and s["Resource"] == "*" for s in statements_of(variant, step)
        )


def launch_statements(synth: Synthesized, step: str) -> list[dict[str, Any]]:
    return [s for s in statements_of(synth, step) if "ec2:RunInstances" in render(s["Action"])]


@pytest.mark.parametrize("step", ["start_instance_refresh", "rollback", "finish_execution", "create_green_group"])
def test_launches_take_the_templates_own_ami_and_key_pair(synthesized: Synthesized, step: str) -> None:
    statements = launch_statements(synthesized, step)
    by_sid = {s.get("Sid"): s for s in statements}
    # The image and the key pair only as the template names them
    own = by_sid["OnlyTheTemplatesOwnImageAndKeyPair"]
    assert own["Condition"]["Bool"] == {"ec2:IsLaunchTemplateResource": "true"}
    assert [str(r).rsplit(":", 1)[-1] for r in render(own["Resource"])] == ["image/*", "key-pair/*"]
    # every RunInstances on an ARN pattern is from a configured template; no other statement names an image
    for statement in statements:
        resources = render(statement["Resource"])
        resources = resources if isinstance(resources, list) else [resources]
        if statement.get("Sid") != "UseConfiguredTemplates":
            assert "ec2:LaunchTemplate" in statement["Condition"]["ArnLike"]
        if statement is not own:
            assert not any(":image/" in str(r) or ":key-pair/" in str(r) for r in resources)
    tags = [s for s in statements_of(synthesized, step) if s.get("Action") == "ec2:CreateTags"]
    assert tags
    assert all(t["Condition"] == {"StringEquals": {"ec2:CreateAction": "RunInstances"}} for t in tags)


def test_blue_green_steps_name_no_rolling_group_or_template(synthesized: Synthesized) -> None:
    # The example configuration has a rolling stage (web-app-test, lt-0123456789abcdef0) and a blue-green one.
    rolling = ("web-app-test", "lt-0123456789abcdef0")
    assert all(name in str(synthesized.json) for name in rolling)
    named = {
        (step, name)
        for step in (s.folder for s in STEPS if s.blue_green)
        for statement in statements_of(synthesized, step)
        for name in rolling
        if name in str(render(statement["Resource"]))
    }
    assert named == set()
    # while they do act on the blue-green stage's groups and templates
    create = str([render(s["Resource"]) for s in statements_of(synthesized, "create_green_group")])
    assert "web-app-prod-a" in create
    assert "lt-0fedcba9876543210" in create
