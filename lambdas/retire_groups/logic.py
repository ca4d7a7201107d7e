"""After a successful shift: keep the live group and the newest `retention.keepGroups` retained groups (by
ROLE_SINCE), delete the older retained groups this pipeline created (ForceDelete).

Never deleted: the seed group (the user's; it is only ever scaled and tagged), green groups (being brought
up), groups without a role, and retained groups whose ROLE_SINCE cannot be read (their age is unknown).
The target's lock keeps other deployments of the same target away meanwhile.
"""

from __future__ import annotations

from typing import Protocol

from retire_groups.models import RetireGroupsInput, RetireGroupsOutput, SkippedGroup
from shared import tags
from shared.aws.groups import GroupDetails
from shared.blue_green import LIVE, RETAINED, TargetGroups, is_ours, role_since
from shared.config import DeployConfig
from shared.observability import logger
from shared.targets import require_target_strategy


class RetireGroups(Protocol):
    def groups_of_target(self, application: str, target_name: str) -> list[GroupDetails]: ...

    def delete(self, name: str) -> bool: ...


def _why_not_deleted(group: GroupDetails, config: DeployConfig, configured: str) -> str | None:
    """Why an old retained group must stay anyway; None when it may be deleted."""
    if group.name == configured:
        return "the seed group is never deleted, only scaled and tagged"
    if not is_ours(group, config.application, configured):
        return "not created by this pipeline"
    if role_since(group) is None:
        return f"{tags.ROLE_SINCE} is missing or unreadable: its age is unknown"
    return None


def run(request: RetireGroupsInput, config: DeployConfig, *, groups: RetireGroups) -> RetireGroupsOutput:
    require_target_strategy(config, request.target, "blue-green")
    configured = request.target.auto_scaling_group_name
    target = TargetGroups.of(groups.groups_of_target(config.application, configured), configured)
    live = target.live()
    retained = target.retained_newest_first()
    keep = config.retention.keep_groups
    kept = ([live.name] if live else []) + [g.name for g in retained[:keep]]
    deleted: list[str] = []
    skipped: list[SkippedGroup] = []

    for group in retained[keep:]:
        reason = _why_not_deleted(group, config, configured)
        if reason is not None:
            skipped.append(SkippedGroup(group=group.name, reason=reason))
            continue
        logger.info(
            "would delete retained group" if request.dry_run else "deleting retained group",
            extra={"group": group.name, "roleSince": group.tag(tags.ROLE_SINCE), "keepGroups": keep},
        )
        if request.dry_run or groups.delete(group.name):
            deleted.append(group.name)
    for group in target.groups:
        role = group.tag(tags.ROLE)
        if group is live or role == RETAINED:
            continue
        reason = (
            f"a {role} group (execution {group.tag(tags.EXECUTION)}) is never retired"
            if role is not None and role != LIVE
            else f"no {tags.ROLE} tag"
        )
        skipped.append(SkippedGroup(group=group.name, reason=reason))
    for group in target.deleting:
        skipped.append(SkippedGroup(group=group.name, reason="already being deleted"))
    return RetireGroupsOutput(deleted=deleted, kept=kept, skipped=skipped)
