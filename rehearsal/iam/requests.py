"""The IAM authorization requests AWS makes for one API call, from the Service Authorization Reference (SAR).

`requests_for(service, operation, params, where, lookup)` maps one call, as the caller passed it to botocore,
to the requests IAM evaluates for it: the call's own action (one request per resource it names) and the
dependent checks a service documents (Auto Scaling's "may the caller launch from this template", EC2 deleting
an AMI's snapshots, SNS using the topic's KMS key). A call without a mapping raises `UnmappedCallError`.

What a request says about condition keys:
- `context` carries the global keys `aws:RequestedRegion` and `aws:PrincipalAccount` (the rehearsal's roles
  live in `where.account`), `ec2:Region` on EC2 actions, and every modelled key AWS would send.
- `condition_keys` lists the SAR keys this module models for that action and resource type. A modelled key is
  in `context` whenever AWS would send it, so a listed key missing from `context` is absent in AWS too.
  SAR keys this module does not model (named in each block as "not modelled") are left out on purpose: a
  policy that conditions on one makes the evaluator refuse instead of deciding on a guess.

Resource ARNs follow the "Resource types" table of each SAR page; the facts they need (tags, snapshots, the
launch template a group uses...) come from a `Lookup` of the emulated account. `MotoLookup` reads moto's
in-memory backends directly: a boto3 call from here would go through the rehearsal's hook again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rehearsal.iam import AuthorizationRequest
from rehearsal.iam.ec2 import _create_tags, _deregister_image, _describe_template_versions, _on_template, run_instances
from rehearsal.iam.facts import (
    NEW_GROUP_ID,
    GroupFacts,
    ImageFacts,
    Lookup,
    Mapper,
    ProfileFacts,
    SecretFacts,
    SnapshotFacts,
    TemplateFacts,
    UnmappedCallError,
    UnresolvedCallError,
    VersionFacts,
    Where,
    _Call,
    _star,
)
from rehearsal.iam.moto_lookup import MotoLookup
from rehearsal.iam.services import (
    _batch_write,
    _create_group,
    _create_image,
    _create_recipe,
    _describe_alarms,
    _get_secret,
    _invoke,
    _on_build,
    _on_group,
    _on_parameters,
    _on_table,
    _publish,
    _put_parameter,
    _start_execution,
    _start_pipeline,
    _start_refresh,
    _tag_groups,
    _update_group,
)


# --- The table: "<IAM service prefix>.<operation>" -> mapper ----------------------------------------------
def _each(prefix: str, factory: Callable[[str], Mapper], operations: str) -> dict[str, Mapper]:
    return {f"{prefix}.{op}": factory(f"{prefix}:{op}") for op in operations.split()}


_MAPPINGS: dict[str, Mapper] = {
    **_each("ec2", _star, "DescribeImages DescribeImageReferences DescribeInstances DescribeLaunchTemplates"),
    **_each("ec2", _star, "DescribeSnapshots DescribeSubnets"),
    "ec2.DescribeLaunchTemplateVersions": _describe_template_versions,
    **_each("ec2", _on_template, "CreateLaunchTemplateVersion ModifyLaunchTemplate DeleteLaunchTemplateVersions"),
    "ec2.DeregisterImage": _deregister_image,
    "ec2.CreateTags": _create_tags,
    "ec2.RunInstances": run_instances,
    **_each("autoscaling", _star, "DescribeAutoScalingGroups DescribeInstanceRefreshes DescribeScalingActivities"),
    **_each("autoscaling", _star, "DescribeLoadBalancerTargetGroups"),
    **_each("autoscaling", _on_group, "RollbackInstanceRefresh CancelInstanceRefresh DeleteAutoScalingGroup"),
    **_each(
        "autoscaling", _on_group, "SetDesiredCapacity AttachLoadBalancerTargetGroups DetachLoadBalancerTargetGroups"
    ),
    "autoscaling.StartInstanceRefresh": _start_refresh,
    "autoscaling.CreateAutoScalingGroup": _create_group,
    "autoscaling.UpdateAutoScalingGroup": _update_group,
    "autoscaling.CreateOrUpdateTags": _tag_groups,
    "elasticloadbalancing.DescribeTargetHealth": _star("elasticloadbalancing:DescribeTargetHealth"),
    "cloudwatch.DescribeAlarms": _describe_alarms,
    **_each("dynamodb", _on_table, "GetItem PutItem DeleteItem UpdateItem Query Scan"),
    "dynamodb.BatchWriteItem": _batch_write,
    "ssm.PutParameter": _put_parameter,
    **_each("ssm", _on_parameters, "GetParameter GetParameters"),
    "ssm.DescribeParameters": _star("ssm:DescribeParameters"),
    "imagebuilder.StartImagePipelineExecution": _start_pipeline,
    **_each("imagebuilder", _on_build, "GetImage ListImagePackages CancelImageCreation"),
    "imagebuilder.CreateImageRecipe": _create_recipe,
    "imagebuilder.CreateImage": _create_image,
    **_each("states", _star, "SendTaskSuccess SendTaskFailure SendTaskHeartbeat"),
    "states.StartExecution": _start_execution,
    "states.DescribeExecution": lambda c: [c.request("states:DescribeExecution", str(c.params["executionArn"]))],
    "states.GetExecutionHistory": lambda c: [c.request("states:GetExecutionHistory", str(c.params["executionArn"]))],
    "secretsmanager.GetSecretValue": _get_secret,
    "sns.Publish": _publish,
    "lambda.Invoke": _invoke,
    # SAR: "Actions, resources, and condition keys for AWS CodeCommit",
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscodecommit.html: GetCommit on
    # repository* (arn:${Partition}:codecommit:${Region}:${Account}:${RepositoryName}). Not modelled: repository tags.
    "codecommit.GetCommit": lambda c: [
        c.request("codecommit:GetCommit", c.arn("codecommit", str(c.params["repositoryName"])))
    ],
}

# botocore service name, endpoint prefix or hyphenated service id -> the SAR's service prefix
_PREFIXES = {
    "elbv2": "elasticloadbalancing", "elastic-load-balancing-v2": "elasticloadbalancing",
    "monitoring": "cloudwatch", "stepfunctions": "states", "sfn": "states",
    "auto-scaling": "autoscaling", "secrets-manager": "secretsmanager",
}  # fmt: skip
_KNOWN = {"ec2", "autoscaling", "dynamodb", "ssm", "sns", "imagebuilder", "elasticloadbalancing", "cloudwatch"}
_KNOWN |= {"states", "lambda", "secretsmanager", "kms", "codecommit"}


def requests_for(
    service: str, operation: str, params: Mapping[str, Any], where: Where, lookup: Lookup
) -> list[AuthorizationRequest]:
    """The authorization requests AWS evaluates for `service.operation(**params)`, the call's own first."""
    prefix = _PREFIXES.get(service.lower(), service.lower())
    mapper = _MAPPINGS.get(f"{prefix}.{operation}") if prefix in _KNOWN else None
    if mapper is None:
        raise UnmappedCallError(f"{service}.{operation} has no IAM mapping in rehearsal/iam/requests.py")
    return mapper(_Call(operation, params, where, lookup))


__all__ = [
    "NEW_GROUP_ID",
    "GroupFacts",
    "ImageFacts",
    "Lookup",
    "MotoLookup",
    "ProfileFacts",
    "SecretFacts",
    "SnapshotFacts",
    "TemplateFacts",
    "UnmappedCallError",
    "UnresolvedCallError",
    "VersionFacts",
    "Where",
    "requests_for",
]
