"""EC2 Auto Scaling for blue-green targets: the groups of a target, creating a copy of a group, sizes,
target group attachments, tags and deletion.

The groups of a target are found by tags (`immutable-ami:application` + `immutable-ami:target`, the
DescribeAutoScalingGroups filters, paginated) plus the seed group, looked up by its configured name because
the user created it without our tags. Which group plays which role is the callers' business.

Error translation: a group that does not exist (ValidationError "... not found") becomes
`AutoScalingGroupNotFound`; CreateAutoScalingGroup's `AlreadyExists` and a deletion of a group that is
already gone are outcomes (False), because the callers decide what they mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from shared import tags
from shared.aws.autoscaling import AutoScaling, GroupInstance, _template_spec
from shared.errors import AutoScalingGroupNotFound, GroupBusy

_PAGE_SIZE = 100  # the maximum MaxRecords of DescribeAutoScalingGroups / DescribeLoadBalancerTargetGroups
_TARGET_GROUPS_PER_CALL = 10  # Attach/DetachLoadBalancerTargetGroups take at most 10 ARNs
_DELETING = "Delete in progress"
_BUSY_CODES = frozenset({"ScalingActivityInProgress", "ResourceInUse", "ResourceContention"})

# What a copy of a group takes over from it besides sizes, target groups and tags (CreateAutoScalingGroup names).
COPIED_SETTINGS = (
    "VPCZoneIdentifier",
    "HealthCheckType",
    "HealthCheckGracePeriod",
    "DefaultInstanceWarmup",
    "TerminationPolicies",
    "CapacityRebalance",
    "NewInstancesProtectedFromScaleIn",
    "DefaultCooldown",
)


@dataclass(frozen=True)
class Tag:
    key: str
    value: str
    propagate_at_launch: bool = False


@dataclass(frozen=True)
class Capacity:
    min_size: int
    max_size: int
    desired: int

    def tag_value(self) -> str:
        """The CAPACITY tag: "min/max/desired"."""
        return f"{self.min_size}/{self.max_size}/{self.desired}"

    @classmethod
    def from_tag(cls, value: str | None) -> Capacity | None:
        """The capacity a CAPACITY tag holds; None when it is absent or not three non-negative integers."""
        parts = (value or "").split("/")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return None
        low, high, desired = (int(p) for p in parts)
        return cls(low, high, desired) if low <= desired <= high else None


@dataclass(frozen=True)
class TargetGroupAttachment:
    target_group_arn: str
    state: str  # Adding | Added | InService | Removing | Removed


@dataclass(frozen=True)
class GroupDetails:
    name: str
    capacity: Capacity
    target_group_arns: tuple[str, ...]
    instances: tuple[GroupInstance, ...]
    tags: tuple[Tag, ...]
    launch_template_id: str | None
    launch_template_version: str | None
    created_time: datetime | None
    deleting: bool  # DeleteAutoScalingGroup has been called: the group is on its way out
    # The DescribeAutoScalingGroups item, for `BlueGreenGroups.create_copy` (settings, mixed instances policy).
    description: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def tag(self, key: str) -> str | None:
        return next((t.value for t in self.tags if t.key == key), None)


def _error(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", ""))


def _is_not_found(exc: ClientError) -> bool:
    code, message = _error(exc)
    return code == "ValidationError" and "not found" in message.lower()


def _raise_if_busy(exc: ClientError, name: str) -> None:
    """A scaling activity or another update holds the group: a named error the state machine retries."""
    code, message = _error(exc)
    if code in _BUSY_CODES:
        raise GroupBusy(f"Auto Scaling group {name!r} is busy ({code}: {message})") from exc


def _to_details(item: Mapping[str, Any]) -> GroupDetails:
    spec = _template_spec(dict(item))
    instances = tuple(
        GroupInstance(
            instance_id=i["InstanceId"],
            lifecycle_state=i.get("LifecycleState", ""),
            health_status=i.get("HealthStatus", ""),
            protected_from_scale_in=bool(i.get("ProtectedFromScaleIn", False)),
            launch_template_id=_template_spec(i).get("LaunchTemplateId"),
            launch_template_version=_template_spec(i).get("Version"),
        )
        for i in item.get("Instances", [])
    )
    return GroupDetails(
        name=item["AutoScalingGroupName"],
        capacity=Capacity(
            int(item.get("MinSize", 0)), int(item.get("MaxSize", 0)), int(item.get("DesiredCapacity", 0))
        ),
        target_group_arns=tuple(item.get("TargetGroupARNs", [])),
        instances=instances,
        tags=tuple(
            Tag(key=t["Key"], value=t.get("Value", ""), propagate_at_launch=bool(t.get("PropagateAtLaunch", False)))
            for t in item.get("Tags", [])
        ),
        launch_template_id=spec.get("LaunchTemplateId"),
        launch_template_version=spec.get("Version"),
        created_time=item.get("CreatedTime"),
        deleting=item.get("Status") == _DELETING,
        description=dict(item),
    )


def _with_template(mixed: Mapping[str, Any], template_id: str, version: str) -> dict[str, Any]:
    """A MixedInstancesPolicy on the given template version: its LaunchTemplateSpecification, and any override
    naming the same template (an override left on the old version would launch the old AMI)."""
    policy = {k: v for k, v in mixed.items()}
    template = dict(policy.get("LaunchTemplate", {}))
    old_id = template.get("LaunchTemplateSpecification", {}).get("LaunchTemplateId")
    new_spec = {"LaunchTemplateId": template_id, "Version": version}
    template["LaunchTemplateSpecification"] = new_spec
    overrides = []
    for override in template.get("Overrides", []):
        override = dict(override)
        named = override.get("LaunchTemplateSpecification", {}).get("LaunchTemplateId")
        if named is not None and named in (old_id, template_id):
            override["LaunchTemplateSpecification"] = new_spec
        overrides.append(override)
    if overrides:
        template["Overrides"] = overrides
    policy["LaunchTemplate"] = template
    return policy


def _batches(values: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


class BlueGreenGroups(AutoScaling):
    """The AutoScaling adapter (describe_group, scaling_activities, ...) plus what blue-green steps need."""

    def groups_of_target(self, application: str, target_name: str) -> list[GroupDetails]:
        """Every group tagged for this application and target, plus the seed group `target_name` if it exists."""
        paginator = self._asg.get_paginator("describe_auto_scaling_groups")
        pages = paginator.paginate(
            Filters=[
                {"Name": f"tag:{tags.APPLICATION}", "Values": [application]},
                {"Name": f"tag:{tags.TARGET}", "Values": [target_name]},
            ],
            PaginationConfig={"PageSize": _PAGE_SIZE},
        )
        found = {
            item["AutoScalingGroupName"]: _to_details(item)
            for page in pages
            for item in page.get("AutoScalingGroups", [])
        }
        if target_name not in found:
            seed = self.describe(target_name)
            if seed is not None:
                found[target_name] = seed
        return sorted(found.values(), key=lambda g: g.name)

    def describe(self, name: str) -> GroupDetails | None:
        response = self._asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
        items = response.get("AutoScalingGroups", [])
        return _to_details(items[0]) if items else None

    def create_copy(
        self,
        source: GroupDetails,
        *,
        name: str,
        launch_template_id: str,
        version: int,
        group_tags: Sequence[Tag],
    ) -> bool:
        """CreateAutoScalingGroup `name` like `source`: its current sizes, target groups, COPIED_SETTINGS and
        launch template (or mixed instances policy) on `launch_template_id` version `version`, with `group_tags`.
        False when a group of that name already exists (AlreadyExists): nothing was created."""
        described = source.description
        request: dict[str, Any] = {
            "AutoScalingGroupName": name,
            "MinSize": source.capacity.min_size,
            "MaxSize": source.capacity.max_size,
            "DesiredCapacity": source.capacity.desired,
            "TargetGroupARNs": list(source.target_group_arns),
            "Tags": [
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": t.key,
                    "Value": t.value,
                    "PropagateAtLaunch": t.propagate_at_launch,
                }
                for t in group_tags
            ],
        }
        request.update({key: described[key] for key in COPIED_SETTINGS if described.get(key) not in (None, "")})
        if "VPCZoneIdentifier" not in request and described.get("AvailabilityZones"):
            request["AvailabilityZones"] = list(described["AvailabilityZones"])
        if described.get("MixedInstancesPolicy"):
            request["MixedInstancesPolicy"] = _with_template(
                described["MixedInstancesPolicy"], launch_template_id, str(version)
            )
        else:
            request["LaunchTemplate"] = {"LaunchTemplateId": launch_template_id, "Version": str(version)}
        try:
            self._asg.create_auto_scaling_group(**request)
        except ClientError as exc:
            if _error(exc)[0] == "AlreadyExists":
                return False
            raise
        return True

    def _call(self, name: str, operation: str, **kwargs: Any) -> None:
        try:
            getattr(self._asg, operation)(**kwargs)
        except ClientError as exc:
            if _is_not_found(exc):
                raise AutoScalingGroupNotFound(f"Auto Scaling group {name!r}: {_error(exc)[1]}") from exc
            _raise_if_busy(exc, name)
            raise

    def set_capacity(self, name: str, capacity: Capacity) -> None:
        self._call(
            name,
            "update_auto_scaling_group",
            AutoScalingGroupName=name,
            MinSize=capacity.min_size,
            MaxSize=capacity.max_size,
            DesiredCapacity=capacity.desired,
        )

    def pin_version(self, group: GroupDetails, version: int) -> None:
        """Make the group launch `version` of its template by number ("$Default"/"$Latest" move on with every
        publish: a retired group brought back for a rollback must launch what it ran, not the newest AMI)."""
        template_id = group.launch_template_id
        if template_id is None:
            return
        mixed = group.description.get("MixedInstancesPolicy")
        if mixed:
            update: dict[str, Any] = {"MixedInstancesPolicy": _with_template(mixed, template_id, str(version))}
        else:
            update = {"LaunchTemplate": {"LaunchTemplateId": template_id, "Version": str(version)}}
        self._call(group.name, "update_auto_scaling_group", AutoScalingGroupName=group.name, **update)

    def attach_target_groups(self, name: str, target_group_arns: Sequence[str]) -> None:
        for batch in _batches(target_group_arns, _TARGET_GROUPS_PER_CALL):
            self._call(name, "attach_load_balancer_target_groups", AutoScalingGroupName=name, TargetGroupARNs=batch)

    def detach_target_groups(self, name: str, target_group_arns: Sequence[str]) -> None:
        for batch in _batches(target_group_arns, _TARGET_GROUPS_PER_CALL):
            self._call(name, "detach_load_balancer_target_groups", AutoScalingGroupName=name, TargetGroupARNs=batch)

    def target_group_attachments(self, name: str) -> list[TargetGroupAttachment]:
        """DescribeLoadBalancerTargetGroups (all pages): each attachment and its state."""
        paginator = self._asg.get_paginator("describe_load_balancer_target_groups")
        try:
            return [
                TargetGroupAttachment(target_group_arn=item["LoadBalancerTargetGroupARN"], state=item.get("State", ""))
                for page in paginator.paginate(AutoScalingGroupName=name, PaginationConfig={"PageSize": _PAGE_SIZE})
                for item in page.get("LoadBalancerTargetGroups", [])
            ]
        except ClientError as exc:
            if _is_not_found(exc):
                raise AutoScalingGroupNotFound(f"Auto Scaling group {name!r}: {_error(exc)[1]}") from exc
            raise

    def tag(self, name: str, values: Mapping[str, str]) -> None:
        """CreateOrUpdateTags: each key set to its value on the group, not propagated to instances."""
        if not values:
            return
        self._call(
            name,
            "create_or_update_tags",
            Tags=[
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": key,
                    "Value": value,
                    "PropagateAtLaunch": False,
                }
                for key, value in values.items()
            ],
        )

    def delete(self, name: str) -> bool:
        """DeleteAutoScalingGroup with ForceDelete (AWS detaches and terminates the instances).
        False when the group does not exist (any more)."""
        try:
            self._asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            _raise_if_busy(exc, name)
            raise
        return True
