"""The IAM of the deploy steps, one grant function per step (stacks/steps.py names each beside its entry).

Every grant adds to the step's own role only, in one place: a step's policy is what its function here adds.
The blue-green steps' grants are in stacks/blue_green_grants.py, those of the steps that read image builds
(start_image_build, check_image_build, register_wait) in stacks/bake_grants.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from stacks.config import PipelineConfig
from stacks.fleet_arns import auto_scaling_group_arns, launch_template_arns, state_machine_arn_by_name

if TYPE_CHECKING:
    from stacks.deploy_workflow import DeployWorkflow
    from stacks.image_builder import ImageBuilderPipelines

WAIT_TTL_SECONDS = 2 * 24 * 3600  # a wait item outlives any wait; DynamoDB's TTL removes forgotten ones
EC2_READ = [
    "ec2:DescribeImages",
    "ec2:DescribeImageReferences",
    "ec2:DescribeInstances",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeSnapshots",
]
AUTOSCALING_READ = [
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeInstanceRefreshes",
    "autoscaling:DescribeScalingActivities",
]
# Only what this application tagged (its AMIs, their snapshots, the groups blue-green stages create).
OURS = "aws:ResourceTag/immutable-ami:application"


@dataclass(frozen=True, kw_only=True)
class StepContext:
    """What the steps' environments and grants refer to: the configuration and the constructs the stack made."""

    config: PipelineConfig
    workflow: DeployWorkflow
    images: ImageBuilderPipelines

    @property
    def stack(self) -> Stack:
        return Stack.of(self.workflow)


def allow(fn: lambda_.Function, actions: list[str], resources: list[str], **kwargs: Any) -> None:
    fn.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=resources, **kwargs))


# -- environments --------------------------------------------------------------------------------------------


def lock_environment(ctx: StepContext) -> dict[str, str]:
    return {
        "LOCK_TABLE_NAME": ctx.workflow.lock_table.table_name,
        "LOCK_TTL_SECONDS": str(ctx.config.lock.ttl_minutes * 60),
        "QUEUE_SECONDS": str(ctx.config.lock.queue_hours * 3600),
    }


def register_wait_environment(ctx: StepContext) -> dict[str, str]:
    return {
        "LOCK_TABLE_NAME": ctx.workflow.lock_table.table_name,
        "WAIT_TTL_SECONDS": str(WAIT_TTL_SECONDS),
        # Approvals: register_wait mails ApprovalRequested (without the token) once the token is stored.
        "NOTIFICATION_TOPIC_ARN": ctx.workflow.topic.topic_arn,
    }


def relay_event_environment(ctx: StepContext) -> dict[str, str]:
    return {"LOCK_TABLE_NAME": ctx.workflow.lock_table.table_name}


def notify_environment(ctx: StepContext) -> dict[str, str]:
    return {"NOTIFICATION_TOPIC_ARN": ctx.workflow.topic.topic_arn}


def finish_execution_environment(ctx: StepContext) -> dict[str, str]:
    return {
        "LOCK_TABLE_NAME": ctx.workflow.lock_table.table_name,
        "NOTIFICATION_TOPIC_ARN": ctx.workflow.topic.topic_arn,
        "STATE_MACHINE_ARN": state_machine_arn_by_name(ctx.workflow, ctx.config),
    }


# -- grants --------------------------------------------------------------------------------------------------
# Describe* calls do not support resource-level permissions: they need "*" (acknowledged in cdk-nag).


def grant_validate_request(ctx: StepContext, fn: lambda_.Function) -> None:
    allow(fn, EC2_READ, ["*"])
    # validate_request refuses a commit the configured CodeCommit repository lacks (GetCommit: repository*,
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscodecommit.html).
    source = ctx.config.source
    if source and source.type == "codecommit":
        allow(fn, ["codecommit:GetCommit"], [ctx.stack.format_arn(service="codecommit", resource=source.repository)])


