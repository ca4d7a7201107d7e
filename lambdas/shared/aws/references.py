"""Read-only lookups of what uses an AMI: launch template versions, instances, instance refreshes, and the
Auto Scaling groups of the application (blue-green groups, retained ones included, and the configured groups).

Pruning and rollback resolution read these; nothing here changes anything in AWS.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from shared import tags
from shared.aws.clients import adapter_client
from shared.errors import LaunchTemplateNotFound

# DescribeInstances accepts at most 200 values per filter.
_FILTER_VALUES_MAX = 200
# DescribeAutoScalingGroups: at most 100 groups a page, and (at that page size) at most 50 names a request.
_GROUPS_PAGE_SIZE = 100
_GROUP_NAMES_MAX = 50
_TEMPLATE_NOT_FOUND_CODES = frozenset(
    {
        "InvalidLaunchTemplateId.NotFound",
        "InvalidLaunchTemplateId.Malformed",
        "InvalidLaunchTemplateName.NotFoundException",
        "InvalidLaunchTemplateId.VersionNotFound",
    }
)


@dataclass(frozen=True)
class LaunchTemplateVersionRecord:
    launch_template_id: str
    version_number: int
    image_id: str | None  # resolved AMI id (an SSM parameter alias is resolved), None when the version sets none
    default: bool


@dataclass(frozen=True)
class LaunchTemplateRef:
    """A launch template and version as an instance refresh names it (by id or name; number, $Latest or $Default)."""

    launch_template_id: str | None
    launch_template_name: str | None
    version: str


@dataclass(frozen=True)
class InstanceRefreshRecord:
    auto_scaling_group_name: str
    instance_refresh_id: str
    status: str
    launch_templates: tuple[LaunchTemplateRef, ...]  # from DesiredConfiguration (empty: the group's own template)
    image_ids: tuple[str, ...]  # AMI ids named directly by mixed instances policy overrides


@dataclass(frozen=True)
class ApplicationGroup:
    """An Auto Scaling group of the application and what it launches from, whatever its size (zero included)."""

    name: str
    role: str | None  # its immutable-ami:role tag (live, green, retained); None when untagged (a configured group)
    # Its launch template, or those of its mixed instances policy (overrides included).
    launch_templates: tuple[LaunchTemplateRef, ...]
    image_ids: tuple[str, ...]  # AMI ids named directly by mixed instances policy overrides

    @property
    def description(self) -> str:
        """How logs and prune reasons name it: "Auto Scaling group web-app-prod-exec1 (retained)"."""
        return f"Auto Scaling group {self.name}" + (f" ({self.role})" if self.role else "")


def _launch_specs(container: dict[str, Any]) -> tuple[tuple[LaunchTemplateRef, ...], tuple[str, ...]]:
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


def _to_application_group(group: dict[str, Any]) -> ApplicationGroup:
    role = next((t.get("Value") for t in group.get("Tags", []) if t.get("Key") == tags.ROLE), None)
    launch_templates, image_ids = _launch_specs(group)
    return ApplicationGroup(
        name=group["AutoScalingGroupName"],
        role=role or None,
        launch_templates=launch_templates,
        image_ids=image_ids,
    )


class FleetReferences:
    """Launch template versions and instances (EC2); instance refreshes and the application's groups (Auto Scaling)."""

    def __init__(self, ec2: Any = None, autoscaling: Any = None) -> None:
        self._ec2 = adapter_client(ec2, "ec2")
        self._given_autoscaling = autoscaling

    @property
    def _autoscaling(self) -> Any:
        # Created on first use: validate_request reads launch templates only and need not pay for this client.
        return adapter_client(self._given_autoscaling, "autoscaling")

    def launch_template_versions(
        self,
        launch_template_id: str | None = None,
        *,
        launch_template_name: str | None = None,
        versions: Sequence[str] = (),
    ) -> list[LaunchTemplateVersionRecord]:
        """The template's versions (all of them unless `versions` names some), with the AMI each one uses."""
        request: dict[str, Any] = {"ResolveAlias": True}
        if launch_template_id:
            request["LaunchTemplateId"] = launch_template_id
        else:
            request["LaunchTemplateName"] = launch_template_name
        if versions:
            request["Versions"] = list(versions)
        else:
            request["PaginationConfig"] = {"PageSize": 200}
        paginator = self._ec2.get_paginator("describe_launch_template_versions")
        try:
            return [
                LaunchTemplateVersionRecord(
                    launch_template_id=v["LaunchTemplateId"],
                    version_number=int(v["VersionNumber"]),
                    image_id=v.get("LaunchTemplateData", {}).get("ImageId") or None,
                    default=bool(v.get("DefaultVersion")),
                )
                for page in paginator.paginate(**request)
                for v in page.get("LaunchTemplateVersions", [])
            ]
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _TEMPLATE_NOT_FOUND_CODES:
                which = launch_template_id or launch_template_name
                message = exc.response["Error"].get("Message", "")
                raise LaunchTemplateNotFound(
                    f"launch template {which} (versions {list(versions) or 'all'}): {message}"
                ) from exc
            raise

    def default_version_image_id(self, launch_template_id: str) -> str | None:
        """The AMI the template's default version launches (None when that version sets no AMI)."""
        found = self.launch_template_versions(launch_template_id, versions=["$Default"])
        if not found:
            raise LaunchTemplateNotFound(f"launch template {launch_template_id} has no default version")
        return found[0].image_id

    def instances_using_images(self, image_ids: Sequence[str], states: Sequence[str]) -> dict[str, list[str]]:
        """Instance ids per AMI, for instances in the given states that were launched from any of `image_ids`."""
        found: dict[str, list[str]] = {}
        paginator = self._ec2.get_paginator("describe_instances")
        ids = list(image_ids)
        for start in range(0, len(ids), _FILTER_VALUES_MAX):
            pages = paginator.paginate(
                Filters=[
                    {"Name": "image-id", "Values": ids[start : start + _FILTER_VALUES_MAX]},
                    {"Name": "instance-state-name", "Values": list(states)},
                ],
                PaginationConfig={"PageSize": 1000},
            )
            for page in pages:
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        found.setdefault(instance["ImageId"], []).append(instance["InstanceId"])
        return found

    def instance_refreshes(self, auto_scaling_group_name: str) -> list[InstanceRefreshRecord]:
        """Every instance refresh AWS still lists for the group (DescribeInstanceRefreshes, all pages)."""
        records: list[InstanceRefreshRecord] = []
        for refresh in self._refresh_pages(auto_scaling_group_name):
            launch_templates, image_ids = _launch_specs(refresh.get("DesiredConfiguration") or {})
            records.append(
                InstanceRefreshRecord(
                    auto_scaling_group_name=refresh.get("AutoScalingGroupName", auto_scaling_group_name),
                    instance_refresh_id=refresh.get("InstanceRefreshId", ""),
                    status=refresh.get("Status", ""),
                    launch_templates=launch_templates,
                    image_ids=image_ids,
                )
            )
        return records

    def application_groups(self, application: str, names: Sequence[str] = ()) -> list[ApplicationGroup]:
        """Every group tagged immutable-ami:application=<application> (live, green and retained blue-green groups,
        scaled to zero or not), then those of `names` (configured groups, which may carry no tag) it did not return.

        One DescribeAutoScalingGroups filtered on the tag (all pages); a second one, by name, only for configured
        names the first did not return (AWS ANDs names and filters, so one request cannot ask for both).
        """
        paginator = self._autoscaling.get_paginator("describe_auto_scaling_groups")
        pages = paginator.paginate(
            Filters=[{"Name": f"tag:{tags.APPLICATION}", "Values": [application]}],
            PaginationConfig={"PageSize": _GROUPS_PAGE_SIZE},
        )
        found = {g["AutoScalingGroupName"]: g for page in pages for g in page.get("AutoScalingGroups", [])}
        missing = [n for n in dict.fromkeys(names) if n not in found]
        for start in range(0, len(missing), _GROUP_NAMES_MAX):
            pages = paginator.paginate(
                AutoScalingGroupNames=missing[start : start + _GROUP_NAMES_MAX],
                PaginationConfig={"PageSize": _GROUPS_PAGE_SIZE},
            )
            found.update((g["AutoScalingGroupName"], g) for page in pages for g in page.get("AutoScalingGroups", []))
        return [_to_application_group(g) for g in found.values()]

    def _refresh_pages(self, auto_scaling_group_name: str) -> Iterator[dict[str, Any]]:
        # botocore has no paginator for DescribeInstanceRefreshes: follow NextToken by hand.
        request: dict[str, Any] = {"AutoScalingGroupName": auto_scaling_group_name, "MaxRecords": 100}
        while True:
            response = self._autoscaling.describe_instance_refreshes(**request)
            yield from response.get("InstanceRefreshes", [])
            token = response.get("NextToken")
            if not token:
                return
            request["NextToken"] = token
