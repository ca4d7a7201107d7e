"""Step: report a bake's status; when AVAILABLE, this region's AMI(s), each copy and its snapshots tagged; or cancel."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from check_image_build import logic
from check_image_build.models import CheckImageBuildEnvironment, CheckImageBuildInput, CheckImageBuildOutput
from shared.aws.imagebuilder import ImageBuilder, ImageTags
from shared.aws.images import Images
from shared.config import load_deploy_config
from shared.environment import load_environment
from shared.handler import step_handler
from shared.observability import logger

ENV = load_environment(CheckImageBuildEnvironment, "check_image_build")
CONFIG = load_deploy_config()


imagebuilder = cache(ImageBuilder)
image_tags = cache(ImageTags)
images = cache(Images)


@step_handler(CheckImageBuildInput)
def lambda_handler(request: CheckImageBuildInput, context: LambdaContext) -> CheckImageBuildOutput:
    logger.info(
        "checking image build",
        extra={"imageBuildVersionArn": request.build.image_build_version_arn, "pipeline": request.build.pipeline},
    )
    return logic.run(
        request,
        ENV.aws_region,
        builds=imagebuilder(),
        tagger=image_tags(),
        packages=imagebuilder(),
        images=images(),
        application=CONFIG.application,
        canceller=imagebuilder(),
        repository=CONFIG.source.repository if CONFIG.source else None,
        snapshots=images(),
    )
