"""Undo a blue-green deployment of one target, on every failure path: blue keeps (or goes back to) serving,
green goes away, the launch template default goes back. Idempotent; a dry run changes nothing.

Blue first: if a failed shift took it out of its target groups (or parked it), it is attached back, scaled
back up from its CAPACITY tag and tagged live, and green stays until blue serves again (healthy in every
target group): the step answers `done: false` and the state machine calls it again after a wait, for at most
`blueGreen.healthTimeoutMinutes` (then RollbackFailed, with both groups serving). Green is found by name and by this
execution's EXECUTION tag (a create that crashed before answering leaves `green` null):
- a group this execution created (the deterministic green name, our tags): DeleteAutoScalingGroup with
  ForceDelete (AWS deregisters and terminates its instances);
- a retained group it brought back (rollback fast path): taken out of the target groups, parked again per
  `oldGroup`, tagged retained: it still is a rollback target.
The seed group and groups of other executions are never deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from create_green_group.models import GreenGroup

from discard_green.models import DiscardGreenInput, DiscardGreenOutput
from shared import tags
from shared.aws.groups import Capacity, GroupDetails, TargetGroupAttachment
from shared.aws.launch_templates import TemplateVersion
from shared.blue_green import (
    ACTIVE_ATTACHMENT_STATES,
    GREEN,
    LIVE,
    RETAINED,
    GroupWriter,
    TargetGroups,
    TargetHealthReader,
    green_group_name,
    is_ours,
    park,
    serving_health,
    timestamp,
)
from shared.config import DeployConfig
from shared.errors import LaunchTemplateNotFound, RollbackFailed
from shared.observability import logger
from shared.reasons import listed
from shared.targets import require_target_strategy


class DiscardGroups(GroupWriter, Protocol):
    def groups_of_target(self, application: str, target_name: str) -> list[GroupDetails]: ...

    def describe(self, name: str) -> GroupDetails | None: ...

    def target_group_attachments(self, name: str) -> list[TargetGroupAttachment]: ...

    def attach_target_groups(self, name: str, target_group_arns: Sequence[str]) -> None: ...

    def detach_target_groups(self, name: str, target_group_arns: Sequence[str]) -> None: ...

    def delete(self, name: str) -> bool: ...


class DefaultVersionStore(Protocol):
    def default_version(self, template_id: str) -> TemplateVersion: ...

    def set_default_version(self, template_id: str, version: int) -> None: ...


@dataclass
class _Outcome:
    green_deleted: bool = False
    green_retained: bool = False
    blue_restored: bool = False


def _note(dry_run: bool, action: str, **extra: object) -> None:
    logger.info(("would " if dry_run else "") + action, extra=extra)


def _active(groups: DiscardGroups, name: str) -> list[str]:
    return [a.target_group_arn for a in groups.target_group_attachments(name) if a.state in ACTIVE_ATTACHMENT_STATES]


def _restore_blue(
    request: DiscardGreenInput, green: GreenGroup, target: TargetGroups, groups: DiscardGroups, now: datetime
) -> tuple[GroupDetails | None, bool]:
    """Put blue back the way it served before this execution: in its target groups, at its recorded size,
    tagged live. Returns (blue, whether anything had to be put back). Blue was the live group when green
    was created, so a blue detached, parked or tagged retained now is this execution's doing (a failed shift)."""
    blue = target.named(green.blue_group_name) or groups.describe(green.blue_group_name)
    if blue is None or blue.deleting:
        logger.warning("blue group does not exist: nothing to restore", extra={"blue": green.blue_group_name})
        return None, False
    active = set(_active(groups, blue.name))
    missing = [arn for arn in green.target_group_arns if arn not in active]
    # Only a size our shift recorded before parking it: a blue the user keeps at zero stays at zero.
    capacity = Capacity.from_tag(blue.tag(tags.CAPACITY)) if blue.capacity.max_size == 0 else None
    retagged = blue.tag(tags.ROLE) not in (None, LIVE)
    if not (missing or capacity or retagged):
        return blue, False  # untouched
    dry_run = request.dry_run
    if missing:
        _note(dry_run, "attach blue back to its target groups", blue=blue.name, targetGroupArns=missing)
        if not dry_run:
            groups.attach_target_groups(blue.name, missing)
    if capacity is not None:
        _note(dry_run, "scale blue back up", blue=blue.name, capacity=capacity.tag_value())
        if not dry_run:
            groups.set_capacity(blue.name, capacity)
    if retagged:
        _note(dry_run, "tag blue live again", blue=blue.name)
        if not dry_run:
            groups.tag(blue.name, {tags.ROLE: LIVE, tags.ROLE_SINCE: timestamp(now)})
    return blue, True


def _this_executions_greens(
    request: DiscardGreenInput, target: TargetGroups, groups: DiscardGroups
) -> tuple[list[GroupDetails], bool]:
    """Groups this execution brought up (by name or EXECUTION tag), and whether one is already being deleted."""
    found = {
        g.name: g
        for g in target.groups
        if g.tag(tags.EXECUTION) == request.execution_id and g.tag(tags.ROLE) in (GREEN, LIVE)
    }
    green = request.green
    if green is None:
        # create_green_group failed before answering: its group, if any, has the deterministic name (a group
        # just created may not show in the tag-filtered listing yet)
        name = green_group_name(request.target.auto_scaling_group_name, request.execution_id)
    else:
        name = "" if green.already_live else green.green_group_name
    if name and name not in found:
        named = target.named(name) or groups.describe(name)
        if named is not None and not named.deleting:
            found[named.name] = named
    deleting = any(g.tag(tags.EXECUTION) == request.execution_id for g in target.deleting)
    return list(found.values()), deleting