def grant_lock(ctx: StepContext, fn: lambda_.Function) -> None:
    ctx.workflow.lock_table.grant_read_write_data(fn)
    # The queue: the lock step wakes queued pushes (SendTaskSuccess) and ends superseded ones (SendTaskFailure).
    # No resource types for either in the Service Authorization Reference: a narrower Resource never applies.
    allow(fn, ["states:SendTaskSuccess", "states:SendTaskFailure"], ["*"])


def grant_publish_launch_template_version(ctx: StepContext, fn: lambda_.Function) -> None:
    allow(fn, EC2_READ, ["*"])
    allow(fn, AUTOSCALING_READ, ["*"])
    allow(
        fn,
        ["ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate", "ec2:DeleteLaunchTemplateVersions"],
        launch_template_arns(ctx.workflow, ctx.config),
    )


def grant_start_instance_refresh(ctx: StepContext, fn: lambda_.Function) -> None:
    allow(fn, AUTOSCALING_READ, ["*"])
    allow(fn, ["autoscaling:StartInstanceRefresh"], auto_scaling_group_arns(ctx.config))
    for statement in launch_with_templates(ctx):
        fn.add_to_role_policy(statement)


def grant_check_refresh(ctx: StepContext, fn: lambda_.Function) -> None:
    allow(fn, AUTOSCALING_READ, ["*"])
    allow(fn, ["elasticloadbalancing:DescribeTargetHealth"], ["*"])
    allow(fn, ["ec2:DescribeInstances"], ["*"])


def grant_rollback(ctx: StepContext, fn: lambda_.Function) -> None:
    allow(fn, EC2_READ, ["*"])
    allow(fn, AUTOSCALING_READ, ["*"])
    rollback_changes(ctx, fn)


