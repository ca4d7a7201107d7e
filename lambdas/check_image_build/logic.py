"""Report where an image build stands; once it is AVAILABLE, name this region's AMI and tag it.

Called in a poll loop by the state machine: it never waits. Image Builder's statuses (botocore's
ImageStatus enum) collapse into four: BUILDING (ask again later), AVAILABLE, FAILED, CANCELLED.
Tagging is idempotent, so a repeated check of an AVAILABLE build is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from check_image_build.models import BuildStatus, CheckImageBuildInput, CheckImageBuildOutput

from shared import clock, tags
from shared.aws.imagebuilder import BuildImage, OutputAmi
from shared.aws.images import ImageRecord
from shared.errors import ImageNotReady, InvalidInput
from shared.observability import logger, metrics

STATUS_MAP: Mapping[str, BuildStatus] = {
    "PENDING": "BUILDING",
    "CREATING": "BUILDING",
    "BUILDING": "BUILDING",
    "TESTING": "BUILDING",
    "DISTRIBUTING": "BUILDING",
    "INTEGRATING": "BUILDING",
    "AVAILABLE": "AVAILABLE",
    "CANCELLED": "CANCELLED",
    "FAILED": "FAILED",
    "DEPRECATED": "FAILED",
    "DELETED": "FAILED",
    "DISABLED": "FAILED",
}
_TERMINAL_METRICS = {
    "AVAILABLE": "ImageBuildsSucceeded",
    "FAILED": "ImageBuildsFailed",
    "CANCELLED": "ImageBuildsCancelled",
}


class BuildReader(Protocol):
    def get_image(self, build_version_arn: str) -> BuildImage: ...


class AmiTagger(Protocol):
    def tag_image(self, image_id: str, tags: Mapping[str, str]) -> None: ...


class PackageReader(Protocol):
    def list_packages(self, build_version_arn: str) -> frozenset[tuple[str, str]]: ...


class ImageLister(Protocol):
    def list_application_images(self, application: str) -> list[ImageRecord]: ...


def base_unchanged(
    new_ami_id: str, application: str, packages: PackageReader, images: ImageLister, new_build_arn: str
) -> bool:
    """True when a new base image installs exactly the packages of the previous base image.

    The previous one is the newest other available base AMI of this application that records its
    build (tag immutable-ami:image-build). Without one, or when a package list cannot be read, the
    base counts as changed: rolling out an unchanged image is harmless, skipping a patched one is not.
    """
    previous = [
        image
        for image in images.list_application_images(application)
        if image.pipeline == "base"
        and image.state == "available"
        and image.image_id != new_ami_id
        and image.tags.get(tags.IMAGE_BUILD)
    ]
    if not previous:
        logger.info("no earlier base image records its build: the new base counts as changed")
        return False
    latest = max(previous, key=lambda image: image.creation_date)
    new, old = packages.list_packages(new_build_arn), packages.list_packages(latest.tags[tags.IMAGE_BUILD])
    if not new or not old:
        logger.warning("a base image has no package inventory: the new base counts as changed")
        return False
    changed = sorted(new ^ old)
    logger.info(
        "base image packages compared",
        extra={"previousBaseAmi": latest.image_id, "packagesChanged": len(changed), "examples": changed[:10]},
    )
    return not changed


def map_status(status: str) -> BuildStatus:
    """An Image Builder status this code does not know yet is reported as still building, with a warning:
    the state machine's bounded wait ends it, instead of failing a build that may be fine."""
    mapped = STATUS_MAP.get(status)
    if mapped is None:
        logger.warning("unknown Image Builder status: treated as still building", extra={"status": status})
        return "BUILDING"
    return mapped


def _account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 and parts[4] else None


def ami_of_region(image: BuildImage, region: str) -> OutputAmi | None:
    """The AMI distributed to this region in this account (copies for other accounts are skipped)."""
    account = _account_of(image.arn)
    return next(
        (
            ami
            for ami in image.amis
            if ami.region == region and (ami.account_id is None or account is None or ami.account_id == account)
        ),
        None,
    )