def _discard(
    request: DiscardGreenInput,
    config: DeployConfig,
    group: GroupDetails,
    groups: DiscardGroups,
    outcome: _Outcome,
    now: datetime,
) -> None:
    configured = request.target.auto_scaling_group_name
    dry_run = request.dry_run
    if group.tag(tags.EXECUTION) != request.execution_id:
        logger.warning(
            "not discarding a group another execution brought up",
            extra={"group": group.name, "execution": group.tag(tags.EXECUTION)},
        )
        return
    created = group.name == green_group_name(configured, request.execution_id) and is_ours(
        group, config.application, configured
    )
    if created:
        _note(dry_run, "delete green group", green=group.name)
        if dry_run or groups.delete(group.name):
            outcome.green_deleted = True
        return
    # A retained group this execution brought back (possibly the seed): retain it again, never delete it.
    active = _active(groups, group.name)
    if active:
        _note(dry_run, "detach the reused group from the target groups", group=group.name, targetGroupArns=active)
        if not dry_run:
            groups.detach_target_groups(group.name, active)
    park(groups, group, config.blue_green.old_group, dry_run=dry_run)
    _note(dry_run, "tag the reused group retained again", group=group.name)
    if not dry_run:
        groups.tag(group.name, {tags.ROLE: RETAINED, tags.ROLE_SINCE: group.tag(tags.RETAINED_SINCE) or timestamp(now)})
    outcome.green_retained = True


def _restore_default(request: DiscardGreenInput, templates: DefaultVersionStore) -> int | None:
    previous, new = request.previous_version, request.new_version
    if previous is None:
        return None
    template_id = request.target.launch_template_id
    try:
        current = templates.default_version(template_id)
        if new is None or new == previous or current.number != new:
            return current.number  # the default is not the version this execution published
        _note(request.dry_run, "restore the launch template default", template=template_id, version=previous)
        if not request.dry_run:
            templates.set_default_version(template_id, previous)
    except LaunchTemplateNotFound as exc:
        raise RollbackFailed(f"cannot restore default version {previous} of {template_id}: {exc}") from exc
    return previous


def run(
    request: DiscardGreenInput,
    config: DeployConfig,
    *,
    groups: DiscardGroups,
    templates: DefaultVersionStore,
    load_balancing: TargetHealthReader,
    now: datetime,
) -> DiscardGreenOutput:
    require_target_strategy(config, request.target, "blue-green")
    if request.error is not None:
        logger.info(
            "discarding green after a failure", extra={"error": request.error.error, "cause": request.error.cause}
        )
    outcome = _Outcome()
    green = request.green
    restoring_since = request.restoring_since
    if green is not None and (green.already_live or green.green_group_name == green.blue_group_name):
        logger.info("blue already ran the AMI: no green group to discard", extra={"blue": green.blue_group_name})
    else:
        configured = request.target.auto_scaling_group_name
        target = TargetGroups.of(groups.groups_of_target(config.application, configured), configured)
        blue = None
        if green is not None:
            blue, outcome.blue_restored = _restore_blue(request, green, target, groups, now)
        if outcome.blue_restored or restoring_since is not None:
            restoring_since = restoring_since or now
            now_blue = groups.describe(blue.name) if blue is not None else None  # as it is after the restore
            waiting = _blue_not_serving(now_blue, green, load_balancing) if now_blue is not None and green else []
            if waiting and not request.dry_run:
                return _still_restoring(request, config, restoring_since, now, waiting)
        greens, deleting = _this_executions_greens(request, target, groups)
        outcome.green_deleted = deleting
        for group in greens:
            if group.name == (green.blue_group_name if green else None):
                continue  # blue, restored above, is never discarded
            _discard(request, config, group, groups, outcome, now)
    default = _restore_default(request, templates)
    return DiscardGreenOutput(
        green_deleted=outcome.green_deleted,
        green_retained=outcome.green_retained,
        blue_restored=outcome.blue_restored or restoring_since is not None,
        default_version=default,
        done=True,
        restoring_since=restoring_since,
    )


def _blue_not_serving(blue: GroupDetails, green: GreenGroup, load_balancing: TargetHealthReader) -> list[str]:
    """What keeps a restored blue from serving: unless this is empty, removing green would leave no one serving."""
    in_service, healthy_targets, waiting = serving_health(blue, green.target_group_arns, load_balancing)
    desired = blue.capacity.desired
    if in_service >= desired and healthy_targets >= desired and not waiting:
        return []
    return waiting or [f"{healthy_targets} of {desired} instance(s) healthy in every target group"]


def _still_restoring(
    request: DiscardGreenInput, config: DeployConfig, since: datetime, now: datetime, waiting: list[str]
) -> DiscardGreenOutput:
    bound = config.blue_green.health_timeout_minutes * 60
    blue = request.green.blue_group_name if request.green else "blue"
    if (now - since).total_seconds() >= bound:
        raise RollbackFailed(
            f"{blue} was put back into its target groups at {timestamp(since)} but is still not serving after "
            f"{bound // 60} minutes ({listed(waiting)}); green keeps serving beside it: check both groups by hand"
        )
    logger.info("waiting for blue to serve again before green goes", extra={"blue": blue, "waiting": waiting})
    return DiscardGreenOutput(
        green_deleted=False,
        green_retained=False,
        blue_restored=True,
        default_version=None,
        done=False,
        restoring_since=since,
        reason=f"waiting for {blue} to serve again: {listed(waiting)}",
    )
