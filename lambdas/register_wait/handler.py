"""Step: register a task token waiting for an instance refresh or image build (resumed by relay_event), or for an
approval (answered by scripts/approval.py)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from register_wait import logic
from register_wait.models import RegisterWaitEnvironment, RegisterWaitInput
from shared import clock
from shared.aws.autoscaling import AutoScaling
from shared.aws.imagebuilder import ImageBuilder
from shared.aws.notifications import Notifications
from shared.aws.task_tokens import TaskTokens, WaitTable
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

CONFIG = load_deploy_config()  # the application's name, for the approval notification
ENV = load_environment(RegisterWaitEnvironment, "register_wait")


def now() -> int:
    return int(clock.now().timestamp())  # shared.clock: the rehearsal runs it on simulated time


@cache
def wait_table() -> WaitTable:
    return WaitTable(ENV.lock_table_name)


@cache
def task_tokens() -> TaskTokens:
    return TaskTokens()


@cache
def notifications() -> Notifications:
    return Notifications(ENV.topic_arn)


@cache
def autoscaling() -> AutoScaling:
    return AutoScaling()


@cache
def imagebuilder() -> ImageBuilder:
    return ImageBuilder()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, RegisterWaitInput)
    logger.info(
        f"register_wait: {request.kind}",
        extra={
            "resourceId": request.resource_id,
            "autoScalingGroupName": request.auto_scaling_group_name,
            "dryRun": request.dry_run,
        },
    )
    output = logic.run(
        request,
        waits=wait_table(),
        tokens=task_tokens(),
        refreshes=autoscaling(),
        builds=imagebuilder(),
        ttl_seconds=ENV.wait_ttl_seconds,
        clock=now,
        notifications=notifications(),
        application=CONFIG.application,
    )
    return output.model_dump(by_alias=True, mode="json")
