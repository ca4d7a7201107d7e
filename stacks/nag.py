"""cdk-nag (AwsSolutions) acknowledgements: each finding by its exact id, each with a one-line reason.

cdk-nag 3.x runs as a CDK validation plugin (app.py registers it); a finding that is not
acknowledged fails `cdk synth`. Acknowledge next to the construct that causes the finding.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

PARTITION, REGION, ACCOUNT = "<AWS::Partition>", "<AWS::Region>", "<AWS::AccountId>"


def acknowledge(scope: IConstruct, reason: str, *finding_ids: str) -> None:
    for finding_id in finding_ids:
        Validations.of(scope).acknowledge(Acknowledgment(id=finding_id, reason=reason))


def wildcard_resource(resource: str) -> str:
    return f"AwsSolutions-IAM5[Resource::{resource}]"


def function_versions(fn: lambda_.Function) -> str:
    """The `<Fn.Arn>:*` finding that `grant_invoke` produces (any version or alias of the function)."""
    logical_id = Stack.of(fn).get_logical_id(fn.node.default_child)  # type: ignore[arg-type]
    return wildcard_resource(f"<{logical_id}.Arn>:*")


def managed_policy(name: str) -> str:
    return f"AwsSolutions-IAM4[Policy::arn:{PARTITION}:iam::aws:policy/{name}]"


__all__ = ["ACCOUNT", "PARTITION", "REGION", "acknowledge", "function_versions", "managed_policy", "wildcard_resource"]
