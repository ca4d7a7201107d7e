"""Dashboard and alarms: executions, durations, what was pruned, webhook rejections; alarms notify the topic.

Every custom metric a widget or alarm names is emitted by some handler (tests/infra/test_dashboard_metrics.py):
deployments started/succeeded/failed/rolled back (lambdas/notify, finish_execution), superseded (lambdas/lock),
bake duration (check_image_build), refresh duration (check_refresh), what the prune removed.

The scheduled base rebuild reaches a person three ways (README, "Alerts"):

- every scheduled rebuild that ends FAILED, TIMED_OUT or ABORTED publishes `ScheduledRebuildFailed`, whichever
  path it failed on (also when the workflow's own DeploymentFailed could not be published);
- `BaseRebuildStale` alarms when, over the last STALE_AFTER_RUNS runs of the schedule, every scheduled rebuild
  that started has failed, or none started: our equivalent of Image Builder disabling a pipeline after
  consecutive failed scheduled builds;
- Image Builder's own "Image Pipeline Automatically Disabled" event for this application's (base) pipeline is
  forwarded: the pipeline has no Image Builder schedule, but one added to it is covered.
"""

from __future__ import annotations

import re

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.config import PipelineConfig
from stacks.lambda_function import METRICS_NAMESPACE
from stacks.triggers import schedule_rule_name, scheduled_rebuild_input

PERIOD = Duration.minutes(5)
WEBHOOK_REJECTIONS_THRESHOLD = 10  # per 5 minutes: more than a mistyped secret, likely a probe

# https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-states.html
EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
# The statuses an execution ends in without succeeding (https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html)
FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
# Image Builder sends it when a pipeline's schedule.autoDisablePolicy.failureCount consecutive scheduled builds
# failed; `resources` holds the disabled pipeline's ARN, `detail.consecutive-failures` the count
# (https://docs.aws.amazon.com/imagebuilder/latest/userguide/integ-eventbridge.html#eb-event-pipeline-disabled,
# https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-imagebuilder.html).
PIPELINE_AUTO_DISABLED = "EC2 Image Builder Image Pipeline Automatically Disabled"
# Missed runs before BaseRebuildStale alarms. Image Builder's own default is 5 consecutive failed scheduled builds
# (https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_AutoDisablePolicy.html); three days without a
# patched base is already worth a person's look.
STALE_AFTER_RUNS = 3
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$")


def run_interval(expression: str) -> Duration | None:
    """At most how long apart the schedule's runs are, when that is at most a day: a rate expression's rate, or a
    day for a cron expression that fires every day (any minutes and hours; every day of month, week, month, year).
    None for anything rarer (weekly, monthly...): BaseRebuildStale then is not created, as STALE_AFTER_RUNS of those
    do not fit the 7 days an alarm looks back (Period x EvaluationPeriods <= 604,800 s,
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html)."""
    rate = _RATE.fullmatch(expression)
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        interval = {"minute": Duration.minutes, "hour": Duration.hours, "day": Duration.days}[unit](amount)
        return interval if interval.to_seconds() <= Duration.days(1).to_seconds() else None
    cron = _CRON.fullmatch(expression)
    if cron is None:
        return None
    _minutes, _hours, day_of_month, month, day_of_week, year = cron.groups()
    every_day = day_of_month in ("*", "?") and day_of_week in ("*", "?") and month == "*" and year == "*"
    return Duration.days(1) if every_day else None


