"""Step: publish a deployment's notification (started, succeeded, failed, rejected, superseded) to the topic."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from notify import logic
from notify.models import NotifyEnvironment, NotifyInput
from shared import clock
from shared.aws.notifications import Notifications
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

CONFIG = load_deploy_config()
ENV = load_environment(NotifyEnvironment, "notify")


@cache
def notifications() -> Notifications:
    return Notifications(ENV.topic_arn)


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, NotifyInput)
    logger.info(f"notify: {request.event}")
    output = logic.run(request, CONFIG, notifications(), clock.now)  # shared.clock: simulated in a rehearsal
    return output.model_dump(by_alias=True, mode="json")
