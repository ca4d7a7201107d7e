"""Step: take blue out of the target groups (green already serves), then retire it; called until `done`."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import clock
from shared.aws.groups import BlueGreenGroups
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger
from shift_traffic import logic
from shift_traffic.models import ShiftTrafficInput, ShiftTrafficOutput

CONFIG = load_deploy_config()


groups = cache(BlueGreenGroups)


@step_handler(ShiftTrafficInput)
def lambda_handler(request: ShiftTrafficInput, context: LambdaContext) -> ShiftTrafficOutput:
    output = logic.run(request, CONFIG, groups=groups(), now=clock.now())
    logger.info(
        "traffic shift step",
        extra={
            "blue": output.blue_group_name,
            "green": output.green_group_name,
            "done": output.done,
            "dryRun": request.dry_run,
        },
    )
    return output
