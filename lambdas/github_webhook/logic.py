"""Receive a GitHub webhook delivery: verify it, decide, and start at most one deployment per pushed commit.

Order of checks, each answering before the next one runs (safety rule 7):
1. size: a body over 1 MiB is refused (413) before any hashing;
2. signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` with the webhook secret,
   compared in constant time; missing, malformed, SHA-1 only or wrong → 401, and the body is never parsed.
   A mismatch with the cached secret fetches the secret once more (it may just have been rotated);
3. event: `ping` → 200; any event but `push` → 200 ignored;
4. payload: malformed JSON or a push payload without its fields → 400;
5. decision: another repository, a tag, a deletion or another branch → 200 ignored, with the reason;
6. start: StartExecution with a name derived from repository, branch and commit, so a redelivery or a
   second push of the same commit starts nothing new (200 duplicate); a new execution → 202.
Neither the secret nor the signature is ever logged or answered.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qs

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from github_webhook.models import (
    DeployRequest,
    FunctionUrlRequest,
    GithubWebhookEnvironment,
    PushEvent,
    WebhookResponse,
)
from shared.aws.stepfunctions import StartedExecution
from shared.observability import logger, metrics
from shared.parsing import describe_validation_error

MAX_BODY_BYTES = 1024 * 1024
# Base64 text of MAX_BODY_BYTES bytes, so an oversize encoded body is refused before it is decoded.
_MAX_BASE64_CHARS = 4 * ((MAX_BODY_BYTES + 2) // 3)
SIGNATURE_HEADER = "x-hub-signature-256"
SHA1_SIGNATURE_HEADER = "x-hub-signature"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9-]{1,255}$")
_BRANCH_REF = "refs/heads/"
_TAG_REF = "refs/tags/"
_DELETED_COMMIT = "0" * 40
_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# StartExecution answers a redelivery while the first execution still runs with that execution (same name, same
# input): its startDate is then older than this call. Clock skew between Lambda and Step Functions stays far below.
DUPLICATE_START_TOLERANCE = timedelta(seconds=10)
_MAX_BRANCH_IN_NAME = 40
_MAX_MESSAGE = 500

Clock = Callable[[], datetime]  # timezone-aware


class SecretSource(Protocol):
    def get(self) -> str: ...

    def refresh(self) -> str | None: ...


class ExecutionStarter(Protocol):
    def start_execution(self, state_machine_arn: str, name: str, execution_input: str) -> StartedExecution: ...


class DeliveryRejectedError(Exception):
    """The delivery is refused with a 4xx status; `reason` is safe to log and to answer."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


def signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for `body` signed with `secret`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def execution_name(repository: str, branch: str, commit: str) -> str:
    """`github-<branch>-<commit[:12]>-<hash>`: the same for every delivery of one commit to one branch.

    The branch part keeps [A-Za-z0-9_-] (others become "-") and is cut to 40 characters; the hash of the
    full repository (case-insensitive, as GitHub names are), branch and commit keeps cut names distinct.
    """
    digest = hashlib.sha256(f"{repository.lower()}|{branch}|{commit.lower()}".encode()).hexdigest()[:8]
    safe_branch = re.sub(r"[^A-Za-z0-9_-]", "-", branch)[:_MAX_BRANCH_IN_NAME]
    return f"github-{safe_branch}-{commit.lower()[:12]}-{digest}"  # at most 7 + 40 + 1 + 12 + 1 + 8 = 69


