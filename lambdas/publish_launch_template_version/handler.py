"""Step: publish the new AMI as the default launch template version and prune old versions."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from publish_launch_template_version import logic
from publish_launch_template_version.models import PublishInput, PublishOutput, RestoreOutput
from shared.aws.autoscaling import AutoScaling
from shared.aws.images import Images
from shared.aws.launch_templates import LaunchTemplates
from shared.aws.references import FleetReferences
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()


launch_templates = cache(LaunchTemplates)
autoscaling = cache(AutoScaling)
fleet = cache(FleetReferences)
images = cache(Images)


@step_handler(PublishInput)
def lambda_handler(request: PublishInput, context: LambdaContext) -> PublishOutput | RestoreOutput:
    logger.info(
        "publishing launch template version",
        extra={
            "launchTemplateId": request.target.launch_template_id,
            "amiId": request.ami_id,
            "dryRun": request.dry_run,
        },
    )
    if request.restore:
        return logic.restore(request, CONFIG, launch_templates())
    return logic.run(
        request, CONFIG, launch_templates=launch_templates(), autoscaling=autoscaling(), groups=fleet(), images=images()
    )
