"""Property tests of the prune plan over random fleets (hypothesis): safety rule 2 holds for every fleet."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st
from prune_images.plan import PruneFacts, PrunePlan, next_batch, plan_prune, result_bytes

from shared import tags
from shared.aws.images import ImageRecord

APPLICATION = "web-app"
STATES = ["available"] * 8 + ["pending", "transient", "failed", "error", "deregistered", "disabled"]
GONE = {"deregistered", "disabled"}
SETTLED = {"available", "failed", "error", "invalid"}


@dataclass(frozen=True)
class Fleet:
    facts: PruneFacts  # with DescribeImageReferences answered (or failed)

    @property
    def draft(self) -> PruneFacts:
        return replace(self.facts, image_references=None, image_references_error=None)


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    count = draw(st.integers(min_value=0, max_value=12))
    ids = [f"ami-{n:08x}" for n in range(count)]
    pipelines = [draw(st.sampled_from(["app", "app", "base", "base", None, "other"])) for _ in ids]
    base_ids = [i for i, p in zip(ids, pipelines, strict=True) if p == "base"]
    images = []
    for image_id, pipeline in zip(ids, pipelines, strict=True):
        image_tags = {tags.APPLICATION: draw(st.sampled_from([APPLICATION] * 9 + ["other-app"]))}
        if pipeline is not None:
            image_tags[tags.PIPELINE] = pipeline
        if pipeline == "app" and draw(st.booleans()):
            image_tags[tags.BASE_IMAGE] = draw(st.sampled_from([*base_ids, "ami-0fffffff"]))
        images.append(
            ImageRecord(
                image_id=image_id,
                state=draw(st.sampled_from(STATES)),
                # few distinct days: equal creation dates happen and must be ordered deterministically
                creation_date=f"2025-01-{draw(st.integers(min_value=1, max_value=9)):02d}T00:00:00.000Z",
                tags=image_tags,
                snapshot_ids=tuple(draw(st.sets(st.sampled_from(["snap-1", "snap-2", "snap-3", f"snap-{image_id}"])))),
                deregistration_protection=draw(
                    st.sampled_from([None, None, "disabled", "disabled", "enabled-with-cooldown", "enabled"])
                ),
            )
        )

    def refs() -> dict[str, tuple[str, ...]]:
        chosen = draw(st.sets(st.sampled_from(ids))) if ids else set()
        return {i: (f"user-of-{i}",) for i in chosen}

    def group_refs() -> dict[str, tuple[str, ...]]:
        """Groups of the application (any role, or untagged) and the AMIs their launch template versions use."""
        found: dict[str, list[str]] = {}
        for n in range(draw(st.integers(min_value=0, max_value=4)) if ids else 0):
            role = draw(st.sampled_from(["live", "green", "retained", "retained", None]))
            name = f"Auto Scaling group web-app-prod-{n}" + (f" ({role})" if role else "")
            for image_id in draw(st.sets(st.sampled_from(ids), min_size=1, max_size=2)):
                found.setdefault(image_id, []).append(name)
        return {k: tuple(v) for k, v in found.items()}

    failed = draw(st.sampled_from([None, None, None, "DescribeImageReferences failed: UnauthorizedOperation"]))
    return Fleet(
        PruneFacts(
            application=APPLICATION,
            keep_images=draw(st.integers(min_value=1, max_value=4)),
            images=tuple(images),
            launch_template_refs=refs(),
            instance_refs=refs(),
            refresh_refs=refs(),
            group_refs=group_refs(),
            protected_ids=frozenset(draw(st.sets(st.sampled_from(ids))) if ids else ()),
            image_references=None if failed else refs(),
            image_references_error=failed,
        )
    )


def _managed(image: ImageRecord) -> bool:
    return image.tags.get(tags.APPLICATION) == APPLICATION and image.tags.get(tags.PIPELINE) in ("app", "base")


def _newer_available_of_same_pipeline(image: ImageRecord, facts: PruneFacts) -> int:
    """How many available images of the image's pipeline are newer (ties broken by id)."""
    return sum(
        1
        for other in facts.images
        if other.state == "available"
        and _managed(other)
        and other.tags.get(tags.PIPELINE) == image.tags.get(tags.PIPELINE)
        and (other.creation_date, other.image_id) > (image.creation_date, image.image_id)
    )


def _is_newest(image: ImageRecord, facts: PruneFacts) -> bool:
    return (
        image.state == "available"
        and _managed(image)
        and _newer_available_of_same_pipeline(image, facts) < facts.keep_images
    )


def _directly_used(image_id: str, facts: PruneFacts) -> bool:
    return (
        image_id in facts.launch_template_refs
        or image_id in facts.instance_refs
        or image_id in facts.refresh_refs
        or image_id in facts.group_refs
        or image_id in facts.protected_ids
        or image_id in (facts.image_references or {})
    )


def _protected_from_deregistration(image: ImageRecord) -> bool:
    return image.deregistration_protection not in (None, "disabled")


