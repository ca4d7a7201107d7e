"""prune_images: deregister this application's old AMIs (and their snapshots) that nothing uses.

1. Gather facts (reads only): our images, every version of the configured launch templates, instances using
   our images, in-flight instance refreshes of the configured groups, and the launch template version of every
   Auto Scaling group of the application (tagged with it: live, green or retained blue-green groups, even scaled
   to zero; and the configured groups by name), so a rollback to a retained group finds its AMI.
2. Draft the plan (plan.py, pure). Ask DescribeImageReferences about every image the draft would delete,
   and plan again with its answer: the second, independent safety net can only turn a delete into a keep.
3. Unless it is a dry run, deregister each image with DeleteAssociatedSnapshots; report per image, and for how
   long a pruned image can be restored from the Recycle Bin (retention.recycleBinDays, stacks/recycle_bin.py).

Snapshots: the role may delete only snapshots tagged with this application (check_image_build tags every new
AMI's). An older AMI's untagged snapshot comes back "missing-permissions": the AMI is deregistered, the snapshot
stays (an ordinary snapshot, not in the Recycle Bin) and is listed in `snapshotsKept`, to delete by hand; tagging
it here would need CreateTags on snapshots, which would let this function make any snapshot deletable.

Bounded: one invocation deletes one batch (plan.next_batch), as many images as fit before its deadline at EC2's
documented DeregisterImage rate, and whose ids fit the result's size budget; DescribeImageReferences is asked
about that batch only. It paces DeregisterImage to the documented refill rate through `shared.clock.sleep`, and
stops early when the deadline (the Lambda context's remaining time less a safety margin, on `shared.clock.now`)
comes first. `done` is false while the plan still has images to delete; the state machine then calls again with
the cumulative `progress`, and the next invocation plans afresh from what AWS reports.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from prune_images.models import PruneFailure, PruneImagesInput, PruneImagesOutput, PruneProgress, SkippedImage
from prune_images.plan import Decision, PruneFacts, PrunePlan, next_batch, plan_prune

from shared import clock
from shared.aws.images import Images
from shared.aws.references import ApplicationGroup, FleetReferences, LaunchTemplateRef, LaunchTemplateVersionRecord
from shared.config import DeployConfig
from shared.errors import ImageDeregistrationFailed, LaunchTemplateNotFound
from shared.observability import logger, metrics
from shared.recipes import RECIPE_DIGEST_LENGTH
from shared.tags import APPLICATION as APPLICATION_TAG
from shared.versions import version_number

# Instances in these states hold their AMI (a stopped instance can be started again).
IN_USE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
# Instance refresh statuses in which the refresh may still launch instances from its desired configuration.
IN_FLIGHT_REFRESH_STATUSES = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})
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
# The ids one invocation lists (images pruned, snapshots deleted): Step Functions caps a state's input and output
# at 256 KiB, and the execution's state and the final notification carry this result too.
RESULT_BUDGET_BYTES = 80 * 1024
# An execution stops looping after this many invocations whatever remains (the next deployment continues).
MAX_ROUNDS = 100
# Images found referenced that the progress carries (so later invocations do not ask again); beyond it, the loop
# ends rather than asking about the same images over and over.
MAX_REFERENCED_CARRIED = 1000


def prune_images(
    payload: PruneImagesInput,
    config: DeployConfig,
    *,
    images: Images,
    fleet: FleetReferences,
    seconds_left: float | None = None,
) -> PruneImagesOutput:
    """One invocation: `seconds_left` is the Lambda context's remaining time (None: no deadline, tests only)."""
    deadline = Deadline(seconds_left)
    before = payload.progress or PruneProgress(rounds=0, images_pruned=0, snapshots_deleted=0, failures=0, remaining=0)
    carried = frozenset(before.referenced_ami_ids)
    facts = gather_facts(config, images, fleet, payload.protected())
    draft = plan_prune(facts)
    if payload.dry_run:
        return _with_restorable(_dry_run(facts, images, draft, before), config)
    batch = next_batch(draft, facts, deadline.deletions_that_fit(), RESULT_BUDGET_BYTES, exclude=carried)
    plan = final_plan(facts, images, batch)
    _log_plan(plan, payload.dry_run, batch)
    decided = plan.by_id()
    referenced = [i for i in batch if decided[i].action != "delete" and "referenced" in decided[i].rules]
    output = execute(
        plan, images, [i for i in batch if decided[i].action == "delete"], deadline, application=config.application
    )
    _with_restorable(output, config)
    all_referenced = list(dict.fromkeys([*before.referenced_ami_ids, *referenced]))
    waiting = [i for i in draft.ids("delete") if i not in set(all_referenced)]
    remaining = max(0, len(waiting) - len(output.images_pruned))
    rounds = before.rounds + 1
    output.progress = PruneProgress(
        rounds=rounds,
        images_pruned=before.images_pruned + len(output.images_pruned),
        snapshots_deleted=before.snapshots_deleted + len(output.snapshots_deleted),
        failures=before.failures + len(output.failures),
        remaining=remaining,
        referenced_ami_ids=all_referenced[:MAX_REFERENCED_CARRIED],
    )
    progressed = bool(output.images_pruned or referenced)
    output.done = (
        remaining == 0 or not progressed or rounds >= MAX_ROUNDS or len(all_referenced) > MAX_REFERENCED_CARRIED
    )
    logger.info(
        "prune round finished",
        extra={
            "round": rounds,
            "done": output.done,
            "remaining": remaining,
            "batch": len(batch),
            "recycleBinDays": output.recycle_bin_days,
            "restorable": output.restorable,
        },
    )
    return output


