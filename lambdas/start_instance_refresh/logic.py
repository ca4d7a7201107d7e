"""Start (or adopt) an instance refresh pinned to a launch template version number.

Safety rules: the DesiredConfiguration names the version *number* (rule 1), an active refresh is
adopted when it already rolls out the same template version and is otherwise reported as
`RefreshInProgress` without retrying (rule 4), and a retried step adopts the refresh it started (rule 6).
`rollback` reuses `start_refresh` with `for_rollback=True`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from shared.aws.autoscaling import Group, Refresh
from shared.config import DeployConfig, RefreshPreferences, Target, require_valid_refresh
from shared.errors import RefreshInProgress
from shared.observability import logger, metrics
from shared.targets import require_configured_target
from start_instance_refresh.models import StartInstanceRefreshInput, StartInstanceRefreshOutput

_STANDBY_STATES = frozenset({"Standby", "EnteringStandby"})
_LEAVING_STATES_PREFIXES = ("Terminating", "Terminated", "Detach")


class RefreshStarter(Protocol):
    def describe_group(self, name: str) -> Group: ...

    def describe_refreshes(self, group_name: str, refresh_ids: Sequence[str] = ()) -> list[Refresh]: ...

    def start_refresh(self, group_name: str, *, template_id: str, version: int, preferences: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class StartOutcome:
    refresh_id: str | None
    adopted: bool
    preferences: dict[str, Any]


def build_refresh_preferences(refresh: RefreshPreferences, *, for_rollback: bool = False) -> dict[str, Any]:
    """The StartInstanceRefresh Preferences, checked against the rules AWS applies.

    The rules are the configuration model's (shared.config.refresh_problems, which synth and every cold start
    apply too): a ConfigurationError here names the key, as `cdk synth` would have.
    A rollback refresh (back to the previous version) has no checkpoints, bake time, alarms or auto
    rollback: the alarms that failed the deployment would fail the rollback too, and an auto rollback of
    a rollback would return the fleet to the bad version.
    """
    require_valid_refresh(refresh)
    preferences: dict[str, Any] = {
        "MinHealthyPercentage": refresh.min_healthy_percentage,
        "MaxHealthyPercentage": refresh.max_healthy_percentage,
        "InstanceWarmup": refresh.instance_warmup_seconds,
        "SkipMatching": refresh.skip_matching,
        "ScaleInProtectedInstances": refresh.scale_in_protected_instances,
        "StandbyInstances": refresh.standby_instances,
    }
    if for_rollback:
        preferences["AutoRollback"] = False
        preferences["BakeTime"] = 0
        return preferences
    preferences["AutoRollback"] = refresh.auto_rollback
    preferences["BakeTime"] = refresh.bake_time_seconds
    if refresh.checkpoint_percentages:
        preferences["CheckpointPercentages"] = list(refresh.checkpoint_percentages)
        preferences["CheckpointDelay"] = refresh.checkpoint_delay_seconds
    if refresh.alarms:
        preferences["AlarmSpecification"] = {"Alarms": list(refresh.alarms)}
    return preferences


def rolls_out(refresh: Refresh, template_id: str, version: int) -> bool:
    """Whether the refresh's DesiredConfiguration names exactly this template and version number."""
    return refresh.launch_template_id == template_id and refresh.launch_template_version == str(version)


def _describe_active(refreshes: list[Refresh]) -> str:
    return ", ".join(
        f"{r.refresh_id} ({r.status}, launch template {r.launch_template_id or r.launch_template_name or 'none'} "
        f"version {r.launch_template_version or 'none'})"
        for r in refreshes
    )


def _adopt_or_refuse(autoscaling: RefreshStarter, target: Target, version: int) -> Refresh | None:
    """The active refresh rolling out this version (to adopt), None if none is active; raise if a foreign one is."""
    active = [r for r in autoscaling.describe_refreshes(target.auto_scaling_group_name) if r.active]
    ours = next((r for r in active if rolls_out(r, target.launch_template_id, version)), None)
    if ours is not None:
        return ours
    if active:
        raise RefreshInProgress(
            f"Auto Scaling group {target.auto_scaling_group_name} already has an active instance refresh that is "
            f"not rolling out {target.launch_template_id} version {version}: {_describe_active(active)}"
        )
    return None


