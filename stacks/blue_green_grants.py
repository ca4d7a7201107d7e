"""The IAM of the blue-green steps (stacks/steps.py names each beside its entry).

Blue-green steps change only the configured (seed) groups and the `<seed>-*` groups they create, of the
blue-green stages only, never a rolling stage's; deleting is further conditioned on this application's tag,
and never allowed on a seed group. Without a blue-green stage the functions exist (the ASL names them) but
may change nothing.
"""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_

from stacks.fleet_arns import alarm_arns, auto_scaling_group_arns, blue_green_group_arns, launch_template_arns
from stacks.step_grants import AUTOSCALING_READ, OURS, StepContext, allow, launch_with_templates

GROUP_CHANGES = [
    "autoscaling:CreateOrUpdateTags",
    "autoscaling:UpdateAutoScalingGroup",
    "autoscaling:AttachLoadBalancerTargetGroups",
    "autoscaling:DetachLoadBalancerTargetGroups",
]


def _reads(ctx: StepContext, fn: lambda_.Function) -> bool:
    """The reads every blue-green step makes; False when no stage is blue-green (then they are all it gets)."""
    if not blue_green_group_arns(ctx.config):
        allow(fn, AUTOSCALING_READ, ["*"])
        return False
    allow(fn, [*AUTOSCALING_READ, "autoscaling:DescribeLoadBalancerTargetGroups"], ["*"])
    return True


def _ours(ctx: StepContext) -> dict[str, dict[str, str]]:
    return {"StringEquals": {OURS: ctx.config.application}}


def _change_groups(ctx: StepContext, fn: lambda_.Function) -> None:
    # the configured groups, which may carry none of our tags yet; the created ones only with our tag
    allow(fn, GROUP_CHANGES, auto_scaling_group_arns(ctx.config, "blue-green"))
    allow(fn, GROUP_CHANGES, blue_green_group_arns(ctx.config), conditions=_ours(ctx))


def _delete_groups(ctx: StepContext, fn: lambda_.Function) -> None:
    allow(fn, ["autoscaling:DeleteAutoScalingGroup"], blue_green_group_arns(ctx.config), conditions=_ours(ctx))


def grant_create_green_group(ctx: StepContext, fn: lambda_.Function) -> None:
    if not _reads(ctx, fn):
        return
    allow(fn, ["ec2:DescribeLaunchTemplateVersions"], ["*"])
    allow(
        fn,
        ["autoscaling:CreateAutoScalingGroup"],
        blue_green_group_arns(ctx.config),
        conditions={"StringEquals": {"aws:RequestTag/immutable-ami:application": ctx.config.application}},
    )
    for statement in launch_with_templates(ctx, "blue-green"):
        fn.add_to_role_policy(statement)
    _change_groups(ctx, fn)


def grant_check_green_group(ctx: StepContext, fn: lambda_.Function) -> None:
    if not _reads(ctx, fn):
        return
    allow(fn, ["elasticloadbalancing:DescribeTargetHealth"], ["*"])
    alarms = alarm_arns(ctx.workflow, ctx.config)
    if alarms:
        allow(fn, ["cloudwatch:DescribeAlarms"], alarms)


def grant_shift_traffic(ctx: StepContext, fn: lambda_.Function) -> None:
    if _reads(ctx, fn):
        _change_groups(ctx, fn)


def grant_discard_green(ctx: StepContext, fn: lambda_.Function) -> None:
    if not _reads(ctx, fn):
        return
    allow(fn, ["elasticloadbalancing:DescribeTargetHealth"], ["*"])  # waits for a restored blue to serve
    _change_groups(ctx, fn)
    _delete_groups(ctx, fn)
    allow(fn, ["ec2:DescribeLaunchTemplateVersions"], ["*"])
    allow(fn, ["ec2:ModifyLaunchTemplate"], launch_template_arns(ctx.workflow, ctx.config, "blue-green"))


def grant_retire_groups(ctx: StepContext, fn: lambda_.Function) -> None:
    if _reads(ctx, fn):
        _delete_groups(ctx, fn)