def expected_actions(facts: PruneFacts) -> dict[str, str]:
    """The rules of safety rule 2 (README, "Safety rules"), written out independently of plan.py."""
    candidates = [i for i in facts.images if i.state not in GONE]
    kept = {
        i.image_id
        for i in candidates
        if _is_newest(i, facts) or _directly_used(i.image_id, facts) or i.state not in SETTLED or not _managed(i)
    }
    cannot_delete = {
        i.image_id for i in candidates if _protected_from_deregistration(i) or facts.image_references_error is not None
    }
    for app in candidates:
        if app.tags.get(tags.PIPELINE) == "app" and (app.image_id in kept or app.image_id in cannot_delete):
            parent = app.tags.get(tags.BASE_IMAGE)
            if parent in {c.image_id for c in candidates}:
                kept.add(parent)
    return {
        i.image_id: "keep" if i.image_id in kept else "skip" if i.image_id in cannot_delete else "delete"
        for i in candidates
    }


@settings(max_examples=150, deadline=None)
@given(fleets())
def test_plan_keeps_exactly_what_the_rules_say(fleet: Fleet) -> None:
    # Given a random fleet / When planning
    facts = fleet.facts
    plan: PrunePlan = plan_prune(facts)
    images = {i.image_id: i for i in facts.images}

    # Then every candidate gets the decision the rules give it, and gone images get none
    assert {d.image_id: d.action for d in plan.decisions} == expected_actions(facts)
    # and each decision names the rules that keep it (none for a skip or a delete), with a reason in words
    for decision in plan.decisions:
        image_id = decision.image_id
        assert decision.reasons
        assert bool(decision.rules) == (decision.action == "keep")
        assert ("newest" in decision.rules) == _is_newest(images[image_id], facts)
        assert ("launch-template" in decision.rules) == (image_id in facts.launch_template_refs)
        assert ("instance" in decision.rules) == (image_id in facts.instance_refs)
        assert ("refresh" in decision.rules) == (image_id in facts.refresh_refs)
        assert ("group" in decision.rules) == (image_id in facts.group_refs)
        assert ("protected" in decision.rules) == (image_id in facts.protected_ids)
        assert ("referenced" in decision.rules) == (image_id in (facts.image_references or {}))
    # and the snapshots planned for deletion are those of deleted images that no staying image shares
    staying = {s for i in plan.ids("keep") + plan.ids("skip") for s in images[i].snapshot_ids}
    deleted = {s for i in plan.ids("delete") for s in images[i].snapshot_ids}
    assert set(plan.snapshots_to_delete()) == deleted - staying


@settings(max_examples=150, deadline=None)
@given(fleets())
def test_plan_never_deletes_referenced_protected_newest_or_in_use_images(fleet: Fleet) -> None:
    # Given a random fleet / When planning
    facts = fleet.facts
    images = {i.image_id: i for i in facts.images}
    plan = plan_prune(facts)

    # Then nothing deleted is referenced, protected, newest N, unsettled, unmanaged or deregistration-protected
    for image_id in plan.ids("delete"):
        image = images[image_id]
        assert image_id not in facts.launch_template_refs
        assert image_id not in facts.instance_refs
        assert image_id not in facts.refresh_refs
        assert image_id not in facts.group_refs
        assert image_id not in facts.protected_ids
        assert image_id not in (facts.image_references or {})
        assert not _is_newest(image, facts)
        assert image.state in SETTLED
        assert _managed(image)
        assert not _protected_from_deregistration(image)
        assert facts.image_references_error is None
    # and no deleted base image is the parent of an app image that stays
    staying = [images[i] for i in plan.ids("keep") + plan.ids("skip")]
    parents = {i.tags.get(tags.BASE_IMAGE) for i in staying if i.tags.get(tags.PIPELINE) == "app"}
    assert not parents & set(plan.ids("delete"))


@settings(max_examples=150, deadline=None)
@given(fleets())
def test_plan_never_deletes_an_ami_a_group_uses_and_names_every_such_group(fleet: Fleet) -> None:
    # Given a random fleet, its blue-green groups (retained ones scaled to zero included) / When planning
    facts = fleet.facts
    plan = plan_prune(facts)
    decisions = plan.by_id()

    # Then no AMI a group launches from is deleted, whatever else applies to it
    assert not set(facts.group_refs) & set(plan.ids("delete"))
    for image_id, groups in facts.group_refs.items():
        decision = decisions.get(image_id)
        if decision is None:  # deregistered or disabled: not a candidate
            continue
        # and it is kept (never only skipped), with one reason naming every group that uses it
        assert decision.action == "keep"
        assert f"used by {', '.join(groups)}" in decision.reasons


@settings(max_examples=100, deadline=None)
@given(fleets())
def test_image_reference_check_only_ever_turns_deletes_into_keeps(fleet: Fleet) -> None:
    # Given the draft plan (before DescribeImageReferences) and the final one (after)
    draft = plan_prune(fleet.draft)
    final = plan_prune(fleet.facts)

    # Then the final plan deletes a subset of what the draft would have, and keeps everything the draft kept
    assert set(final.ids("delete")) <= set(draft.ids("delete"))
    assert set(draft.ids("keep")) <= set(final.ids("keep"))


