"""GitHub webhook receiver behind a Lambda function URL (auth NONE: the HMAC signature is the authentication).

A plain handler rather than Powertools' LambdaFunctionUrlResolver: the signature covers the exact bytes
GitHub sent, so the handler keeps the raw body (base64-decoded when the function URL encoded it) instead
of a resolver's decoded text. The event is never logged: it carries the signature.
"""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from github_webhook import logic
from github_webhook.models import FunctionUrlRequest, GithubWebhookEnvironment
from shared import clock
from shared.aws.secrets import CachedSecret
from shared.aws.stepfunctions import StepFunctions
from shared.environment import load_environment
from shared.handler import observed
from shared.observability import logger

ENV = load_environment(GithubWebhookEnvironment, "github_webhook")
SECRET_MAX_AGE_SECONDS = 300
# A signature mismatch fetches the secret again, but not more often than this per process.
SECRET_MIN_REFRESH_SECONDS = 5


@cache
def webhook_secret() -> CachedSecret:
    return CachedSecret(
        ENV.webhook_secret_arn,
        max_age_seconds=SECRET_MAX_AGE_SECONDS,
        min_refresh_seconds=SECRET_MIN_REFRESH_SECONDS,
    )


stepfunctions = cache(StepFunctions)


@observed(correlation_id_path=None, log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # The correlation id is set here, not by correlation_id_path: only a well-formed delivery id may tag log lines,
    # and the previous invocation's is cleared first (the logger's keys outlive an invocation).
    logger.set_correlation_id(None)
    try:
        request = FunctionUrlRequest.model_validate(event)
    except ValidationError as exc:
        reason = f"not a Lambda function URL request: {logic.describe_request_error(exc)}"
        return logic.rejected(400, reason[:500]).to_function_url()
    logger.set_correlation_id(logic.correlation_id(request))
    response = logic.receive(request, ENV, secrets=webhook_secret(), starter=stepfunctions(), clock=clock.now)
    return response.to_function_url()
