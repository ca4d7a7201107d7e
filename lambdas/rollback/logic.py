"""Put a target back on the previous launch template version (safety rule 5), idempotently.

1. Stop the deployment's refresh: RollbackInstanceRefresh while it is active (AWS replaces what it
   replaced); if AWS refuses, CancelInstanceRefresh.
2. Restore the previous default launch template version.
3. If instances were already replaced and AWS is not rolling them back, start a refresh to the previous
   version (start_instance_refresh's logic, with rollback preferences). While a cancelled refresh is
   still Cancelling this raises RefreshInProgress: steps 1 and 2 are done, and a retry of this step
   starts the refresh once the cancellation ends.
A rollback already in progress or successful counts as done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from start_instance_refresh.logic import RefreshStarter, rolls_out, start_refresh

from rollback.models import RollbackInput, RollbackOutput
from shared.aws.autoscaling import Refresh, RollbackAttempt
from shared.aws.launch_templates import TemplateVersion
from shared.config import DeployConfig
from shared.errors import LaunchTemplateNotFound, RollbackFailed
from shared.observability import logger, metrics
from shared.statuses import ACTIVE_REFRESH_STATUSES
from shared.targets import require_configured_target

# Statuses in which RollbackInstanceRefresh is attempted: every active one but a rollback already under way.
ROLLBACK_ELIGIBLE_STATUSES = ACTIVE_REFRESH_STATUSES - {"RollbackInProgress"}
_LEAVING_PREFIXES = ("Terminating", "Terminated", "Detach")


class RollbackAutoScaling(RefreshStarter, Protocol):
    def rollback_refresh(self, group_name: str) -> RollbackAttempt: ...

    def cancel_refresh(self, group_name: str) -> str | None: ...


class DefaultVersionStore(Protocol):
    def default_version(self, template_id: str) -> TemplateVersion: ...

    def set_default_version(self, template_id: str, version: int) -> None: ...


@dataclass
class _Progress:
    actions: list[str] = field(default_factory=list)
    wait_for: str | None = None
    needs_wait: bool = False
    aws_rolls_back: bool = False  # AWS is (or was) restoring the fleet itself
    refused: bool = False  # AWS refused RollbackInstanceRefresh: the refresh was cancelled instead
    fleet_changed: bool = False

    def note(self, action: str) -> None:
        self.actions.append(action)
        logger.info(action)


def _find_refresh(request: RollbackInput, autoscaling: RollbackAutoScaling) -> Refresh | None:
    group = request.target.auto_scaling_group_name
    if request.instance_refresh_id:
        found = autoscaling.describe_refreshes(group, [request.instance_refresh_id])
        return next((r for r in found if r.refresh_id == request.instance_refresh_id), None)
    if request.new_version is None:
        return None
    # No id in the payload: a crashed start step may still have started the refresh to the new version.
    return next(
        (
            r
            for r in autoscaling.describe_refreshes(group)
            if r.active and rolls_out(r, request.target.launch_template_id, request.new_version)
        ),
        None,
    )


def _judge_finished(refresh: Refresh, progress: _Progress) -> None:
    """What a refresh that is no longer active left behind."""
    if refresh.status == "RollbackInProgress":
        progress.aws_rolls_back = True
        progress.needs_wait = True
        progress.wait_for = refresh.refresh_id
        progress.note(f"instance refresh {refresh.refresh_id} is already rolling back; waiting for it")
    elif refresh.status == "RollbackSuccessful":
        progress.aws_rolls_back = True
        progress.note(f"instance refresh {refresh.refresh_id} was already rolled back by AWS")
    elif refresh.status in ("Successful", "RollbackFailed"):
        progress.fleet_changed = True
        progress.note(f"instance refresh {refresh.refresh_id} is {refresh.status}: instances need replacing")
    elif refresh.percentage_complete > 0:
        progress.fleet_changed = True
        progress.note(
            f"instance refresh {refresh.refresh_id} is {refresh.status} after replacing "
            f"{refresh.percentage_complete}% of the group"
        )
    else:
        progress.note(f"instance refresh {refresh.refresh_id} is {refresh.status} before replacing any instance")


def _stop_refresh(
    request: RollbackInput, refresh: Refresh, autoscaling: RollbackAutoScaling, progress: _Progress
) -> None:
    group = request.target.auto_scaling_group_name
    if refresh.status not in ROLLBACK_ELIGIBLE_STATUSES:
        _judge_finished(refresh, progress)
        return
    if request.dry_run:
        progress.aws_rolls_back = progress.needs_wait = True
        progress.note(
            f"would roll back instance refresh {refresh.refresh_id} ({refresh.status}, "
            f"{refresh.percentage_complete}% complete) with RollbackInstanceRefresh"
        )
        return
    attempt = autoscaling.rollback_refresh(group)
    if attempt.outcome == "started":
        progress.aws_rolls_back = progress.needs_wait = True
        progress.wait_for = attempt.refresh_id or refresh.refresh_id
        progress.note(f"started RollbackInstanceRefresh of instance refresh {progress.wait_for}")
        return
    if attempt.outcome == "not_active":
        # It ended between our look and our call: judge what it left.
        progress.note(f"instance refresh {refresh.refresh_id} ended before it could be rolled back")
        latest = autoscaling.describe_refreshes(group, [refresh.refresh_id])
        _judge_finished(latest[0] if latest else refresh, progress)
        return
    progress.note(f"AWS refused to roll back instance refresh {refresh.refresh_id}: {attempt.message}")
    cancelled = autoscaling.cancel_refresh(group)
    progress.note(
        f"cancelled instance refresh {cancelled}" if cancelled else "no active instance refresh left to cancel"
    )
    progress.refused = progress.fleet_changed = True


def _check_fleet(request: RollbackInput, autoscaling: RollbackAutoScaling, progress: _Progress) -> None:
    """The fleet decides whether it needs a refresh back: instances on the new version, or the group configured
    with it (a Successful refresh writes its version into the group). A redriven rollback whose refresh back
    already finished therefore starts nothing."""
    if progress.aws_rolls_back or progress.refused or request.new_version is None:
        return
    group = autoscaling.describe_group(request.target.auto_scaling_group_name)
    template_id, new = request.target.launch_template_id, str(request.new_version)
    on_new = [
        i.instance_id
        for i in group.instances
        if i.launch_template_id == template_id
        and i.launch_template_version == new
        and not i.lifecycle_state.startswith(_LEAVING_PREFIXES)
    ]
    group_on_new = group.launch_template_id == template_id and group.launch_template_version == new
    if on_new:
        progress.note(f"{len(on_new)} instance(s) run version {new}: {', '.join(on_new[:10])}")
    if group_on_new:
        progress.note(f"Auto Scaling group {group.name} is configured with version {new}")
    changed = bool(on_new) or group_on_new
    if progress.fleet_changed and not changed:
        progress.note(f"no instance runs version {new} and the group does not use it: no refresh back needed")
    progress.fleet_changed = changed


def _restore_default(request: RollbackInput, launch_templates: DefaultVersionStore, progress: _Progress) -> None:
    template_id = request.target.launch_template_id
    previous = request.previous_version
    try:
        current = launch_templates.default_version(template_id)
        if current.number == previous:
            progress.note(f"launch template {template_id} default is already version {previous}")
            return
        if request.dry_run:
            progress.note(
                f"would set launch template {template_id} default from version {current.number} back to {previous}"
            )
            return
        launch_templates.set_default_version(template_id, previous)
    except LaunchTemplateNotFound as exc:
        raise RollbackFailed(f"cannot restore default version {previous} of {template_id}: {exc}") from exc
    progress.note(f"set launch template {template_id} default from version {current.number} back to {previous}")


def run(
    request: RollbackInput,
    config: DeployConfig,
    *,
    autoscaling: RollbackAutoScaling,
    launch_templates: DefaultVersionStore,
) -> RollbackOutput:
    require_configured_target(config, request.target)
    progress = _Progress()

    refresh = _find_refresh(request, autoscaling)
    if refresh is not None:
        _stop_refresh(request, refresh, autoscaling, progress)
    elif request.instance_refresh_id:
        progress.note(f"instance refresh {request.instance_refresh_id} not found; nothing to stop")
    _check_fleet(request, autoscaling, progress)
    _restore_default(request, launch_templates, progress)

    if progress.fleet_changed and not progress.aws_rolls_back:
        outcome = start_refresh(
            autoscaling=autoscaling,
            config=config,
            target=request.target,
            version=request.previous_version,
            dry_run=request.dry_run,
            for_rollback=True,
        )
        if request.dry_run:
            progress.note(f"would start an instance refresh to version {request.previous_version}")
        else:
            verb = "adopted" if outcome.adopted else "started"
            progress.note(f"{verb} instance refresh {outcome.refresh_id} to version {request.previous_version}")
        progress.wait_for = outcome.refresh_id
        progress.needs_wait = True

    if not request.dry_run:
        metrics.add_metric(name="Rollbacks", unit=MetricUnit.Count, value=1)
    return RollbackOutput(
        auto_scaling_group_name=request.target.auto_scaling_group_name,
        actions=progress.actions,
        launch_template_default_version=request.previous_version,
        instance_refresh_id=None if request.dry_run else progress.wait_for,
        needs_wait=progress.needs_wait,
    )
