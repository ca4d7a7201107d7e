"""Report where the bake stands; once every build is AVAILABLE, name this region's AMI(s) and tag every copy.

Called in a poll loop by the state machine: it never waits. Image Builder's statuses (botocore's
ImageStatus enum) collapse into four: BUILDING (ask again later), AVAILABLE, FAILED, CANCELLED. A bake of
several commits (rebuild-base) is AVAILABLE when all are, FAILED or CANCELLED as soon as one is.
Tagging is idempotent, so a repeated check of an AVAILABLE build is harmless. Each copy's EBS snapshots get the
AMI's tags and the application/pipeline tags too: the prune may delete only snapshots tagged with this application,
and the Recycle Bin rule for snapshots selects them by that tag (README, "Undoing a prune").

With `cancel` (the bake outlived build.timeoutMinutes, or one of its builds failed) it cancels every build
still running (CancelImageCreation), so nothing keeps building, and paying, after the execution gave up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from start_image_build.models import Bake

from check_image_build.models import BakedImage, BuildStatus, CheckImageBuildInput, CheckImageBuildOutput
from shared import clock, tags
from shared.aws.imagebuilder import MAX_CLIENT_TOKEN_LENGTH, BuildImage, OutputAmi
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


def count_terminal(status: str) -> None:
    """One metric per build that ended (literal names: tests/infra/test_dashboard_metrics.py reads them)."""
    if status == "AVAILABLE":
        metrics.add_metric(name="ImageBuildsSucceeded", unit=MetricUnit.Count, value=1)
    elif status == "FAILED":
        metrics.add_metric(name="ImageBuildsFailed", unit=MetricUnit.Count, value=1)
    elif status == "CANCELLED":
        metrics.add_metric(name="ImageBuildsCancelled", unit=MetricUnit.Count, value=1)


def count_bake_durations(images: list[BuildImage], now: datetime) -> None:
    """BakeDuration (seconds) of each image that became AVAILABLE: from Image Builder's dateCreated of the image
    (ISO 8601, "The date on which Image Builder created this image", API Reference, Image) to now (shared.clock).
    An image without a readable dateCreated is not counted."""
    for image in images:
        try:
            created = datetime.fromisoformat(image.date_created or "")
        except ValueError:
            logger.warning("no readable dateCreated: bake duration not counted", extra={"arn": image.arn})
            continue
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        seconds = max(0.0, (now - created).total_seconds())
        metrics.add_metric(name="BakeDuration", unit=MetricUnit.Seconds, value=seconds)


class BuildReader(Protocol):
    def get_image(self, build_version_arn: str) -> BuildImage: ...


class AmiTagger(Protocol):
    def tag_image(self, image_id: str, tags: Mapping[str, str], region: str | None = None) -> None: ...


class SnapshotTagger(Protocol):
    def tag_image_snapshots(self, image_id: str, tags: Mapping[str, str], region: str | None = None) -> list[str]: ...


class BuildCanceller(Protocol):
    def cancel(self, build_version_arn: str, client_token: str) -> bool: ...


class PackageReader(Protocol):
    def list_packages(self, build_version_arn: str) -> frozenset[tuple[str, str]]: ...


class ImageLister(Protocol):
    def list_application_images(self, application: str) -> list[ImageRecord]: ...


def base_unchanged(
    new_ami_id: str,
    application: str,
    packages: PackageReader,
    images: ImageLister,
    new_build_arn: str,
    running_bases: list[str] | None = None,
) -> bool:
    """True when a new base image installs exactly the packages of the previous base image, and that previous
    base is the one every target's image was built on (`running_bases`, when the start step read them).

    The previous one is the newest other available base AMI of this application that records its
    build (tag immutable-ami:image-build). Without one, or when a package list cannot be read, or when a
    target runs an image built on another base (a rebuild whose rollout failed, say), the base counts as
    changed: rolling out an unchanged image is harmless, skipping a patched one is not.
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
    if running_bases and set(running_bases) != {latest.image_id}:
        logger.info(
            "the targets run images built on other bases than the previous one: the new base counts as changed",
            extra={"previousBaseAmi": latest.image_id, "runningBases": running_bases},
        )
        return False
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


