"""Undo a blue-green deployment of one target, on every failure path: blue keeps (or goes back to) serving,
green goes away, the launch template default goes back. Idempotent; a dry run changes nothing.

Blue first: if a failed shift took it out of its target groups (or parked it), it is attached back, scaled
back up from its CAPACITY tag and tagged live before green is touched. Green is found by name and by this
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
    capacity_to_restore,
    green_group_name,
    is_ours,
    park,
    timestamp,
)
from shared.config import DeployConfig
from shared.errors import LaunchTemplateNotFound, RollbackFailed
from shared.observability import logger
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
) -> bool:
    blue = target.named(green.blue_group_name) or groups.describe(green.blue_group_name)
    if blue is None or blue.deleting:
        logger.warning("blue group does not exist: nothing to restore", extra={"blue": green.blue_group_name})
        return False
    active = set(_active(groups, blue.name))
    missing = [arn for arn in green.target_group_arns if arn not in active]
    if not missing:
        return False  # blue never left its target groups: untouched
    dry_run = request.dry_run
    _note(dry_run, "attach blue back to its target groups", blue=blue.name, targetGroupArns=missing)
    if not dry_run:
        groups.attach_target_groups(blue.name, missing)
    desired = green.desired_capacity
    capacity = capacity_to_restore(blue, fallback=Capacity(desired, desired, desired))
    if capacity is not None:
        _note(dry_run, "scale blue back up", blue=blue.name, capacity=capacity.tag_value())
        if not dry_run:
            groups.set_capacity(blue.name, capacity)
    if blue.tag(tags.ROLE) not in (None, LIVE):
        _note(dry_run, "tag blue live again", blue=blue.name)
        if not dry_run:
            groups.tag(blue.name, {tags.ROLE: LIVE, tags.ROLE_SINCE: timestamp(now)})
    return True


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
    if green is not None and green.green_group_name not in found and not green.already_live:
        named = target.named(green.green_group_name) or groups.describe(green.green_group_name)
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
        groups.tag(group.name, {tags.ROLE: RETAINED, tags.ROLE_SINCE: timestamp(now)})
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
    groups: DiscardGroups,
    templates: DefaultVersionStore,
    *,
    now: datetime,
) -> DiscardGreenOutput:
    require_target_strategy(config, request.target, "blue-green")
    if request.error is not None:
        logger.info(
            "discarding green after a failure", extra={"error": request.error.error, "cause": request.error.cause}
        )
    outcome = _Outcome()
    green = request.green
    if green is not None and (green.already_live or green.green_group_name == green.blue_group_name):
        logger.info("blue already ran the AMI: no green group to discard", extra={"blue": green.blue_group_name})
    else:
        configured = request.target.auto_scaling_group_name
        target = TargetGroups.of(groups.groups_of_target(config.application, configured), configured)
        if green is not None:
            outcome.blue_restored = _restore_blue(request, green, target, groups, now)
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
        blue_restored=outcome.blue_restored,
        default_version=default,
    )
