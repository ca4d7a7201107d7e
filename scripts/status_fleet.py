"""The facts `scripts/status.py status` joins: what each configured target runs (Auto Scaling groups, launch
template versions, AMIs and their tags) and what the lock table holds (locks, queued pushes, pending approvals),
read without a task token. Read-only: nothing here changes anything in AWS."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from shared import tags
from shared.aws.autoscaling import AutoScaling
from shared.aws.groups import BlueGreenGroups, GroupDetails
from shared.aws.launch_templates import LaunchTemplates, TemplateVersion
from shared.aws.lock_table import QUEUE_PREFIX
from shared.aws.task_tokens import APPROVAL_PREFIX, KEY_PREFIX
from shared.config import Stage
from shared.errors import LaunchTemplateNotFound
from shared.lock_items import STATUS_ATTRIBUTES

# Successful: the refresh replaced every instance (DescribeInstanceRefreshes, Status:
# https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_InstanceRefresh.html).
_REFRESH_DONE = "Successful"


def iso(value: datetime | int | float | None) -> str | None:
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- what runs where --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupStatus:
    stage: str
    strategy: str
    target: str
    group: str | None  # the group serving the target now; None when none exists
    launch_template: str | None = None
    version: str | None = None
    ami: str | None = None
    commit: str | None = None
    branch: str | None = None
    built: str | None = None
    since: str | None = None
    instances: int | None = None
    note: str | None = None


def serving_group(groups: list[GroupDetails], target: str) -> GroupDetails | None:
    """The live group of a blue-green target, else the configured group itself (a rolling target's only one)."""
    live = [g for g in groups if g.tag(tags.ROLE) == "live" and not g.deleting]
    if live:
        return max(live, key=lambda g: g.tag(tags.ROLE_SINCE) or "")
    return next((g for g in groups if g.name == target), None)


class Fleet:
    """Reads what each configured target runs: groups (Auto Scaling), versions and images (EC2)."""

    def __init__(self, autoscaling: Any, ec2: Any) -> None:
        self._autoscaling = AutoScaling(autoscaling)
        self._groups = BlueGreenGroups(autoscaling)
        self._templates = LaunchTemplates(ec2)
        self._ec2 = ec2

    def version(self, template: str, version: str) -> TemplateVersion | None:
        # ResolveAlias: an ImageId given as an SSM parameter comes back as the AMI id it resolves to
        # (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeLaunchTemplateVersions.html).
        try:
            found = self._templates.describe_versions(template, versions=[version], resolve_alias=True)
        except LaunchTemplateNotFound:
            return None
        return found[0] if found else None

    def image_tags(self, ami: str) -> dict[str, str] | None:
        try:
            images = self._ec2.describe_images(ImageIds=[ami])["Images"]
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")).startswith("InvalidAMIID"):
                return None  # deregistered (pruned, or by hand): the version still names it
            raise
        return {t["Key"]: t.get("Value", "") for t in images[0].get("Tags", [])} if images else None

    def refreshed_at(self, group: str) -> datetime | None:
        """When the group's newest successful instance refresh ended (AWS keeps those of the last six weeks)."""
        refreshes = self._autoscaling.describe_refreshes(group)
        return max((r.end_time for r in refreshes if r.status == _REFRESH_DONE and r.end_time), default=None)

    def target(self, application: str, stage: Stage, target: str, fallback_template: str) -> GroupStatus:
        base = GroupStatus(stage=stage.name, strategy=stage.strategy, target=target, group=None)
        group = serving_group(self._groups.groups_of_target(application, target), target)
        if group is None:
            return _replace(base, note="no such Auto Scaling group")
        template = group.launch_template_id or fallback_template
        version = group.launch_template_version or "$Default"
        found = self.version(template, version)
        ami = found.image_id if found else None
        image = self.image_tags(ami) if ami else None
        since = self.refreshed_at(group.name) if stage.strategy == "rolling" else None
        return _replace(
            base,
            group=group.name,
            launch_template=template,
            version=f"{version} = {found.number}" if found and version.startswith("$") else version,
            ami=ami,
            commit=(image or {}).get(tags.COMMIT),
            branch=(image or {}).get(tags.BRANCH),
            built=(image or {}).get(tags.BUILD_TIME),
            since=iso(since) or group.tag(tags.ROLE_SINCE) or iso(found.created if found else None),
            instances=len(group.instances),
            note=_note(template, version, found, ami, image),
        )


def _note(template: str, version: str, found: TemplateVersion | None, ami: str | None, image: Any) -> str | None:
    if found is None:
        return f"launch template {template} version {version} not found"
    if ami is None:
        return "the version names no AMI"
    return "AMI deregistered" if image is None else None


def _replace(status: GroupStatus, **changes: Any) -> GroupStatus:
    return GroupStatus(**{**asdict(status), **changes})


# --- the lock table ---------------------------------------------------------------------------------------------


@dataclass
class TableView:
    locks: list[dict[str, Any]] = field(default_factory=list)
    queued: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)


def _value(attribute: Mapping[str, Any]) -> Any:
    if "N" in attribute:
        return int(attribute["N"])
    if "L" in attribute:
        return [_value(v) for v in attribute["L"]]
    return attribute.get("S")


def read_table(dynamodb: Any, table: str, now: int) -> TableView:
    """Locks, queued deployments and pending approvals, without task tokens (one projected, consistent Scan)."""
    names = {f"#a{i}": name for i, name in enumerate(STATUS_ATTRIBUTES)}
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table,
        ConsistentRead=True,
        Select="SPECIFIC_ATTRIBUTES",
        ProjectionExpression=", ".join(names),
        ExpressionAttributeNames=names,
    )
    view = TableView()
    for page in pages:
        for raw in page.get("Items", []):
            item = {k: _value(v) for k, v in raw.items()}
            key = str(item.get("target", ""))
            if key.startswith(QUEUE_PREFIX):
                view.queued.append(_queued(item))
            elif key.startswith(APPROVAL_PREFIX):
                resource = str(item.get("resourceId", ""))
                view.approvals.append(
                    {
                        "execution": item.get("executionId"),
                        "stage": resource.rsplit("#", 1)[-1],
                        "since": iso(item.get("createdAt")),
                        "expires": iso(item.get("expiresAt")),
                    }
                )
            elif not key.startswith(KEY_PREFIX) and "holder" in item:
                expires = int(item.get("expiresAt", 0))
                view.locks.append(
                    {
                        "target": key,
                        "holder": item.get("holder"),
                        "since": iso(item.get("acquiredAt")),
                        "expires": iso(expires),
                        "expired": expires <= now,
                    }
                )
    view.locks.sort(key=lambda lock: str(lock["target"]))
    view.queued.sort(key=lambda entry: (entry["startedAt"] or "", str(entry["execution"])))
    view.approvals.sort(key=lambda a: (str(a["since"]), str(a["execution"])))
    return view


def _queued(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "execution": item.get("executionId"),
        "action": item.get("action"),
        "trigger": item.get("trigger"),
        "commit": item.get("commit"),
        "branch": item.get("branch"),
        "targets": item.get("targets") or [],
        "startedAt": iso(item.get("startedAt")),
        "queuedSince": iso(item.get("queuedAt")),
        "blockedBy": item.get("blockedBy"),
    }
