"""Judge one instance refresh: still going, healthy, or failed. One look per call, no waiting.

A Successful refresh is Healthy only when every InService instance is "healthy" in every target group
of the group. A refresh that keeps failing to launch instances is reported Failed early instead of
waiting out AWS's hour of retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from check_refresh.models import CheckRefreshInput, CheckRefreshOutput, Verdict
from shared import clock
from shared.aws.autoscaling import Group, Refresh, ScalingActivity
from shared.aws.elbv2 import TargetHealth
from shared.blue_green import health_entries
from shared.config import DeployConfig
from shared.errors import InstanceRefreshNotFound
from shared.observability import logger, metrics
from shared.reasons import listed
from shared.targets import require_configured_target

# This many failed launch activities since the refresh started means it is stuck (bad AMI, no capacity...).
STUCK_LAUNCH_FAILURE_THRESHOLD = 3

IN_PROGRESS_STATUSES = frozenset({"Pending", "InProgress", "Baking"})
FAILED_STATUSES = frozenset(
    {"Failed", "Cancelled", "Cancelling", "RollbackInProgress", "RollbackSuccessful", "RollbackFailed"}
)


class RefreshReader(Protocol):
    def describe_group(self, name: str) -> Group: ...

    def describe_refreshes(self, group_name: str, refresh_ids: Sequence[str] = ()) -> list[Refresh]: ...

    def scaling_activities(self, group_name: str, since: datetime) -> list[ScalingActivity]: ...


class TargetHealthReader(Protocol):
    def target_health(self, target_group_arn: str) -> list[TargetHealth]: ...


def fleet_health(group: Group, load_balancing: TargetHealthReader) -> tuple[Verdict, str]:
    """Every InService instance healthy in every target group → Healthy; unhealthy → Failed; else InProgress."""
    in_service = [i.instance_id for i in group.instances if i.lifecycle_state == "InService"]
    if not group.target_group_arns:
        return "Healthy", f"refresh succeeded; group {group.name} has no target groups to check"
    if not in_service:
        return "Healthy", f"refresh succeeded; group {group.name} has no InService instances"
    unhealthy: list[str] = []
    waiting: list[str] = []
    for name, instance_id, entries in health_entries(load_balancing, group.target_group_arns, in_service):
        if not entries:
            waiting.append(f"{instance_id} not registered yet in {name}")
            continue
        for entry in entries:
            if entry.state == "healthy":
                continue
            detail = f"{instance_id} {entry.state} in {name}" + (f" ({entry.reason})" if entry.reason else "")
            (unhealthy if entry.state.startswith("unhealthy") else waiting).append(detail)
    if unhealthy:
        return "Failed", f"refresh succeeded but instances are unhealthy: {listed(unhealthy)}"
    if waiting:
        return "InProgress", f"refresh succeeded; waiting for target health: {listed(waiting)}"
    return "Healthy", (
        f"refresh succeeded; all {len(in_service)} InService instances are healthy in "
        f"{len(group.target_group_arns)} target group(s)"
    )


def stuck_reason(refresh: Refresh, activities: Sequence[ScalingActivity]) -> str | None:
    """A reason when at least STUCK_LAUNCH_FAILURE_THRESHOLD launches failed since the refresh started."""
    failed = sorted((a for a in activities if a.failed_launch), key=lambda a: a.start_time)
    if len(failed) < STUCK_LAUNCH_FAILURE_THRESHOLD:
        return None
    first = failed[0]
    started = refresh.start_time.isoformat() if refresh.start_time else "its start"
    return (
        f"instance refresh {refresh.refresh_id} is stuck: {len(failed)} instance launches failed since {started}; "
        f"first failure: {first.status_message or first.description}"
    )


def count_refresh_duration(refresh: Refresh) -> None:
    """RefreshDuration (seconds) of a refresh that ended Successful with a healthy fleet (the verdict the state
    machine goes on with, once): its StartTime to its EndTime (DescribeInstanceRefreshes, InstanceRefresh)."""
    if refresh.start_time is None or refresh.end_time is None:
        logger.warning(
            "the refresh reports no start or end time: duration not counted", extra={"id": refresh.refresh_id}
        )
        return
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (refresh.start_time, refresh.end_time))
    seconds = max(0.0, (end - start).total_seconds())
    metrics.add_metric(name="RefreshDuration", unit=MetricUnit.Seconds, value=seconds)


def _output(verdict: Verdict, refresh: Refresh, reason: str) -> CheckRefreshOutput:
    elapsed = 0
    # A rollback is bounded from its own start: the refresh it reverts keeps the original StartTime.
    start = refresh.rollback_start_time or refresh.start_time
    if start is not None:
        started = start if start.tzinfo else start.replace(tzinfo=UTC)
        elapsed = max(0, int((clock.now() - started).total_seconds()))  # shared.clock: simulated in a rehearsal
    return CheckRefreshOutput(
        verdict=verdict,
        status=refresh.status,
        percentage_complete=refresh.percentage_complete,
        reason=reason,
        instances_to_update=refresh.instances_to_update,
        elapsed_seconds=elapsed,
    )


def run(
    request: CheckRefreshInput, config: DeployConfig, *, autoscaling: RefreshReader, load_balancing: TargetHealthReader
) -> CheckRefreshOutput:
    require_configured_target(config, request.target)
    group_name = request.target.auto_scaling_group_name
    found = autoscaling.describe_refreshes(group_name, [request.instance_refresh_id])
    refresh = next((r for r in found if r.refresh_id == request.instance_refresh_id), None)
    if refresh is None:
        raise InstanceRefreshNotFound(f"instance refresh {request.instance_refresh_id} not found on group {group_name}")
    if refresh.launch_template_version != str(request.launch_template_version):
        logger.warning(
            "the refresh names another launch template version than the payload",
            extra={"refreshVersion": refresh.launch_template_version, "expected": request.launch_template_version},
        )
    label = f"instance refresh {refresh.refresh_id} to version {refresh.launch_template_version or '?'}"

    if refresh.status == "Successful":
        verdict, reason = fleet_health(autoscaling.describe_group(group_name), load_balancing)
        if verdict == "Healthy":
            count_refresh_duration(refresh)
        return _output(verdict, refresh, reason)
    if refresh.status in FAILED_STATUSES:
        why = refresh.status_reason or "AWS gave no reason"
        return _output("Failed", refresh, f"{label} is {refresh.status}: {why}")
    if refresh.status in IN_PROGRESS_STATUSES:
        if refresh.start_time is not None:
            stuck = stuck_reason(refresh, autoscaling.scaling_activities(group_name, refresh.start_time))
            if stuck:
                return _output("Failed", refresh, stuck)
        return _output("InProgress", refresh, f"{label} is {refresh.status}, {refresh.percentage_complete}% complete")
    logger.warning("unknown instance refresh status; treating it as in progress", extra={"status": refresh.status})
    return _output("InProgress", refresh, f"{label} has status {refresh.status!r}, not known to this step")
