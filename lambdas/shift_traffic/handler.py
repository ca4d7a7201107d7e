"""Step: take blue out of the target groups (green already serves), then retire it; called until `done`."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import clock
from shared.aws.groups import BlueGreenGroups
from shared.config import load_deploy_config
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input
from shift_traffic import logic
from shift_traffic.models import ShiftTrafficInput

CONFIG = load_deploy_config()


@cache
def groups() -> BlueGreenGroups:
    return BlueGreenGroups()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, ShiftTrafficInput)
    output = logic.run(request, CONFIG, groups(), now=clock.now())
    logger.info(
        "traffic shift step",
        extra={
            "blue": output.blue_group_name,
            "green": output.green_group_name,
            "done": output.done,
            "dryRun": request.dry_run,
        },
    )
    return output.model_dump(by_alias=True, mode="json")
