"""prune_images: deregister this application's old AMIs (and their snapshots) that nothing uses.

1. Gather facts (facts.py, reads only): our images, every version of the configured launch templates, instances
   using our images, in-flight instance refreshes of the configured groups, and the launch template version of
   every Auto Scaling group of the application (tagged with it: live, green or retained blue-green groups, even
   scaled to zero; and the configured groups by name), so a rollback to a retained group finds its AMI.
2. Draft the plan (plan.py, pure). Ask DescribeImageReferences about every image the draft would delete,
   and plan again with its answer (facts.final_plan): the second, independent safety net can only turn a delete
   into a keep.
3. Unless it is a dry run, deregister each image with DeleteAssociatedSnapshots (deletion.py); report per image,
   and for how long a pruned image can be restored from the Recycle Bin (retention.recycleBinDays,
   stacks/recycle_bin.py).

Bounded: one invocation deletes one batch (plan.next_batch), as many images as fit before its deadline at EC2's
documented DeregisterImage rate, and whose ids fit the result's size budget; DescribeImageReferences is asked
about that batch only. It paces DeregisterImage to the documented refill rate through `shared.clock.sleep`, and
stops early when the deadline (the Lambda context's remaining time less a safety margin, on `shared.clock.now`)
comes first. `done` is false while the plan still has images to delete; the state machine then calls again with
the cumulative `progress`, and the next invocation plans afresh from what AWS reports.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from prune_images.deletion import Deadline, execute, listed_skips
from prune_images.facts import final_plan, gather_facts
from prune_images.models import PruneImagesInput, PruneImagesOutput, PruneProgress
from prune_images.plan import PruneFacts, PrunePlan, next_batch, plan_prune
from shared.aws.images import Images
from shared.aws.references import FleetReferences
from shared.config import DeployConfig
from shared.observability import logger, metrics

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
        "make restore-image AMI=ami-... (python -m scripts.restore_image; snapshots of images baked before snapshots "
        "were tagged are kept "
        "instead, not deleted)"
    )


def _with_restorable(output: PruneImagesOutput, config: DeployConfig) -> PruneImagesOutput:
    days = config.retention.recycle_bin_days
    output.recycle_bin_days = days
    output.restorable = restorable(days)
    return output


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
        skipped=listed_skips(plan),
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