def image_tags(request: CheckImageBuildInput, bake: Bake, image: BuildImage, repository: str | None) -> dict[str, str]:
    """What the AMI carries besides the static application/pipeline tags; null values are skipped.

    The base image tag is the parent the build actually started from (GetImage: imageRecipe.parentImage),
    not the one requested; the build time is Image Builder's dateCreated of the image.
    """
    values: dict[str, str | None] = {
        tags.TRIGGER: request.request.trigger,
        tags.EXECUTION: request.execution_id,
        tags.IMAGE_BUILD: image.arn,
        tags.BASE_IMAGE: image.parent_image,
        tags.BUILD_TIME: image.date_created,
    }
    if request.build.pipeline == "app":
        values[tags.COMMIT] = bake.commit or request.request.commit
        values[tags.BRANCH] = request.request.branch
        values[tags.REPOSITORY] = repository
    return {key: value for key, value in values.items() if value is not None}


def _reason(image: BuildImage) -> str:
    reason = image.reason or f"Image Builder status {image.status}"
    if image.failed_during:
        reason += f" (failed while {image.failed_during})"
    return reason


def bakes_of(request: CheckImageBuildInput) -> list[Bake]:
    build = request.build
    if build.bakes:
        return build.bakes
    return [Bake(commit=build.commit, image_build_version_arn=build.image_build_version_arn)]


def _own_copies(image: BuildImage) -> list[OutputAmi]:
    account = _account_of(image.arn)
    return [ami for ami in image.amis if ami.account_id is None or account is None or ami.account_id == account]


def cancel_token(build_token: str, build_arn: str) -> str:
    """CancelImageCreation's client token: the same for a retried cancel of a build, another for each build.

    A token used again with another imageBuildVersionArn is not a retry but a mismatch (IdempotentParameterMismatch:
    EC2 API Reference, "Ensuring idempotency", https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Run_Instance_Idempotency.html,
    which Image Builder's clientToken refers to), so the build's ARN is part of it.
    """
    digest = hashlib.sha256(f"{build_token}|{build_arn}".encode()).hexdigest()
    return f"cancel-{digest}"[:MAX_CLIENT_TOKEN_LENGTH]


def cancel_running(
    request: CheckImageBuildInput, builds: BuildReader, canceller: BuildCanceller, elapsed: int
) -> CheckImageBuildOutput:
    """Cancel every build of the bake that has not ended; report which."""
    cancelled: list[str] = []
    for bake in bakes_of(request):
        arn = bake.image_build_version_arn
        if arn is None:
            continue
        status = map_status(builds.get_image(arn).status)
        if status != "BUILDING":
            continue
        if canceller.cancel(arn, cancel_token(request.build.client_token, arn)):
            cancelled.append(arn)
    logger.warning("cancelled the builds still running", extra={"cancelled": cancelled})
    if cancelled:
        metrics.add_metric(name="ImageBuildsCancelled", unit=MetricUnit.Count, value=len(cancelled))
    return CheckImageBuildOutput(
        status="CANCELLED",
        ami_id=None,
        image_build_version_arn=request.build.image_build_version_arn,
        reason=f"cancelled {len(cancelled)} build(s) still running" if cancelled else "no build was still running",
        pipeline=request.build.pipeline,
        elapsed_seconds=elapsed,
        cancelled=cancelled,
    )


