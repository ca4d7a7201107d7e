"""Step: report a bake's status; when AVAILABLE, this region's AMI(s), each copy and its snapshots tagged; or cancel."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from check_image_build import logic
from check_image_build.models import CheckImageBuildEnvironment, CheckImageBuildInput
from shared.aws.imagebuilder import ImageBuilder, ImageTags
from shared.aws.images import Images
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

ENV = load_environment(CheckImageBuildEnvironment, "check_image_build")
CONFIG = load_deploy_config()


@cache
def imagebuilder() -> ImageBuilder:
    return ImageBuilder()


@cache
def image_tags() -> ImageTags:
    return ImageTags()


@cache
def images() -> Images:
    return Images()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, CheckImageBuildInput)
    logger.info(
        "checking image build",
        extra={"imageBuildVersionArn": request.build.image_build_version_arn, "pipeline": request.build.pipeline},
    )
    output = logic.run(
        request,
        ENV.aws_region,
        imagebuilder(),
        image_tags(),
        imagebuilder(),
        images(),
        CONFIG.application,
        canceller=imagebuilder(),
        repository=CONFIG.source.repository if CONFIG.source else None,
        snapshots=images(),
    )
    return output.model_dump(by_alias=True, mode="json")
