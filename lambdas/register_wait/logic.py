"""Register a task token waiting for an instance refresh or an image build, and resume it at once if it is done.

The state machine calls this step with `lambda:invoke.waitForTaskToken` and a timeout equal to its fallback
poll interval; relay_event resumes the token when AWS reports the resource finished. The wait item is
written first and the resource looked at second, so an event that fires in between finds the item and one
that fired before is caught by the look. Every later problem (the look, the resume, the cleanup) is logged
and left to the event or the fallback poll: failing here would fail the deployment for nothing.
A registration for a resource replaces the previous one (the newest token is the one waiting).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit
from register_wait.models import (
    IMAGE_BUILD_VERSION_ARN_PATTERN,
    TERMINAL_STATUSES,
    RegisterWaitInput,
    RegisterWaitOutput,
)

from shared.aws.autoscaling import Refresh
from shared.aws.imagebuilder import BuildImage
from shared.aws.task_tokens import TokenDelivery, WaitItem
from shared.errors import InvalidInput
from shared.observability import logger, metrics

Clock = Callable[[], int]  # epoch seconds


class WaitStore(Protocol):
    def put(self, item: WaitItem) -> None: ...

    def delete_if_token(self, kind: str, resource_id: str, task_token: str) -> bool: ...


class TokenSender(Protocol):
    def send_success(self, task_token: str, output: Mapping[str, Any]) -> TokenDelivery: ...


class RefreshReader(Protocol):
    def describe_refreshes(self, group_name: str, refresh_ids: Sequence[str] = ()) -> list[Refresh]: ...


class BuildReader(Protocol):
    def get_image(self, build_version_arn: str) -> BuildImage: ...


def check_request(request: RegisterWaitInput) -> None:
    """What the model alone cannot say: the fields each kind needs, before anything is written."""
    if request.kind == "refresh" and request.auto_scaling_group_name is None:
        raise InvalidInput("autoScalingGroupName: required when kind is 'refresh'")
    if request.kind == "image" and not re.fullmatch(IMAGE_BUILD_VERSION_ARN_PATTERN, request.resource_id):
        raise InvalidInput(
            "resourceId: must be an image build version ARN "
            "(arn:aws:imagebuilder:<region>:<account>:image/<name>/<x.y.z>/<build>) when kind is 'image', "
            f"got {request.resource_id!r}"
        )


def look(request: RegisterWaitInput, refreshes: RefreshReader, builds: BuildReader) -> str | None:
    """The resource's status now; None when it cannot be told (not visible yet, throttled, any error)."""
    try:
        if request.kind == "refresh":
            group = request.auto_scaling_group_name or ""
            found = refreshes.describe_refreshes(group, [request.resource_id])
            match = next((r for r in found if r.refresh_id == request.resource_id), None)
            if match is None:
                logger.warning(
                    "instance refresh not visible yet: the wait is left to the event or the fallback poll",
                    extra={"autoScalingGroupName": group, "resourceId": request.resource_id},
                )
                return None
            return match.status or None
        return builds.get_image(request.resource_id).status or None
    except Exception:  # the look is an optimisation: whatever went wrong, the event or the fallback poll decides
        logger.warning(
            "could not look at the resource: the wait is left to the event or the fallback poll",
            extra={"kind": request.kind, "resourceId": request.resource_id},
            exc_info=True,
        )
        metrics.add_metric(name="WaitLooksFailed", unit=MetricUnit.Count, value=1)
        return None


def resume(request: RegisterWaitInput, tokens: TokenSender, status: str | None) -> bool:
    """SendTaskSuccess on the request's own token; True when the task is closed now (resumed, or already was)."""
    output = {"source": "register", "kind": request.kind, "resourceId": request.resource_id, "status": status}
    try:
        delivery = tokens.send_success(request.task_token, output)
    except Exception:  # the task stays open: its timeout (the fallback poll) ends the wait
        logger.warning(
            "could not resume the task: the fallback poll will",
            extra={"kind": request.kind, "resourceId": request.resource_id, "status": status},
            exc_info=True,
        )
        return False
    if delivery.delivered:
        logger.info("task resumed at once", extra={"kind": request.kind, "resourceId": request.resource_id})
    else:
        logger.warning(
            "the task was already closed",
            extra={"resourceId": request.resource_id, "code": delivery.code, "error": delivery.message},
        )
    return True


def forget(request: RegisterWaitInput, waits: WaitStore) -> None:
    """Delete the wait item if it still holds this request's token (a newer registration's stays)."""
    try:
        if not waits.delete_if_token(request.kind, request.resource_id, request.task_token):
            logger.info("wait item gone or replaced by a newer token: kept", extra={"resourceId": request.resource_id})
    except Exception:  # the item is harmless: its token is closed, and DynamoDB's TTL removes it
        logger.warning("could not delete the wait item", extra={"resourceId": request.resource_id}, exc_info=True)


def run(
    request: RegisterWaitInput,
    *,
    waits: WaitStore,
    tokens: TokenSender,
    refreshes: RefreshReader,
    builds: BuildReader,
    ttl_seconds: int,
    clock: Clock,
) -> RegisterWaitOutput:
    check_request(request)
    if request.dry_run:
        # Nothing to wait for and nothing written: resume at once rather than idle until the fallback timeout.
        logger.info("dry run: no wait item written, task resumed at once", extra={"resourceId": request.resource_id})
        resume(request, tokens, None)
        return RegisterWaitOutput(registered=False, already_done=False, status=None)

    expires_at = clock() + ttl_seconds
    waits.put(
        WaitItem(
            kind=request.kind,
            resource_id=request.resource_id,
            task_token=request.task_token,
            execution_id=request.execution_id,
            expires_at=expires_at,
        )
    )
    metrics.add_metric(name="WaitsRegistered", unit=MetricUnit.Count, value=1)

    status = look(request, refreshes, builds)
    if status not in TERMINAL_STATUSES[request.kind]:
        logger.info(
            "waiting for the completion event",
            extra={"kind": request.kind, "resourceId": request.resource_id, "status": status, "expiresAt": expires_at},
        )
        return RegisterWaitOutput(registered=True, already_done=False, status=status)

    logger.info(
        "the resource had already finished",
        extra={"kind": request.kind, "resourceId": request.resource_id, "status": status},
    )
    metrics.add_metric(name="WaitsAlreadyDone", unit=MetricUnit.Count, value=1)
    if resume(request, tokens, status):
        forget(request, waits)
    return RegisterWaitOutput(registered=True, already_done=True, status=status)
