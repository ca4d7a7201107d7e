"""The rules every blue-green step shares: which group of a target plays which role, the green group's name,
our tags and their timestamps, and how a group is parked (scaled to zero) and brought back.

A target's groups are the seed group (the configured name, created by the user) and the groups tagged with
its application and target. `immutable-ami:role` says what each one is: `live` (in the target groups),
`green` (being brought up by a deployment) or `retained` (kept for a fast rollback). The seed without a
role tag is live only while no other group is tagged live; two live groups are a conflict, never a guess.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from shared import tags
from shared.aws.elbv2 import TargetHealth
from shared.aws.groups import Capacity, GroupDetails
from shared.aws.launch_templates import TemplateVersion
from shared.errors import BlueGreenConflict, InvalidInput, LaunchTemplateNotFound
from shared.observability import logger
from shared.reasons import target_group_name
from shared.versions import version_number

LIVE = "live"
GREEN = "green"
RETAINED = "retained"
# Attachment states in which a target group sends (or will send) traffic to the group's instances.
ACTIVE_ATTACHMENT_STATES = frozenset({"Adding", "Added", "InService"})
REMOVING = "Removing"
MAX_GROUP_NAME = 255
_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9-]")
_TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"

OldGroup = Literal["scale-to-zero", "keep-running"]


class TemplateReader(Protocol):
    def default_version(self, template_id: str) -> TemplateVersion: ...

    def list_versions(self, template_id: str) -> list[TemplateVersion]: ...


class TargetHealthReader(Protocol):
    def target_health(self, target_group_arn: str) -> list[TargetHealth]: ...


def health_entries(
    load_balancing: TargetHealthReader, target_group_arns: Sequence[str], instance_ids: Sequence[str]
) -> Iterator[tuple[str, str, list[TargetHealth]]]:
    """(target group name, instance, its health entries there) for each instance in each target group, one
    DescribeTargetHealth per target group: the walk the rolling and the blue-green health checks share."""
    for arn in target_group_arns:
        name = target_group_name(arn)
        by_instance: dict[str, list[TargetHealth]] = {}
        for health in load_balancing.target_health(arn):
            by_instance.setdefault(health.target_id, []).append(health)
        for instance_id in instance_ids:
            yield name, instance_id, by_instance.get(instance_id, [])


class GroupWriter(Protocol):
    def tag(self, name: str, values: dict[str, str]) -> None: ...

    def set_capacity(self, name: str, capacity: Capacity) -> None: ...


def timestamp(moment: datetime) -> str:
    """ISO 8601 UTC to the second, as ROLE_SINCE holds it: 2026-11-22T10:00:00Z."""
    return moment.astimezone(UTC).strftime(_TIMESTAMP)


def parse_timestamp(value: str | None) -> datetime | None:
    """A ROLE_SINCE value as an aware datetime; None when absent or not ISO 8601 (naive values are UTC)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def green_group_name(configured: str, execution_id: str) -> str:
    """`<configured>-<execution name>`: deterministic, so a retried step finds the group it created.

    The execution name (the ARN's last part) is reduced to letters, digits and hyphens and cut so the whole
    name fits Auto Scaling's 255 characters; a name with none of those characters uses a digest of the ARN.
    """
    suffix = _NOT_NAME_CHARS.sub("", execution_id.rsplit(":", 1)[-1])
    if not suffix:
        suffix = hashlib.sha256(execution_id.encode()).hexdigest()[:16]
    room = MAX_GROUP_NAME - len(configured) - 1
    if room < 1:
        raise InvalidInput(f"Auto Scaling group name {configured!r} leaves no room for a green group's suffix")
    return f"{configured}-{suffix[:room]}"


def is_ours(group: GroupDetails, application: str, configured: str) -> bool:
    """A group this pipeline created (and may delete): never the seed, always carrying our two tags."""
    return (
        group.name != configured and group.tag(tags.APPLICATION) == application and group.tag(tags.TARGET) == configured
    )


def role_since(group: GroupDetails) -> datetime | None:
    return parse_timestamp(group.tag(tags.ROLE_SINCE))


