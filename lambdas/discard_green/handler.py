"""Step: on any failure of a blue-green target, keep (or put) blue back in service and discard green."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from discard_green import logic
from discard_green.models import DiscardGreenInput, DiscardGreenOutput
from shared import clock
from shared.aws.elbv2 import LoadBalancing
from shared.aws.groups import BlueGreenGroups
from shared.aws.launch_templates import LaunchTemplates
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()


groups = cache(BlueGreenGroups)
launch_templates = cache(LaunchTemplates)
load_balancing = cache(LoadBalancing)


@step_handler(DiscardGreenInput)
def lambda_handler(request: DiscardGreenInput, context: LambdaContext) -> DiscardGreenOutput:
    output = logic.run(
        request,
        CONFIG,
        groups=groups(),
        templates=launch_templates(),
        load_balancing=load_balancing(),
        now=clock.now(),
    )
    logger.info("green discarded", extra={**output.model_dump(by_alias=True), "dryRun": request.dry_run})
    return output
