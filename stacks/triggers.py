"""What starts a deployment: a CodeCommit push, a signed GitHub push, the daily base rebuild.

Each trigger is created only when configured, and each produces the execution input of
the README ("Triggers and manual runs"), so the state machine's first state validates them all the same
way. Manual runs need
nothing here: `aws stepfunctions start-execution` with the JSON documented in the README.
"""

from __future__ import annotations

import json
from typing import Final

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.checkov import skip
from stacks.config import PipelineConfig
from stacks.lambda_function import python_function
from stacks.nag import acknowledge, wildcard_resource

CODECOMMIT_DETAIL_TYPE = "CodeCommit Repository State Change"
# The daily rebuild's execution input. Observability recognises these executions by it: EventBridge passes a
# target's Input to StartExecution unchanged, and Step Functions' status-change events carry it as `detail.input`
# (https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html).
SCHEDULED_REBUILD_REQUEST: Final = {"action": "rebuild-base", "trigger": "schedule"}


def scheduled_rebuild_input() -> str:
    """The execution input exactly as the rule sends it (CDK renders an object target input as compact JSON)."""
    return json.dumps(SCHEDULED_REBUILD_REQUEST, separators=(",", ":"))


def schedule_rule_name(application: str) -> str:
    """A fixed name, so the rebuild alarm can read the rule's AWS/Events metrics (dimension RuleName)."""
    return f"{application}-base-rebuild"


def codecommit_event_pattern(repository_arn: str, branch: str) -> events.EventPattern:
    """Pushes that create or move the configured branch; not tags, deletions or other branches."""
    return events.EventPattern(
        source=["aws.codecommit"],
        detail_type=[CODECOMMIT_DETAIL_TYPE],
        resources=[repository_arn],
        detail={
            "event": ["referenceCreated", "referenceUpdated"],
            "referenceType": ["branch"],
            "referenceName": [branch],
        },
    )


def codecommit_request() -> events.RuleTargetInput:
    """The input transformer: a CodeCommit event → the `deploy` request the README documents."""
    return events.RuleTargetInput.from_object(
        {
            "action": "deploy",
            "commit": events.EventField.from_path("$.detail.commitId"),
            "branch": events.EventField.from_path("$.detail.referenceName"),
            "repository": events.EventField.from_path("$.detail.repositoryName"),
            "trigger": "codecommit",
        }
    )


class Triggers(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: PipelineConfig, state_machine: sfn.IStateMachine
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._state_machine = state_machine
        self.codecommit_rule = self._build_codecommit_rule()
        self.webhook_secret, self.webhook_function, self.webhook_url = self._build_github_webhook()
        self.schedule_rule = self._build_schedule()

    def _target(self, request: events.RuleTargetInput) -> targets.SfnStateMachine:
        return targets.SfnStateMachine(
            self._state_machine, input=request, retry_attempts=4, max_event_age=Duration.hours(1)
        )

    def _build_codecommit_rule(self) -> events.Rule | None:
        source = self._config.source
        if not source or source.type != "codecommit":
            return None
        repository_arn = Stack.of(self).format_arn(service="codecommit", resource=source.repository)
        rule = events.Rule(
            self,
            "CodeCommitPush",
            description=f"Deploy pushes to {source.repository}:{source.branch}",
            event_pattern=codecommit_event_pattern(repository_arn, source.branch),
        )
        rule.add_target(self._target(codecommit_request()))
        return rule

    def _build_github_webhook(
        self,
    ) -> tuple[secretsmanager.Secret | None, lambda_.Function | None, lambda_.FunctionUrl | None]:
        source = self._config.source
        if not source or source.type != "github":
            return None, None, None
        secret = secretsmanager.Secret(
            self,
            "WebhookSecret",
            description=f"GitHub webhook secret for {source.repository}: paste its value into the webhook settings",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48, exclude_punctuation=True),
        )
        function = python_function(
            self,
            step="github_webhook",
            handler="github_webhook.handler.lambda_handler",
            config=self._config,
            timeout_seconds=15,
            # The function URL is public: a reservation caps how much of the account's concurrency a flood of
            # requests can take from the deploy steps (a reservation is also the function's maximum,
            # https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html). Lambda refuses a
            # reservation that leaves fewer than 100 unreserved executions in the account
            # (https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionConcurrency.html), which a new
            # account's reduced quota may not have (https://docs.aws.amazon.com/lambda/latest/dg/limits.html):
            # webhook.reservedConcurrency null deploys without one.
            reserved_concurrency=self._config.webhook.reserved_concurrency,
            unreserved_reason=(
                "webhook.reservedConcurrency is null: the account's concurrency quota leaves no room to reserve any"
            ),
            environment={
                "WEBHOOK_SECRET_ARN": secret.secret_arn,
                "STATE_MACHINE_ARN": self._state_machine.state_machine_arn,
                "GITHUB_REPOSITORY": source.repository,
                "DEPLOY_BRANCH": source.branch,
            },
        )
        secret.grant_read(function)
        acknowledge(
            secret,
            "GitHub holds a copy of this secret and cannot follow a Secrets Manager rotation; rotate it by hand",
            "AwsSolutions-SMG4",
        )
        acknowledge(function.role, "X-Ray trace segments have no resource-level permissions", wildcard_resource("*"))  # type: ignore[arg-type]
        # The handler verifies X-Hub-Signature-256 itself: GitHub cannot sign requests with AWS SigV4.
        url = function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        skip(
            url,
            "GitHub cannot sign with SigV4; the handler checks the HMAC X-Hub-Signature-256 before anything",
            "CKV_AWS_258",
        )
        skip(
            secret,
            "GitHub holds a copy of the value anyway; the AWS managed key encrypts it at rest, a CMK adds no boundary",
            "CKV_AWS_149",
        )
        return secret, function, url

    def _build_schedule(self) -> events.Rule | None:
        expression = self._config.base_image.schedule
        if not expression:
            return None
        rule = events.Rule(
            self,
            "DailyBaseRebuild",
            rule_name=schedule_rule_name(self._config.application),
            description="Rebuild the base image with the latest updates, rebuild the app on it, roll it out",
            schedule=events.Schedule.expression(expression),
        )
        rule.add_target(self._target(events.RuleTargetInput.from_object(dict(SCHEDULED_REBUILD_REQUEST))))
        return rule
