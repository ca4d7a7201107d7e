"""Judge a green group once: failed, timed out, still coming up, in alarm, soaking, or healthy. No waiting,
no changes: the state machine waits between looks and passes `healthySince` from one look to the next.

Healthy means: at least `desired` instances InService and Healthy in the group, and every InService
instance `healthy` in every target group green is attached to (and green attached to every target group
blue serves). An unhealthy target is not a failure yet: the load balancer's health check may make Auto
Scaling replace it; `healthTimeoutMinutes` bounds that. Failed launches (bad AMI, capacity, quota) end
it early, once `maxFailedLaunches` of them happened since green was created.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from check_green_group.models import CheckGreenGroupInput, CheckGreenGroupOutput, Verdict
from shared.aws.autoscaling import ScalingActivity
from shared.aws.groups import GroupDetails
from shared.blue_green import TargetHealthReader, serving_health, timestamp
from shared.config import DeployConfig
from shared.observability import logger
from shared.reasons import listed
from shared.targets import require_target_strategy


class GreenReader(Protocol):
    def describe(self, name: str) -> GroupDetails | None: ...

    def scaling_activities(self, group_name: str, since: datetime) -> list[ScalingActivity]: ...


class AlarmReader(Protocol):
    def states(self, names: Sequence[str]) -> dict[str, str]: ...


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _failed_launches(activities: Sequence[ScalingActivity]) -> list[ScalingActivity]:
    return sorted((a for a in activities if a.failed_launch), key=lambda a: a.start_time)


def run(
    request: CheckGreenGroupInput,
    config: DeployConfig,
    *,
    groups: GreenReader,
    load_balancing: TargetHealthReader,
    alarms: AlarmReader,
    now: datetime,
) -> CheckGreenGroupOutput:
    require_target_strategy(config, request.target, "blue-green")
    settings = config.blue_green
    green = request.green
    created_at = _aware(green.created_at)
    elapsed = max(0, int((now - created_at).total_seconds()))

    def output(
        verdict: Verdict,
        reason: str,
        *,
        since: datetime | None = None,
        desired: int = green.desired_capacity,
        counts: tuple[int, int] = (0, 0),
    ) -> CheckGreenGroupOutput:
        return CheckGreenGroupOutput(
            verdict=verdict,
            reason=reason,
            healthy_since=since,
            elapsed_seconds=elapsed,
            desired=desired,
            in_service=counts[0],
            healthy_targets=counts[1],
        )

    if green.dry_run or green.already_live:
        why = "a dry run created no green group" if green.dry_run else f"{green.blue_group_name} already runs the AMI"
        return output("Healthy", f"nothing to watch: {why}", since=now.replace(microsecond=0))

    group = groups.describe(green.green_group_name)
    if group is None or group.deleting:
        return output("Failed", f"green group {green.green_group_name} no longer exists")
    failed = _failed_launches(groups.scaling_activities(group.name, created_at))
    if len(failed) >= settings.max_failed_launches:
        messages = [f"{a.activity_id}: {a.status_message or a.description}" for a in failed]
        return output(
            "Failed",
            f"{len(failed)} instance launches of green group {group.name} failed since {timestamp(created_at)}: "
            f"{listed(messages)}",
            desired=group.capacity.desired,
        )

    in_service, healthy_targets, waiting = serving_health(group, green.target_group_arns, load_balancing)
    counts = (in_service, healthy_targets)
    desired = group.capacity.desired
    if waiting:
        timeout = timedelta(minutes=settings.health_timeout_minutes)
        if now - created_at >= timeout:
            return output(
                "TimedOut",
                f"green group {group.name} is not healthy {settings.health_timeout_minutes} minutes after it was "
                f"created: {listed(waiting)}",
                desired=desired,
                counts=counts,
            )
        return output(
            "InProgress", f"waiting for green group {group.name}: {listed(waiting)}", desired=desired, counts=counts
        )

    since = _aware(request.healthy_since) if request.healthy_since else now.replace(microsecond=0)
    if settings.alarms:
        states = alarms.states(settings.alarms)
        missing = [name for name in settings.alarms if name not in states]
        if missing:
            logger.warning("configured alarms do not exist; they cannot stop the deployment", extra={"alarms": missing})
        firing = [name for name in settings.alarms if states.get(name) == "ALARM"]
        if firing:
            return output(
                "Alarm",
                f"green group {group.name} is healthy but alarm(s) in ALARM: {listed(firing)}",
                since=since,
                desired=desired,
                counts=counts,
            )
    healthy = (
        f"all {in_service} instance(s) of green group {group.name} are InService and healthy in "
        f"{len(group.target_group_arns)} target group(s)"
    )
    soaked_at = since + timedelta(seconds=settings.soak_seconds)
    if soaked_at > now:
        remaining = int((soaked_at - now).total_seconds())
        return output(
            "Soaking",
            f"{healthy}; soaking since {timestamp(since)}, {remaining}s to go",
            since=since,
            desired=desired,
            counts=counts,
        )
    return output("Healthy", healthy, since=since, desired=desired, counts=counts)