def _warn_about_skipped_instances(group: Group, preferences: dict[str, Any], version: int) -> None:
    protected = [
        i.instance_id
        for i in group.instances
        if i.protected_from_scale_in and not i.lifecycle_state.startswith(_LEAVING_STATES_PREFIXES)
    ]
    standby = [i.instance_id for i in group.instances if i.lifecycle_state in _STANDBY_STATES]
    for kind, ids, behaviour in (
        ("scale-in protected", protected, preferences["ScaleInProtectedInstances"]),
        ("standby", standby, preferences["StandbyInstances"]),
    ):
        if not ids:
            continue
        if behaviour == "Ignore":
            logger.warning(
                f"{len(ids)} {kind} instance(s) are skipped by the refresh and keep the old launch template version",
                extra={"autoScalingGroupName": group.name, "instanceIds": ids, "launchTemplateVersion": version},
            )
        elif behaviour == "Wait":
            logger.warning(
                f"{len(ids)} {kind} instance(s) make the refresh wait up to one hour, then fail",
                extra={"autoScalingGroupName": group.name, "instanceIds": ids},
            )


def start_refresh(
    *,
    autoscaling: RefreshStarter,
    config: DeployConfig,
    target: Target,
    version: int,
    dry_run: bool,
    for_rollback: bool = False,
) -> StartOutcome:
    """Adopt the active refresh to `version`, or start one; never start a second one."""
    require_configured_target(config, target)
    preferences = build_refresh_preferences(config.refresh, for_rollback=for_rollback)
    group = autoscaling.describe_group(target.auto_scaling_group_name)
    _warn_about_skipped_instances(group, preferences, version)

    existing = _adopt_or_refuse(autoscaling, target, version)
    if existing is not None:
        logger.info(
            "adopting the active instance refresh to this version",
            extra={"instanceRefreshId": existing.refresh_id, "status": existing.status},
        )
        return StartOutcome(refresh_id=None if dry_run else existing.refresh_id, adopted=True, preferences=preferences)
    if dry_run:
        logger.info("dry run: would start an instance refresh", extra={"preferences": preferences})
        return StartOutcome(refresh_id=None, adopted=False, preferences=preferences)

    try:
        refresh_id = autoscaling.start_refresh(
            target.auto_scaling_group_name,
            template_id=target.launch_template_id,
            version=version,
            preferences=preferences,
        )
    except RefreshInProgress:
        # Someone started a refresh between our check and our call: adopt it if it is ours, else fail clearly.
        raced = _adopt_or_refuse(autoscaling, target, version)
        if raced is None:
            raise
        logger.info("adopting the instance refresh that won the race", extra={"instanceRefreshId": raced.refresh_id})
        return StartOutcome(refresh_id=raced.refresh_id, adopted=True, preferences=preferences)
    metrics.add_metric(name="InstanceRefreshesStarted", unit=MetricUnit.Count, value=1)
    logger.info("instance refresh started", extra={"instanceRefreshId": refresh_id, "launchTemplateVersion": version})
    return StartOutcome(refresh_id=refresh_id, adopted=False, preferences=preferences)


def run(
    request: StartInstanceRefreshInput, config: DeployConfig, *, autoscaling: RefreshStarter
) -> StartInstanceRefreshOutput:
    outcome = start_refresh(
        autoscaling=autoscaling,
        config=config,
        target=request.target,
        version=request.launch_template_version,
        dry_run=request.dry_run,
    )
    return StartInstanceRefreshOutput(
        auto_scaling_group_name=request.target.auto_scaling_group_name,
        instance_refresh_id=outcome.refresh_id,
        adopted=outcome.adopted,
        preferences=outcome.preferences,
    )
