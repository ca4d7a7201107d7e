"""Step: look once at an instance refresh and the fleet's target health; the state machine does the waiting."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from check_refresh import logic
from check_refresh.models import CheckRefreshInput
from shared.aws.autoscaling import AutoScaling
from shared.aws.elbv2 import LoadBalancing
from shared.config import load_deploy_config
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

CONFIG = load_deploy_config()


@cache
def autoscaling() -> AutoScaling:
    return AutoScaling()


@cache
def load_balancing() -> LoadBalancing:
    return LoadBalancing()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, CheckRefreshInput)
    output = logic.run(request, CONFIG, autoscaling(), load_balancing())
    logger.info(
        "instance refresh checked",
        extra={"instanceRefreshId": request.instance_refresh_id, "verdict": output.verdict, "reason": output.reason},
    )
    return output.model_dump(by_alias=True, mode="json")
