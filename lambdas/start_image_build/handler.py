"""Step: start the base pipeline, or bake the app image from a recipe made for the bake (idempotent per execution)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.aws.imagebuilder import ImageBuilder
from shared.aws.images import Images
from shared.aws.references import FleetReferences
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input
from start_image_build import logic
from start_image_build.models import StartImageBuildEnvironment, StartImageBuildInput

CONFIG = load_deploy_config()
ENV = load_environment(StartImageBuildEnvironment, "start_image_build")


@cache
def imagebuilder() -> ImageBuilder:
    return ImageBuilder()


@cache
def fleet() -> FleetReferences:
    return FleetReferences()


@cache
def images() -> Images:
    return Images()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, StartImageBuildInput)
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
    output = logic.run(request, CONFIG, ENV, imagebuilder(), fleet(), images())
    return output.model_dump(by_alias=True, mode="json")
