"""The deploy workflow: the Step Functions state machine, its Lambda functions, the lock table and the topic.

The state machine definition is `statemachine/deploy.asl.json`, loaded as is with
`DefinitionBody.from_file`; every `${...}` in it is filled from `definition_substitutions` here
(tests/infra pins that none is left over).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from shared.config import Target
from shared.statuses import FINAL_IMAGE_STATUSES
from stacks.bounds import QUEUE_CHECK_SECONDS, queue_attempts
from stacks.checkov import skip
from stacks.config import PROJECT_ROOT, PipelineConfig
from stacks.lambda_function import camel, python_function, retention
from stacks.nag import ACCOUNT, PARTITION, REGION, acknowledge, function_versions, wildcard_resource

ASL_FILE = PROJECT_ROOT / "statemachine" / "deploy.asl.json"
WAIT_TTL_SECONDS = 2 * 24 * 3600  # a wait item outlives any wait; DynamoDB's TTL removes forgotten ones
# The Auto Scaling events that end (or pause at a checkpoint) a refresh: they resume a waiting execution.
REFRESH_EVENTS = [
    f"EC2 Auto Scaling Instance Refresh {what}"
    for what in ("Succeeded", "Failed", "Cancelled", "Rollback Succeeded", "Rollback Failed", "Checkpoint Reached")
]
IMAGE_FINAL_STATUSES = sorted(FINAL_IMAGE_STATUSES)

# step name (= folder under lambdas/) → (timeout seconds, memory MB)
STEPS: dict[str, tuple[int, int]] = {
    "validate_request": (30, 256),
    "lock": (30, 256),
    "start_image_build": (30, 256),
    "check_image_build": (30, 256),
    "publish_launch_template_version": (90, 256),
    "start_instance_refresh": (30, 256),
    "check_refresh": (30, 256),
    "rollback": (90, 256),
    "prune_images": (600, 512),
    "register_wait": (30, 256),
    # the outcome notifications (shared.notifications renders them; register_wait and finish_execution use it too)
    "notify": (30, 256),
    "relay_event": (30, 256),
    # EventBridge: an execution that ended outside its failure path (stopped, timed out, history quota)
    "finish_execution": (120, 256),
    # blue-green stages
    "create_green_group": (60, 256),
    "check_green_group": (30, 256),
    "shift_traffic": (30, 256),
    "discard_green": (90, 256),
    "retire_groups": (60, 256),
}
# Steps EventBridge invokes, not the state machine.
EVENT_STEPS = ("relay_event", "finish_execution")
BLUE_GREEN_STEPS = ("create_green_group", "check_green_group", "shift_traffic", "discard_green", "retire_groups")

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


class DeployWorkflow(Construct):
    """State machine + one least-privilege function per step + lock table + notification topic."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.lock_table = self._build_lock_table()
        self.topic_key, self.topic = self._build_topic()
        self.event_step_failures = self._build_event_step_failures()
        self.functions = {step: self._build_function(step, *limits) for step, limits in STEPS.items()}
        self._grant_step_permissions()
        self.state_machine = self._build_state_machine()
        self.refresh_events_rule, self.image_events_rule = self._build_event_relay()
        self.execution_end_rule = self._build_execution_end()
        self._acknowledge_findings()

    # -- parts -------------------------------------------------------------------------------

    def _build_lock_table(self) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            "LockTable",
            partition_key=dynamodb.Attribute(name="target", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiresAt",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.DESTROY,
        )
        skip(
            table,
            "Encrypted at rest with the AWS managed key; IAM on the table decides who reads its items (task tokens)",
            "CKV_AWS_119",
        )
        return table

    def _build_topic(self) -> tuple[kms.Key, sns.Topic]:
        key = kms.Key(
            self,
            "TopicKey",
            description=f"Encrypts the {self._config.application} deployment notifications",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # CloudWatch alarms publish to the encrypted topic through this key.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        topic = sns.Topic(
            self,
            "Notifications",
            display_name=f"{self._config.application} deployments",
            master_key=key,
            enforce_ssl=True,
        )
        for email in self._config.notifications.emails:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return key, topic

    def _build_event_step_failures(self) -> sqs.Queue:
        """The dead-letter queue of the steps EventBridge invokes (asynchronously): an event Lambda could not
        handle after its own retries (a resume or an execution's clean-up) lands here, and an alarm says so."""
        queue = sqs.Queue(
            self,
            "EventStepFailures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        # checkov's SQSQueueEncryption inspects only KmsMasterKeyId.
        skip(
            queue,
            "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled), which this check does not recognise; no KMS key",
            "CKV_AWS_27",
        )
        acknowledge(
            queue,
            "This queue is the event steps' dead-letter queue; nothing consumes it but people",
            "AwsSolutions-SQS3",
        )
        alarm = cloudwatch.Alarm(
            self,
            "EventStepFailed",
            alarm_description=(
                f"{self._config.application}: an event step (relay_event resuming a wait, finish_execution cleaning "
                "up an ended execution) failed after its retries; the event is in the EventStepFailures queue"
            ),
            metric=queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        return queue

    def _build_function(self, step: str, timeout: int, memory: int) -> lambda_.Function:
        return python_function(
            self,
            step=step,
            config=self._config,
            timeout_seconds=timeout,
            memory_mb=memory,
            environment={"DEPLOY_CONFIG": self._config.deploy_config_json()},
            # EventBridge invokes these asynchronously: what still fails after Lambda's retries is kept.
            dead_letter_queue=self.event_step_failures if step in EVENT_STEPS else None,
        )

    def state_machine_steps(self) -> dict[str, lambda_.Function]:
        """The functions the state machine invokes (EventBridge invokes the EVENT_STEPS)."""
        return {step: fn for step, fn in self.functions.items() if step not in EVENT_STEPS}

    def state_machine_arn_by_name(self) -> str:
        return Stack.of(self).format_arn(
            service="states",
            resource="stateMachine",
            resource_name=f"{self._config.application}-deploy",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _targets(self, strategy: str | None) -> list[Target]:
        """Every configured target, or those of the stages with `strategy`."""
        stages = self._config.deploy_config().stages
        return [t for s in stages if strategy in (None, s.strategy) for t in s.targets]

    def launch_template_arns(self, strategy: str | None = None) -> list[str]:
        stack = Stack.of(self)
        return [
            stack.format_arn(service="ec2", resource="launch-template", resource_name=t.launch_template_id)
            for t in self._targets(strategy)
        ]

    def auto_scaling_group_arns(self, strategy: str | None = None) -> list[str]:
        return [
            f"arn:{Aws.PARTITION}:autoscaling:{Aws.REGION}:{Aws.ACCOUNT_ID}:autoScalingGroup:*:"
            f"autoScalingGroupName/{t.auto_scaling_group_name}"
            for t in self._targets(strategy)
        ]

    def blue_green_group_arns(self) -> list[str]:
        """The groups blue-green stages create: named `<configured group>-<deployment>`."""
        return [
            f"arn:{Aws.PARTITION}:autoscaling:{Aws.REGION}:{Aws.ACCOUNT_ID}:autoScalingGroup:*:"
            f"autoScalingGroupName/{t.auto_scaling_group_name}-*"
            for s in self._config.deploy_config().stages
            if s.strategy == "blue-green"
            for t in s.targets
        ]

    def alarm_arns(self) -> list[str]:
        stack = Stack.of(self)
        return [
            stack.format_arn(
                service="cloudwatch", resource="alarm", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
            )
            for name in self._config.deploy_config().blue_green.alarms
        ]

    def _launch_with_templates(self, strategy: str | None = None) -> list[iam.PolicyStatement]:
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
        templates = self.launch_template_arns(strategy)
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
        if self._config.pass_role_arns:
            statements.append(
                iam.PolicyStatement(
                    sid="PassFleetInstanceRoles",
                    actions=["iam:PassRole"],
                    resources=list(self._config.pass_role_arns),
                    conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
                )
            )
        return statements

    def _grant_step_permissions(self) -> None:
        fns = self.functions
        app = self._config.application
        templates = self.launch_template_arns()
        groups = self.auto_scaling_group_arns()

        def allow(step: str, actions: list[str], resources: list[str], **kwargs: object) -> None:
            fns[step].add_to_role_policy(iam.PolicyStatement(actions=actions, resources=resources, **kwargs))  # type: ignore[arg-type]

        # Describe* calls do not support resource-level permissions: they need "*" (acknowledged in cdk-nag).
        # start_image_build reads the fleet too: a base rebuild re-bakes the commit the groups run.
        for step in (
            "validate_request",
            "publish_launch_template_version",
            "prune_images",
            "rollback",
            "start_image_build",
        ):
            allow(step, EC2_READ, ["*"])
        for step in (
            "publish_launch_template_version",
            "start_instance_refresh",
            "check_refresh",
            "rollback",
            "prune_images",
        ):
            allow(step, AUTOSCALING_READ, ["*"])
        allow("check_refresh", ["elasticloadbalancing:DescribeTargetHealth"], ["*"])
        self._grant_reference_check("prune_images")
        allow("check_refresh", ["ec2:DescribeInstances"], ["*"])
        # validate_request refuses a commit the configured CodeCommit repository lacks (GetCommit: repository*,
        # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscodecommit.html).
        source = self._config.source
        if source and source.type == "codecommit":
            repository = Stack.of(self).format_arn(service="codecommit", resource=source.repository)
            allow("validate_request", ["codecommit:GetCommit"], [repository])

        allow(
            "publish_launch_template_version",
            ["ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate", "ec2:DeleteLaunchTemplateVersions"],
            templates,
        )
        allow("start_instance_refresh", ["autoscaling:StartInstanceRefresh"], groups)
        for statement in self._launch_with_templates():
            fns["start_instance_refresh"].add_to_role_policy(statement)
        self._grant_rollback("rollback")
        # finish_execution rolls back the way the rollback step does, the rolling targets only (never a blue-green one).
        allow("finish_execution", ["ec2:DescribeLaunchTemplateVersions"], ["*"])
        allow("finish_execution", AUTOSCALING_READ, ["*"])
        self._grant_rollback("finish_execution", "rolling")

        # Only AMIs tagged with this application can be deregistered; their snapshots go with them.
        allow(
            "prune_images",
            ["ec2:DeregisterImage"],
            [f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}::image/*"],
            conditions={"StringEquals": {"aws:ResourceTag/immutable-ami:application": app}},
        )
        # DeregisterImage(DeleteAssociatedSnapshots) deletes each snapshot as the caller: a denied one is left in
        # place with DeleteSnapshotResults return code "missing-permissions" while the AMI is deregistered all the
        # same (EC2 API Reference, DeleteSnapshotReturnCode,
        # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSnapshotReturnCode.html). Only snapshots
        # tagged with this application (check_image_build tags each new AMI's) may be deleted; an older AMI's
        # untagged snapshots stay and the prune reports them (README, "Undoing a prune").
        allow(
            "prune_images",
            ["ec2:DeleteSnapshot"],
            [f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}::snapshot/*"],
            conditions={"StringEquals": {"aws:ResourceTag/immutable-ami:application": app}},
        )

        self.lock_table.grant_read_write_data(fns["lock"])
        # Waits: register_wait stores a task token per build/refresh/approval; relay_event resumes builds and
        # refreshes on the AWS event, an approver answers approvals (scripts/approval.py).
        for step in ("register_wait", "relay_event"):
            self.lock_table.grant_read_write_data(fns[step])
            fns[step].add_environment("LOCK_TABLE_NAME", self.lock_table.table_name)
            fns[step].add_to_role_policy(
                iam.PolicyStatement(
                    actions=["states:SendTaskSuccess"],
                    # The Service Authorization Reference lists no resource types for SendTaskSuccess: a
                    # statement naming the state machine never applies, so the resume would be denied.
                    resources=["*"],
                )
            )
        fns["register_wait"].add_environment("WAIT_TTL_SECONDS", str(WAIT_TTL_SECONDS))
        # Approvals: register_wait mails ApprovalRequested (without the token) once the token is stored.
        fns["register_wait"].add_environment("NOTIFICATION_TOPIC_ARN", self.topic.topic_arn)
        self.topic.grant_publish(fns["register_wait"])
        allow("register_wait", ["autoscaling:DescribeInstanceRefreshes"], ["*"])
        # notify publishes the outcome notifications: sns:Publish on the topic, and (CDK's grant_publish on an
        # encrypted topic) kms:Decrypt/GenerateDataKey* on its key (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html).
        fns["notify"].add_environment("NOTIFICATION_TOPIC_ARN", self.topic.topic_arn)
        self.topic.grant_publish(fns["notify"])
        fns["lock"].add_environment("LOCK_TABLE_NAME", self.lock_table.table_name)
        fns["lock"].add_environment("LOCK_TTL_SECONDS", str(self._config.lock.ttl_minutes * 60))
        fns["lock"].add_environment("QUEUE_SECONDS", str(self._config.lock.queue_hours * 3600))
        # The queue: the lock step wakes queued pushes (SendTaskSuccess) and ends superseded ones (SendTaskFailure).
        # No resource types for either in the Service Authorization Reference: a narrower Resource never applies.
        allow("lock", ["states:SendTaskSuccess", "states:SendTaskFailure"], ["*"])
        # The blue-green steps act on the blue-green stages' groups and templates only, never a rolling stage's.
        self._grant_blue_green_permissions(
            allow, self.auto_scaling_group_arns("blue-green"), self.launch_template_arns("blue-green")
        )

    def _grant_reference_check(self, step: str) -> None:
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
        fn = self.functions[step]
        stack = Stack.of(self)
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

    def _grant_rollback(self, step: str, strategy: str | None = None) -> None:
        """What the rollback logic changes, on the groups and templates of the stages with `strategy` (all when
        None): the refresh (roll back, cancel, refresh back, which launches from the templates) and the default."""
        groups, templates = self.auto_scaling_group_arns(strategy), self.launch_template_arns(strategy)
        if not groups:
            return
        fn = self.functions[step]
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "autoscaling:RollbackInstanceRefresh",
                    "autoscaling:CancelInstanceRefresh",
                    "autoscaling:StartInstanceRefresh",
                ],
                resources=groups,
            )
        )
        fn.add_to_role_policy(iam.PolicyStatement(actions=["ec2:ModifyLaunchTemplate"], resources=templates))
        for statement in self._launch_with_templates(strategy):
            fn.add_to_role_policy(statement)

    def _grant_blue_green_permissions(self, allow: Callable[..., None], seeds: list[str], templates: list[str]) -> None:
        """Blue-green steps change only the configured (seed) groups and the `<seed>-*` groups they create;
        deleting is further conditioned on this application's tag, and never allowed on a seed group."""
        fns = self.functions
        app = self._config.application
        created = self.blue_green_group_arns()
        if not created:  # no blue-green stage: the functions exist (the ASL names them) but may change nothing
            for step in BLUE_GREEN_STEPS:
                allow(step, AUTOSCALING_READ, ["*"])
            return
        ours = {"StringEquals": {"aws:ResourceTag/immutable-ami:application": app}}
        for step in BLUE_GREEN_STEPS:
            allow(step, [*AUTOSCALING_READ, "autoscaling:DescribeLoadBalancerTargetGroups"], ["*"])
        for step in ("check_green_group", "discard_green"):  # discard waits for a restored blue to serve
            allow(step, ["elasticloadbalancing:DescribeTargetHealth"], ["*"])
        if self.alarm_arns():
            allow("check_green_group", ["cloudwatch:DescribeAlarms"], self.alarm_arns())
        allow("create_green_group", ["ec2:DescribeLaunchTemplateVersions"], ["*"])
        allow(
            "create_green_group",
            ["autoscaling:CreateAutoScalingGroup"],
            created,
            conditions={"StringEquals": {"aws:RequestTag/immutable-ami:application": app}},
        )
        for statement in self._launch_with_templates("blue-green"):
            fns["create_green_group"].add_to_role_policy(statement)
        change = [
            "autoscaling:CreateOrUpdateTags",
            "autoscaling:UpdateAutoScalingGroup",
            "autoscaling:AttachLoadBalancerTargetGroups",
            "autoscaling:DetachLoadBalancerTargetGroups",
        ]
        for step in ("create_green_group", "shift_traffic", "discard_green"):
            allow(step, change, seeds)  # the configured groups, which may carry none of our tags yet
            allow(step, change, created, conditions=ours)
        for step in ("discard_green", "retire_groups"):
            allow(step, ["autoscaling:DeleteAutoScalingGroup"], created, conditions=ours)
        allow("discard_green", ["ec2:DescribeLaunchTemplateVersions"], ["*"])
        allow("discard_green", ["ec2:ModifyLaunchTemplate"], templates)

    def _acknowledge_findings(self) -> None:
        acknowledge(
            self,
            "Describe*, DescribeTargetHealth, SendTaskSuccess, X-Ray: no resource types; mutations are scoped",
            wildcard_resource("*"),
        )
        acknowledge(
            self,
            "The state machine invokes any version of this workflow's own step functions",
            *(function_versions(fn) for fn in self.state_machine_steps().values()),
        )
        acknowledge(
            self,
            "Publishing to the KMS-encrypted topic needs data keys of its own key only",
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        )
        acknowledge(
            self,
            "A group ARN embeds a random id unknown before creation; the group name pins each configured group",
            *(_as_nag_finds_it(arn) for arn in self.auto_scaling_group_arns()),
        )
        acknowledge(
            self,
            "Blue-green groups are named <configured group>-<deployment>; deleting them also needs this app's tag",
            *(_as_nag_finds_it(arn) for arn in self.blue_green_group_arns()),
        )
        acknowledge(
            self,
            "RunInstances only from a configured template (its own AMI and key pair); CreateTags only at launch",
            *(
                wildcard_resource(f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT}:{kind}/*")
                for kind in ("instance", "volume", "network-interface", "subnet", "security-group", "key-pair")
            ),
        )
        acknowledge(
            self,
            "finish_execution reads the history of this workflow's own executions, named only when they start",
            wildcard_resource(
                f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:execution:{self._config.application}-deploy:*"
            ),
        )
        acknowledge(
            self,
            "Deregistering an AMI and deleting a snapshot are both conditioned on this application's tag",
            wildcard_resource(f"arn:{PARTITION}:ec2:{REGION}::image/*"),
            wildcard_resource(f"arn:{PARTITION}:ec2:{REGION}::snapshot/*"),
        )
        acknowledge(
            self,
            "DescribeImageReferences reads every parameter and recipe of this account and region to be complete",
            wildcard_resource(f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter/*"),
            wildcard_resource(f"arn:{PARTITION}:imagebuilder:{REGION}:{ACCOUNT}:container-recipe/*"),
            wildcard_resource(f"arn:{PARTITION}:imagebuilder:{REGION}:{ACCOUNT}:image-recipe/*"),
        )

    def _build_execution_end(self) -> events.Rule:
        """Executions that end without their own failure path (stopped, timed out, at the history quota) →
        finish_execution: roll back, unlock, notify. Step Functions emits the status change to EventBridge (best
        effort); FAILED is included because the history quota fails an execution without any Catch."""
        fn = self.functions["finish_execution"]
        rule = events.Rule(
            self,
            "ExecutionEnds",
            description=f"{self._config.application} deployments that ended outside their failure path are cleaned up",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                    "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                },
            ),
        )
        rule.add_target(targets.LambdaFunction(fn, retry_attempts=8, max_event_age=Duration.hours(2)))
        fn.add_environment("LOCK_TABLE_NAME", self.lock_table.table_name)
        fn.add_environment("NOTIFICATION_TOPIC_ARN", self.topic.topic_arn)
        fn.add_environment("STATE_MACHINE_ARN", self.state_machine_arn_by_name())
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:GetExecutionHistory"],
                resources=[
                    Stack.of(self).format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"{self._config.application}-deploy:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        # Releasing an ended execution's locks wakes the pushes queued for them (lambdas/lock wake_queued).
        self.lock_table.grant(fn, "dynamodb:DeleteItem", "dynamodb:Scan")
        fn.add_to_role_policy(iam.PolicyStatement(actions=["states:SendTaskSuccess"], resources=["*"]))
        self.topic.grant_publish(fn)
        return rule

    def _build_event_relay(self) -> tuple[events.Rule, events.Rule]:
        """AWS's completion events → relay_event → the waiting execution (best effort: the ASL polls as well)."""
        app = self._config.application
        relay = targets.LambdaFunction(self.functions["relay_event"], retry_attempts=8, max_event_age=Duration.hours(2))
        groups = sorted({t.auto_scaling_group_name for t in self._config.deploy_config().all_targets()})
        refresh_rule = events.Rule(
            self,
            "RefreshEvents",
            description=f"Instance refresh outcomes of {app}'s groups resume the deployment waiting for them",
            event_pattern=events.EventPattern(
                source=["aws.autoscaling"], detail_type=REFRESH_EVENTS, detail={"AutoScalingGroupName": groups}
            ),
        )
        refresh_rule.add_target(relay)
        image_prefix = f"arn:{Aws.PARTITION}:imagebuilder:{Aws.REGION}:{Aws.ACCOUNT_ID}:image/{app}-"
        image_rule = events.Rule(
            self,
            "ImageEvents",
            description=f"Final states of {app}'s image builds resume the deployment waiting for them",
            event_pattern=events.EventPattern(
                source=["aws.imagebuilder"],
                detail_type=["EC2 Image Builder Image State Change"],
                # image/<recipe name>/<version>/<build>: the base pipeline's recipe is <app>-base, each app bake's
                # own recipe <app>-app-<digest> (start_image_build).
                resources=events.Match.any_of(
                    events.Match.prefix(f"{image_prefix}base/"), events.Match.prefix(f"{image_prefix}app-")
                ),
                detail={"state": {"status": IMAGE_FINAL_STATUSES}},
            ),
        )
        image_rule.add_target(relay)
        return refresh_rule, image_rule

    def _build_state_machine(self) -> sfn.StateMachine:
        config = self._config
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{config.application}-deploy",
            retention=retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        skip(
            log_group,
            "CloudWatch Logs encrypts log data at rest by default; execution data (task tokens) is not logged",
            "CKV_AWS_158",
        )
        self.definition_substitutions = {
            **{f"{camel(step)}FunctionArn": fn.function_arn for step, fn in self.state_machine_steps().items()},
            "PollIntervalSeconds": str(config.refresh.poll_interval_seconds),
            "RefreshFallbackSeconds": str(config.refresh.fallback_poll_seconds),
            "RefreshTimeoutSeconds": str(config.refresh.timeout_minutes * 60),
            "ImageFallbackSeconds": str(config.build.fallback_poll_seconds),
            "LockPollSeconds": str(config.lock.poll_seconds),
            "LockMaxAttempts": str(max(1, math.ceil(config.lock.wait_seconds / config.lock.poll_seconds))),
            "QueueCheckSeconds": str(QUEUE_CHECK_SECONDS),
            "QueueMaxAttempts": str(queue_attempts(config)),
            "ImageTimeoutSeconds": str(config.build.timeout_minutes * 60),
            "ApprovalTimeoutSeconds": str(config.approval.timeout_hours * 3600),
        }
        state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{config.application}-deploy",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(ASL_FILE)),
            definition_substitutions=self.definition_substitutions,
            # No execution data in the logs: a task's input holds its task token, and anyone who reads the log
            # and may call SendTask* (which has no resource types) could answer the task: approve a stage or
            # fake a build's or refresh's end. Execution data stays in the execution's own history (README).
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
        )
        for fn in self.state_machine_steps().values():
            fn.grant_invoke(state_machine)
        # No publish grant: the state machine notifies through the notify step, never SNS directly.
        return state_machine


def _as_nag_finds_it(arn: str) -> str:
    """The IAM5 finding id of a resource ARN written with the Aws.* pseudo parameters."""
    return wildcard_resource(
        arn.replace(Aws.PARTITION, PARTITION).replace(Aws.REGION, REGION).replace(Aws.ACCOUNT_ID, ACCOUNT)
    )