def restorable(days: int) -> str:
    """How long a pruned image can be brought back, in words (the prune's result and log lines say it)."""
    if days <= 0:
        return "pruned images cannot be restored: retention.recycleBinDays is 0 (no Recycle Bin rule)"
    return (
        f"pruned images stay restorable for {days} day(s) from the Recycle Bin: "
        "python scripts/restore_image.py AMI (snapshots of images baked before snapshots were tagged are kept "
        "instead, not deleted)"
    )


def _with_restorable(output: PruneImagesOutput, config: DeployConfig) -> PruneImagesOutput:
    days = config.retention.recycle_bin_days
    output.recycle_bin_days = days
    output.restorable = restorable(days)
    return output


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


def _dry_run(facts: PruneFacts, images: Images, draft: PrunePlan, before: PruneProgress) -> PruneImagesOutput:
    """The plan checked with DescribeImageReferences, deleting nothing. The images listed are bounded by the
    result budget (oldest first, as the prune would go); `progress.remaining` counts them all."""
    metrics.add_metric(name="ImagesPruned", unit=MetricUnit.Count, value=0)
    metrics.add_metric(name="SnapshotsDeleted", unit=MetricUnit.Count, value=0)
    listed = next_batch(draft, facts, len(draft.decisions), RESULT_BUDGET_BYTES)
    plan = final_plan(facts, images, listed)
    _log_plan(plan, True, listed)
    decided = plan.by_id()
    would = [i for i in listed if decided[i].action == "delete"]
    snapshots = set(plan.snapshots_to_delete())
    return PruneImagesOutput(
        images_kept=plan.ids("keep"),
        images_pruned=would,
        snapshots_deleted=sorted(s for i in would for s in plan.snapshots.get(i, ()) if s in snapshots),
        skipped=[SkippedImage(ami_id=d.image_id, reason="; ".join(d.reasons)) for d in _skips(plan)],
        failures=[],
        done=True,
        progress=PruneProgress(
            rounds=before.rounds + 1,
            images_pruned=0,
            snapshots_deleted=0,
            failures=0,
            remaining=len(plan.ids("delete")),
        ),
    )


def gather_facts(
    config: DeployConfig, images: Images, fleet: FleetReferences, protected_ids: frozenset[str]
) -> PruneFacts:
    all_images = images.list_application_images(config.application)
    candidate_ids = [i.image_id for i in all_images]

    launch_template_refs: dict[str, list[str]] = defaultdict(list)
    configured_versions: dict[str, list[LaunchTemplateVersionRecord]] = {}
    for template_id in dict.fromkeys(t.launch_template_id for t in config.all_targets()):
        configured_versions[template_id] = fleet.launch_template_versions(template_id)
        for version in configured_versions[template_id]:
            if version.image_id:
                default = " (default)" if version.default else ""
                launch_template_refs[version.image_id].append(
                    f"{template_id} version {version.version_number}{default}"
                )

    instance_refs = fleet.instances_using_images(candidate_ids, IN_USE_INSTANCE_STATES) if candidate_ids else {}

    refresh_refs: dict[str, list[str]] = defaultdict(list)
    for group in dict.fromkeys(t.auto_scaling_group_name for t in config.all_targets()):
        for refresh in fleet.instance_refreshes(group):
            if refresh.status not in IN_FLIGHT_REFRESH_STATUSES:
                continue
            where = f"{group} refresh {refresh.instance_refresh_id} ({refresh.status})"
            for image_id in refresh.image_ids:
                refresh_refs[image_id].append(where)
            for ref in refresh.launch_templates:
                for image_id in _template_images(fleet, ref):
                    refresh_refs[image_id].append(where)

    group_refs: dict[str, list[str]] = defaultdict(list)
    configured_groups = list(dict.fromkeys(t.auto_scaling_group_name for t in config.all_targets()))
    for app_group in fleet.application_groups(config.application, configured_groups):
        for image_id in _group_images(fleet, app_group, configured_versions):
            if app_group.description not in group_refs[image_id]:
                group_refs[image_id].append(app_group.description)

    return PruneFacts(
        application=config.application,
        keep_images=config.retention.keep_images,
        images=tuple(all_images),
        launch_template_refs={k: tuple(v) for k, v in launch_template_refs.items()},
        instance_refs={k: tuple(v) for k, v in instance_refs.items()},
        refresh_refs={k: tuple(v) for k, v in refresh_refs.items()},
        group_refs={k: tuple(v) for k, v in group_refs.items()},
        protected_ids=protected_ids,
    )


