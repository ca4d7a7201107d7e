"""Step: acquire or release the per-target locks of a deployment (safety rule 4)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from lock import logic
from lock.models import LockEnvironment, LockInput, LockOutput
from shared import clock
from shared.aws.lock_table import LockTable
from shared.aws.task_tokens import TaskTokens
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()
ENV = load_environment(LockEnvironment, "lock")


@cache
def lock_table() -> LockTable:
    return LockTable(ENV.lock_table_name)


task_tokens = cache(TaskTokens)


@step_handler(LockInput)
def lambda_handler(request: LockInput, context: LambdaContext) -> LockOutput:
    logger.info(
        f"lock: {request.action}",
        extra={"targets": request.target_names(), "attempt": request.attempt, "dryRun": request.dry_run},
    )
    return logic.run(
        request,
        CONFIG,
        store=lock_table(),
        tokens=task_tokens(),
        ttl_seconds=ENV.lock_ttl_seconds,
        queue_seconds=ENV.queue_seconds,
        clock=clock.epoch_seconds,  # shared.clock: the rehearsal runs it on simulated time
    )
