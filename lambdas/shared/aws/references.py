"""Read-only lookups of what uses an AMI: launch template versions, instances, instance refreshes, and the
Auto Scaling groups of the application (blue-green groups, retained ones included, and the configured groups).

Pruning and rollback resolution read these; nothing here changes anything in AWS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared import tags
from shared.aws.autoscaling import AutoScaling, LaunchTemplateRef, Refresh, launch_specs
from shared.aws.clients import adapter_client
from shared.aws.launch_templates import LaunchTemplates, TemplateVersion

# DescribeInstances accepts at most 200 values per filter.
_FILTER_VALUES_MAX = 200
# DescribeAutoScalingGroups: at most 100 groups a page, and (at that page size) at most 50 names a request.
_GROUPS_PAGE_SIZE = 100
_GROUP_NAMES_MAX = 50


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


def _to_application_group(group: dict[str, Any]) -> ApplicationGroup:
    role = next((t.get("Value") for t in group.get("Tags", []) if t.get("Key") == tags.ROLE), None)
    launch_templates, image_ids = launch_specs(group)
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
    ) -> list[TemplateVersion]:
        """The template's versions (all of them unless `versions` names some), with the AMI each one uses (an SSM
        parameter alias resolved)."""
        return LaunchTemplates(self._ec2).describe_versions(
            launch_template_id, template_name=launch_template_name, versions=versions, resolve_alias=True
        )

    def default_version_image_id(self, launch_template_id: str) -> str | None:
        """The AMI the template's default version launches (None when that version sets no AMI)."""
        return LaunchTemplates(self._ec2).default_version(launch_template_id, resolve_alias=True).image_id

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

    def instance_refreshes(self, auto_scaling_group_name: str) -> list[Refresh]:
        """Every instance refresh AWS still lists for the group, with what its desired configuration launches."""
        return AutoScaling(self._given_autoscaling).describe_refreshes(auto_scaling_group_name)

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
