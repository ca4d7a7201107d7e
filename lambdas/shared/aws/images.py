"""EC2 images (AMIs): describe ours, find what references them, tag their snapshots, deregister them with theirs.

Requests only; which image to keep or delete is decided by the callers' logic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

from shared import tags
from shared.aws.clients import adapter_client, regional_client
from shared.errors import ImageDeregistrationFailed, ImageNotReady

# AWS lets DescribeImageReferences check at most 10 images per request.
IMAGE_REFERENCES_BATCH = 10
# Instance states in which an instance counts as a reference in DescribeImageReferences (all but terminated:
# a just-replaced instance stays visible as terminated for about an hour and holds nothing).
_REFERENCING_INSTANCE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
# Check every launch template version, not only the 10 newest (the AWS default); 10,000 is the per-template maximum.
_LAUNCH_TEMPLATE_VERSION_DEPTH = "10000"
_GONE_CODES = frozenset({"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"})
_ABSENT_CODES = _GONE_CODES | {"InvalidAMIID.Malformed"}
_SNAPSHOT_ABSENT_CODES = frozenset({"InvalidSnapshot.NotFound", "InvalidSnapshot.Malformed"})
MAX_TAG_VALUE_LENGTH = 256  # EC2 tag values: at most 256 characters
# DescribeSnapshots: at most 1000 snapshot ids a request (EC2 API Reference, DescribeSnapshots, MaxResults).
_SNAPSHOT_IDS_MAX = 1000


@dataclass(frozen=True)
class ImageRecord:
    """One AMI as DescribeImages reports it, reduced to what the deploy workflow reads."""

    image_id: str
    state: str
    creation_date: str  # ISO 8601 UTC as AWS returns it ("2024-05-01T10:00:00.000Z"): sorts chronologically
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    snapshot_ids: tuple[str, ...] = ()
    deregistration_protection: str | None = None  # "disabled", "enabled-with-cooldown", ... or absent

    @property
    def application(self) -> str | None:
        return self.tags.get(tags.APPLICATION)

    @property
    def pipeline(self) -> str | None:
        return self.tags.get(tags.PIPELINE)

    @property
    def base_image_id(self) -> str | None:
        return self.tags.get(tags.BASE_IMAGE)

    @classmethod
    def from_api(cls, image: dict[str, Any]) -> ImageRecord:
        return cls(
            image_id=image["ImageId"],
            state=image.get("State", ""),
            creation_date=image.get("CreationDate", ""),
            name=image.get("Name", ""),
            tags={t["Key"]: t["Value"] for t in image.get("Tags", [])},
            snapshot_ids=tuple(
                m["Ebs"]["SnapshotId"]
                for m in image.get("BlockDeviceMappings", [])
                if m.get("Ebs", {}).get("SnapshotId")
            ),
            deregistration_protection=image.get("DeregistrationProtection"),
        )


def newest_first(images: Iterable[ImageRecord]) -> list[ImageRecord]:
    """Images ordered newest first by CreationDate; equal dates are ordered by image id so the order is stable."""
    return sorted(images, key=lambda i: (i.creation_date, i.image_id), reverse=True)


@dataclass(frozen=True)
class ImageReference:
    image_id: str
    resource_type: str  # "ec2:Instance", "ec2:LaunchTemplate", "ssm:Parameter", "imagebuilder:ImageRecipe", ...
    arn: str


@dataclass(frozen=True)
class SnapshotResult:
    snapshot_id: str
    return_code: str  # "success", "skipped" (used by another AMI), "missing-permissions", "internal-error", ...


@dataclass(frozen=True)
class DeregisterOutcome:
    image_id: str
    status: Literal["deregistered", "already-gone", "protected"]
    snapshots: tuple[SnapshotResult, ...] = ()
    message: str = ""


class Images:
    """DescribeImages, DescribeImageReferences and DeregisterImage for the images this account owns."""

    def __init__(self, ec2: Any = None, regional: Callable[[str], Any] | None = None) -> None:
        self._ec2 = adapter_client(ec2, "ec2")
        self._regional = regional or (lambda region: regional_client("ec2", region))

    def _client_for(self, region: str | None) -> Any:
        """This region's client, or another region's (the AMI copies of build.extraRegions)."""
        return self._ec2 if region is None else adapter_client(self._regional(region), "ec2")

    def tag_image_snapshots(self, image_id: str, tags: Mapping[str, str], region: str | None = None) -> list[str]:
        """Tag the EBS snapshots of an own AMI (its BlockDeviceMappings) with `tags`; returns their ids.

        Why: the prune may delete only snapshots carrying this application's tag (ec2:DeleteSnapshot is conditioned
        on aws:ResourceTag/immutable-ami:application), and the Recycle Bin rule for snapshots selects them by it.
        An AMI EC2 does not list yet raises ImageNotReady (the caller asks again on its next poll). Idempotent.
        """
        client = self._client_for(region)
        try:
            response = client.describe_images(Owners=["self"], ImageIds=[image_id])
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _ABSENT_CODES:
                raise ImageNotReady(f"{image_id} is not visible to EC2 yet: {exc.response['Error']['Code']}") from exc
            raise
        found = [ImageRecord.from_api(i) for i in response.get("Images", []) if i.get("ImageId") == image_id]
        if not found:
            raise ImageNotReady(f"{image_id} is not listed by DescribeImages yet")
        snapshot_ids = list(found[0].snapshot_ids)
        if snapshot_ids and tags:
            client.create_tags(
                Resources=snapshot_ids,
                Tags=[{"Key": key, "Value": value[:MAX_TAG_VALUE_LENGTH]} for key, value in tags.items()],
            )
        return snapshot_ids

    def snapshots_without_tag(self, snapshot_ids: Sequence[str], key: str, value: str) -> list[str]:
        """The snapshots among `snapshot_ids` that do not carry `key`=`value` (gone ones included: nothing says
        they did)."""
        ids = list(dict.fromkeys(snapshot_ids))
        tagged: set[str] = set()
        for batch in _chunks(ids, _SNAPSHOT_IDS_MAX):
            try:
                snapshots = self._ec2.describe_snapshots(OwnerIds=["self"], SnapshotIds=batch).get("Snapshots", [])
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in _SNAPSHOT_ABSENT_CODES:
                    raise
                if len(batch) == 1:
                    continue
                # One gone snapshot fails the whole request: ask about each one alone.
                tagged.update(i for i in batch if not self.snapshots_without_tag([i], key, value))
                continue
            for snapshot in snapshots:
                if {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}.get(key) == value:
                    tagged.add(snapshot["SnapshotId"])
        return [i for i in ids if i not in tagged]

    def list_application_images(self, application: str) -> list[ImageRecord]:
        """Every image this account owns tagged with the application (disabled images are not listed)."""
        paginator = self._ec2.get_paginator("describe_images")
        pages = paginator.paginate(
            Owners=["self"],
            Filters=[{"Name": f"tag:{tags.APPLICATION}", "Values": [application]}],
            PaginationConfig={"PageSize": 1000},
        )
        return [ImageRecord.from_api(image) for page in pages for image in page.get("Images", [])]

    def get_own_image(self, image_id: str) -> ImageRecord | None:
        """The image if this account owns it, else None (also for a malformed or deregistered id)."""
        try:
            response = self._ec2.describe_images(Owners=["self"], ImageIds=[image_id], IncludeDisabled=True)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _ABSENT_CODES:
                return None
            raise
        found = [ImageRecord.from_api(i) for i in response.get("Images", []) if i.get("ImageId") == image_id]
        return found[0] if found else None

    def find_references(self, image_ids: Sequence[str]) -> list[ImageReference]:
        """What references the images in this account and region (instances, launch templates, SSM parameters, ...)."""
        references: list[ImageReference] = []
        paginator = self._ec2.get_paginator("describe_image_references")
        for batch in _chunks(list(image_ids), IMAGE_REFERENCES_BATCH):
            pages = paginator.paginate(
                ImageIds=batch,
                IncludeAllResourceTypes=True,
                ResourceTypes=[
                    {
                        "ResourceType": "ec2:Instance",
                        "ResourceTypeOptions": [
                            {"OptionName": "state-name", "OptionValues": list(_REFERENCING_INSTANCE_STATES)}
                        ],
                    },
                    {
                        "ResourceType": "ec2:LaunchTemplate",
                        "ResourceTypeOptions": [
                            {"OptionName": "version-depth", "OptionValues": [_LAUNCH_TEMPLATE_VERSION_DEPTH]}
                        ],
                    },
                ],
                PaginationConfig={"PageSize": 1000},
            )
            references.extend(
                ImageReference(image_id=r["ImageId"], resource_type=r.get("ResourceType", ""), arn=r.get("Arn", ""))
                for page in pages
                for r in page.get("ImageReferences", [])
            )
        return references

    def deregister_with_snapshots(self, image_id: str) -> DeregisterOutcome:
        """Deregister the image and, in the same call, delete the snapshots no other AMI uses.

        An image that is already gone is reported as such; deregistration protection as "protected";
        any other error raises `ImageDeregistrationFailed` with the AWS error code.
        """
        try:
            response = self._ec2.deregister_image(ImageId=image_id, DeleteAssociatedSnapshots=True)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            message = exc.response["Error"].get("Message", "")
            if code in _GONE_CODES:
                return DeregisterOutcome(image_id=image_id, status="already-gone", message=message)
            if "protect" in message.lower():
                # AWS refuses with a message naming deregistration protection; the code is not documented.
                return DeregisterOutcome(image_id=image_id, status="protected", message=f"{code}: {message}")
            raise ImageDeregistrationFailed(image_id, code, message) from exc
        return DeregisterOutcome(
            image_id=image_id,
            status="deregistered",
            snapshots=tuple(
                SnapshotResult(snapshot_id=r.get("SnapshotId", ""), return_code=r.get("ReturnCode", ""))
                for r in response.get("DeleteSnapshotResults", [])
            ),
        )


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
