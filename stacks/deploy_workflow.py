"""The deploy workflow: the Step Functions state machine, its Lambda functions, the lock table and the topic.

The state machine definition is `statemachine/deploy.asl.json`, loaded as is with
`DefinitionBody.from_file`; every `${...}` in it is filled from `definition_substitutions` here
(tests/infra pins that none is left over).
"""

from __future__ import annotations

import math

from aws_cdk import Aws, Duration, RemovalPolicy
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

from shared.statuses import FINAL_IMAGE_STATUSES
from stacks.bounds import QUEUE_CHECK_SECONDS, queue_attempts
from stacks.checkov import skip
from stacks.config import PROJECT_ROOT, PipelineConfig
from stacks.fleet_arns import auto_scaling_group_arns, blue_green_group_arns
from stacks.lambda_function import python_function, retention
from stacks.nag import ACCOUNT, PARTITION, REGION, acknowledge, function_versions, wildcard_resource
from stacks.steps import STEPS, Step

ASL_FILE = PROJECT_ROOT / "statemachine" / "deploy.asl.json"
# The Auto Scaling events that end (or pause at a checkpoint) a refresh: they resume a waiting execution.
REFRESH_EVENTS = [
    f"EC2 Auto Scaling Instance Refresh {what}"
    for what in ("Succeeded", "Failed", "Cancelled", "Rollback Succeeded", "Rollback Failed", "Checkpoint Reached")
]
IMAGE_FINAL_STATUSES = sorted(FINAL_IMAGE_STATUSES)


class DeployWorkflow(Construct):
    """State machine + one least-privilege function per step of stacks.steps + lock table + notification topic.

    Each function's own environment and IAM come from its step's entry: the stack wires them
    (stacks.steps.wire_steps) once the constructs they name exist."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.lock_table = self._build_lock_table()
        self.topic_key, self.topic = self._build_topic()
        self.event_step_failures = self._build_event_step_failures()
        self.functions = {step.folder: self._build_function(step) for step in STEPS}
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

    def _build_function(self, step: Step) -> lambda_.Function:
        """The step's function; its own environment and grants come from its entry (stacks.steps.wire_steps)."""
        return python_function(
            self,
            step=step.folder,
            handler=step.handler,
            config=self._config,
            timeout_seconds=step.timeout_seconds,
            memory_mb=step.memory_mb,
            environment={"DEPLOY_CONFIG": self._config.deploy_config_json()},
            # EventBridge invokes these asynchronously: what still fails after Lambda's retries is kept.
            dead_letter_queue=self.event_step_failures if step.eventbridge else None,
        )

    def state_machine_steps(self) -> dict[str, lambda_.Function]:
        """The functions the state machine invokes, by their ASL placeholder (EventBridge invokes the others)."""
        return {step.placeholder: self.functions[step.folder] for step in STEPS if step.placeholder}

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
            *(_as_nag_finds_it(arn) for arn in auto_scaling_group_arns(self._config)),
        )
        acknowledge(
            self,
            "Blue-green groups are named <configured group>-<deployment>; deleting them also needs this app's tag",
            *(_as_nag_finds_it(arn) for arn in blue_green_group_arns(self._config)),
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
            **{placeholder: fn.function_arn for placeholder, fn in self.state_machine_steps().items()},
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
