"""Step: look once at a green group (launches, instance and target health, alarms, soak); the state machine waits."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from check_green_group import logic
from check_green_group.models import CheckGreenGroupInput
from shared import clock
from shared.aws.alarms import Alarms
from shared.aws.elbv2 import LoadBalancing
from shared.aws.groups import BlueGreenGroups
from shared.config import load_deploy_config
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

CONFIG = load_deploy_config()


@cache
def groups() -> BlueGreenGroups:
    return BlueGreenGroups()


@cache
def load_balancing() -> LoadBalancing:
    return LoadBalancing()


@cache
def alarms() -> Alarms:
    return Alarms()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, CheckGreenGroupInput)
    output = logic.run(request, CONFIG, groups(), load_balancing(), alarms(), now=clock.now())
    logger.info(
        "green group checked",
        extra={"green": request.green.green_group_name, "verdict": output.verdict, "reason": output.reason},
    )
    return output.model_dump(by_alias=True, mode="json")
