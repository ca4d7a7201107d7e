"""prune_images, the deletions: deregister each image of the batch with DeleteAssociatedSnapshots, paced to EC2's
documented DeregisterImage rate on `shared.clock` (the rehearsal runs it on simulated time) and stopped by the
invocation's deadline; report per image and per snapshot.

Snapshots: the role may delete only snapshots tagged with this application (check_image_build tags every new
AMI's). An older AMI's untagged snapshot comes back "missing-permissions": the AMI is deregistered, the snapshot
stays (an ordinary snapshot, not in the Recycle Bin) and is listed in `snapshotsKept`, to delete by hand; tagging
it here would need CreateTags on snapshots, which would let this function make any snapshot deletable.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from prune_images.models import PruneFailure, PruneImagesOutput, PruneProgress, SkippedImage
from prune_images.plan import PrunePlan
from shared import clock
from shared.aws.images import Images
from shared.errors import ImageDeregistrationFailed
from shared.observability import logger, metrics
from shared.tags import APPLICATION as APPLICATION_TAG

_SNAPSHOT_SKIPPED = "skipped"
_SNAPSHOT_DELETED = "success"
# EC2 API Reference, DeleteSnapshotReturnCode (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSnapshotReturnCode.html):
# "missing-permissions - The snapshot was not deleted because the role lacks DeleteSnapshot permissions".
_SNAPSHOT_NOT_PERMITTED = "missing-permissions"

# Amazon EC2 Developer Guide, "Request throttling for the Amazon EC2 API" (Uncategorized actions): DeregisterImage
# has a bucket of 100 requests refilled at 5 per second, per account and Region. The bucket is shared with every
# other caller of the account, so no burst is counted on: the batch and the pacing assume the refill rate alone.
DEREGISTER_IMAGE_PER_SECOND = 5.0
# Kept from the Lambda's remaining time for what follows the last deletion (the result, its log line) and for one
# DeregisterImage whose throttling outlived the pacing (botocore's standard retries: 5, each backoff at most
# 2^n s, capped at 20 s): a tenth of it, 60 s of the 600 s function.
SAFETY_MARGIN_FRACTION = 0.1


class Deadline:
    """The invocation's deadline on `shared.clock.now`: its remaining time less the safety margin."""

    def __init__(self, seconds_left: float | None) -> None:
        self._at: datetime | None = None
        if seconds_left is not None:
            self._at = clock.now() + timedelta(seconds=max(0.0, seconds_left * (1 - SAFETY_MARGIN_FRACTION)))

    def seconds(self) -> float:
        return math.inf if self._at is None else (self._at - clock.now()).total_seconds()

    def deletions_that_fit(self) -> int:
        """DeregisterImage calls the time left allows at the documented refill rate (at least one per second left)."""
        left = self.seconds()
        return 1_000_000 if math.isinf(left) else max(0, math.floor(left * DEREGISTER_IMAGE_PER_SECOND))


class Pacer:
    """Spaces calls 1/rate apart on `shared.clock` (the rehearsal runs it on simulated time)."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next: datetime | None = None

    def wait(self) -> None:
        now = clock.now()
        if self._next is not None and self._next > now:
            clock.sleep((self._next - now).total_seconds())
            now = self._next
        self._next = now + timedelta(seconds=self._interval)


def listed_skips(plan: PrunePlan) -> list[SkippedImage]:
    """The plan's skips, as the result lists them."""
    return [SkippedImage(ami_id=d.image_id, reason="; ".join(d.reasons)) for d in plan.decisions if d.action == "skip"]


