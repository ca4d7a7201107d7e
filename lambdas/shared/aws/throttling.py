"""Throttling, translated in one place for every client the adapters use: botocore's ClientError becomes `Throttled`.

Why: a Python Lambda function's errorType, the error name Step Functions retries on, is the exception's class name.
EC2 and Auto Scaling declare no error shapes in their botocore models, so a throttled call that outlives botocore's
retries raises the generic `ClientError`, and a Retry naming "RequestLimitExceeded" or "Throttling" never matches.

How: a handler on the client's `after-call` event. botocore emits it once per API call, after its own retries
(standard mode, see clients.py) are spent and before it raises the ClientError of an error response (botocore
client.py `BaseClient._make_api_call`: https://github.com/boto/botocore/blob/develop/botocore/client.py; handlers
are registered on `client.meta.events`, boto3 Extensibility guide: https://docs.aws.amazon.com/boto3/latest/guide/events.html).
Raising `Throttled` there means the adapters' per-call `except ClientError` blocks ("not found", "already exists",
per-item failures) never see a throttle, so none of them can take it for an outcome.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from shared.errors import Throttled

# The codes botocore's standard retry mode treats as throttling: `ThrottledRetryableChecker._THROTTLED_ERROR_CODES`
# in botocore/retries/standard.py (botocore 1.44.5, https://github.com/boto/botocore/blob/develop/botocore/retries/standard.py;
# the boto3 Retries guide lists them under "Standard retry mode": https://docs.aws.amazon.com/boto3/latest/guide/retries.html).
# They cover the services the functions call: EC2 "RequestLimitExceeded" (Amazon EC2 Developer Guide, "Request
# throttling for the Amazon EC2 API": https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html),
# Auto Scaling, ELBv2 and CloudWatch "Throttling"/"ThrottlingException" (Amazon EC2 Auto Scaling API Reference,
# Common Errors: https://docs.aws.amazon.com/autoscaling/ec2/APIReference/CommonErrors.html), DynamoDB
# "ThrottlingException", "ProvisionedThroughputExceededException" and "RequestLimitExceeded" (botocore's dynamodb
# model, PutItem/GetItem/DeleteItem errors), SSM, Secrets Manager and Step Functions "ThrottlingException", Image
# Builder "TooManyRequestsException". tests/unit/test_throttling.py fails when the installed botocore's list differs.
BOTOCORE_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
# Image Builder's own rate error, modeled on StartImagePipelineExecution, GetImage and ListImagePackages (HTTP 429,
# "You have exceeded the permitted request rate for the specific operation": botocore reference,
# https://docs.aws.amazon.com/botocore/latest/reference/services/imagebuilder/client/exceptions/CallRateLimitExceededException.html).
# botocore's list lacks it and, being modeled, the 429 rule below skips it too: botocore makes no retry, so the
# state machine's Retry is its only backoff.
IMAGE_BUILDER_RATE_CODE = "CallRateLimitExceededException"
THROTTLING_CODES = BOTOCORE_THROTTLING_CODES | {IMAGE_BUILDER_RATE_CODE}
# botocore's ThrottlingStatusCodeChecker: HTTP 429 is a throttle when its error code is none the operation models.
_TOO_MANY_REQUESTS = 429
_UNIQUE_ID = "shared.aws.throttling"


def _modeled(operation_model: Any, code: str) -> bool:
    """The code names an error shape of the operation (by its modeled code, else by the shape's name)."""
    return any(
        (shape.metadata.get("error", {}).get("code") or shape.name) == code
        for shape in getattr(operation_model, "error_shapes", None) or ()
    )


def is_throttling(code: str, status: int, operation_model: Any = None) -> bool:
    """A throttle: a throttling code, or HTTP 429 with a code the operation does not model (botocore's rule)."""
    if code in THROTTLING_CODES:
        return True
    return status == _TOO_MANY_REQUESTS and not _modeled(operation_model, code)


def _raise_if_throttled(
    exceptions: Any, http_response: Any, parsed: Any, model: Any, context: Any = None, **_: Any
) -> None:
    status = int(getattr(http_response, "status_code", 0) or 0)
    if status < 300 or not isinstance(parsed, dict):
        return
    error = parsed.get("Error") or {}
    # botocore takes the code the same way before it raises (`error_code_override`, then Error.Code).
    code = str((context or {}).get("error_code_override") or error.get("Code") or "")
    if not is_throttling(code, status, model):
        return
    retries = int((parsed.get("ResponseMetadata") or {}).get("RetryAttempts", 0) or 0)
    service = model.service_model.service_name
    cause = exceptions.from_code(code)(parsed, model.name)  # what botocore would have raised
    raise Throttled(
        f"{service} {model.name} throttled: {code}: {error.get('Message', '')} "
        f"(after {retries + 1} attempt{'s' if retries else ''})"
    ) from cause


def translate_throttling(client: Any) -> Any:
    """Make the client raise `Throttled` for throttled calls; idempotent. A stand-in that is no botocore client
    (an in-memory fake) is returned as it is: it raises no botocore errors."""
    meta = getattr(client, "meta", None)
    events = getattr(meta, "events", None)
    if events is None or not hasattr(client, "exceptions"):
        return client
    events.register("after-call", partial(_raise_if_throttled, client.exceptions), unique_id=_UNIQUE_ID)
    return client
