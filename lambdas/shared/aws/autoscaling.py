"""EC2 Auto Scaling: group description, instance refreshes, scaling activities.

`describe_refreshes` is the one reader of DescribeInstanceRefreshes, which has no botocore paginator: NextToken
is followed by hand. Error codes are
translated into the named errors of shared.errors; RollbackInstanceRefresh and CancelInstanceRefresh
refusals are returned as outcomes because the caller handles each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client
from shared.errors import AutoScalingGroupNotFound, RefreshInProgress
from shared.statuses import ACTIVE_REFRESH_STATUSES

_MAX_RECORDS = 100


@dataclass(frozen=True)
class GroupInstance:
    instance_id: str
    lifecycle_state: str
    health_status: str
    protected_from_scale_in: bool
    launch_template_id: str | None
    launch_template_version: str | None


@dataclass(frozen=True)
class Group:
    name: str
    target_group_arns: tuple[str, ...]
    instances: tuple[GroupInstance, ...]
    launch_template_id: str | None
    launch_template_version: str | None


@dataclass(frozen=True)
class LaunchTemplateRef:
    """A launch template and version as a group or a refresh names it (by id or name; number, $Latest or $Default)."""

    launch_template_id: str | None
    launch_template_name: str | None
    version: str


@dataclass(frozen=True)
class Refresh:
    refresh_id: str
    status: str
    status_reason: str
    percentage_complete: int
    instances_to_update: int | None
    start_time: datetime | None
    launch_template_id: str | None
    launch_template_name: str | None
    launch_template_version: str | None
    # RollbackDetails.RollbackStartTime: a rolled-back refresh keeps its StartTime (API Reference, RollbackDetails).
    rollback_start_time: datetime | None = None
    end_time: datetime | None = None  # EndTime: when the refresh ended (absent while it runs)
    # Every launch template its desired configuration names (mixed instances overrides included), and the AMIs
    # overrides name directly: what the refresh may still launch (empty: the group's own configuration).
    launch_templates: tuple[LaunchTemplateRef, ...] = ()
    image_ids: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_REFRESH_STATUSES


@dataclass(frozen=True)
class ScalingActivity:
    activity_id: str
    status_code: str
    status_message: str
    description: str
    start_time: datetime

    @property
    def failed_launch(self) -> bool:
        """An instance launch that failed (bad AMI, capacity, quota), as opposed to any other failed activity."""
        return self.status_code == "Failed" and self.description.lower().startswith("launching")


@dataclass(frozen=True)
class RollbackAttempt:
    outcome: Literal["started", "irreversible", "not_active"]
    refresh_id: str | None
    message: str


def _error(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", ""))


def _template_spec(container: dict[str, Any]) -> dict[str, Any]:
    """The launch template spec of a group, an instance or a desired configuration (plain or mixed instances)."""
    if "LaunchTemplate" in container:
        return dict(container["LaunchTemplate"])
    mixed = container.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {})
    return dict(mixed.get("LaunchTemplateSpecification", {}))


def launch_specs(container: dict[str, Any]) -> tuple[tuple[LaunchTemplateRef, ...], tuple[str, ...]]:
    """The launch templates and directly named AMIs of a group or of a refresh's desired configuration.

    A spec without a version launches the template's default version: it is reported as "$Default".
    """
    specs: list[dict[str, Any]] = []
    image_ids: list[str] = []
    if container.get("LaunchTemplate"):
        specs.append(container["LaunchTemplate"])
    mixed = (container.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}
    if mixed.get("LaunchTemplateSpecification"):
        specs.append(mixed["LaunchTemplateSpecification"])
    for override in mixed.get("Overrides", []):
        if override.get("LaunchTemplateSpecification"):
            specs.append(override["LaunchTemplateSpecification"])
        if override.get("ImageId"):
            image_ids.append(override["ImageId"])
    refs = tuple(
        LaunchTemplateRef(
            launch_template_id=s.get("LaunchTemplateId"),
            launch_template_name=s.get("LaunchTemplateName"),
            version=str(s.get("Version") or "$Default"),
        )
        for s in specs
    )
    return tuple(dict.fromkeys(refs)), tuple(dict.fromkeys(image_ids))


def _to_refresh(item: dict[str, Any]) -> Refresh:
    desired = item.get("DesiredConfiguration") or {}
    spec = _template_spec(desired)
    launch_templates, image_ids = launch_specs(desired)
    return Refresh(
        refresh_id=item["InstanceRefreshId"],
        status=item.get("Status", ""),
        status_reason=item.get("StatusReason", ""),
        percentage_complete=int(item.get("PercentageComplete") or 0),
        instances_to_update=item.get("InstancesToUpdate"),
        start_time=item.get("StartTime"),
        launch_template_id=spec.get("LaunchTemplateId"),
        launch_template_name=spec.get("LaunchTemplateName"),
        launch_template_version=spec.get("Version"),
        rollback_start_time=item.get("RollbackDetails", {}).get("RollbackStartTime"),
        end_time=item.get("EndTime"),
        launch_templates=launch_templates,
        image_ids=image_ids,
    )


class AutoScaling:
    def __init__(self, autoscaling: Any = None) -> None:
        self._asg = adapter_client(autoscaling, "autoscaling")

    def describe_group(self, name: str) -> Group:
        paginator = self._asg.get_paginator("describe_auto_scaling_groups")
        groups = [
            group
            for page in paginator.paginate(AutoScalingGroupNames=[name])
            for group in page.get("AutoScalingGroups", [])
        ]
        if not groups:
            raise AutoScalingGroupNotFound(f"Auto Scaling group {name!r} does not exist")
        group = groups[0]
        spec = _template_spec(group)
        instances = []
        for item in group.get("Instances", []):
            instance_spec = _template_spec(item)
            instances.append(
                GroupInstance(
                    instance_id=item["InstanceId"],
                    lifecycle_state=item.get("LifecycleState", ""),
                    health_status=item.get("HealthStatus", ""),
                    protected_from_scale_in=bool(item.get("ProtectedFromScaleIn", False)),
                    launch_template_id=instance_spec.get("LaunchTemplateId"),
                    launch_template_version=instance_spec.get("Version"),
                )
            )
        return Group(
            name=group["AutoScalingGroupName"],
            target_group_arns=tuple(group.get("TargetGroupARNs", [])),
            instances=tuple(instances),
            launch_template_id=spec.get("LaunchTemplateId"),
            launch_template_version=spec.get("Version"),
        )

    def describe_refreshes(self, group_name: str, refresh_ids: Sequence[str] = ()) -> list[Refresh]:
        """The group's refreshes of the last six weeks, newest first (or only `refresh_ids`)."""
        request: dict[str, Any] = {"AutoScalingGroupName": group_name, "MaxRecords": _MAX_RECORDS}
        if refresh_ids:
            request["InstanceRefreshIds"] = list(refresh_ids)
        refreshes: list[Refresh] = []
        while True:
            response = self._asg.describe_instance_refreshes(**request)
            refreshes.extend(_to_refresh(item) for item in response.get("InstanceRefreshes", []))
            token = response.get("NextToken")
            if not token:
                return refreshes
            request["NextToken"] = token

    def start_refresh(self, group_name: str, *, template_id: str, version: int, preferences: dict[str, Any]) -> str:
        """Start a Rolling refresh pinned to a version number; `RefreshInProgress` if one is active."""
        try:
            response = self._asg.start_instance_refresh(
                AutoScalingGroupName=group_name,
                Strategy="Rolling",
                DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": template_id, "Version": str(version)}},
                Preferences=preferences,
            )
        except ClientError as exc:
            code, message = _error(exc)
            if code == "InstanceRefreshInProgress":
                raise RefreshInProgress(f"{group_name}: {message}") from exc
            if code == "ValidationError" and "not found" in message.lower():
                raise AutoScalingGroupNotFound(f"Auto Scaling group {group_name!r}: {message}") from exc
            raise
        return str(response["InstanceRefreshId"])

    def rollback_refresh(self, group_name: str) -> RollbackAttempt:
        try:
            response = self._asg.rollback_instance_refresh(AutoScalingGroupName=group_name)
        except ClientError as exc:
            code, message = _error(exc)
            if code == "IrreversibleInstanceRefresh":
                return RollbackAttempt(outcome="irreversible", refresh_id=None, message=message)
            if code == "ActiveInstanceRefreshNotFound":
                return RollbackAttempt(outcome="not_active", refresh_id=None, message=message)
            raise
        return RollbackAttempt(outcome="started", refresh_id=response.get("InstanceRefreshId"), message="")

    def cancel_refresh(self, group_name: str) -> str | None:
        """Cancel the active refresh; its id, or None when no refresh was active."""
        try:
            response = self._asg.cancel_instance_refresh(AutoScalingGroupName=group_name)
        except ClientError as exc:
            if _error(exc)[0] == "ActiveInstanceRefreshNotFound":
                return None
            raise
        return response.get("InstanceRefreshId")

    def scaling_activities(self, group_name: str, since: datetime) -> list[ScalingActivity]:
        """Activities that started at or after `since`, newest first (pages stop once older ones appear)."""
        paginator = self._asg.get_paginator("describe_scaling_activities")
        activities: list[ScalingActivity] = []
        for page in paginator.paginate(AutoScalingGroupName=group_name, PaginationConfig={"PageSize": _MAX_RECORDS}):
            items = page.get("Activities", [])
            for item in items:
                if item["StartTime"] >= since:
                    activities.append(
                        ScalingActivity(
                            activity_id=item["ActivityId"],
                            status_code=item.get("StatusCode", ""),
                            status_message=item.get("StatusMessage", ""),
                            description=item.get("Description", ""),
                            start_time=item["StartTime"],
                        )
                    )
            if items and items[-1]["StartTime"] < since:
                break
        return activities
