"""Bring up green for a blue-green target: a new group on the new launch template version beside the live
(blue) one, in the same target groups. Idempotent: the green name derives from the execution.

- Blue already runs the AMI: nothing to do (`alreadyLive`).
- Rollback fast path: a retained group tagged with the AMI is brought back (scaled up from its CAPACITY tag
  if it was parked, attached to blue's target groups) instead of launching a new one (`reused`).
- Otherwise CreateAutoScalingGroup copies blue: its current sizes, target groups, the settings in
  `shared.aws.groups.COPIED_SETTINGS`, a mixed instances policy (on the new version) and its tags (not
  `aws:*` nor ours), plus our tags. NOT copied: scaling policies, scheduled actions, lifecycle hooks, warm
  pools, classic load balancers and traffic sources other than target groups, deletion protection, and
  settings outside that list (max instance lifetime, placement group, ...): a group that needs them
  gets them from the user's own automation, keyed on the application/target tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from create_green_group.models import CreateGreenGroupInput, GreenGroup
from shared import tags
from shared.aws.groups import Capacity, GroupDetails, Tag
from shared.blue_green import (
    GREEN,
    RETAINED,
    GroupWriter,
    TargetGroups,
    TemplateReader,
    capacity_to_restore,
    green_group_name,
    group_image,
    launched_version,
    parse_timestamp,
    role_since,
    timestamp,
)
from shared.config import DeployConfig
from shared.errors import AutoScalingGroupNotFound, BlueGreenConflict
from shared.observability import logger
from shared.targets import require_target_strategy

_OUR_PREFIX = "immutable-ami:"
_AWS_PREFIX = "aws:"


class GreenGroups(GroupWriter, Protocol):
    def groups_of_target(self, application: str, target_name: str) -> list[GroupDetails]: ...

    def describe(self, name: str) -> GroupDetails | None: ...

    def create_copy(
        self, source: GroupDetails, *, name: str, launch_template_id: str, version: int, group_tags: Sequence[Tag]
    ) -> bool: ...

    def attach_target_groups(self, name: str, target_group_arns: Sequence[str]) -> None: ...


def _output(
    request: CreateGreenGroupInput,
    blue: GroupDetails,
    green_name: str,
    *,
    capacity: Capacity,
    created_at: datetime,
    reused: bool = False,
    already_live: bool = False,
    blue_version: int | None = None,
    blue_image: str | None = None,
) -> GreenGroup:
    return GreenGroup(
        blue_group_name=blue.name,
        green_group_name=green_name,
        reused=reused,
        already_live=already_live,
        desired_capacity=capacity.desired,
        target_group_arns=list(blue.target_group_arns),
        created_at=created_at.replace(microsecond=0),
        dry_run=request.dry_run,
        blue_launch_template_version=blue_version,
        blue_image_id=blue_image,
    )


def green_tags(blue: GroupDetails, request: CreateGreenGroupInput, config: DeployConfig, now: datetime) -> list[Tag]:
    """Blue's own tags (each with its PropagateAtLaunch; not `aws:*`, not ours) and ours (not propagated)."""
    copied = [t for t in blue.tags if not t.key.startswith((_AWS_PREFIX, _OUR_PREFIX))]
    ours = {
        tags.APPLICATION: config.application,
        tags.TARGET: request.target.auto_scaling_group_name,
        tags.EXECUTION: request.execution_id,
        tags.IMAGE: request.ami_id,
        tags.ROLE: GREEN,
        tags.ROLE_SINCE: timestamp(now),
    }
    return copied + [Tag(key=k, value=v) for k, v in ours.items()]


def _reuse(
    request: CreateGreenGroupInput, blue: GroupDetails, group: GroupDetails, groups: GreenGroups, now: datetime
) -> GreenGroup:
    """Bring a retained group back as green. Tagged first, so a crash leaves a group discard_green finds (by
    its EXECUTION tag) and a retry finishes; sizing and attaching again are harmless."""
    restore = capacity_to_restore(group, fallback=blue.capacity)
    capacity = restore or group.capacity
    since = role_since(group) if group.tag(tags.EXECUTION) == request.execution_id else None
    created_at = since or now
    missing = [arn for arn in blue.target_group_arns if arn not in group.target_group_arns]
    verb = "would reuse" if request.dry_run else "reusing"
    logger.info(
        f"{verb} retained group {group.name}: it runs {request.ami_id}",
        extra={
            "blue": blue.name,
            "green": group.name,
            "capacity": capacity.tag_value(),
            "scaleUp": restore is not None,
            "attach": missing,
        },
    )
    if not request.dry_run:
        marks = {tags.ROLE: GREEN, tags.ROLE_SINCE: timestamp(created_at), tags.EXECUTION: request.execution_id}
        if group.tag(tags.ROLE) == RETAINED and group.tag(tags.ROLE_SINCE):
            # Should this rollback fail, the group goes back to the same place in the retention order.
            marks[tags.RETAINED_SINCE] = str(group.tag(tags.ROLE_SINCE))
        groups.tag(group.name, marks)
        if restore is not None:
            groups.set_capacity(group.name, restore)
        if missing:
            groups.attach_target_groups(group.name, missing)
    return _output(request, blue, group.name, capacity=capacity, created_at=created_at, reused=True)