def run(
    request: CheckImageBuildInput,
    region: str,
    *,
    builds: BuildReader,
    tagger: AmiTagger,
    packages: PackageReader | None = None,
    images: ImageLister | None = None,
    application: str | None = None,
    canceller: BuildCanceller | None = None,
    repository: str | None = None,
    snapshots: SnapshotTagger | None = None,
    now: Callable[[], datetime] | None = None,  # shared.clock.now, looked up at call time
) -> CheckImageBuildOutput:
    build = request.build
    elapsed = max(0, int((now or clock.now)().timestamp()) - build.started_at) if build.started_at is not None else 0
    dry_run = request.dry_run or request.request.dry_run or build.dry_run
    bakes = bakes_of(request)
    if any(b.image_build_version_arn is None for b in bakes):
        if not dry_run:
            raise InvalidInput("build.imageBuildVersionArn: required (only a dry run starts no build)")
        return CheckImageBuildOutput(
            status="AVAILABLE",
            ami_id=None,
            image_build_version_arn=None,
            reason="dry run: no image was built, so there is no AMI",
            pipeline=build.pipeline,
        )
    if request.cancel:
        if canceller is None:
            raise InvalidInput("cancel: this function was deployed without a canceller")
        return cancel_running(request, builds, canceller, elapsed)

    def output(
        status: BuildStatus,
        reason: str,
        arn: str | None,
        ami_id: str | None = None,
        unchanged: bool = False,
        baked: list[BakedImage] | None = None,
    ) -> CheckImageBuildOutput:
        log = logger.warning if status in ("FAILED", "CANCELLED") else logger.info
        log(f"image build {status}", extra={"imageBuildVersionArn": arn, "amiId": ami_id, "reason": reason})
        count_terminal(status)
        return CheckImageBuildOutput(
            status=status,
            ami_id=ami_id,
            image_build_version_arn=arn,
            reason=reason,
            pipeline=build.pipeline,
            base_unchanged=unchanged,
            elapsed_seconds=elapsed,
            pending_build_arn=arn if status == "BUILDING" else None,
            images=baked if build.commits_from == "targets" else None,
        )

    if snapshots is not None and not application:
        raise InvalidInput("application: required to tag the AMI's snapshots with it")

    def snapshot_tags(wanted: dict[str, str]) -> dict[str, str]:
        # Image Builder's distribution puts the application and pipeline tags on the AMI only (amiTags).
        return {tags.APPLICATION: str(application), tags.PIPELINE: build.pipeline, **wanted}

    several = len(bakes) > 1
    seen: list[tuple[Bake, BuildImage]] = []
    pending: tuple[Bake, str] | None = None
    ended: tuple[BuildStatus, str, str] | None = None  # the first build that failed or was cancelled
    for bake in bakes:
        arn = bake.image_build_version_arn
        assert arn is not None
        image = builds.get_image(arn)
        status = map_status(image.status)
        of = f"commit {bake.commit}: " if several and bake.commit else ""
        if status in ("FAILED", "CANCELLED"):
            ended = ended or (status, of + _reason(image), arn)
        elif status == "BUILDING":
            pending = pending or (bake, of + _reason(image))
        else:
            seen.append((bake, image))

    def tag_copies(bake: Bake, image: BuildImage) -> None:
        wanted = image_tags(request, bake, image, repository)
        if dry_run:
            logger.info(
                "dry run: would tag the AMI", extra={"amiIds": [a.image_id for a in image.amis], "tags": wanted}
            )
            return
        for copy in _own_copies(image):
            where = None if copy.region == region else copy.region
            tagger.tag_image(copy.image_id, wanted, where)
            if snapshots is not None:
                tagged = snapshots.tag_image_snapshots(copy.image_id, snapshot_tags(wanted), where)
                logger.info("tagged the AMI's snapshots", extra={"amiId": copy.image_id, "snapshotIds": tagged})

    if ended is not None:
        # The bake fails, but a sibling that already ended AVAILABLE made an AMI: tag it all the same, so it says
        # which commit it holds and on which base (prune then treats it as any other image of the application).
        for bake, image in seen:
            try:
                tag_copies(bake, image)
            except ImageNotReady:
                logger.warning(
                    "an AMI of a finished sibling is not visible yet: left untagged", extra={"arn": image.arn}
                )
        return output(*ended)
    if pending is not None:
        return output("BUILDING", pending[1], pending[0].image_build_version_arn)

    baked: list[BakedImage] = []
    for bake, image in seen:
        ami = ami_of_region(image, region)
        if ami is None:
            found = ", ".join(f"{a.image_id} in {a.region}" for a in image.amis) or "none"
            return output(
                "FAILED", f"the image build is AVAILABLE but distributed no AMI to {region} (AMIs: {found})", image.arn
            )
        try:
            tag_copies(bake, image)
        except ImageNotReady as exc:
            # Just distributed: EC2 does not list the AMI yet. Ask again on the next poll.
            return output("BUILDING", f"{ami.image_id} is built but not visible to EC2 yet ({exc})", image.arn)
        baked.append(BakedImage(commit=bake.commit, ami_id=ami.image_id))

    first_bake, first = seen[0]
    ami_id = baked[0].ami_id
    unchanged = False
    if build.pipeline == "base" and packages is not None and images is not None and application:
        unchanged = base_unchanged(ami_id, application, packages, images, first.arn, build.running_bases)
    reason = first.reason or (
        f"{ami_id} is available in {region}" if not several else f"{len(baked)} images available in {region}"
    )
    if unchanged:
        reason = f"{ami_id} installs exactly the packages of the previous base image: nothing to roll out"
    count_bake_durations([image for _, image in seen], (now or clock.now)())
    return output("AVAILABLE", reason, first_bake.image_build_version_arn, ami_id, unchanged, baked)
