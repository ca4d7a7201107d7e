"""Step: start the base pipeline, or bake the app image from a recipe made for the bake (idempotent per execution)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.aws.imagebuilder import ImageBuilder
from shared.aws.images import Images
from shared.aws.references import FleetReferences
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.handler import step_handler
from shared.observability import logger
from start_image_build import logic
from start_image_build.models import StartImageBuildEnvironment, StartImageBuildInput, StartImageBuildOutput

CONFIG = load_deploy_config()
ENV = load_environment(StartImageBuildEnvironment, "start_image_build")


imagebuilder = cache(ImageBuilder)
fleet = cache(FleetReferences)
images = cache(Images)


@step_handler(StartImageBuildInput)
def lambda_handler(request: StartImageBuildInput, context: LambdaContext) -> StartImageBuildOutput:
    logger.info(
        "starting image build",
        extra={
            "pipeline": request.pipeline,
            "action": request.request.action,
            "commit": request.request.commit,
            "baseAmiId": request.base_ami_id,
            "dryRun": request.dry_run,
        },
    )
    return logic.run(request, CONFIG, ENV, imagebuilder=imagebuilder(), templates=fleet(), images=images())
