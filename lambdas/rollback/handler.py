"""Step: roll a target back to the previous launch template version (and the fleet, where it changed)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from rollback import logic
from rollback.models import RollbackInput
from shared.aws.autoscaling import AutoScaling
from shared.aws.launch_templates import LaunchTemplates
from shared.config import load_deploy_config
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

CONFIG = load_deploy_config()


@cache
def autoscaling() -> AutoScaling:
    return AutoScaling()


@cache
def launch_templates() -> LaunchTemplates:
    return LaunchTemplates()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, RollbackInput)
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
    output = logic.run(request, CONFIG, autoscaling(), launch_templates())
    return output.model_dump(by_alias=True, mode="json")