def _adopt(request: CreateGreenGroupInput, blue: GroupDetails, green: GroupDetails, now: datetime) -> GreenGroup:
    if green.tag(tags.EXECUTION) != request.execution_id:
        raise BlueGreenConflict(
            f"Auto Scaling group {green.name} exists but was not created by this execution "
            f"({tags.EXECUTION}={green.tag(tags.EXECUTION)!r}); delete or rename it, then deploy again"
        )
    logger.info("adopting the green group this execution already created", extra={"green": green.name})
    # ROLE_SINCE is the first attempt's `now`: a retry answers exactly as the first attempt did.
    created_at = parse_timestamp(green.tag(tags.ROLE_SINCE)) or green.created_time or now
    return _output(request, blue, green.name, capacity=green.capacity, created_at=created_at)


def run(
    request: CreateGreenGroupInput,
    config: DeployConfig,
    *,
    groups: GreenGroups,
    templates: TemplateReader,
    now: datetime,
) -> GreenGroup:
    require_target_strategy(config, request.target, "blue-green")
    configured = request.target.auto_scaling_group_name
    target = TargetGroups.of(groups.groups_of_target(config.application, configured), configured)
    blue = target.live()
    if blue is None:
        raise AutoScalingGroupNotFound(
            f"target {configured}: no live group (no group tagged {tags.ROLE}=live and no untagged seed group "
            f"{configured!r})"
        )
    require_shiftable(blue)
    blue_version = launched_version(
        blue, published=request.launch_template_version, previous_default=request.previous_version
    )
    blue_image = group_image(blue, templates, blue_version)
    green = _green(request, config, target, blue, blue_image, groups, now)
    return green.model_copy(update={"blue_launch_template_version": blue_version, "blue_image_id": blue_image})


def require_shiftable(blue: GroupDetails) -> None:
    """Blue-green moves traffic by target groups: refuse a live group served any other way (or not at all),
    since green would never receive its traffic while blue would still be retired."""
    classic = list(blue.description.get("LoadBalancerNames") or [])
    others = [s.get("Identifier", "") for s in blue.description.get("TrafficSources") or [] if s.get("Type") != "elbv2"]
    if classic or others:
        raise BlueGreenConflict(
            f"live group {blue.name} also receives traffic from {', '.join(classic + others)} (Classic Load Balancer "
            "or VPC Lattice); blue-green moves only ELBv2 target groups: use the rolling strategy for this target"
        )
    if not blue.target_group_arns:
        raise BlueGreenConflict(
            f"live group {blue.name} is in no target group: blue-green has no traffic to move; attach it to its "
            "target groups, or use the rolling strategy for this target"
        )


def _green(
    request: CreateGreenGroupInput,
    config: DeployConfig,
    target: TargetGroups,
    blue: GroupDetails,
    blue_image: str | None,
    groups: GreenGroups,
    now: datetime,
) -> GreenGroup:
    configured = request.target.auto_scaling_group_name
    green_name = green_group_name(configured, request.execution_id)
    if blue_image == request.ami_id:
        logger.info(f"live group {blue.name} already runs {request.ami_id}: nothing to do")
        return _output(request, blue, blue.name, capacity=blue.capacity, created_at=now, already_live=True)

    ours = [g for g in target.with_role(GREEN) if g.tag(tags.EXECUTION) == request.execution_id]
    mine = next((g for g in ours if g.name == green_name), None)
    if mine is not None:
        return _adopt(request, blue, mine, now)
    if ours:  # a retained group this execution started to bring back: finish it
        return _reuse(request, blue, ours[0], groups, now)
    for other in target.with_role(GREEN):
        if other.target_group_arns:
            raise BlueGreenConflict(
                f"green group {other.name} of an earlier execution ({other.tag(tags.EXECUTION)}) is still in the "
                f"target groups beside {blue.name}: delete it (or tag it {tags.ROLE}=live and retire {blue.name}) "
                "before deploying again"
            )
        logger.warning(
            "another green group of this target is left from an earlier execution (in no target group)",
            extra={"group": other.name, "execution": other.tag(tags.EXECUTION)},
        )
    reusable = [g for g in target.retained_newest_first() if g.tag(tags.IMAGE) == request.ami_id]
    if reusable:
        return _reuse(request, blue, reusable[0], groups, now)

    new_tags = green_tags(blue, request, config, now)
    logger.info(
        "would create green group" if request.dry_run else "creating green group",
        extra={
            "blue": blue.name,
            "green": green_name,
            "capacity": blue.capacity.tag_value(),
            "launchTemplateVersion": request.launch_template_version,
            "targetGroupArns": list(blue.target_group_arns),
        },
    )
    if request.dry_run:
        return _output(request, blue, green_name, capacity=blue.capacity, created_at=now)
    created = groups.create_copy(
        blue,
        name=green_name,
        launch_template_id=request.target.launch_template_id,
        version=request.launch_template_version,
        group_tags=new_tags,
    )
    if not created:  # AlreadyExists: ours from an earlier attempt (not yet listed), or someone else's
        existing = groups.describe(green_name)
        if existing is None:
            raise BlueGreenConflict(f"Auto Scaling group {green_name} already exists but cannot be described")
        return _adopt(request, blue, existing, now)
    return _output(request, blue, green_name, capacity=blue.capacity, created_at=now)
