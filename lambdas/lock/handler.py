"""Step: acquire or release the per-target locks of a deployment (safety rule 4)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from lock import logic
from lock.models import LockEnvironment, LockInput
from shared import clock
from shared.aws.lock_table import LockTable
from shared.aws.task_tokens import TaskTokens
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

CONFIG = load_deploy_config()
ENV = load_environment(LockEnvironment, "lock")


def now() -> int:
    return int(clock.now().timestamp())  # shared.clock: the rehearsal runs it on simulated time


@cache
def lock_table() -> LockTable:
    return LockTable(ENV.lock_table_name)


@cache
def task_tokens() -> TaskTokens:
    return TaskTokens()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, LockInput)
    logger.info(
        f"lock: {request.action}",
        extra={"targets": request.target_names(), "attempt": request.attempt, "dryRun": request.dry_run},
    )
    output = logic.run(request, CONFIG, lock_table(), task_tokens(), ENV.lock_ttl_seconds, ENV.queue_seconds, now)
    return output.model_dump(by_alias=True, mode="json")
