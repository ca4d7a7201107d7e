"""rehearsal.iam.requests: the IAM authorization requests AWS makes for each call the steps make."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3
import pytest
from moto import mock_aws

from rehearsal.iam import AuthorizationRequest
from rehearsal.iam.requests import (
    NEW_GROUP_ID,
    GroupFacts,
    ImageFacts,
    MotoLookup,
    ProfileFacts,
    SecretFacts,
    SnapshotFacts,
    TemplateFacts,
    UnmappedCallError,
    UnresolvedCallError,
    VersionFacts,
    Where,
    requests_for,
)

REGION, ACCOUNT = "eu-west-1", "123456789012"
WHERE = Where("aws", REGION, ACCOUNT)
APP = {"immutable-ami:application": "web-app"}
IMAGE, SNAPSHOT, TEMPLATE, GROUP = (
    "ami-0123456789abcdef0",
    "snap-0aaaabbbbccccdddd",
    "lt-0aaaaaaaaaaaaaaa1",
    "web-app-test",
)
TEMPLATE_ARN = f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/{TEMPLATE}"
GROUP_ID = "11111111-2222-3333-4444-555555555555"
PROFILE_ARN = f"arn:aws:iam::{ACCOUNT}:instance-profile/web"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/web-instance"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:deployments"
TARGET_GROUP = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/web/0123456789abcdef"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@dataclass
class FakeLookup:
    images: dict[str, ImageFacts] = field(default_factory=dict)
    snapshots: dict[str, SnapshotFacts] = field(default_factory=dict)
    groups: dict[str, GroupFacts] = field(default_factory=dict)
    templates: dict[str, TemplateFacts] = field(default_factory=dict)
    template_names: dict[str, str] = field(default_factory=dict)
    default_groups: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, ProfileFacts] = field(default_factory=dict)
    topic_keys: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, SecretFacts] = field(default_factory=dict)

    def image(self, image_id: str) -> ImageFacts | None:
        return self.images.get(image_id)

    def snapshot(self, snapshot_id: str) -> SnapshotFacts | None:
        return self.snapshots.get(snapshot_id)

    def group(self, name: str) -> GroupFacts | None:
        return self.groups.get(name)

    def launch_template(self, template_id: str) -> TemplateFacts | None:
        return self.templates.get(template_id)

    def launch_template_named(self, name: str) -> TemplateFacts | None:
        return self.templates.get(self.template_names.get(name, ""))

    def default_security_group(self, subnet_id: str) -> str | None:
        return self.default_groups.get(subnet_id)

    def instance_profile(self, name_or_arn: str) -> ProfileFacts | None:
        return self.profiles.get(name_or_arn)

    def topic_kms_key(self, topic_arn: str) -> str | None:
        return self.topic_keys.get(topic_arn)

    def secret(self, secret_id: str) -> SecretFacts | None:
        return self.secrets.get(secret_id)


def account(version: VersionFacts | None = None) -> FakeLookup:
    """An image with a snapshot, a two-version template (default 2) and the group that launches from it."""
    v2 = version or VersionFacts(image_id=IMAGE, security_group_ids=("sg-0web",))
    return FakeLookup(
        images={IMAGE: ImageFacts(tags=APP, snapshot_ids=(SNAPSHOT,), owner=ACCOUNT)},
        snapshots={SNAPSHOT: SnapshotFacts(tags={"Name": "root"}, owner=ACCOUNT)},
        groups={GROUP: GroupFacts(GROUP_ID, {**APP, "team": "web"}, TEMPLATE, "2", ("subnet-0a", "subnet-0b"))},
        templates={TEMPLATE: TemplateFacts(TEMPLATE, APP, 2, {1: VersionFacts(image_id="ami-old"), 2: v2})},
        template_names={"web-app-test-lt": TEMPLATE},
        default_groups={"subnet-0a": "sg-0default", "subnet-0b": "sg-0default"},
        profiles={PROFILE_ARN: ProfileFacts(PROFILE_ARN, (ROLE_ARN,))},
        topic_keys={TOPIC: KEY},
    )


def only(requests: list[AuthorizationRequest], action: str) -> list[AuthorizationRequest]:
    return [r for r in requests if r.action == action]


def group_arn(group_id: str = GROUP_ID, name: str = GROUP) -> str:
    return f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:{group_id}:autoScalingGroupName/{name}"


# --- EC2 ---------------------------------------------------------------------------------------------------


def test_deregister_image_is_authorized_on_the_image_with_its_tags() -> None:
    (request,) = requests_for("ec2", "DeregisterImage", {"ImageId": IMAGE}, WHERE, account())

    assert request.action == "ec2:DeregisterImage"
    assert request.resource == f"arn:aws:ec2:{REGION}::image/{IMAGE}"
    assert request.context["aws:ResourceTag/immutable-ami:application"] == ("web-app",)
    assert request.context["ec2:ResourceTag/immutable-ami:application"] == ("web-app",)
    assert request.context["ec2:ImageID"] == (IMAGE,)
    assert request.context["ec2:Owner"] == (ACCOUNT,)
    assert {"aws:ResourceTag/*", "ec2:ResourceTag/*", "ec2:Region", "ec2:Public"} <= request.condition_keys


def test_deregister_image_deleting_its_snapshots_also_needs_delete_snapshot_on_each() -> None:
    params = {"ImageId": IMAGE, "DeleteAssociatedSnapshots": True}
    deregister, delete = requests_for("ec2", "DeregisterImage", params, WHERE, account())

    assert deregister.action == "ec2:DeregisterImage"
    assert delete.action == "ec2:DeleteSnapshot"
    assert delete.resource == f"arn:aws:ec2:{REGION}::snapshot/{SNAPSHOT}"
    assert delete.context["aws:ResourceTag/Name"] == ("root",)
    assert delete.context["ec2:SnapshotID"] == (SNAPSHOT,)
    assert "DeleteAssociatedSnapshots" in delete.why


def test_deregister_image_keeping_its_snapshots_needs_no_delete_snapshot() -> None:
    requests = requests_for("ec2", "DeregisterImage", {"ImageId": IMAGE}, WHERE, account())

    assert only(requests, "ec2:DeleteSnapshot") == []


def test_deregister_of_an_unknown_image_is_on_its_arn_without_tags() -> None:
    (request,) = requests_for("ec2", "DeregisterImage", {"ImageId": "ami-gone"}, WHERE, FakeLookup())

    assert request.resource == f"arn:aws:ec2:{REGION}::image/ami-gone"
    assert not any(k.startswith("aws:ResourceTag/") for k in request.context)
    assert "aws:ResourceTag/*" in request.condition_keys  # absent in AWS too: the image has no tags
    assert "ec2:Owner" not in request.condition_keys  # unknown: a policy on it is refused, not guessed


def test_create_tags_on_an_image_carries_the_request_tags_its_tags_and_no_create_action() -> None:
    params = {"Resources": [IMAGE], "Tags": [{"Key": "immutable-ami:commit", "Value": "abc123"}]}
    (request,) = requests_for("ec2", "CreateTags", params, WHERE, account())

    assert request.resource == f"arn:aws:ec2:{REGION}::image/{IMAGE}"
    assert request.context["aws:RequestTag/immutable-ami:commit"] == ("abc123",)
    assert request.context["aws:TagKeys"] == ("immutable-ami:commit",)
    assert request.context["aws:ResourceTag/immutable-ami:application"] == ("web-app",)
    assert "ec2:CreateAction" in request.condition_keys
    assert "ec2:CreateAction" not in request.context


def test_create_tags_on_an_unmapped_resource_type_fails_loudly() -> None:
    with pytest.raises(UnmappedCallError, match="i-0abc"):
        requests_for("ec2", "CreateTags", {"Resources": ["i-0abc"], "Tags": []}, WHERE, account())


@pytest.mark.parametrize(
    "operation", ["CreateLaunchTemplateVersion", "ModifyLaunchTemplate", "DeleteLaunchTemplateVersions"]
)
def test_launch_template_changes_are_on_the_template_with_its_tags(operation: str) -> None:
    (request,) = requests_for("ec2", operation, {"LaunchTemplateId": TEMPLATE}, WHERE, account())

    assert request.action == f"ec2:{operation}"
    assert request.resource == TEMPLATE_ARN
    assert request.context["ec2:ResourceTag/immutable-ami:application"] == ("web-app",)


def test_launch_template_named_by_name_is_on_its_id() -> None:
    (request,) = requests_for(
        "ec2", "ModifyLaunchTemplate", {"LaunchTemplateName": "web-app-test-lt"}, WHERE, account()
    )

    assert request.resource == TEMPLATE_ARN


def test_new_template_version_from_an_ssm_alias_also_reads_the_parameter() -> None:
    params = {"LaunchTemplateId": TEMPLATE, "LaunchTemplateData": {"ImageId": "resolve:ssm:/golden/ami:3"}}
    _, read = requests_for("ec2", "CreateLaunchTemplateVersion", params, WHERE, account())

    assert read.action == "ssm:GetParameters"
    assert read.resource == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/golden/ami"


def test_describing_versions_that_resolve_an_ssm_alias_also_reads_the_parameter() -> None:
    lookup = account(VersionFacts(image_id="resolve:ssm:/golden/ami", security_group_ids=("sg-0web",)))
    params = {"LaunchTemplateId": TEMPLATE, "Versions": ["$Default"], "ResolveAlias": True}
    describe, read = requests_for("ec2", "DescribeLaunchTemplateVersions", params, WHERE, lookup)

    assert (describe.action, describe.resource) == ("ec2:DescribeLaunchTemplateVersions", "*")
    assert (read.action, read.resource) == ("ssm:GetParameters", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/golden/ami")


@pytest.mark.parametrize(
    ("service", "operation", "action"),
    [
        ("ec2", "DescribeImages", "ec2:DescribeImages"),
        ("ec2", "DescribeImageReferences", "ec2:DescribeImageReferences"),
        ("ec2", "DescribeInstances", "ec2:DescribeInstances"),
        ("ec2", "DescribeLaunchTemplates", "ec2:DescribeLaunchTemplates"),
        ("ec2", "DescribeLaunchTemplateVersions", "ec2:DescribeLaunchTemplateVersions"),
        ("ec2", "DescribeSnapshots", "ec2:DescribeSnapshots"),
        ("ec2", "DescribeSubnets", "ec2:DescribeSubnets"),
        ("autoscaling", "DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingGroups"),
        ("autoscaling", "DescribeInstanceRefreshes", "autoscaling:DescribeInstanceRefreshes"),
        ("autoscaling", "DescribeScalingActivities", "autoscaling:DescribeScalingActivities"),
        ("autoscaling", "DescribeLoadBalancerTargetGroups", "autoscaling:DescribeLoadBalancerTargetGroups"),
        ("elbv2", "DescribeTargetHealth", "elasticloadbalancing:DescribeTargetHealth"),
        ("ssm", "DescribeParameters", "ssm:DescribeParameters"),
    ],
)
def test_list_calls_have_no_resource_type(service: str, operation: str, action: str) -> None:
    (request,) = requests_for(service, operation, {"AutoScalingGroupName": GROUP}, WHERE, account())

    assert (request.action, request.resource) == (action, "*")


def test_every_request_carries_the_global_keys_and_ec2_region() -> None:
    (request,) = requests_for("ec2", "DescribeImages", {}, WHERE, account())

    assert request.context["aws:RequestedRegion"] == (REGION,)
    assert request.context["aws:PrincipalAccount"] == (ACCOUNT,)
    assert request.context["ec2:Region"] == (REGION,)


# --- Auto Scaling, and launching from a template -----------------------------------------------------------


def test_start_instance_refresh_also_needs_run_instances_on_the_template() -> None:
    params = {
        "AutoScalingGroupName": GROUP,
        "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "2"}},
    }
    requests = requests_for("autoscaling", "StartInstanceRefresh", params, WHERE, account())

    start, *launch = requests
    assert (start.action, start.resource) == ("autoscaling:StartInstanceRefresh", group_arn())
    assert start.context["autoscaling:ResourceTag/team"] == ("web",)
    assert {r.resource for r in only(requests, "ec2:RunInstances")} == {
        TEMPLATE_ARN,
        f"arn:aws:ec2:{REGION}::image/{IMAGE}",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/*",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/subnet-0a",  # the group's subnets
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/subnet-0b",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0web",
    }
    assert all(r.context["ec2:LaunchTemplate"] == (TEMPLATE_ARN,) for r in launch)
    assert all("ec2:LaunchTemplate" in r.condition_keys and "StartInstanceRefresh" in r.why for r in launch)
    assert only(requests, "iam:PassRole") == []  # the template has no instance profile


def test_launch_from_a_template_with_an_instance_profile_passes_its_role_to_ec2() -> None:
    version = VersionFacts(image_id=IMAGE, security_group_ids=("sg-0web",), instance_profile=PROFILE_ARN)
    params = {"AutoScalingGroupName": GROUP, "LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "2"}}
    requests = requests_for("autoscaling", "UpdateAutoScalingGroup", params, WHERE, account(version))

    (pass_role,) = only(requests, "iam:PassRole")
    assert pass_role.resource == ROLE_ARN
    assert pass_role.context["iam:PassedToService"] == ("ec2.amazonaws.com",)
    assert "UpdateAutoScalingGroup" in pass_role.why
    (instance,) = [r for r in only(requests, "ec2:RunInstances") if r.resource.endswith(":instance/*")]
    assert instance.context["ec2:InstanceProfile"] == (PROFILE_ARN,)


def test_launch_from_a_template_that_tags_instances_needs_create_tags_on_create() -> None:
    version = VersionFacts(
        image_id=IMAGE, security_group_ids=("sg-0web",), tag_specifications={"instance": {"Name": "web"}}
    )
    params = {"AutoScalingGroupName": GROUP, "LaunchTemplate": {"LaunchTemplateId": TEMPLATE}}
    requests = requests_for("autoscaling", "UpdateAutoScalingGroup", params, WHERE, account(version))

    (tagging,) = only(requests, "ec2:CreateTags")
    assert tagging.resource == f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"
    assert tagging.context["ec2:CreateAction"] == ("RunInstances",)
    assert tagging.context["aws:RequestTag/Name"] == ("web",)


def test_launch_from_a_template_without_security_groups_uses_the_vpc_default_group() -> None:
    params = {"AutoScalingGroupName": GROUP, "LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "1"}}
    requests = requests_for("autoscaling", "UpdateAutoScalingGroup", params, WHERE, account())

    groups = [r.resource for r in only(requests, "ec2:RunInstances") if ":security-group/" in r.resource]
    assert groups == [f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0default"]
    assert f"arn:aws:ec2:{REGION}::image/ami-old" in {r.resource for r in requests}


def test_start_instance_refresh_without_a_desired_configuration_checks_only_the_group() -> None:
    (request,) = requests_for("autoscaling", "StartInstanceRefresh", {"AutoScalingGroupName": GROUP}, WHERE, account())

    assert request.action == "autoscaling:StartInstanceRefresh"


def test_update_of_sizes_only_checks_no_launch() -> None:
    params = {"AutoScalingGroupName": GROUP, "MinSize": 0, "MaxSize": 4, "DesiredCapacity": 2}
    (request,) = requests_for("autoscaling", "UpdateAutoScalingGroup", params, WHERE, account())

    assert request.context["autoscaling:MinSize"] == ("0",)
    assert request.context["autoscaling:MaxSize"] == ("4",)
    assert "autoscaling:LaunchTemplateVersionSpecified" not in request.condition_keys  # docs silent: refused


def test_pinning_a_template_version_says_the_version_is_specified() -> None:
    pinned = {"AutoScalingGroupName": GROUP, "LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "2"}}
    latest = {"AutoScalingGroupName": GROUP, "LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "$Latest"}}

    (update, *_) = requests_for("autoscaling", "UpdateAutoScalingGroup", pinned, WHERE, account())
    (moving, *_) = requests_for("autoscaling", "UpdateAutoScalingGroup", latest, WHERE, account())

    assert update.context["autoscaling:LaunchTemplateVersionSpecified"] == ("true",)
    assert moving.context["autoscaling:LaunchTemplateVersionSpecified"] == ("false",)


def test_create_group_is_on_a_new_group_with_the_request_tags_and_launches_into_its_subnets() -> None:
    params = {
        "AutoScalingGroupName": "web-app-test-d1",
        "LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "2"},
        "MinSize": 1,
        "MaxSize": 2,
        "VPCZoneIdentifier": "subnet-0c",
        "TargetGroupARNs": [TARGET_GROUP],
        "Tags": [{"ResourceId": "web-app-test-d1", "Key": "immutable-ami:application", "Value": "web-app"}],
    }
    create, *launch = requests_for("autoscaling", "CreateAutoScalingGroup", params, WHERE, account())

    assert create.resource == group_arn(NEW_GROUP_ID, "web-app-test-d1")
    assert create.context["aws:RequestTag/immutable-ami:application"] == ("web-app",)
    assert create.context["aws:TagKeys"] == ("immutable-ami:application",)
    assert create.context["autoscaling:TargetGroupARNs"] == (TARGET_GROUP,)
    assert create.context["autoscaling:VPCZoneIdentifiers"] == ("subnet-0c",)
    assert not any(k.startswith(("aws:ResourceTag/", "autoscaling:ResourceTag/")) for k in create.context)
    assert f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/subnet-0c" in {r.resource for r in launch}


def test_create_group_with_a_mixed_instances_policy_checks_each_template_it_names() -> None:
    params = {
        "AutoScalingGroupName": "web-app-test-d1",
        "VPCZoneIdentifier": "subnet-0a",
        "MixedInstancesPolicy": {
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": TEMPLATE, "Version": "2"},
                "Overrides": [{"InstanceType": "t3.small"}, {"InstanceType": "t3.medium"}],
            }
        },
    }
    create, *launch = requests_for("autoscaling", "CreateAutoScalingGroup", params, WHERE, account())

    assert create.context["autoscaling:InstanceTypes"] == ("t3.small", "t3.medium")
    assert TEMPLATE_ARN in {r.resource for r in launch}


def test_group_actions_carry_the_group_tags_under_both_prefixes() -> None:
    params = {"AutoScalingGroupName": GROUP, "ForceDelete": True}
    (request,) = requests_for("autoscaling", "DeleteAutoScalingGroup", params, WHERE, account())

    assert request.resource == group_arn()
    assert request.context["aws:ResourceTag/immutable-ami:application"] == ("web-app",)
    assert request.context["autoscaling:ResourceTag/immutable-ami:application"] == ("web-app",)
    assert request.context["autoscaling:ForceDelete"] == ("true",)


@pytest.mark.parametrize(
    "operation", ["RollbackInstanceRefresh", "CancelInstanceRefresh", "SetDesiredCapacity", "DeleteAutoScalingGroup"]
)
def test_group_operations_are_on_the_group(operation: str) -> None:
    (request,) = requests_for("autoscaling", operation, {"AutoScalingGroupName": GROUP}, WHERE, account())

    assert (request.action, request.resource) == (f"autoscaling:{operation}", group_arn())


@pytest.mark.parametrize("operation", ["AttachLoadBalancerTargetGroups", "DetachLoadBalancerTargetGroups"])
def test_target_group_changes_carry_the_target_group_arns(operation: str) -> None:
    params = {"AutoScalingGroupName": GROUP, "TargetGroupARNs": [TARGET_GROUP]}
    (request,) = requests_for("autoscaling", operation, params, WHERE, account())

    assert request.context["autoscaling:TargetGroupARNs"] == (TARGET_GROUP,)


def test_create_or_update_tags_is_one_request_per_group_with_its_request_tags() -> None:
    tags = [
        {"ResourceId": GROUP, "ResourceType": "auto-scaling-group", "Key": "a", "Value": "1"},
        {"ResourceId": GROUP, "ResourceType": "auto-scaling-group", "Key": "b", "Value": "2"},
        {"ResourceId": "other", "ResourceType": "auto-scaling-group", "Key": "a", "Value": "3"},
    ]
    ours, other = requests_for("autoscaling", "CreateOrUpdateTags", {"Tags": tags}, WHERE, account())

    assert ours.resource == group_arn()
    assert ours.context["aws:TagKeys"] == ("a", "b")
    assert other.resource == group_arn(NEW_GROUP_ID, "other")  # not in the account
    assert other.context["aws:RequestTag/a"] == ("3",)


def test_launch_from_an_unknown_template_fails_loudly() -> None:
    params = {"AutoScalingGroupName": GROUP, "LaunchTemplate": {"LaunchTemplateId": "lt-0nothere"}}
    with pytest.raises(UnresolvedCallError, match="lt-0nothere"):
        requests_for("autoscaling", "UpdateAutoScalingGroup", params, WHERE, account())


# --- Step Functions, Lambda --------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"])
def test_send_task_success_has_no_resource_type(operation: str) -> None:
    (request,) = requests_for("stepfunctions", operation, {"taskToken": "t", "output": "{}"}, WHERE, account())

    assert (request.action, request.resource) == (f"states:{operation}", "*")


def test_start_execution_is_on_the_state_machine_and_names_a_qualifier() -> None:
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:web-app-deploy"
    (plain,) = requests_for("states", "StartExecution", {"stateMachineArn": machine}, WHERE, account())
    (alias,) = requests_for("sfn", "StartExecution", {"stateMachineArn": f"{machine}:live"}, WHERE, account())

    assert plain.resource == machine
    assert "states:StateMachineQualifier" in plain.condition_keys
    assert "states:StateMachineQualifier" not in plain.context
    assert alias.context["states:StateMachineQualifier"] == ("live",)


def test_describe_execution_is_on_the_execution() -> None:
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:web-app-deploy:run-1"
    (request,) = requests_for("stepfunctions", "DescribeExecution", {"executionArn": execution}, WHERE, account())

    assert (request.action, request.resource) == ("states:DescribeExecution", execution)


FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:web-app-lock"


@pytest.mark.parametrize(
    ("params", "resource"),
    [
        ({"FunctionName": "web-app-lock"}, FUNCTION),
        ({"FunctionName": FUNCTION}, FUNCTION),
        ({"FunctionName": f"{FUNCTION}:$LATEST"}, f"{FUNCTION}:$LATEST"),
        ({"FunctionName": f"{FUNCTION}:7"}, f"{FUNCTION}:7"),
        ({"FunctionName": "web-app-lock:live"}, f"{FUNCTION}:live"),
        ({"FunctionName": f"{ACCOUNT}:function:web-app-lock"}, FUNCTION),
        ({"FunctionName": "web-app-lock", "Qualifier": "3"}, f"{FUNCTION}:3"),
    ],
)
def test_lambda_invoke_is_on_the_function_arn_as_called(params: dict[str, str], resource: str) -> None:
    (request,) = requests_for("lambda", "Invoke", params, WHERE, account())

    assert (request.action, request.resource) == ("lambda:InvokeFunction", resource)


# --- DynamoDB, SSM, Image Builder, CloudWatch, Secrets Manager, SNS ----------------------------------------

TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/locks"


@pytest.mark.parametrize("operation", ["GetItem", "PutItem", "DeleteItem", "UpdateItem", "Query", "Scan"])
def test_item_calls_are_on_the_table(operation: str) -> None:
    (request,) = requests_for("dynamodb", operation, {"TableName": "locks"}, WHERE, account())

    assert (request.action, request.resource) == (f"dynamodb:{operation}", TABLE)


def test_query_of_an_index_is_on_the_index() -> None:
    (request,) = requests_for("dynamodb", "Query", {"TableName": "locks", "IndexName": "byHolder"}, WHERE, account())

    assert request.resource == f"{TABLE}/index/byHolder"


def test_batch_write_is_one_request_per_table() -> None:
    params: dict[str, object] = {"RequestItems": {"locks": [], "waits": []}}
    requests = requests_for("dynamodb", "BatchWriteItem", params, WHERE, account())

    assert [r.resource for r in requests] == [TABLE, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/waits"]


@pytest.mark.parametrize(
    ("name", "resource"),
    [
        ("/web-app/build-source", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/web-app/build-source"),
        ("build-source", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/build-source"),
        (f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/x", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/x"),
    ],
)
def test_ssm_parameter_arn_forms(name: str, resource: str) -> None:
    (request,) = requests_for("ssm", "GetParameter", {"Name": name}, WHERE, account())

    assert (request.action, request.resource) == ("ssm:GetParameter", resource)


def test_get_parameters_is_one_request_per_name() -> None:
    requests = requests_for("ssm", "GetParameters", {"Names": ["/a", "/b"]}, WHERE, account())

    assert [r.resource.rsplit(":", 1)[-1] for r in requests] == ["parameter/a", "parameter/b"]


def test_put_parameter_says_whether_it_overwrites() -> None:
    params = {"Name": "/web-app/build-source", "Value": "v", "Type": "String", "Overwrite": True}
    (request,) = requests_for("ssm", "PutParameter", params, WHERE, account())

    assert request.context["ssm:Overwrite"] == ("true",)
    assert {"aws:RequestTag/*", "aws:TagKeys"} <= request.condition_keys


def test_start_pipeline_is_on_the_pipeline_and_reads_it() -> None:
    pipeline = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/web-app"
    params = {"imagePipelineArn": pipeline, "clientToken": "t"}
    start, read = requests_for("imagebuilder", "StartImagePipelineExecution", params, WHERE, account())

    assert (start.action, start.resource) == ("imagebuilder:StartImagePipelineExecution", pipeline)
    assert (read.action, read.resource) == ("imagebuilder:GetImagePipeline", pipeline)


@pytest.mark.parametrize("operation", ["GetImage", "ListImagePackages"])
def test_image_builder_reads_are_on_the_build_version(operation: str) -> None:
    build = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/web-app/1.0.0/4"
    (request,) = requests_for("imagebuilder", operation, {"imageBuildVersionArn": build}, WHERE, account())

    assert (request.action, request.resource) == (f"imagebuilder:{operation}", build)


def test_describe_alarms_is_one_request_per_alarm_name() -> None:
    params = {"AlarmNames": ["5xx", "latency"], "AlarmTypes": ["MetricAlarm"]}
    requests = requests_for("monitoring", "DescribeAlarms", params, WHERE, account())

    assert [r.resource for r in requests] == [
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:5xx",
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:latency",
    ]


def test_get_secret_value_is_on_the_secret_arn() -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:github-webhook-AbCdEf"
    lookup = FakeLookup(secrets={"github-webhook": SecretFacts(arn, {"team": "web"})})

    (known,) = requests_for("secretsmanager", "GetSecretValue", {"SecretId": "github-webhook"}, WHERE, lookup)
    (unknown,) = requests_for("secretsmanager", "GetSecretValue", {"SecretId": "other"}, WHERE, lookup)

    assert known.resource == arn
    assert known.context["secretsmanager:ResourceTag/team"] == ("web",)
    assert unknown.resource == f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:other-??????"


def test_publish_to_an_encrypted_topic_also_needs_the_kms_key() -> None:
    requests = requests_for("sns", "Publish", {"TopicArn": TOPIC, "Message": "m"}, WHERE, account())

    assert [(r.action, r.resource) for r in requests] == [
        ("sns:Publish", TOPIC),
        ("kms:GenerateDataKey", KEY),
        ("kms:Decrypt", KEY),
    ]
    assert all(TOPIC in r.why for r in requests[1:])


def test_publish_to_an_unencrypted_topic_needs_only_publish() -> None:
    (request,) = requests_for("sns", "Publish", {"TopicArn": TOPIC, "Message": "m"}, WHERE, FakeLookup())

    assert request.action == "sns:Publish"


# --- Services and unmapped calls ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    [
        ("elbv2", "DescribeTargetHealth", {}),
        ("elasticloadbalancing", "DescribeTargetHealth", {}),
        ("cloudwatch", "DescribeAlarms", {"AlarmNames": ["a"]}),
        ("monitoring", "DescribeAlarms", {"AlarmNames": ["a"]}),
        ("stepfunctions", "SendTaskSuccess", {}),
        ("states", "SendTaskSuccess", {}),
    ],
)
def test_services_are_named_by_botocore_name_or_endpoint_prefix(
    service: str, operation: str, params: dict[str, object]
) -> None:
    assert requests_for(service, operation, params, WHERE, account())


@pytest.mark.parametrize(
    ("service", "operation"),
    [("ec2", "RunInstances"), ("kms", "Decrypt"), ("sqs", "SendMessage"), ("autoscaling", "PutScalingPolicy")],
)
def test_unmapped_call_fails_loudly(service: str, operation: str) -> None:
    with pytest.raises(UnmappedCallError, match=f"{service}.{operation} has no IAM mapping"):
        requests_for(service, operation, {}, WHERE, account())


# --- MotoLookup: the emulated account as moto holds it -----------------------------------------------------


@pytest.fixture
def moto_account() -> Iterator[dict[str, str]]:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        image = ec2.register_image(Name="web-app-1", RootDeviceName="/dev/xvda")["ImageId"]
        ec2.create_tags(Resources=[image], Tags=[{"Key": "immutable-ami:application", "Value": "web-app"}])
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        iam = boto3.client("iam", region_name=REGION)
        iam.create_role(RoleName="web-instance", AssumeRolePolicyDocument="{}")
        profile = iam.create_instance_profile(InstanceProfileName="web")["InstanceProfile"]["Arn"]
        iam.add_role_to_instance_profile(InstanceProfileName="web", RoleName="web-instance")
        template = ec2.create_launch_template(
            LaunchTemplateName="web-app-test-lt",
            LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro", "IamInstanceProfile": {"Arn": profile}},
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "owner", "Value": "web"}]}],
        )["LaunchTemplate"]["LaunchTemplateId"]
        boto3.client("autoscaling", region_name=REGION).create_auto_scaling_group(
            AutoScalingGroupName=GROUP,
            LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
            MinSize=0,
            MaxSize=2,
            VPCZoneIdentifier=subnet,
            Tags=[{"Key": "team", "Value": "web", "PropagateAtLaunch": False}],
        )
        kms = boto3.client("kms", region_name=REGION)
        key = kms.create_key()["KeyMetadata"]
        kms.create_alias(AliasName="alias/deployments", TargetKeyId=key["KeyId"])
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="deployments", Attributes={"KmsMasterKeyId": "alias/deployments"})["TopicArn"]
        plain = sns.create_topic(Name="plain")["TopicArn"]
        yield {
            "image": image, "subnet": subnet, "template": template, "profile": profile,
            "topic": topic, "plain": plain, "key": key["Arn"],
        }  # fmt: skip


def test_moto_lookup_reads_an_image_with_its_tags_and_snapshot(moto_account: dict[str, str]) -> None:
    lookup = MotoLookup(WHERE)
    image = lookup.image(moto_account["image"])

    assert image is not None
    assert image.tags == APP
    assert image.owner == ACCOUNT
    assert image.root_device_type == "ebs"
    (snapshot_id,) = image.snapshot_ids
    assert lookup.snapshot(snapshot_id) == SnapshotFacts(tags={}, owner=ACCOUNT)
    assert lookup.image("ami-0nothere") is None


def test_moto_lookup_reads_the_group_its_template_and_the_instance_profile(moto_account: dict[str, str]) -> None:
    lookup = MotoLookup(WHERE)
    group = lookup.group(GROUP)
    template = lookup.launch_template(moto_account["template"])

    assert group is not None
    assert template is not None
    assert group.tags == {"team": "web"}
    assert (group.launch_template_id, group.launch_template_version) == (moto_account["template"], "1")
    assert group.subnet_ids == (moto_account["subnet"],)
    assert template.tags == {"owner": "web"}
    assert template.version("$Default") == template.versions[1]
    assert template.versions[1].image_id == moto_account["image"]
    assert lookup.launch_template_named("web-app-test-lt") == template
    assert lookup.default_security_group(moto_account["subnet"]) is not None
    profile = lookup.instance_profile(moto_account["profile"])
    assert profile is not None
    assert profile.role_arns == (f"arn:aws:iam::{ACCOUNT}:role/web-instance",)


def test_moto_lookup_feeds_the_launch_checks_of_a_refresh(moto_account: dict[str, str]) -> None:
    params = {
        "AutoScalingGroupName": GROUP,
        "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": moto_account["template"], "Version": "1"}},
    }
    requests = requests_for("autoscaling", "StartInstanceRefresh", params, WHERE, MotoLookup(WHERE))

    start = requests[0]
    assert start.resource.startswith(f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:")
    assert start.resource.endswith(f":autoScalingGroupName/{GROUP}")
    assert NEW_GROUP_ID not in start.resource
    assert start.context["autoscaling:ResourceTag/team"] == ("web",)
    resources = {r.resource for r in only(requests, "ec2:RunInstances")}
    assert f"arn:aws:ec2:{REGION}::image/{moto_account['image']}" in resources
    assert f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/{moto_account['subnet']}" in resources
    (pass_role,) = only(requests, "iam:PassRole")
    assert pass_role.resource == f"arn:aws:iam::{ACCOUNT}:role/web-instance"


def test_moto_lookup_resolves_a_topic_key_alias_to_the_key_arn(moto_account: dict[str, str]) -> None:
    lookup = MotoLookup(WHERE)

    assert lookup.topic_kms_key(moto_account["topic"]) == moto_account["key"]
    assert lookup.topic_kms_key(moto_account["plain"]) is None