def execute(
    plan: PrunePlan,
    images: Images,
    to_delete: list[str] | None = None,
    deadline: Deadline | None = None,
    application: str | None = None,
) -> PruneImagesOutput:
    """Deregister `to_delete` (the plan's deletions by default) in order, paced to the documented rate, until the
    deadline; a base image is skipped when an app image built on it failed to go in this same round."""
    deadline = deadline or Deadline(None)
    pacer = Pacer(DEREGISTER_IMAGE_PER_SECOND)
    failed: set[str] = set()  # this round's images that stay registered after all
    longest = 0.0  # seconds the slowest DeregisterImage of this invocation took (retries included)
    built_on = plan.built_on()
    pruned: list[str] = []
    snapshots_deleted: list[str] = []
    snapshots_kept: list[str] = []
    skipped = listed_skips(plan)
    failures: list[PruneFailure] = []
    deregistered = 0

    for image_id in plan.ids("delete") if to_delete is None else to_delete:
        # Room for one more call: its pacing interval, or as long as the longest call so far took.
        if deadline.seconds() < max(1.0 / DEREGISTER_IMAGE_PER_SECOND, longest):
            logger.info("deadline reached: the next invocation continues", extra={"amiId": image_id})
            break
        if failed & built_on.get(image_id, set()):
            skipped.append(SkippedImage(ami_id=image_id, reason="an image built on it could not be deregistered"))
            continue
        pacer.wait()
        started = clock.now()
        try:
            outcome = images.deregister_with_snapshots(image_id)
        except ImageDeregistrationFailed as exc:
            logger.error(
                "could not deregister image", extra={"amiId": image_id, "code": exc.code, "error": exc.message}
            )
            failures.append(PruneFailure(ami_id=image_id, code=exc.code, message=exc.message))
            failed.add(image_id)
            continue
        except (ClientError, BotoCoreError) as exc:  # an unexpected AWS error or a network error (throttles: Throttled)
            code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
            logger.exception("could not deregister image", extra={"amiId": image_id, "code": code})
            failures.append(PruneFailure(ami_id=image_id, code=code, message=str(exc)))
            failed.add(image_id)
            continue
        finally:
            longest = max(longest, (clock.now() - started).total_seconds())

        if outcome.status == "protected":
            logger.info("image has deregistration protection: skipped", extra={"amiId": image_id})
            skipped.append(SkippedImage(ami_id=image_id, reason=f"deregistration protection ({outcome.message})"))
            failed.add(image_id)
            continue
        pruned.append(image_id)
        logger.info(
            "image pruned",
            extra={"amiId": image_id, "status": outcome.status, "snapshotIds": list(plan.snapshots.get(image_id, ()))},
        )
        if outcome.status == "already-gone":
            logger.info("image was already deregistered", extra={"amiId": image_id})
            continue
        deregistered += 1
        not_permitted = [s.snapshot_id for s in outcome.snapshots if s.return_code == _SNAPSHOT_NOT_PERMITTED]
        untagged = set(
            images.snapshots_without_tag(not_permitted, APPLICATION_TAG, application)
            if not_permitted and application
            else ()
        )
        for snapshot in outcome.snapshots:
            if snapshot.return_code == _SNAPSHOT_DELETED:
                snapshots_deleted.append(snapshot.snapshot_id)
            elif snapshot.return_code == _SNAPSHOT_SKIPPED:
                logger.info(
                    "snapshot kept: another AMI uses it", extra={"amiId": image_id, "snapshotId": snapshot.snapshot_id}
                )
                skipped.append(
                    SkippedImage(
                        ami_id=image_id,
                        reason=f"image deregistered; snapshot {snapshot.snapshot_id} kept: another AMI uses it",
                    )
                )
            elif snapshot.snapshot_id in untagged:
                # Baked before check_image_build tagged snapshots: this role may not delete it, by design.
                logger.warning(
                    "snapshot kept: it lacks the application tag, so this function may not delete it",
                    extra={"amiId": image_id, "snapshotId": snapshot.snapshot_id},
                )
                snapshots_kept.append(snapshot.snapshot_id)
            else:
                logger.error(
                    "snapshot was not deleted",
                    extra={"amiId": image_id, "snapshotId": snapshot.snapshot_id, "code": snapshot.return_code},
                )
                failures.append(
                    PruneFailure(
                        ami_id=image_id,
                        code=snapshot.return_code,
                        message=f"image deregistered, but snapshot {snapshot.snapshot_id} was not deleted "
                        f"(DeleteSnapshotResults return code {snapshot.return_code})",
                    )
                )

    metrics.add_metric(name="ImagesPruned", unit=MetricUnit.Count, value=deregistered)
    metrics.add_metric(name="SnapshotsDeleted", unit=MetricUnit.Count, value=len(snapshots_deleted))
    result = PruneImagesOutput(
        images_kept=plan.ids("keep"),
        images_pruned=pruned,
        snapshots_deleted=snapshots_deleted,
        skipped=skipped,
        failures=failures,
        snapshots_kept=snapshots_kept,
        snapshots_kept_reason=(
            f"not tagged {APPLICATION_TAG}={application} (their images were baked before snapshots were tagged), "
            "so the prune may not delete them; the images are deregistered, these snapshots remain as ordinary "
            "snapshots: delete them by hand once the images are no longer wanted"
            if snapshots_kept
            else None
        ),
        done=True,
        progress=PruneProgress(
            rounds=1,
            images_pruned=len(pruned),
            snapshots_deleted=len(snapshots_deleted),
            failures=len(failures),
            remaining=0,
        ),
    )
    logger.info(
        "prune finished",
        extra={
            "pruned": pruned,
            "snapshotsDeleted": snapshots_deleted,
            "snapshotsKept": snapshots_kept,
            "failures": len(failures),
        },
    )
    return result
