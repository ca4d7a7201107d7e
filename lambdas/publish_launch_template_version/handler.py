"""Step: publish the new AMI as the default launch template version and prune old versions."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from publish_launch_template_version import logic
from publish_launch_template_version.models import PublishInput
from shared.aws.autoscaling import AutoScaling
from shared.aws.images import Images
from shared.aws.launch_templates import LaunchTemplates
from shared.aws.references import FleetReferences
from shared.config import load_deploy_config
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

CONFIG = load_deploy_config()


@cache
def launch_templates() -> LaunchTemplates:
    return LaunchTemplates()


@cache
def autoscaling() -> AutoScaling:
    return AutoScaling()


@cache
def fleet() -> FleetReferences:
    return FleetReferences()


@cache
def images() -> Images:
    return Images()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, PublishInput)
    logger.info(
        "publishing launch template version",
        extra={
            "launchTemplateId": request.target.launch_template_id,
            "amiId": request.ami_id,
            "dryRun": request.dry_run,
        },
    )
    if request.restore:
        restored = logic.restore(request, CONFIG, launch_templates())
        return restored.model_dump(by_alias=True, mode="json")
    output = logic.run(request, CONFIG, launch_templates(), autoscaling(), fleet(), images())
    return output.model_dump(by_alias=True, mode="json")
