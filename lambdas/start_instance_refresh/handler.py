"""Step: start (or adopt) the instance refresh that rolls the new launch template version out."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.aws.autoscaling import AutoScaling
from shared.config import load_deploy_config
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input
from start_instance_refresh import logic
from start_instance_refresh.models import StartInstanceRefreshInput

CONFIG = load_deploy_config()


@cache
def autoscaling() -> AutoScaling:
    return AutoScaling()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, StartInstanceRefreshInput)
    logger.info(
        "starting instance refresh",
        extra={
            "autoScalingGroupName": request.target.auto_scaling_group_name,
            "launchTemplateVersion": request.launch_template_version,
            "dryRun": request.dry_run,
        },
    )
    output = logic.run(request, CONFIG, autoscaling())
    return output.model_dump(by_alias=True, mode="json")
