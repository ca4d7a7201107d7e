"""Step: bring up the green group of a blue-green target (new, or a retained one that runs the AMI)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from create_green_group import logic
from create_green_group.models import CreateGreenGroupInput, GreenGroup
from shared import clock
from shared.aws.groups import BlueGreenGroups
from shared.aws.launch_templates import LaunchTemplates
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()


groups = cache(BlueGreenGroups)
launch_templates = cache(LaunchTemplates)


@step_handler(CreateGreenGroupInput)
def lambda_handler(request: CreateGreenGroupInput, context: LambdaContext) -> GreenGroup:
    output = logic.run(request, CONFIG, groups=groups(), templates=launch_templates(), now=clock.now())
    logger.info(
        "green group ready" if not output.dry_run else "green group planned",
        extra={
            "blue": output.blue_group_name,
            "green": output.green_group_name,
            "reused": output.reused,
            "alreadyLive": output.already_live,
            "dryRun": output.dry_run,
        },
    )
    return output
