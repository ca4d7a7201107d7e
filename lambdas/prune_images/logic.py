"""prune_images: deregister this application's old AMIs (and their snapshots) that nothing uses.

1. Gather facts (reads only): our images, every version of the configured launch templates, instances using
   our images, in-flight instance refreshes of the configured groups, and the launch template version of every
   Auto Scaling group of the application (tagged with it: live, green or retained blue-green groups, even scaled
   to zero; and the configured groups by name), so a rollback to a retained group finds its AMI.
2. Draft the plan (plan.py, pure). Ask DescribeImageReferences about every image the draft would delete,
   and plan again with its answer: the second, independent safety net can only turn a delete into a keep.
3. Unless it is a dry run, deregister each image with DeleteAssociatedSnapshots; report per image.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from prune_images.models import PruneFailure, PruneImagesInput, PruneImagesOutput, SkippedImage
from prune_images.plan import Decision, PruneFacts, PrunePlan, plan_prune

from shared.aws.images import Images
from shared.aws.references import ApplicationGroup, FleetReferences, LaunchTemplateRef, LaunchTemplateVersionRecord
from shared.config import DeployConfig
from shared.errors import ImageDeregistrationFailed, LaunchTemplateNotFound
from shared.observability import logger, metrics
from shared.versions import version_number

# Instances in these states hold their AMI (a stopped instance can be started again).
IN_USE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
# Instance refresh statuses in which the refresh may still launch instances from its desired configuration.
IN_FLIGHT_REFRESH_STATUSES = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})
_SNAPSHOT_SKIPPED = "skipped"
_SNAPSHOT_DELETED = "success"


def prune_images(
    payload: PruneImagesInput, config: DeployConfig, images: Images, fleet: FleetReferences
) -> PruneImagesOutput:
    facts = gather_facts(config, images, fleet, payload.protected())
    plan = final_plan(facts, images)
    _log_plan(plan, payload.dry_run)
    if payload.dry_run:
        metrics.add_metric(name="ImagesPruned", unit=MetricUnit.Count, value=0)
        metrics.add_metric(name="SnapshotsDeleted", unit=MetricUnit.Count, value=0)
        return PruneImagesOutput(
            images_kept=plan.ids("keep"),
            images_pruned=plan.ids("delete"),
            snapshots_deleted=plan.snapshots_to_delete(),
            skipped=[SkippedImage(ami_id=d.image_id, reason="; ".join(d.reasons)) for d in _skips(plan)],
            failures=[],
        )
    return execute(plan, images)


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


def final_plan(facts: PruneFacts, images: Images) -> PrunePlan:
    """Plan, then ask DescribeImageReferences about what the plan would delete, and plan again with the answer."""
    draft = plan_prune(facts)
    to_check = draft.ids("delete")
    if not to_check:
        return draft
    try:
        found: dict[str, list[str]] = defaultdict(list)
        for reference in images.find_references(to_check):
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


def execute(plan: PrunePlan, images: Images) -> PruneImagesOutput:
    pruned: list[str] = []
    snapshots_deleted: list[str] = []
    skipped = [SkippedImage(ami_id=d.image_id, reason="; ".join(d.reasons)) for d in _skips(plan)]
    failures: list[PruneFailure] = []
    deregistered = 0

    for image_id in plan.ids("delete"):
        try:
            outcome = images.deregister_with_snapshots(image_id)
        except ImageDeregistrationFailed as exc:
            logger.error(
                "could not deregister image", extra={"amiId": image_id, "code": exc.code, "error": exc.message}
            )
            failures.append(PruneFailure(ami_id=image_id, code=exc.code, message=exc.message))
            continue
        except (ClientError, BotoCoreError) as exc:  # a throttle that outlived the SDK's retries, a network error
            code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
            logger.exception("could not deregister image", extra={"amiId": image_id, "code": code})
            failures.append(PruneFailure(ami_id=image_id, code=code, message=str(exc)))
            continue

        if outcome.status == "protected":
            logger.info("image has deregistration protection: skipped", extra={"amiId": image_id})
            skipped.append(SkippedImage(ami_id=image_id, reason=f"deregistration protection ({outcome.message})"))
            continue
        pruned.append(image_id)
        if outcome.status == "already-gone":
            logger.info("image was already deregistered", extra={"amiId": image_id})
            continue
        deregistered += 1
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
    )
    logger.info(
        "prune finished",
        extra={"pruned": pruned, "snapshotsDeleted": snapshots_deleted, "failures": len(failures)},
    )
    return result


def _skips(plan: PrunePlan) -> list[Decision]:
    return [d for d in plan.decisions if d.action == "skip"]


def _log_plan(plan: PrunePlan, dry_run: bool) -> None:
    logger.info(
        "prune plan",
        extra={
            "dryRun": dry_run,
            "decisions": [
                {
                    "amiId": d.image_id,
                    "pipeline": d.pipeline,
                    "creationDate": d.creation_date,
                    "action": d.action,
                    "reasons": list(d.reasons),
                }
                for d in plan.decisions
            ],
        },
    )