@dataclass(frozen=True)
class TargetGroups:
    """The groups of one target (those being deleted set apart), and the role each one plays."""

    configured: str
    groups: tuple[GroupDetails, ...]
    deleting: tuple[GroupDetails, ...]

    @classmethod
    def of(cls, groups: Sequence[GroupDetails], configured: str) -> TargetGroups:
        return cls(
            configured=configured,
            groups=tuple(g for g in groups if not g.deleting),
            deleting=tuple(g for g in groups if g.deleting),
        )

    @property
    def seed(self) -> GroupDetails | None:
        return next((g for g in self.groups if g.name == self.configured), None)

    def named(self, name: str) -> GroupDetails | None:
        return next((g for g in self.groups if g.name == name), None)

    def with_role(self, role: str) -> list[GroupDetails]:
        return [g for g in self.groups if g.tag(tags.ROLE) == role]

    def live(self) -> GroupDetails | None:
        """The group serving the target; BlueGreenConflict when more than one is tagged live."""
        tagged = self.with_role(LIVE)
        if len(tagged) > 1:
            names = ", ".join(g.name for g in tagged)
            raise BlueGreenConflict(
                f"target {self.configured}: {len(tagged)} groups are tagged {tags.ROLE}={LIVE} ({names}); "
                "tag all but the serving one retained, then deploy again"
            )
        if tagged:
            return tagged[0]
        seed = self.seed
        return seed if seed is not None and seed.tag(tags.ROLE) is None else None

    def retained_newest_first(self) -> list[GroupDetails]:
        """Retained groups, the most recently retained first; those without a readable ROLE_SINCE last."""
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(self.with_role(RETAINED), key=lambda g: (role_since(g) or oldest, g.name), reverse=True)


def template_image(templates: TemplateReader, template_id: str, version: int) -> str | None:
    """The AMI version `version` of a template launches; None if it names none."""
    chosen = next((v for v in templates.list_versions(template_id) if v.number == version), None)
    if chosen is None:
        raise LaunchTemplateNotFound(f"launch template {template_id} has no version {version}")
    return chosen.image_id


def launched_version(group: GroupDetails, *, published: int, previous_default: int | None) -> int | None:
    """The version number a group has been launching before this deployment published `published`.

    "$Default" (or none) was the previous default; "$Latest" was the version before the one just published:
    after the publish both name the new version, which blue has never run. None without a launch template.
    """
    if group.launch_template_id is None:
        return None
    return version_number(group.launch_template_version, range(1, published), previous_default)


def group_image(group: GroupDetails, templates: TemplateReader, version: int | None) -> str | None:
    """The AMI a group runs: its IMAGE tag, else (the seed, before we tag it) the AMI of `version` of its
    template (see `launched_version`). None when neither says (no template, or the version is gone)."""
    tagged = group.tag(tags.IMAGE)
    if tagged:
        return tagged
    if group.launch_template_id is None or version is None:
        return None
    try:
        return template_image(templates, group.launch_template_id, version)
    except LaunchTemplateNotFound as exc:
        logger.warning("cannot tell which AMI the group runs", extra={"group": group.name, "error": str(exc)})
        return None


def capacity_to_restore(group: GroupDetails, fallback: Capacity) -> Capacity | None:
    """What a parked group (max 0) is scaled back to: its CAPACITY tag, else `fallback`. None if not parked."""
    if group.capacity.max_size > 0:
        return None
    return Capacity.from_tag(group.tag(tags.CAPACITY)) or fallback


def park(groups: GroupWriter, group: GroupDetails, old_group: OldGroup, *, dry_run: bool) -> bool:
    """Scale a group out of service to zero when `old_group` says so, recording its capacity first (CAPACITY),
    so a rollback can scale it back. True when it was (or, in a dry run, would be) scaled to zero."""
    if old_group != "scale-to-zero" or group.capacity.max_size == 0:
        return False
    if not dry_run:
        groups.tag(group.name, {tags.CAPACITY: group.capacity.tag_value()})
        groups.set_capacity(group.name, Capacity(0, 0, 0))
    logger.info(
        "scaled to zero" if not dry_run else "would scale to zero",
        extra={"group": group.name, "capacity": group.capacity.tag_value()},
    )
    return True


def serving_health(
    group: GroupDetails, expected_target_groups: Sequence[str], load_balancing: TargetHealthReader
) -> tuple[int, int, list[str]]:
    """(instances InService and Healthy, instances healthy in every target group, what is still missing): a group
    serves when both counts reach its desired capacity and nothing is missing."""
    in_service = [i.instance_id for i in group.instances if i.lifecycle_state == "InService"]
    in_service_healthy = sum(
        1 for i in group.instances if i.lifecycle_state == "InService" and i.health_status == "Healthy"
    )
    waiting = [
        f"not attached to {target_group_name(arn)} yet"
        for arn in expected_target_groups
        if arn not in group.target_group_arns
    ]
    healthy_everywhere = set(in_service)
    for name, instance_id, entries in health_entries(load_balancing, group.target_group_arns, in_service):
        if not entries:
            waiting.append(f"{instance_id} not registered yet in {name}")
            healthy_everywhere.discard(instance_id)
        for entry in entries:
            if entry.state != "healthy":
                detail = f" ({entry.reason})" if entry.reason else ""
                waiting.append(f"{instance_id} {entry.state} in {name}{detail}")
                healthy_everywhere.discard(instance_id)
    desired = group.capacity.desired
    if in_service_healthy < desired:
        waiting.insert(0, f"{in_service_healthy} of {desired} instance(s) InService and Healthy")
    return in_service_healthy, len(healthy_everywhere), waiting
