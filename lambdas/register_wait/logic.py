"""Register a task token waiting for an instance refresh or an image build, and resume it at once if it is done.

The state machine calls this step with `lambda:invoke.waitForTaskToken` and a timeout equal to its fallback
poll interval; relay_event resumes the token when AWS reports the resource finished. The wait item is
written first and the resource looked at second, so an event that fires in between finds the item and one
that fired before is caught by the look. Every later problem (the look, the resume, the cleanup) is logged
and left to the event or the fallback poll: failing here would fail the deployment for nothing.
A registration for a resource replaces the previous one (the newest token is the one waiting).

An approval (kind "approval") is a wait only a person ends: its item holds the token where only approvers may
read it (the approvers' managed policy), and the ApprovalRequested notification (shared.notifications: a mail, a
chat message), published after the item is written (an approver acting on it at once finds it), says what waits,
since and until when, the exact `make approve` / `make reject` commands and a console link, never the token.
The item outlives the approval's own timeout by the wait TTL; a failed publish fails the step, since nobody would
know to answer.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from register_wait.models import (
    IMAGE_BUILD_VERSION_ARN_PATTERN,
    TERMINAL_STATUSES,
    ApprovalMessage,
    ApprovalRequest,
    RegisterWaitInput,
    RegisterWaitOutput,
)
from shared import notifications as render
from shared.aws.autoscaling import Refresh
from shared.aws.imagebuilder import BuildImage
from shared.aws.task_tokens import TokenDelivery, WaitItem, approval_resource_id
from shared.errors import InvalidInput
from shared.observability import logger, metrics

Clock = Callable[[], int]  # epoch seconds


class WaitStore(Protocol):
    def put(self, item: WaitItem) -> None: ...

    def delete_if_token(self, kind: str, resource_id: str, task_token: str) -> bool: ...


class TokenSender(Protocol):
    def send_success(self, task_token: str, output: Mapping[str, Any]) -> TokenDelivery: ...


# The make targets run scripts/approval.py from the repository (the README's "Approvals").
APPROVE_TARGET, REJECT_TARGET = "make approve", "make reject"


class RefreshReader(Protocol):
    def describe_refreshes(self, group_name: str, refresh_ids: Sequence[str] = ()) -> list[Refresh]: ...


class BuildReader(Protocol):
    def get_image(self, build_version_arn: str) -> BuildImage: ...


def check_request(request: RegisterWaitInput) -> None:
    """What the model alone cannot say: the fields each kind needs, before anything is written."""
    if request.kind == "refresh" and request.auto_scaling_group_name is None:
        raise InvalidInput("autoScalingGroupName: required when kind is 'refresh'")
    if request.kind == "approval":
        if request.approval is None:
            raise InvalidInput("approval: required when kind is 'approval'")
        expected = approval_resource_id(request.execution_id, request.approval.stage)
        if request.resource_id != expected:
            raise InvalidInput(
                f"resourceId: must be '<executionId>#<approval.stage>' ({expected!r}) when kind is 'approval'"
            )
    elif request.approval is not None:
        raise InvalidInput(f"approval: only for kind 'approval', not {request.kind!r}")
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


def approval_commands(execution_id: str, stage: str) -> tuple[str, str]:
    """The exact approve and reject commands for the mail (scripts/approval.py finds the token itself). Each
    make variable assignment is one shell word, quoted when a shell would split or expand it."""
    target = f"{shlex.quote(f'EXECUTION={execution_id}')} {shlex.quote(f'STAGE={stage}')}"
    return f"{APPROVE_TARGET} {target}", f"{REJECT_TARGET} {target} REASON='...'"


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def approval_message(request: RegisterWaitInput, approval: ApprovalRequest, requested_at: int) -> ApprovalMessage:
    approve, reject = approval_commands(request.execution_id, approval.stage)
    return ApprovalMessage(
        stage=approval.stage,
        execution_id=request.execution_id,
        ami_id=approval.ami_id,
        commit=approval.commit,
        images=approval.images,
        requested_at=_iso(requested_at),
        expires_at=_iso(requested_at + approval.timeout_seconds),
        timeout_hours=approval.timeout_seconds / 3600,
        approve=approve,
        reject=reject,
    )


def store(request: RegisterWaitInput, waits: WaitStore, *, now: int, expires_at: int) -> None:
    """The wait item holding the request's token until `expires_at` (epoch seconds; DynamoDB's TTL removes it)."""
    waits.put(
        WaitItem(
            kind=request.kind,
            resource_id=request.resource_id,
            task_token=request.task_token,
            execution_id=request.execution_id,
            expires_at=expires_at,
            created_at=now,
        )
    )


def approval_notification(
    request: RegisterWaitInput, message: ApprovalMessage, application: str
) -> render.Notification:
    approval = request.approval
    return render.approval_requested(
        render.Deployment(
            application=application,
            execution_id=request.execution_id,
            commit=approval.commit if approval else None,
            ami_id=approval.ami_id if approval else None,
        ),
        message.stage,
        message.model_dump(by_alias=True, mode="json"),
    )


def register_approval(
    request: RegisterWaitInput,
    *,
    waits: WaitStore,
    notifications: render.Publisher,
    ttl_seconds: int,
    clock: Clock,
    application: str,
) -> RegisterWaitOutput:
    """Store the approval's token, then mail the request without it. Nothing is looked at: a person answers."""
    approval = request.approval
    if approval is None:  # check_request refused it already
        raise InvalidInput("approval: required when kind is 'approval'")
    now = clock()
    store(request, waits, now=now, expires_at=now + approval.timeout_seconds + ttl_seconds)
    message = approval_message(request, approval, now)
    render.publish(approval_notification(request, message, application), notifications)
    metrics.add_metric(name="ApprovalsRequested", unit=MetricUnit.Count, value=1)
    logger.info(
        "approval requested",
        extra={"stage": approval.stage, "resourceId": request.resource_id, "expiresAt": message.expires_at},
    )
    return RegisterWaitOutput(registered=True, already_done=False, status=None)


def run(
    request: RegisterWaitInput,
    *,
    waits: WaitStore,
    tokens: TokenSender,
    refreshes: RefreshReader,
    builds: BuildReader,
    ttl_seconds: int,
    clock: Clock,
    notifications: render.Publisher,
    application: str,
) -> RegisterWaitOutput:
    check_request(request)
    if request.kind == "approval" and not request.dry_run:
        return register_approval(
            request,
            waits=waits,
            notifications=notifications,
            ttl_seconds=ttl_seconds,
            clock=clock,
            application=application,
        )
    if request.dry_run:
        # Nothing to wait for and nothing written: resume at once rather than idle until the fallback timeout.
        logger.info("dry run: no wait item written, task resumed at once", extra={"resourceId": request.resource_id})
        resume(request, tokens, None)
        return RegisterWaitOutput(registered=False, already_done=False, status=None)

    now = clock()
    store(request, waits, now=now, expires_at=now + ttl_seconds)
    metrics.add_metric(name="WaitsRegistered", unit=MetricUnit.Count, value=1)

    status = look(request, refreshes, builds)
    if status not in TERMINAL_STATUSES[request.kind]:
        logger.info(
            "waiting for the completion event",
            extra={
                "kind": request.kind,
                "resourceId": request.resource_id,
                "status": status,
                "expiresAt": now + ttl_seconds,
            },
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
