"""The ARNs of the configured fleet (launch templates, Auto Scaling groups, alarms) the step grants name."""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Stack
from constructs import Construct

from shared.config import Target
from stacks.config import PipelineConfig


def _targets(config: PipelineConfig, strategy: str | None) -> list[Target]:
    """Every configured target, or those of the stages with `strategy`."""
    return [t for s in config.deploy_config().stages if strategy in (None, s.strategy) for t in s.targets]


def launch_template_arns(scope: Construct, config: PipelineConfig, strategy: str | None = None) -> list[str]:
    stack = Stack.of(scope)
    return [
        stack.format_arn(service="ec2", resource="launch-template", resource_name=t.launch_template_id)
        for t in _targets(config, strategy)
    ]


def auto_scaling_group_arns(config: PipelineConfig, strategy: str | None = None) -> list[str]:
    return [
        f"arn:{Aws.PARTITION}:autoscaling:{Aws.REGION}:{Aws.ACCOUNT_ID}:autoScalingGroup:*:"
        f"autoScalingGroupName/{t.auto_scaling_group_name}"
        for t in _targets(config, strategy)
    ]


def blue_green_group_arns(config: PipelineConfig) -> list[str]:
    """The groups blue-green stages create: named `<configured group>-<deployment>`."""
    return [f"{arn}-*" for arn in auto_scaling_group_arns(config, "blue-green")]


def alarm_arns(scope: Construct, config: PipelineConfig) -> list[str]:
    stack = Stack.of(scope)
    return [
        stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
        for name in config.deploy_config().blue_green.alarms
    ]


def state_machine_arn_by_name(scope: Construct, config: PipelineConfig) -> str:
    """The deploy state machine's ARN built from its name (no reference to the resource, so no cycle)."""
    return Stack.of(scope).format_arn(
        service="states",
        resource="stateMachine",
        resource_name=f"{config.application}-deploy",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
