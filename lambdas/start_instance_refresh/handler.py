"""Step: start (or adopt) the instance refresh that rolls the new launch template version out."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.aws.autoscaling import AutoScaling
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger
from start_instance_refresh import logic
from start_instance_refresh.models import StartInstanceRefreshInput, StartInstanceRefreshOutput

CONFIG = load_deploy_config()


autoscaling = cache(AutoScaling)


@step_handler(StartInstanceRefreshInput)
def lambda_handler(request: StartInstanceRefreshInput, context: LambdaContext) -> StartInstanceRefreshOutput:
    logger.info(
        "starting instance refresh",
        extra={
            "autoScalingGroupName": request.target.auto_scaling_group_name,
            "launchTemplateVersion": request.launch_template_version,
            "dryRun": request.dry_run,
        },
    )
    return logic.run(request, CONFIG, autoscaling=autoscaling())