def _template_images(fleet: FleetReferences, ref: LaunchTemplateRef) -> list[str]:
    versions = fleet.launch_template_versions(
        ref.launch_template_id, launch_template_name=ref.launch_template_name, versions=[ref.version]
    )
    return [v.image_id for v in versions if v.image_id]


def _group_images(
    fleet: FleetReferences, group: ApplicationGroup, configured: dict[str, list[LaunchTemplateVersionRecord]]
) -> list[str]:
    """The AMIs a group launches from: its launch template version(s), and AMIs its overrides name.

    Versions of a configured template are resolved from the versions already read (no extra call, whatever the
    number of groups); another template (a target moved to a new one while retained groups still use the old)
    costs one DescribeLaunchTemplateVersions per distinct reference. A template or version that no longer
    exists launches nothing, so it protects nothing.
    """
    found = list(group.image_ids)
    for ref in group.launch_templates:
        known = configured.get(ref.launch_template_id or "")
        if known is not None:
            found.extend(v.image_id for v in _resolve(known, ref.version) if v.image_id)
            continue
        try:
            found.extend(_template_images(fleet, ref))
        except LaunchTemplateNotFound as exc:
            logger.warning(
                "launch template of a group not found: it protects no AMI",
                extra={"autoScalingGroupName": group.name, "error": str(exc)},
            )
    return found


def _resolve(versions: list[LaunchTemplateVersionRecord], version: str) -> list[LaunchTemplateVersionRecord]:
    """The version a group names ("7", "$Default" or "$Latest") among a template's versions."""
    default = next((v.version_number for v in versions if v.default), None)
    number = version_number(version, (v.version_number for v in versions), default)
    return [v for v in versions if v.version_number == number]


def own_bake_recipe(reference_arn: str, application: str) -> bool:
    """A per-bake app recipe of this application (image-recipe/<app>-app-<digest>/<version>).

    Every bake's recipe names its base AMI as parent, so DescribeImageReferences (IncludeAllResourceTypes
    covers imagebuilder:ImageRecipe, EC2 API Reference, DescribeImageReferences) reports each base ever used
    as referenced, forever. Such a reference does not keep a base: the app images built on it do (an app image
    that stays keeps its base), and the newest base images are kept by count.
    """
    marker = f":image-recipe/{application}-app-"
    if marker not in reference_arn:
        return False
    digest = reference_arn.split(marker, 1)[1].split("/", 1)[0]
    return len(digest) == RECIPE_DIGEST_LENGTH and all(c in "0123456789abcdef" for c in digest)


def final_plan(facts: PruneFacts, images: Images, batch: list[str] | None = None) -> PrunePlan:
    """Plan, then ask DescribeImageReferences about what the plan would delete (only `batch`, when given: the
    images this invocation deletes), and plan again with the answer."""
    draft = plan_prune(facts)
    drafted = draft.by_id()
    to_check = draft.ids("delete") if batch is None else [i for i in batch if drafted[i].action == "delete"]
    if not to_check:
        return draft
    try:
        found: dict[str, list[str]] = defaultdict(list)
        for reference in images.find_references(to_check):
            if own_bake_recipe(reference.arn, facts.application):
                continue
            found[reference.image_id].append(reference.arn or reference.resource_type)
        checked = replace(facts, image_references={k: tuple(v) for k, v in found.items()})
    except (ClientError, BotoCoreError) as exc:
        code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
        logger.warning(
            "DescribeImageReferences failed: nothing is deleted this time",
            extra={"error": str(exc), "amiIds": to_check},
        )
        checked = replace(facts, image_references_error=f"DescribeImageReferences failed: {code}")
    return plan_prune(checked)


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
    skipped = [SkippedImage(ami_id=d.image_id, reason="; ".join(d.reasons)) for d in _skips(plan)]
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


def _skips(plan: PrunePlan) -> list[Decision]:
    return [d for d in plan.decisions if d.action == "skip"]


def _log_plan(plan: PrunePlan, dry_run: bool, batch: list[str]) -> None:
    """The decisions about the batch, and counts for the rest (one line per image of a 5,000-image backlog would
    make every invocation's log a megabyte)."""
    in_batch = set(batch)
    logger.info(
        "prune plan",
        extra={
            "dryRun": dry_run,
            "counts": {a: len(plan.ids(a)) for a in ("keep", "delete", "skip")},
            "batch": len(batch),
            "decisions": [
                {
                    "amiId": d.image_id,
                    "pipeline": d.pipeline,
                    "creationDate": d.creation_date,
                    "action": d.action,
                    "reasons": list(d.reasons),
                }
                for d in plan.decisions
                if d.image_id in in_batch or d.action != "delete"
            ],
        },
    )
