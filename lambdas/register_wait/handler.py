"""Step: register a task token waiting for an instance refresh or image build (resumed by relay_event), or for an
approval (answered by scripts/approval.py)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from register_wait import logic
from register_wait.models import RegisterWaitEnvironment, RegisterWaitInput, RegisterWaitOutput
from shared import clock
from shared.aws.autoscaling import AutoScaling
from shared.aws.imagebuilder import ImageBuilder
from shared.aws.notifications import Notifications
from shared.aws.task_tokens import TaskTokens, WaitTable
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()  # the application's name, for the approval notification
ENV = load_environment(RegisterWaitEnvironment, "register_wait")


@cache
def wait_table() -> WaitTable:
    return WaitTable(ENV.lock_table_name)


task_tokens = cache(TaskTokens)


@cache
def notifications() -> Notifications:
    return Notifications(ENV.topic_arn)


autoscaling = cache(AutoScaling)
imagebuilder = cache(ImageBuilder)


@step_handler(RegisterWaitInput)
def lambda_handler(request: RegisterWaitInput, context: LambdaContext) -> RegisterWaitOutput:
    logger.info(
        f"register_wait: {request.kind}",
        extra={
            "resourceId": request.resource_id,
            "autoScalingGroupName": request.auto_scaling_group_name,
            "dryRun": request.dry_run,
        },
    )
    return logic.run(
        request,
        waits=wait_table(),
        tokens=task_tokens(),
        refreshes=autoscaling(),
        builds=imagebuilder(),
        ttl_seconds=ENV.wait_ttl_seconds,
        clock=clock.epoch_seconds,  # shared.clock: the rehearsal runs it on simulated time
        notifications=notifications(),
        application=CONFIG.application,
    )