def image_tags(request: CheckImageBuildInput) -> dict[str, str]:
    """What the deploy workflow knows about the image; null values are skipped. A base image carries no app commit."""
    values: dict[str, str | None] = {
        tags.TRIGGER: request.request.trigger,
        tags.EXECUTION: request.execution_id,
        tags.IMAGE_BUILD: request.build.image_build_version_arn,
    }
    if request.build.pipeline == "app":
        values[tags.COMMIT] = request.build.commit or request.request.commit
        values[tags.BRANCH] = request.request.branch
        values[tags.BASE_IMAGE] = request.base_ami_id
    return {key: value for key, value in values.items() if value is not None}


def _reason(image: BuildImage) -> str:
    reason = image.reason or f"Image Builder status {image.status}"
    if image.failed_during:
        reason += f" (failed while {image.failed_during})"
    return reason


def run(
    request: CheckImageBuildInput,
    region: str,
    builds: BuildReader,
    tagger: AmiTagger,
    packages: PackageReader | None = None,
    images: ImageLister | None = None,
    application: str | None = None,
    *,
    now: Callable[[], datetime] | None = None,  # shared.clock.now, looked up at call time
) -> CheckImageBuildOutput:
    build = request.build
    elapsed = max(0, int((now or clock.now)().timestamp()) - build.started_at) if build.started_at is not None else 0
    arn = build.image_build_version_arn
    dry_run = request.dry_run or request.request.dry_run or build.dry_run
    if arn is None:
        if not dry_run:
            raise InvalidInput("build.imageBuildVersionArn: required (only a dry run starts no build)")
        return CheckImageBuildOutput(
            status="AVAILABLE",
            ami_id=None,
            image_build_version_arn=None,
            reason="dry run: no image was built, so there is no AMI",
            pipeline=build.pipeline,
        )

    image = builds.get_image(arn)

    def output(
        status: BuildStatus, reason: str, ami_id: str | None = None, unchanged: bool = False
    ) -> CheckImageBuildOutput:
        log = logger.warning if status in ("FAILED", "CANCELLED") else logger.info
        log(
            f"image build {status}",
            extra={"imageBuildVersionArn": arn, "imageBuilderStatus": image.status, "amiId": ami_id, "reason": reason},
        )
        if status in _TERMINAL_METRICS:
            metrics.add_metric(name=_TERMINAL_METRICS[status], unit=MetricUnit.Count, value=1)
        return CheckImageBuildOutput(
            status=status,
            ami_id=ami_id,
            image_build_version_arn=arn,
            reason=reason,
            pipeline=build.pipeline,
            base_unchanged=unchanged,
            elapsed_seconds=elapsed,
        )

    status = map_status(image.status)
    if status != "AVAILABLE":
        return output(status, _reason(image))

    ami = ami_of_region(image, region)
    if ami is None:
        found = ", ".join(f"{a.image_id} in {a.region}" for a in image.amis) or "none"
        return output("FAILED", f"the image build is AVAILABLE but distributed no AMI to {region} (AMIs: {found})")
    wanted = image_tags(request)
    if dry_run:
        logger.info("dry run: would tag the AMI", extra={"amiId": ami.image_id, "tags": wanted})
    else:
        try:
            tagger.tag_image(ami.image_id, wanted)
        except ImageNotReady as exc:
            # Just distributed: EC2 does not list the AMI yet. Ask again on the next poll.
            return output("BUILDING", f"{ami.image_id} is built but not visible to EC2 yet ({exc})")
    unchanged = False
    if build.pipeline == "base" and packages is not None and images is not None and application:
        unchanged = base_unchanged(ami.image_id, application, packages, images, arn)
    reason = image.reason or f"{ami.image_id} is available in {region}"
    if unchanged:
        reason = f"{ami.image_id} installs exactly the packages of the previous base image: nothing to roll out"
    return output("AVAILABLE", reason, ami.image_id, unchanged)
