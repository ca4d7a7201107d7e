"""Relay AWS completion events to the execution waiting for them (EventBridge target).

Handled events (AWS docs, "Instance refresh example events and patterns" of the EC2 Auto Scaling user
guide; "Event messages that Image Builder sends" of the Image Builder user guide):
- source aws.autoscaling, the refresh end states and "Checkpoint Reached" (the state machine re-checks health
  at a checkpoint); the refresh is detail.InstanceRefreshId.
- source aws.imagebuilder, "EC2 Image Builder Image State Change" with a terminal detail.state.status; the
  image build version ARN is resources[0]. Intermediate statuses (BUILDING, TESTING...) resume nothing.
Anything else is ignored with a reason. A handled event resumes the token of the wait item for its resource
(written by register_wait) and deletes that item, only if it still holds the same token. A token whose task
is closed (timed out into the fallback poll) is a normal outcome; other errors propagate so that EventBridge
retries the delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from relay_event.models import EventBridgeEvent, RelayEventOutput, WaitKind
from shared.aws.task_tokens import TokenDelivery, WaitItem
from shared.observability import logger, metrics
from shared.statuses import FINAL_IMAGE_STATUSES

AUTOSCALING_SOURCE = "aws.autoscaling"
IMAGEBUILDER_SOURCE = "aws.imagebuilder"
IMAGE_STATE_CHANGE = "EC2 Image Builder Image State Change"
# Each handled refresh event, with the refresh status it reports (botocore InstanceRefreshStatus).
REFRESH_EVENTS: Mapping[str, str] = {
    "EC2 Auto Scaling Instance Refresh Succeeded": "Successful",
    "EC2 Auto Scaling Instance Refresh Failed": "Failed",
    "EC2 Auto Scaling Instance Refresh Cancelled": "Cancelled",
    "EC2 Auto Scaling Instance Refresh Rollback Succeeded": "RollbackSuccessful",
    "EC2 Auto Scaling Instance Refresh Rollback Failed": "RollbackFailed",
    # A checkpoint pauses a refresh that is still InProgress: the state machine checks health there.
    "EC2 Auto Scaling Instance Refresh Checkpoint Reached": "InProgress",
}


class WaitReader(Protocol):
    def get(self, kind: str, resource_id: str) -> WaitItem | None: ...

    def delete_if_token(self, kind: str, resource_id: str, task_token: str) -> bool: ...


class TokenSender(Protocol):
    def send_success(self, task_token: str, output: Mapping[str, Any]) -> TokenDelivery: ...


@dataclass(frozen=True)
class Reading:
    """What an event says: the resource and its status, or why it resumes nothing (`ignored`)."""

    kind: WaitKind | None = None
    resource_id: str | None = None
    status: str | None = None
    ignored: str | None = None


def _read_refresh(event: EventBridgeEvent) -> Reading:
    status = REFRESH_EVENTS.get(event.detail_type)
    if status is None:
        return Reading(ignored=f"{AUTOSCALING_SOURCE} event {event.detail_type!r} is not one that ends a wait")
    refresh_id = event.detail.get("InstanceRefreshId")
    if not isinstance(refresh_id, str) or not refresh_id:
        return Reading(kind="refresh", ignored=f"{event.detail_type!r} event without detail.InstanceRefreshId")
    return Reading(kind="refresh", resource_id=refresh_id, status=status)


def _read_image(event: EventBridgeEvent) -> Reading:
    if event.detail_type != IMAGE_STATE_CHANGE:
        return Reading(ignored=f"{IMAGEBUILDER_SOURCE} event {event.detail_type!r} is not one that ends a wait")
    if not event.resources or not event.resources[0]:
        return Reading(kind="image", ignored=f"{IMAGE_STATE_CHANGE!r} event without resources[0]")
    arn = event.resources[0]
    state = event.detail.get("state")
    status = state.get("status") if isinstance(state, dict) else None
    if not isinstance(status, str) or not status:
        reason = f"{IMAGE_STATE_CHANGE!r} event without detail.state.status"
        return Reading(kind="image", resource_id=arn, ignored=reason)
    status = status.upper()
    if status not in FINAL_IMAGE_STATUSES:
        return Reading(kind="image", resource_id=arn, status=status, ignored=f"image status {status} is not final")
    return Reading(kind="image", resource_id=arn, status=status)


def read(event: EventBridgeEvent) -> Reading:
    if event.source == AUTOSCALING_SOURCE:
        return _read_refresh(event)
    if event.source == IMAGEBUILDER_SOURCE:
        return _read_image(event)
    return Reading(ignored=f"events from source {event.source!r} are not relayed")


def _output(reading: Reading, resumed: bool, reason: str) -> RelayEventOutput:
    return RelayEventOutput(resumed=resumed, kind=reading.kind, resource_id=reading.resource_id, reason=reason)


def run(event: EventBridgeEvent, *, waits: WaitReader, tokens: TokenSender) -> RelayEventOutput:
    reading = read(event)
    if reading.resource_id is not None:
        logger.set_correlation_id(reading.resource_id)  # the event has no executionId: the resource ties the logs
    if reading.ignored is not None or reading.kind is None or reading.resource_id is None:
        reason = reading.ignored or "event names no resource"
        logger.info("event ignored", extra={"source": event.source, "detailType": event.detail_type, "reason": reason})
        metrics.add_metric(name="EventsIgnored", unit=MetricUnit.Count, value=1)
        return _output(reading, False, reason)

    kind, resource_id = reading.kind, reading.resource_id
    item = waits.get(kind, resource_id)
    if item is None:
        reason = f"no execution is waiting for {kind} {resource_id}"
        logger.info(reason, extra={"detailType": event.detail_type, "status": reading.status})
        metrics.add_metric(name="EventsUnmatched", unit=MetricUnit.Count, value=1)
        return _output(reading, False, reason)

    output = {
        "source": "event",
        "detailType": event.detail_type,
        "kind": kind,
        "resourceId": resource_id,
        "status": reading.status,
    }
    delivery = tokens.send_success(item.task_token, output)
    if not waits.delete_if_token(kind, resource_id, item.task_token):
        logger.info("wait item already replaced by a newer token: kept", extra={"resourceId": resource_id})

    if delivery.delivered:
        reason = f"resumed execution {item.execution_id}"
        logger.info(reason, extra={"detailType": event.detail_type, "status": reading.status})
        metrics.add_metric(name="EventsRelayed", unit=MetricUnit.Count, value=1)
        return _output(reading, True, reason)

    reason = (
        f"the task of execution {item.execution_id} is already closed ({delivery.code}: {delivery.message}): "
        "it moved on with its fallback poll"
    )
    logger.warning(reason, extra={"detailType": event.detail_type, "status": reading.status})
    metrics.add_metric(name="EventsStale", unit=MetricUnit.Count, value=1)
    return _output(reading, False, reason)