def grant_prune_images(ctx: StepContext, fn: lambda_.Function) -> None:
    allow(fn, EC2_READ, ["*"])
    allow(fn, AUTOSCALING_READ, ["*"])
    reference_check(ctx, fn)
    # Only AMIs tagged with this application can be deregistered; their snapshots go with them.
    ours = {"StringEquals": {OURS: ctx.config.application}}
    allow(fn, ["ec2:DeregisterImage"], [f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}::image/*"], conditions=ours)
    # DeregisterImage(DeleteAssociatedSnapshots) deletes each snapshot as the caller: a denied one is left in
    # place with DeleteSnapshotResults return code "missing-permissions" while the AMI is deregistered all the
    # same (EC2 API Reference, DeleteSnapshotReturnCode,
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSnapshotReturnCode.html). Only snapshots
    # tagged with this application (check_image_build tags each new AMI's) may be deleted; an older AMI's
    # untagged snapshots stay and the prune reports them (README, "Undoing a prune").
    allow(fn, ["ec2:DeleteSnapshot"], [f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}::snapshot/*"], conditions=ours)


def grant_relay_event(ctx: StepContext, fn: lambda_.Function) -> None:
    """relay_event resumes builds and refreshes on the AWS event (approvers answer approvals: scripts/approval.py)."""
    grant_task_resume(ctx, fn)


def grant_notify(ctx: StepContext, fn: lambda_.Function) -> None:
    # notify publishes the outcome notifications: sns:Publish on the topic, and (CDK's grant_publish on an
    # encrypted topic) kms:Decrypt/GenerateDataKey* on its key (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html).
    ctx.workflow.topic.grant_publish(fn)


def grant_finish_execution(ctx: StepContext, fn: lambda_.Function) -> None:
    """finish_execution rolls back the way the rollback step does, the rolling targets only (never a blue-green
    one), reads the ended execution's history, unlocks and notifies."""
    allow(fn, ["ec2:DescribeLaunchTemplateVersions"], ["*"])
    allow(fn, AUTOSCALING_READ, ["*"])
    rollback_changes(ctx, fn, "rolling")
    execution = ctx.stack.format_arn(
        service="states",
        resource="execution",
        resource_name=f"{ctx.config.application}-deploy:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    allow(fn, ["states:GetExecutionHistory"], [execution])
    # Releasing an ended execution's locks wakes the pushes queued for them (lambdas/lock wake_queued).
    ctx.workflow.lock_table.grant(fn, "dynamodb:DeleteItem", "dynamodb:Scan")
    allow(fn, ["states:SendTaskSuccess"], ["*"])
    ctx.workflow.topic.grant_publish(fn)


# -- shared by several steps ---------------------------------------------------------------------------------


def grant_task_resume(ctx: StepContext, fn: lambda_.Function) -> None:
    """The wait items of the lock table and SendTaskSuccess on the tokens they hold."""
    ctx.workflow.lock_table.grant_read_write_data(fn)
    # The Service Authorization Reference lists no resource types for SendTaskSuccess: a statement naming the
    # state machine never applies, so the resume would be denied.
    allow(fn, ["states:SendTaskSuccess"], ["*"])


def rollback_changes(ctx: StepContext, fn: lambda_.Function, strategy: str | None = None) -> None:
    """What the rollback logic changes, on the groups and templates of the stages with `strategy` (all when
    None): the refresh (roll back, cancel, refresh back, which launches from the templates) and the default."""
    groups = auto_scaling_group_arns(ctx.config, strategy)
    if not groups:
        return
    allow(
        fn,
        [
            "autoscaling:RollbackInstanceRefresh",
            "autoscaling:CancelInstanceRefresh",
            "autoscaling:StartInstanceRefresh",
        ],
        groups,
    )
    allow(fn, ["ec2:ModifyLaunchTemplate"], launch_template_arns(ctx.workflow, ctx.config, strategy))
    for statement in launch_with_templates(ctx, strategy):
        fn.add_to_role_policy(statement)


def reference_check(ctx: StepContext, fn: lambda_.Function) -> None:
    """What DescribeImageReferences (IncludeAllResourceTypes) reads as the caller, scoped to what keeps it complete.

    "Identify your resources referencing specified AMIs", Required IAM permissions
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-ami-references.html): besides the EC2 describes,
    ssm:DescribeParameters, ssm:GetParameters, imagebuilder:ListImageRecipes, imagebuilder:ListContainerRecipes
    and imagebuilder:GetContainerRecipe; its example policy and the AWS managed policy
    AmazonEC2ImageReferencesAccessPolicy grant them only with aws:CalledVia = ec2-images.amazonaws.com (the
    reads EC2 makes on the caller's behalf). The docs do not say what the check answers when one is denied: it
    may silently leave those references out, and a blind check would let the prune delete an AMI a parameter
    or recipe uses. So each is granted on every resource the check can read (it reports only "your
    resources": this account and region), and nothing less.
    """
    stack = ctx.stack
    via_ec2 = {"ForAnyValue:StringEquals": {"aws:CalledVia": ["ec2-images.amazonaws.com"]}}
    # The parameters of this account and region. Also read directly, without aws:CalledVia, by
    # DescribeLaunchTemplateVersions(ResolveAlias=True) for a configured template whose AMI is
    # "resolve:ssm:<parameter>" (SAR, https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html:
    # ssm:GetParameters is a dependent action of the launch template calls).
    fn.add_to_role_policy(
        iam.PolicyStatement(
            actions=["ssm:GetParameters"],
            resources=[stack.format_arn(service="ssm", resource="parameter", resource_name="*")],
        )
    )
    # No resource types in the SAR (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html,
    # DescribeParameters; .../list_amazonec2imagebuilder.html, ListImageRecipes, ListContainerRecipes): "*", but
    # only when EC2 reads them for the reference check.
    fn.add_to_role_policy(
        iam.PolicyStatement(
            actions=[
                "ssm:DescribeParameters",
                "imagebuilder:ListImageRecipes",
                "imagebuilder:ListContainerRecipes",
            ],
            resources=["*"],
            conditions=via_ec2,
        )
    )
    # The recipes of this account and region. GetImageRecipe is not in the docs' list (ListImageRecipes covers
    # image recipes); it is kept, on this account's recipes, in case the check reads them one by one.
    fn.add_to_role_policy(
        iam.PolicyStatement(
            actions=["imagebuilder:GetContainerRecipe", "imagebuilder:GetImageRecipe"],
            resources=[
                stack.format_arn(service="imagebuilder", resource="container-recipe", resource_name="*"),
                stack.format_arn(service="imagebuilder", resource="image-recipe", resource_name="*"),
            ],
            conditions=via_ec2,
        )
    )


def launch_with_templates(ctx: StepContext, strategy: str | None = None) -> list[iam.PolicyStatement]:
    """What StartInstanceRefresh and CreateAutoScalingGroup check: the caller may launch from (only) the
    configured templates (of the stages with `strategy`), with the template's own AMI and key pair.

    Amazon EC2 Auto Scaling User Guide, "Control Amazon EC2 launch template usage in Auto Scaling groups"
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-launch-template-permissions.html):
    "ec2:RunInstances are checked when an Auto Scaling group is created or updated using a launch template"
    (the caller's permission), iam:PassRole for a template's instance profile, ec2:CreateTags with
    ec2:CreateAction = RunInstances "if there are tags specified in the launch template". The page names no
    condition keys of that check; these statements rely on ec2:LaunchTemplate and ec2:IsLaunchTemplateResource
    being in it as in a RunInstances call (docs silent).

    EC2 User Guide, "Example policies to control access the Amazon EC2 API", Launch templates
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ExamplePolicies_EC2.html#iam-example-runinstances-launch-templates):
    ec2:LaunchTemplate alone still lets a caller "override any parameters in the launch template";
    ec2:IsLaunchTemplateResource = true prevents "overriding any pre-existing ARNs in the launch template".
    The page's strongest example requires it on every resource but the template. That one does not work for
    an Auto Scaling group: the group supplies the subnets (VPCZoneIdentifier), which are not the template's,
    a template without security groups launches into the VPC's default group, which it does not name, and the
    instance, volumes and network interfaces are created by the launch (no pre-existing ARN). So the key is
    required where the template's own value is what must not change: the AMI and the key pair. Not pinned by
    IAM: user data (RunInstances has no condition key for it) and the instance profile (its role is bounded
    by PassFleetInstanceRoles below)."""
    templates = launch_template_arns(ctx.workflow, ctx.config, strategy)
    ec2 = f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}"
    from_templates = {"ArnLike": {"ec2:LaunchTemplate": templates}}
    statements = [
        iam.PolicyStatement(
            sid="LaunchOnlyFromConfiguredTemplates",
            actions=["ec2:RunInstances"],
            resources=[
                f"{ec2}:{Aws.ACCOUNT_ID}:instance/*",
                f"{ec2}:{Aws.ACCOUNT_ID}:volume/*",
                f"{ec2}:{Aws.ACCOUNT_ID}:network-interface/*",
                f"{ec2}:{Aws.ACCOUNT_ID}:subnet/*",
                f"{ec2}:{Aws.ACCOUNT_ID}:security-group/*",
            ],
            conditions=from_templates,
        ),
        iam.PolicyStatement(
            sid="OnlyTheTemplatesOwnImageAndKeyPair",
            actions=["ec2:RunInstances"],
            resources=[f"{ec2}::image/*", f"{ec2}:{Aws.ACCOUNT_ID}:key-pair/*"],
            conditions={**from_templates, "Bool": {"ec2:IsLaunchTemplateResource": "true"}},
        ),
        iam.PolicyStatement(sid="UseConfiguredTemplates", actions=["ec2:RunInstances"], resources=templates),
        # The tags a template names for what it launches; never a tag on anything else.
        iam.PolicyStatement(
            sid="TagWhatTheTemplatesLaunch",
            actions=["ec2:CreateTags"],
            resources=[
                f"{ec2}:{Aws.ACCOUNT_ID}:instance/*",
                f"{ec2}:{Aws.ACCOUNT_ID}:volume/*",
                f"{ec2}:{Aws.ACCOUNT_ID}:network-interface/*",
            ],
            conditions={"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        ),
    ]
    if ctx.config.pass_role_arns:
        statements.append(
            iam.PolicyStatement(
                sid="PassFleetInstanceRoles",
                actions=["iam:PassRole"],
                resources=list(ctx.config.pass_role_arns),
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            )
        )
    return statements