def raw_body(request: FunctionUrlRequest) -> bytes:
    """The exact bytes GitHub signed (base64-decoded when the function URL encoded them); 413 when too big."""
    text = request.body or ""
    if request.is_base64_encoded:
        if len(text) > _MAX_BASE64_CHARS:
            raise DeliveryRejectedError(413, f"body is larger than {MAX_BODY_BYTES} bytes")
        try:
            body = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DeliveryRejectedError(400, "body is marked base64-encoded but is not valid base64") from exc
    else:
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: no byte sequence GitHub could have signed
            raise DeliveryRejectedError(400, "body is not valid UTF-8 text") from exc
    if len(body) > MAX_BODY_BYTES:
        raise DeliveryRejectedError(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    return body


def presented_signature(request: FunctionUrlRequest) -> str:
    """The X-Hub-Signature-256 header, lower-cased; 401 when it is missing or not sha256=<64 hex digits>."""
    value = request.header(SIGNATURE_HEADER)
    if value is None:
        if request.header(SHA1_SIGNATURE_HEADER) is not None:
            raise DeliveryRejectedError(401, "only X-Hub-Signature (SHA-1) was sent: X-Hub-Signature-256 is required")
        raise DeliveryRejectedError(401, "X-Hub-Signature-256 header is missing: set a secret on the webhook")
    # As sent, never trimmed (like every input): a value with whitespace around it is malformed.
    if not _SIGNATURE.fullmatch(value):
        raise DeliveryRejectedError(401, "X-Hub-Signature-256 header is malformed: expected sha256=<64 hex digits>")
    return value.lower()


def verify_signature(presented: str, body: bytes, secrets: SecretSource) -> None:
    """Constant-time check against the cached secret, then once against a freshly fetched one; else 401."""
    if hmac.compare_digest(signature(secrets.get(), body), presented):
        return
    rotated = secrets.refresh()
    if rotated is not None and hmac.compare_digest(signature(rotated, body), presented):
        logger.info("signature matches the webhook secret fetched again (the secret was rotated)")
        return
    raise DeliveryRejectedError(401, "X-Hub-Signature-256 does not match the body signed with the webhook secret")


def describe_request_error(exc: ValidationError) -> str:
    """Where and why the event is not a function URL request, without the values (a header may be the signature)."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in err["loc"]) or "event"
        problems.append(f"{where}: {err['msg']}")
    # ascii(): a header name the sender chose may hold anything; the reason is logged and answered as plain ASCII.
    return ascii("; ".join(problems))[1:-1]


def correlation_id(request: FunctionUrlRequest) -> str | None:
    """The delivery id to tag log lines with, only when it is well-formed (it is the sender's text)."""
    value = request.header(DELIVERY_HEADER)
    return value if value is not None and _DELIVERY_ID.fullmatch(value) else None


def delivery_id(request: FunctionUrlRequest) -> str | None:
    value = request.header(DELIVERY_HEADER)
    if value is None:
        return None
    if not _DELIVERY_ID.fullmatch(value):
        raise DeliveryRejectedError(400, "X-GitHub-Delivery header is malformed: expected a GUID")
    return value


def parse_push(request: FunctionUrlRequest, body: bytes) -> PushEvent:
    """The push payload from a JSON body (or a form-encoded `payload=` field); 400 when it is not one."""
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    document: Any
    try:
        if content_type == _FORM_CONTENT_TYPE:
            fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
            if "payload" not in fields:
                raise DeliveryRejectedError(400, "form-encoded body has no payload field")
            document = json.loads(fields["payload"][0])
        else:
            document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeliveryRejectedError(400, f"body is not valid JSON: {exc}"[:_MAX_MESSAGE]) from exc
    except RecursionError as exc:  # nested deeper than the parser allows
        raise DeliveryRejectedError(400, "body is nested too deeply to be a push payload") from exc
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit for int()
        raise DeliveryRejectedError(400, f"body is not a push payload: {exc}"[:_MAX_MESSAGE]) from exc
    if not isinstance(document, dict):
        raise DeliveryRejectedError(400, f"body must be a JSON object, got {type(document).__name__}")
    try:
        return PushEvent.model_validate(document)
    except ValidationError as exc:
        raise DeliveryRejectedError(400, f"push payload: {describe_validation_error(exc)}"[:_MAX_MESSAGE]) from exc


def ignore_reason(push: PushEvent, env: GithubWebhookEnvironment) -> str | None:
    """Why this push deploys nothing, or None when it deploys."""
    repository = push.repository.full_name
    # GitHub owner/repository names are case-insensitive (validate_request compares them the same way).
    if repository.lower() != env.github_repository.lower():
        return f"repository {repository} is not the configured repository {env.github_repository}"
    if push.ref.startswith(_TAG_REF):
        return f"{push.ref} is a tag push, not a branch push"
    if not push.ref.startswith(_BRANCH_REF):
        return f"{push.ref} is not a branch"
    branch = push.ref.removeprefix(_BRANCH_REF)
    if push.deleted or push.after == _DELETED_COMMIT:
        return f"branch {branch} was deleted"
    if branch != env.deploy_branch:
        return f"branch {branch} is not the deploy branch {env.deploy_branch}"
    return None


def deploy_request(push: PushEvent, delivery: str | None) -> DeployRequest:
    """The deploy request of an accepted push: its full `after` SHA as the commit, every value as GitHub sent it."""
    return DeployRequest(
        commit=push.after.lower(),
        branch=push.ref.removeprefix(_BRANCH_REF),
        repository=push.repository.full_name,
        pusher=push.pusher.name,
        delivery_id=delivery,
    )


def _ignored(reason: str, **extra: Any) -> WebhookResponse:
    metrics.add_metric(name="WebhookIgnored", unit=MetricUnit.Count, value=1)
    logger.info(f"delivery ignored: {reason}", extra=extra)
    return WebhookResponse(status_code=200, body={"ignored": reason})


def rejected(status_code: int, reason: str) -> WebhookResponse:
    metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
    logger.warning("delivery rejected", extra={"statusCode": status_code, "reason": reason})
    return WebhookResponse(status_code=status_code, body={"error": reason})


def start(
    request: DeployRequest, env: GithubWebhookEnvironment, starter: ExecutionStarter, clock: Clock
) -> WebhookResponse:
    name = execution_name(request.repository, request.branch, request.commit)
    called_at = clock()
    started = starter.start_execution(env.state_machine_arn, name, request.execution_input())
    fields = {"executionName": name, "executionArn": started.execution_arn, "commit": request.commit}
    duplicate = started.already_existed or (
        started.start_date is not None and started.start_date < called_at - DUPLICATE_START_TOLERANCE
    )
    if duplicate:
        metrics.add_metric(name="WebhookIgnored", unit=MetricUnit.Count, value=1)
        logger.info("duplicate delivery: this commit's execution already exists, nothing new started", extra=fields)
        return WebhookResponse(status_code=200, body={"executionArn": started.execution_arn, "duplicate": True})
    metrics.add_metric(name="WebhookAccepted", unit=MetricUnit.Count, value=1)
    logger.info("deployment started", extra={**fields, "request": request.model_dump(by_alias=True)})
    return WebhookResponse(status_code=202, body={"executionArn": started.execution_arn})


def receive(
    request: FunctionUrlRequest,
    env: GithubWebhookEnvironment,
    *,
    secrets: SecretSource,
    starter: ExecutionStarter,
    clock: Clock,
) -> WebhookResponse:
    try:
        body = raw_body(request)
        verify_signature(presented_signature(request), body, secrets)
        delivery = delivery_id(request)
        event = request.header(EVENT_HEADER)
        logger.info("signed delivery", extra={"deliveryId": delivery, "event": event, "bodyBytes": len(body)})
        if event is None:
            raise DeliveryRejectedError(400, "X-GitHub-Event header is missing")
        if event == "ping":
            metrics.add_metric(name="WebhookIgnored", unit=MetricUnit.Count, value=1)
            logger.info("ping: the webhook reaches this function and its secret matches")
            return WebhookResponse(status_code=200, body={"ping": "ok"})
        if event != "push":
            return _ignored(f'event "{event}" is not handled: only push events deploy', deliveryId=delivery)
        push = parse_push(request, body)
    except DeliveryRejectedError as exc:
        return rejected(exc.status_code, exc.reason)

    logger.info(
        "push",
        extra={
            "deliveryId": delivery,
            "ref": push.ref,
            "after": push.after,
            "repository": push.repository.full_name,
            "deleted": push.deleted,
        },
    )
    reason = ignore_reason(push, env)
    if reason is not None:
        return _ignored(reason, deliveryId=delivery, ref=push.ref, after=push.after)
    return start(deploy_request(push, delivery), env, starter, clock)
