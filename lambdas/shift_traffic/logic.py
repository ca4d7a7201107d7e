"""Move a blue-green target's traffic from blue to green, one idempotent call at a time.

Green already serves in every target group (it was created in them), so shifting means taking blue out:
1. DetachLoadBalancerTargetGroups for every target group blue is still in (Adding/Added/InService), but
   only once green is attached to each of them: blue is never detached from a target group green is not in.
2. While an attachment is Removing (instances draining for the deregistration delay): not done yet.
3. Then retire blue: the seed gets our APPLICATION/TARGET tags, and blue without an IMAGE tag gets the AMI it
   ran (create_green_group worked it out before the publish), so a rollback can find it; a blue on
   "$Default"/"$Latest" is pinned to the version number it ran, so bringing it back launches that AMI, not the
   new one; with `oldGroup: scale-to-zero` its capacity is recorded (CAPACITY) and it is scaled to zero; it
   is tagged retained and green live.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from shared import tags
from shared.aws.groups import GroupDetails, TargetGroupAttachment
from shared.blue_green import (
    ACTIVE_ATTACHMENT_STATES,
    LIVE,
    REMOVING,
    RETAINED,
    GroupWriter,
    park,
    timestamp,
)
from shared.config import DeployConfig
from shared.errors import AutoScalingGroupNotFound, BlueGreenConflict
from shared.observability import logger
from shared.targets import require_target_strategy
from shift_traffic.models import ShiftTrafficInput, ShiftTrafficOutput


class ShiftGroups(GroupWriter, Protocol):
    def describe(self, name: str) -> GroupDetails | None: ...

    def target_group_attachments(self, name: str) -> list[TargetGroupAttachment]: ...

    def detach_target_groups(self, name: str, target_group_arns: Sequence[str]) -> None: ...

    def pin_version(self, group: GroupDetails, version: int) -> None: ...


def _active(attachments: Sequence[TargetGroupAttachment]) -> list[str]:
    return [a.target_group_arn for a in attachments if a.state in ACTIVE_ATTACHMENT_STATES]


def _green(request: ShiftTrafficInput, groups: ShiftGroups) -> GroupDetails:
    name = request.green.green_group_name
    green = groups.describe(name)
    if green is None or green.deleting:
        raise AutoScalingGroupNotFound(f"green group {name} does not exist (any more): traffic cannot move to it")
    if green.tag(tags.EXECUTION) != request.execution_id:
        raise BlueGreenConflict(f"green group {name} belongs to execution {green.tag(tags.EXECUTION)!r}, not this one")
    return green


def _retire_blue(
    request: ShiftTrafficInput,
    config: DeployConfig,
    groups: ShiftGroups,
    green: GroupDetails,
    now: datetime,
) -> None:
    configured = request.target.auto_scaling_group_name
    blue = groups.describe(request.green.blue_group_name)
    if blue is None:
        raise AutoScalingGroupNotFound(f"blue group {request.green.blue_group_name} does not exist")
    if blue.tag(tags.ROLE) == RETAINED and green.tag(tags.ROLE) == LIVE:
        logger.info("traffic already shifted", extra={"blue": blue.name, "green": green.name})
        return
    blue_tags: dict[str, str] = {}
    if blue.name == configured:  # the seed, retired for the first time: it may carry none of our tags yet
        blue_tags = {tags.APPLICATION: config.application, tags.TARGET: configured}
    if not blue.tag(tags.IMAGE) and request.green.blue_image_id:
        blue_tags[tags.IMAGE] = request.green.blue_image_id
    ran = request.green.blue_launch_template_version
    if ran is not None and not (blue.launch_template_version or "").isdigit():
        logger.info("pinning the retired group to the version it ran", extra={"group": blue.name, "version": ran})
        groups.pin_version(blue, ran)
    park(groups, blue, config.blue_green.old_group, dry_run=False)
    since = timestamp(now)
    groups.tag(blue.name, {**blue_tags, tags.ROLE: RETAINED, tags.ROLE_SINCE: since})
    groups.tag(green.name, {tags.ROLE: LIVE, tags.ROLE_SINCE: since})
    logger.info(
        "traffic shifted", extra={"retained": blue.name, "live": green.name, "oldGroup": config.blue_green.old_group}
    )


def run(
    request: ShiftTrafficInput,
    config: DeployConfig,
    *,
    groups: ShiftGroups,
    now: datetime,
) -> ShiftTrafficOutput:
    require_target_strategy(config, request.target, "blue-green")
    green_in = request.green

    def output(done: bool, detached: Sequence[str] = ()) -> ShiftTrafficOutput:
        return ShiftTrafficOutput(
            done=done,
            blue_group_name=green_in.blue_group_name,
            green_group_name=green_in.green_group_name,
            old_group=config.blue_green.old_group,
            detached=list(detached),
        )

    if green_in.already_live or green_in.blue_group_name == green_in.green_group_name:
        logger.info("blue already runs the AMI: no traffic to shift", extra={"group": green_in.blue_group_name})
        return output(True)
    attachments = groups.target_group_attachments(green_in.blue_group_name)
    active = _active(attachments)
    if request.dry_run or green_in.dry_run:
        logger.info(
            "would detach blue from its target groups, then retire it",
            extra={
                "blue": green_in.blue_group_name,
                "targetGroupArns": active,
                "oldGroup": config.blue_green.old_group,
            },
        )
        return output(True, active)

    green = _green(request, groups)
    if active:
        green_in_service = set(_active(groups.target_group_attachments(green.name)))
        missing = [arn for arn in active if arn not in green_in_service]
        if missing:
            raise BlueGreenConflict(
                f"green group {green.name} is not attached to target group(s) {', '.join(missing)} that blue "
                f"{green_in.blue_group_name} serves; blue was left attached"
            )
        groups.detach_target_groups(green_in.blue_group_name, active)
        logger.info(
            "detached blue from its target groups", extra={"blue": green_in.blue_group_name, "detached": active}
        )
        return output(False, active)
    draining = [a.target_group_arn for a in attachments if a.state == REMOVING]
    if draining:
        logger.info("blue's instances are draining", extra={"blue": green_in.blue_group_name, "removing": draining})
        return output(False)
    _retire_blue(request, config, groups, green, now)
    return output(True)
