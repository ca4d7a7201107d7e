"""Step: look once at an instance refresh and the fleet's target health; the state machine does the waiting."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from check_refresh import logic
from check_refresh.models import CheckRefreshInput, CheckRefreshOutput
from shared.aws.autoscaling import AutoScaling
from shared.aws.elbv2 import LoadBalancing
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()


autoscaling = cache(AutoScaling)
load_balancing = cache(LoadBalancing)


@step_handler(CheckRefreshInput)
def lambda_handler(request: CheckRefreshInput, context: LambdaContext) -> CheckRefreshOutput:
    output = logic.run(request, CONFIG, autoscaling=autoscaling(), load_balancing=load_balancing())
    logger.info(
        "instance refresh checked",
        extra={"instanceRefreshId": request.instance_refresh_id, "verdict": output.verdict, "reason": output.reason},
    )
    return output
