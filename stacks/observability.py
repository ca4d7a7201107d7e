"""Dashboard and alarms: executions, durations, what was pruned, webhook rejections; alarms notify the topic."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.config import PipelineConfig
from stacks.lambda_function import METRICS_NAMESPACE

PERIOD = Duration.minutes(5)
WEBHOOK_REJECTIONS_THRESHOLD = 10  # per 5 minutes: more than a mistyped secret, likely a probe


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
                    for n in ("DeploymentStarted", "DeploymentSucceeded", "DeploymentFailed", "RolledBack")
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
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=[self.failed_executions_alarm, self.webhook_rejections_alarm], width=24
            )
        )
        return dashboard