def _rounds(fleet: Fleet, limit: int, max_bytes: int) -> tuple[list[list[str]], PruneFacts]:
    """The invocations of one execution, as prune_images runs them: draft, choose the batch, check its
    references (the fleet's answer, only for the batch), plan again, delete the batch; AWS then no longer lists
    the deleted images. Returns each round's deletions and the facts after the last one."""
    facts = fleet.facts
    rounds: list[list[str]] = []
    referenced: set[str] = set()  # carried in the progress: not asked about again
    for _ in range(len(facts.images) + 1):
        draft = plan_prune(replace(facts, image_references=None, image_references_error=None))
        batch = next_batch(draft, facts, limit, max_bytes, exclude=frozenset(referenced))
        if not batch:
            break
        checked = dict((fleet.facts.image_references or {}).items())
        answer = {i: checked[i] for i in batch if i in checked}
        final = plan_prune(replace(facts, image_references=answer)).by_id()
        deleted = [i for i in batch if final[i].action == "delete"]
        referenced |= {i for i in batch if "referenced" in final[i].rules}
        if not deleted and not referenced & set(batch):
            break
        rounds.append(deleted)
        facts = replace(facts, images=tuple(i for i in facts.images if i.image_id not in set(deleted)))
    return rounds, facts


@settings(max_examples=150, deadline=None)
@given(fleets(), st.integers(min_value=1, max_value=4), st.sampled_from([60, 200, 10_000]))
def test_batched_rounds_delete_only_what_the_whole_plan_deletes_and_in_bounded_rounds(
    fleet: Fleet, limit: int, max_bytes: int
) -> None:
    # Given a random fleet, and invocations that may each delete at most `limit` images within `max_bytes`
    whole = plan_prune(fleet.facts).by_id()
    # When the execution prunes it round by round
    rounds, after = _rounds(fleet, limit, max_bytes)
    deleted = [i for batch in rounds for i in batch]
    # Then each round stays within its bounds, no image is deleted twice
    for batch in rounds:
        assert len(batch) <= limit
        images = {i.image_id: i for i in fleet.facts.images}
        assert sum(result_bytes(i, images[i].snapshot_ids) for i in batch) <= max_bytes
    assert len(deleted) == len(set(deleted))
    # and nothing the unbatched plan (every reference checked) keeps or skips is ever deleted
    assert all(whole[i].action == "delete" for i in deleted), [(i, whole[i].reasons) for i in deleted]
    # and, with room for any one image, the rounds end having deleted everything the whole plan deletes
    if max_bytes >= 10_000:
        assert sorted(deleted) == sorted(i for i, d in whole.items() if d.action == "delete")
    # and a base image never goes while an image built on it is still registered
    gone_before = {i.image_id for i in fleet.facts.images if i.state in GONE}
    for number, batch in enumerate(rounds):
        gone = gone_before | {x for b in rounds[: number + 1] for x in b}
        for image_id in batch:
            built_on = {i.image_id for i in fleet.facts.images if i.base_image_id == image_id} - {image_id}
            assert built_on <= gone, (image_id, built_on - gone)
    assert after.images == tuple(i for i in fleet.facts.images if i.image_id not in set(deleted))


def test_next_batch_takes_a_base_image_only_with_every_image_built_on_it() -> None:
    # Given an old base image and two app images built on it, all three beyond the newest one kept, and a newer
    # pair that stays
    def image(image_id: str, day: int, pipeline: str, base: str | None = None) -> ImageRecord:
        image_tags = {tags.APPLICATION: APPLICATION, tags.PIPELINE: pipeline}
        if base:
            image_tags[tags.BASE_IMAGE] = base
        return ImageRecord(
            image_id, "available", f"2025-01-{day:02d}T00:00:00.000Z", tags=image_tags, snapshot_ids=(f"snap-{day}",)
        )

    facts = PruneFacts(
        application=APPLICATION,
        keep_images=1,
        images=(
            image("ami-0000000b", 1, "base"),
            image("ami-000000a1", 2, "app", "ami-0000000b"),
            image("ami-000000a2", 3, "app", "ami-0000000b"),
            image("ami-0000000c", 8, "base"),
            image("ami-000000a9", 9, "app", "ami-0000000c"),
        ),
    )
    plan = plan_prune(facts)
    assert sorted(plan.ids("delete")) == ["ami-0000000b", "ami-000000a1", "ami-000000a2"]
    # When rounds of one or two images are chosen
    # Then the base image waits for a round that takes the last image built on it, and comes after it
    assert next_batch(plan, facts, 1, 10_000) == ["ami-000000a1"]
    assert next_batch(plan, facts, 2, 10_000) == ["ami-000000a2", "ami-000000a1"]
    assert next_batch(plan, facts, 3, 10_000) == ["ami-000000a2", "ami-000000a1", "ami-0000000b"]
    # and the result budget counts each image with its snapshots
    assert next_batch(plan, facts, 3, result_bytes("ami-000000a1", ("snap-2",))) == ["ami-000000a1"]
    assert next_batch(plan, facts, 0, 10_000) == []