def stale_window(expression: str) -> Duration | None:
    """How long without a scheduled rebuild that did not fail before BaseRebuildStale alarms: STALE_AFTER_RUNS runs,
    and never less than a day (a rebuild can take hours); None when the schedule runs less than daily."""
    interval = run_interval(expression)
    if interval is None:
        return None
    return Duration.seconds(max(STALE_AFTER_RUNS * interval.to_seconds(), Duration.days(1).to_seconds()))


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        state_machine: sfn.StateMachine,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._state_machine = state_machine
        self.failed_executions_alarm, self.webhook_rejections_alarm = self._build_alarms(topic)
        self.pipeline_disabled_rule = self._build_pipeline_disabled_rule(topic)
        self.scheduled_rebuild_failed_rule = self._build_scheduled_rebuild_failed_rule(topic)
        self.base_rebuild_stale_alarm = self._build_stale_alarm(topic)
        self.dashboard = self._build_dashboard()

    def _custom(self, name: str, statistic: str = "Sum") -> cloudwatch.Metric:
        """A Powertools EMF metric: namespace ImmutableAmiPipeline, dimension service=<application>."""
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": self._config.application},
            statistic=statistic,
            period=PERIOD,
        )

    def _build_alarms(self, topic: sns.ITopic) -> tuple[cloudwatch.Alarm, cloudwatch.Alarm]:
        failed = cloudwatch.Alarm(
            self,
            "FailedExecutions",
            alarm_description="A deployment failed, timed out or was aborted: see the execution's events",
            metric=cloudwatch.MathExpression(
                expression="failed + timedout + aborted",
                using_metrics={
                    "failed": self._state_machine.metric_failed(period=PERIOD),
                    "timedout": self._state_machine.metric_timed_out(period=PERIOD),
                    "aborted": self._state_machine.metric_aborted(period=PERIOD),
                },
                period=PERIOD,
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        rejections = cloudwatch.Alarm(
            self,
            "WebhookRejections",
            alarm_description="Many GitHub webhook deliveries were rejected (bad signature): wrong secret or a probe",
            metric=self._custom("WebhookRejected"),
            threshold=WEBHOOK_REJECTIONS_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in (failed, rejections):
            alarm.add_alarm_action(actions.SnsAction(topic))
        return failed, rejections

    @staticmethod
    def _notify(topic: sns.ITopic, message: dict[str, object]) -> targets.SnsTopic:
        """Publish `message` (EventBridge fills its event fields in) to the topic. CDK grants events.amazonaws.com
        sns:Publish in the topic policy and kms:Decrypt/GenerateDataKey* in its key's policy: EventBridge publishes
        to SNS through resource policies, an encrypted topic needs both, and a RoleArn is not to be used for SNS
        (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html,
        https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html)."""
        return targets.SnsTopic(
            topic,
            message=events.RuleTargetInput.from_object(message),
            retry_attempts=8,
            max_event_age=Duration.hours(2),
        )

    def _pipeline_arns(self) -> list[str]:
        """This application's image pipelines, by the name stacks/image_builder.py gives them (`<app>-<kind>`): the
        base one only, the app image is baked without a pipeline. Image Builder names pipeline ARNs
        `image-pipeline/<name>` (https://docs.aws.amazon.com/imagebuilder/latest/userguide/integ-eventbridge.html)."""
        app = self._config.application
        return [f"arn:{Aws.PARTITION}:imagebuilder:{Aws.REGION}:{Aws.ACCOUNT_ID}:image-pipeline/{app}-base"]

    def _build_pipeline_disabled_rule(self, topic: sns.ITopic) -> events.Rule:
        """Created whatever baseImage.schedule says: it concerns an Image Builder schedule on the pipeline, which
        someone may add precisely instead of ours."""
        rule = events.Rule(
            self,
            "PipelineAutoDisabled",
            description=f"Image Builder disabled the {self._config.application} pipeline after failed scheduled builds",
            event_pattern=events.EventPattern(
                source=["aws.imagebuilder"], detail_type=[PIPELINE_AUTO_DISABLED], resources=self._pipeline_arns()
            ),
        )
        rule.add_target(
            self._notify(
                topic,
                {
                    "event": "ImagePipelineAutoDisabled",
                    "summary": "Image Builder disabled this image pipeline after consecutive failed scheduled builds: "
                    "fix the failure, then set the pipeline back to ENABLED",
                    "pipelineArn": events.EventField.from_path("$.resources[0]"),
                    "consecutiveFailures": events.EventField.from_path("$.detail.consecutive-failures"),
                    "time": events.EventField.time,
                },
            )
        )
        return rule

    def _build_scheduled_rebuild_failed_rule(self, topic: sns.ITopic) -> events.Rule | None:
        expression = self._config.base_image.schedule
        if not expression:
            return None
        rule = events.Rule(
            self,
            "ScheduledRebuildFailed",
            description=f"A scheduled base rebuild of {self._config.application} did not succeed",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[EXECUTION_STATUS_CHANGE],
                detail={
                    "stateMachineArn": [self._state_machine.state_machine_arn],
                    "status": list(FAILED_STATUSES),
                    # Only the schedule's executions: their input is the rule's, verbatim. A failed execution has no
                    # output, so its event always carries the input (cw-events: only input + output over 248 KB
                    # drops it).
                    "input": [scheduled_rebuild_input()],
                },
            ),
        )
        status = events.EventField.from_path("$.detail.status")
        rule.add_target(
            self._notify(
                topic,
                {
                    "event": "ScheduledRebuildFailed",
                    "summary": f"The scheduled base image rebuild of {self._config.application} ({expression}) ended "
                    f"{status}: the new base image did not reach every stage. The DeploymentFailed notification of "
                    "the same execution, when there is one, says what was rolled back.",
                    "executionId": events.EventField.from_path("$.detail.executionArn"),
                    "status": status,
                    "error": {
                        "Error": events.EventField.from_path("$.detail.error"),
                        "Cause": events.EventField.from_path("$.detail.cause"),
                    },
                },
            )
        )
        return rule

    def _build_stale_alarm(self, topic: sns.ITopic) -> cloudwatch.Alarm | None:
        """Scheduled rebuilds that started (the schedule rule's target invocations that did not fail permanently)
        minus those that failed (this construct's ScheduledRebuildFailed publishes), over the window: below one, no
        scheduled rebuild in the window has a chance of having succeeded. EventBridge sends these metrics only when
        non-zero (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-monitoring.html), so missing data is
        breaching: a schedule that stopped starting executions alarms too."""
        expression = self._config.base_image.schedule
        window = stale_window(expression) if expression else None
        if window is None or self.scheduled_rebuild_failed_rule is None:
            return None

        def rule_metric(name: str, rule_name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/Events",
                metric_name=name,
                dimensions_map={"RuleName": rule_name},
                statistic="Sum",
                period=window,
            )

        schedule = schedule_rule_name(self._config.application)
        alarm = cloudwatch.Alarm(
            self,
            "BaseRebuildStale",
            alarm_description=(
                f"No scheduled base rebuild succeeded in {window.to_human_string()}: every one that started failed, "
                "or none started (schedule rule disabled or unable to start the state machine). The base image is "
                "not being patched; see the ScheduledRebuildFailed notifications"
            ),
            metric=cloudwatch.MathExpression(
                expression="FILL(started, 0) - FILL(notStarted, 0) - FILL(failed, 0)",
                using_metrics={
                    "started": rule_metric("Invocations", schedule),
                    "notStarted": rule_metric("FailedInvocations", schedule),
                    "failed": rule_metric("Invocations", self.scheduled_rebuild_failed_rule.rule_name),
                },
                label="Scheduled rebuilds started and not failed",
                period=window,
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(topic))
        return alarm

    def _build_dashboard(self) -> cloudwatch.Dashboard:
        sm = self._state_machine
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{self._config.application}-deployments")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Executions",
                left=[
                    sm.metric_started(period=PERIOD),
                    sm.metric_succeeded(period=PERIOD),
                    sm.metric_failed(period=PERIOD),
                    sm.metric_timed_out(period=PERIOD),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Execution duration (ms)",
                left=[
                    sm.metric_time(period=PERIOD, statistic="Average"),
                    sm.metric_time(period=PERIOD, statistic="Maximum"),
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Deployments",
                left=[
                    self._custom(n)
                    for n in (
                        "DeploymentStarted",
                        "DeploymentSucceeded",
                        "DeploymentFailed",
                        "RolledBack",
                        "Superseded",
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Pruned",
                left=[self._custom(n) for n in ("ImagesPruned", "SnapshotsDeleted", "LaunchTemplateVersionsPruned")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="GitHub webhook",
                left=[self._custom(n) for n in ("WebhookAccepted", "WebhookIgnored", "WebhookRejected")],
                width=8,
            ),
        )
        dashboard.add_widgets(
            *(
                cloudwatch.GraphWidget(
                    title=title,
                    left=[self._custom(name, "Average"), self._custom(name, "Maximum")],
                    left_y_axis=cloudwatch.YAxisProps(label="seconds", show_units=False),
                    width=12,
                )
                for title, name in (
                    ("Bake duration (s): image created to available", "BakeDuration"),
                    ("Refresh duration (s): successful instance refreshes", "RefreshDuration"),
                )
            )
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=[
                    self.failed_executions_alarm,
                    self.webhook_rejections_alarm,
                    *([self.base_rebuild_stale_alarm] if self.base_rebuild_stale_alarm else []),
                ],
                width=24,
            )
        )
        return dashboard
