"""Step: roll a target back to the previous launch template version (and the fleet, where it changed)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from rollback import logic
from rollback.models import RollbackInput, RollbackOutput
from shared.aws.autoscaling import AutoScaling
from shared.aws.launch_templates import LaunchTemplates
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()


autoscaling = cache(AutoScaling)
launch_templates = cache(LaunchTemplates)


@step_handler(RollbackInput)
def lambda_handler(request: RollbackInput, context: LambdaContext) -> RollbackOutput:
    logger.info(
        "rolling back",
        extra={
            "autoScalingGroupName": request.target.auto_scaling_group_name,
            "instanceRefreshId": request.instance_refresh_id,
            "previousVersion": request.previous_version,
            "newVersion": request.new_version,
            "dryRun": request.dry_run,
        },
    )
    return logic.run(request, CONFIG, autoscaling=autoscaling(), launch_templates=launch_templates())
