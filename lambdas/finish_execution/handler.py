"""EventBridge target: an execution that ended outside its failure path is rolled back, unlocked and reported."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from finish_execution import logic
from finish_execution.models import ExecutionStatusEvent, FinishExecutionEnvironment, FinishExecutionOutput
from shared.aws.autoscaling import AutoScaling
from shared.aws.launch_templates import LaunchTemplates
from shared.aws.lock_table import LockTable
from shared.aws.notifications import Notifications
from shared.aws.stepfunctions import ExecutionHistory
from shared.aws.task_tokens import TaskTokens
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()
ENV = load_environment(FinishExecutionEnvironment, "finish_execution")


history = cache(ExecutionHistory)


@cache
def locks() -> LockTable:
    return LockTable(ENV.lock_table_name)


@dataclass(frozen=True)
class Queue:
    store: LockTable
    tokens: TaskTokens


@cache
def queue() -> Queue:
    return Queue(store=locks(), tokens=TaskTokens())


autoscaling = cache(AutoScaling)
launch_templates = cache(LaunchTemplates)


@cache
def notifications() -> Notifications:
    return Notifications(ENV.topic_arn)


@step_handler(ExecutionStatusEvent, correlation_id_path="detail.executionArn")
def lambda_handler(parsed: ExecutionStatusEvent, context: LambdaContext) -> FinishExecutionOutput:
    logger.info("finish_execution: execution ended", extra={"status": parsed.detail.status})
    return logic.run(
        parsed,
        ENV.state_machine_arn,
        CONFIG,
        history=history(),
        locks=locks(),
        autoscaling=autoscaling(),
        templates=launch_templates(),
        notifier=notifications(),
        queue=queue(),
    )
