"""The prune plan: a pure function from facts about the fleet to one decision (keep, delete, skip) per AMI.

No AWS access here, so hypothesis can check the safety rule over random fleets
(tests/unit/test_prune_images_plan_properties.py): an AMI is deleted only if no rule keeps it,
and every rule that applies is named in its reasons.

Rules (README, "Safety rules", rule 2), each an id in `Decision.rules`:
- `newest`: among the newest `keep_images` available images of its pipeline (base and app counted separately);
- `base-of-kept-app`: a base image named by the `immutable-ami:base-image` tag of an app image that stays;
- `launch-template`: used by a version of a configured launch template;
- `instance`: used by a pending, running, stopping or stopped instance;
- `refresh`: named by an in-flight instance refresh of a configured group;
- `group`: launched by an Auto Scaling group of the application (a live, green or retained blue-green group,
  even scaled to zero, or a configured group): a rollback to a retained group needs its AMI;
- `protected`: in the execution's protect list (the image just deployed, the rollback target);
- `referenced`: DescribeImageReferences lists a resource referencing it (the independent second check);
- `state`: not settled (pending, transient, or a state this code does not know): never touched;
- `unmanaged`: not tagged with this application and a pipeline of "base" or "app": not ours to prune.
An image no rule keeps is skipped instead of deleted when it has deregistration protection, or when the
DescribeImageReferences check could not be made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from shared.aws.images import ImageRecord, newest_first

APP = "app"
BASE = "base"
PIPELINES = (BASE, APP)
# Images in these states are gone or going (DescribeImages lists them briefly after deregistration): not candidates.
GONE_STATES = frozenset({"deregistered", "disabled"})
# Only settled images are ever deleted; a pending image may be the build this very execution waits for.
DELETABLE_STATES = frozenset({"available", "failed", "error", "invalid"})

Action = Literal["keep", "delete", "skip"]


@dataclass(frozen=True)
class PruneFacts:
    application: str
    keep_images: int
    images: tuple[ImageRecord, ...]
    # AMI id -> what uses it, in words ("lt-0abc version 7 (default)", "i-0123", "web-app-prod refresh 1234").
    launch_template_refs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    instance_refs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    refresh_refs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # AMI id -> the groups launching from it ("Auto Scaling group web-app-prod-exec1 (retained)").
    group_refs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    protected_ids: frozenset[str] = frozenset()
    # From DescribeImageReferences (AMI id -> ARNs); None while it has not been asked yet (the draft plan).
    image_references: Mapping[str, tuple[str, ...]] | None = None
    # Why DescribeImageReferences could not be asked; every image otherwise deleted is skipped instead.
    image_references_error: str | None = None


@dataclass(frozen=True)
class Decision:
    image_id: str
    pipeline: str | None
    creation_date: str
    action: Action
    rules: frozenset[str]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PrunePlan:
    decisions: tuple[Decision, ...]
    snapshots: Mapping[str, tuple[str, ...]]  # AMI id -> its snapshot ids, for every image in the plan
    bases: Mapping[str, str] = field(default_factory=dict)  # AMI id -> the base image its tag names

    def built_on(self) -> dict[str, set[str]]:
        """Base image id -> the images of the plan whose base-image tag names it."""
        found: dict[str, set[str]] = {}
        for image_id, base in self.bases.items():
            if base != image_id:
                found.setdefault(base, set()).add(image_id)
        return found

    def ids(self, action: Action) -> list[str]:
        return [d.image_id for d in self.decisions if d.action == action]

    def by_id(self) -> dict[str, Decision]:
        return {d.image_id: d for d in self.decisions}

    def snapshots_to_delete(self) -> list[str]:
        """Snapshots of deleted images that no image staying behind uses (AWS skips shared ones itself)."""
        staying = {s for d in self.decisions if d.action != "delete" for s in self.snapshots.get(d.image_id, ())}
        return sorted(
            {s for d in self.decisions if d.action == "delete" for s in self.snapshots.get(d.image_id, ())} - staying
        )


def plan_prune(facts: PruneFacts) -> PrunePlan:
    candidates = newest_first(i for i in facts.images if i.state not in GONE_STATES)
    reasons: dict[str, list[tuple[str, str]]] = {i.image_id: [] for i in candidates}

    def keep(image_id: str, rule: str, why: str) -> None:
        reasons[image_id].append((rule, why))

    for pipeline in PIPELINES:
        available = [i for i in candidates if _managed(i, facts.application) and i.pipeline == pipeline]
        available = [i for i in available if i.state == "available"]
        for rank, image in enumerate(available[: facts.keep_images], start=1):
            keep(image.image_id, "newest", f"newest {pipeline} image #{rank} of {facts.keep_images} kept")

    refs = facts.image_references or {}
    for image in candidates:
        image_id = image.image_id
        if image.state not in DELETABLE_STATES:
            keep(image_id, "state", f'state "{image.state}" is not settled')
        if not _managed(image, facts.application):
            keep(image_id, "unmanaged", f"not tagged with application {facts.application!r} and pipeline base or app")
        for rule, users in (
            ("launch-template", facts.launch_template_refs),
            ("instance", facts.instance_refs),
            ("refresh", facts.refresh_refs),
            ("referenced", refs),
        ):
            if users.get(image_id):
                keep(image_id, rule, f"{rule} reference: {', '.join(users[image_id])}")
        if facts.group_refs.get(image_id):
            keep(image_id, "group", f"used by {', '.join(facts.group_refs[image_id])}")
        if image_id in facts.protected_ids:
            keep(image_id, "protected", "protected by this execution")

    # An app image that stays (kept, or skipped because it cannot be deleted) keeps the base image it was built on.
    staying_apps = [
        i for i in candidates if i.pipeline == APP and (reasons[i.image_id] or _undeletable_why(i, facts) is not None)
    ]
    for app in staying_apps:
        parent = app.base_image_id
        if parent in reasons and parent != app.image_id:
            keep(parent, "base-of-kept-app", f"base image of {app.image_id}")

    decisions = []
    for image in candidates:
        found = reasons[image.image_id]
        undeletable = _undeletable_why(image, facts)
        if found:
            action: Action = "keep"
            why = tuple(w for _, w in found)
        elif undeletable is not None:
            action, why = "skip", (undeletable,)
        else:
            action, why = (
                "delete",
                (f"older than the newest {facts.keep_images} {image.pipeline} images, unreferenced",),
            )
        decisions.append(
            Decision(
                image_id=image.image_id,
                pipeline=image.pipeline,
                creation_date=image.creation_date,
                action=action,
                rules=frozenset(r for r, _ in found),
                reasons=why,
            )
        )
    return PrunePlan(
        decisions=tuple(decisions),
        snapshots={i.image_id: i.snapshot_ids for i in candidates},
        bases={i.image_id: i.base_image_id for i in candidates if i.base_image_id},
    )


def _managed(image: ImageRecord, application: str) -> bool:
    return image.application == application and image.pipeline in PIPELINES


def _undeletable_why(image: ImageRecord, facts: PruneFacts) -> str | None:
    """Why an image no rule keeps must still not be deleted now, or None."""
    if has_deregistration_protection(image):
        return f"deregistration protection is {image.deregistration_protection}"
    if facts.image_references_error is not None:
        return f"references could not be checked ({facts.image_references_error}); not deleted"
    return None


def has_deregistration_protection(image: ImageRecord) -> bool:
    # DescribeImages reports "disabled", "enabled-with-cooldown", "enabled-without-cooldown", or
    # "disabled-until <time>" during a cooldown: anything but "disabled" (or absent) blocks deregistration.
    value = image.deregistration_protection
    return value is not None and value != "disabled"


def next_batch(
    plan: PrunePlan,
    facts: PruneFacts,
    limit: int,
    max_result_bytes: int,
    exclude: frozenset[str] = frozenset(),
) -> list[str]:
    """The images this round deletes: the plan's deletions chosen oldest first, at most `limit`, their ids and
    their snapshots' ids within `max_result_bytes` of result (the Step Functions payload is bounded), none in
    `exclude`; returned in the plan's order (newest first: an image before the base image it was built on).

    Images built on no image of the plan are chosen first, then the base images whose every remaining image
    (any image naming it in its `immutable-ami:base-image` tag and not yet deregistered) goes in this same
    round: a base image never leaves while an image built on it stays behind, even for a round. Pure.
    """
    if limit <= 0:
        return []
    children: dict[str, set[str]] = {}
    for image in facts.images:
        if image.state not in GONE_STATES and image.base_image_id and image.base_image_id != image.image_id:
            children.setdefault(image.base_image_id, set()).add(image.image_id)
    deletable = [d for d in reversed(plan.decisions) if d.action == "delete" and d.image_id not in exclude]
    chosen: list[str] = []
    used = 0

    def fits(image_id: str) -> bool:
        nonlocal used
        cost = result_bytes(image_id, plan.snapshots.get(image_id, ()))
        if len(chosen) >= limit or used + cost > max_result_bytes:
            return False
        used += cost
        chosen.append(image_id)
        return True

    for decision in deletable:
        if decision.image_id not in children and not fits(decision.image_id):
            break
    taken = set(chosen)
    for decision in deletable:
        users = children.get(decision.image_id)
        if users is not None and users <= taken and not fits(decision.image_id):
            break
        taken = set(chosen)
    return [d.image_id for d in plan.decisions if d.image_id in taken]


def result_bytes(image_id: str, snapshot_ids: tuple[str, ...]) -> int:
    """What an image adds to the step's JSON result: its id quoted, and each of its snapshots' ids."""
    return len(image_id) + 3 + sum(len(s) + 3 for s in snapshot_ids)
