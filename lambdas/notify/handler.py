"""Step: publish a deployment's notification (started, succeeded, failed, rejected, superseded) to the topic."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from notify import logic
from notify.models import NotifyEnvironment, NotifyInput, NotifyOutput
from shared import clock
from shared.aws.notifications import Notifications
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()
ENV = load_environment(NotifyEnvironment, "notify")


@cache
def notifications() -> Notifications:
    return Notifications(ENV.topic_arn)


@step_handler(NotifyInput)
def lambda_handler(request: NotifyInput, context: LambdaContext) -> NotifyOutput:
    logger.info(f"notify: {request.event}")
    # shared.clock.now, looked up at call time: simulated in a rehearsal
    return logic.run(request, CONFIG, publisher=notifications(), now=clock.now)
