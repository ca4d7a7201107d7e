"""validate_request: the first state. Normalises any trigger's input into one request, or fails with InvalidInput."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.aws.codecommit import CodeCommit
from shared.aws.images import Images
from shared.aws.references import FleetReferences
from shared.config import load_deploy_config
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input
from validate_request.logic import validate_request
from validate_request.models import ValidateRequestInput

CONFIG = load_deploy_config()


@cache
def _images() -> Images:
    return Images()


@cache
def _fleet() -> FleetReferences:
    return FleetReferences()


@cache
def _codecommit() -> CodeCommit:
    return CodeCommit()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    payload = parse_step_input(event, ValidateRequestInput)
    logger.info("validating execution input", extra={"executionName": payload.execution_name, "input": payload.input})
    output = validate_request(payload, CONFIG, _images(), _fleet(), _codecommit())
    return output.model_dump(by_alias=True, mode="json")
