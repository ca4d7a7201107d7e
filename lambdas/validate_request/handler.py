"""validate_request: the first state. Normalises any trigger's input into one request, or fails with InvalidInput."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.aws.codecommit import CodeCommit
from shared.aws.images import Images
from shared.aws.references import FleetReferences
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger
from validate_request.logic import validate_request
from validate_request.models import ValidateRequestInput, ValidateRequestOutput

CONFIG = load_deploy_config()


_images = cache(Images)
_fleet = cache(FleetReferences)
_codecommit = cache(CodeCommit)


@step_handler(ValidateRequestInput)
def lambda_handler(payload: ValidateRequestInput, context: LambdaContext) -> ValidateRequestOutput:
    logger.info("validating execution input", extra={"executionName": payload.execution_name, "input": payload.input})
    return validate_request(payload, CONFIG, images=_images(), fleet=_fleet(), codecommit=_codecommit())
