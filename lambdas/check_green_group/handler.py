"""Step: look once at a green group (launches, instance and target health, alarms, soak); the state machine waits."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from check_green_group import logic
from check_green_group.models import CheckGreenGroupInput, CheckGreenGroupOutput
from shared import clock
from shared.aws.alarms import Alarms
from shared.aws.elbv2 import LoadBalancing
from shared.aws.groups import BlueGreenGroups
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()


groups = cache(BlueGreenGroups)
load_balancing = cache(LoadBalancing)
alarms = cache(Alarms)


@step_handler(CheckGreenGroupInput)
def lambda_handler(request: CheckGreenGroupInput, context: LambdaContext) -> CheckGreenGroupOutput:
    output = logic.run(
        request, CONFIG, groups=groups(), load_balancing=load_balancing(), alarms=alarms(), now=clock.now()
    )
    logger.info(
        "green group checked",
        extra={"green": request.green.green_group_name, "verdict": output.verdict, "reason": output.reason},
    )
    return output
