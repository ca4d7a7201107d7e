"""The rehearsal's timeline reads as a deployment: stage and wave headers, dry runs say what they would do, and
a closing line says what to do next."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from rehearsal.report import invariant_lines, next_step, timeline_lines
from rehearsal.result import Result
from rehearsal.summaries import summarize
from rehearsal.timeline import HARNESS, HEADER, Entry


def test_a_dry_run_prune_says_what_it_would_prune() -> None:
    out = {"imagesPruned": ["ami-1", "ami-2"], "snapshotsDeleted": ["snap-1"], "imagesKept": ["ami-3"]}
    assert summarize("prune_images", out, {"dryRun": True}) == "would prune 2 AMI(s), 1 snapshot(s); would keep 1"
    assert summarize("prune_images", out) == "pruned 2 AMI(s), 1 snapshot(s); kept 1"


def test_the_closing_line_points_at_the_scenario_when_the_outcome_is_not_the_expected_one() -> None:
    result = cast(Result, SimpleNamespace(scenario="bake-timeout", invariant_violations=[]))
    assert "statemachine/scenarios/bake-timeout.json" in next_step(result, unexpected=True)
    assert "make deploy" in next_step(result, unexpected=False)
    broken = cast(Result, SimpleNamespace(scenario="bake-timeout", invariant_violations=["lock still held"]))
    assert "statemachine/scenarios/bake-timeout.json" in next_step(broken, unexpected=False)


GREEN = {"blueGroupName": "web-app-prod-a", "greenGroupName": "web-app-prod-a-x", "desiredCapacity": 2}
# (step, its answer) as each step answers in a dry run: nothing is changed, so the line must say what would be
DRY_RUN_ANSWERS = [
    ("lock", {"action": "acquire", "acquired": True, "released": False, "targets": ["web-app-test"]}),
    ("lock", {"action": "release", "acquired": False, "released": False, "targets": ["web-app-test"]}),
    ("publish_launch_template_version", {"launchTemplateId": "lt-1", "version": 5, "previousVersion": 4}),
    ("start_instance_refresh", {"autoScalingGroupName": "web-app-test", "instanceRefreshId": None}),
    ("start_image_build", {"pipeline": "app", "commit": "3f2c1e9a", "imageBuildVersionArn": None}),
    ("create_green_group", {**GREEN, "reused": False, "alreadyLive": False}),
    ("shift_traffic", {**GREEN, "done": True, "oldGroup": "scale-to-zero"}),
    ("retire_groups", {"deleted": ["web-app-prod-a-old"], "kept": ["web-app-prod-a"]}),
    ("prune_images", {"imagesPruned": ["ami-1"], "snapshotsDeleted": ["snap-1"], "imagesKept": []}),
]


@pytest.mark.parametrize(("step", "answer"), DRY_RUN_ANSWERS)
def test_a_dry_run_step_says_what_would_happen_never_that_it_happened(step: str, answer: dict[str, Any]) -> None:
    line = summarize(step, answer, {"dryRun": True})

    assert "would " in line
    assert not any(done in line for done in ("pruned 1", "acquired on", "released on", "is the default", "is live"))


@pytest.mark.parametrize(
    ("payload", "label"),
    [
        ({"kind": "image", "resourceId": "arn:aws:imagebuilder:...:image/app/1.0.0/1"}, "waiting for the image build"),
        ({"kind": "refresh", "autoScalingGroupName": "web-app-test"}, "waiting for the instance refresh on web-app"),
        ({"kind": "approval", "approval": {"stage": "prod"}}, "approval of stage prod requested"),
    ],
)
def test_each_wait_is_labelled_with_what_its_request_says_it_waits_for(payload: dict[str, Any], label: str) -> None:
    line = summarize("register_wait", {"registered": True, "alreadyDone": False, "status": "BUILDING"}, payload)

    assert line.startswith(label)


def test_a_push_that_joins_the_queue_says_it_waits_in_the_queue_behind_the_holder() -> None:
    answer = {"action": "enqueue", "queued": True, "acquired": False, "targets": ["web-app-test"]}
    line = summarize("lock", {**answer, "holder": "arn:aws:states:eu-west-1:1:execution:m:push-1"})

    assert line == "queued behind push-1: waiting in the queue for web-app-test"


def test_a_base_rebuild_whose_image_did_not_change_says_nothing_is_rolled_out() -> None:
    answer = {"status": "AVAILABLE", "amiId": "ami-2", "pipeline": "base", "baseUnchanged": True}

    assert summarize("check_image_build", answer) == (
        "base image build AVAILABLE → ami-2: base unchanged (same packages), nothing to roll out"
    )
    assert "unchanged" not in summarize("check_image_build", {**answer, "baseUnchanged": False})


def test_the_timeline_prints_headers_the_harness_the_group_of_a_branch_and_how_long_a_wait_lasted() -> None:
    timeline = [
        Entry(0.0, "stage prod (blue-green), wave 1: a, b", HEADER),
        Entry(3.0, "CreateGreenGroup", "Task", ["green created"], lane="a"),
        Entry(3.0, "WaitForApproval", "Task", [], until=603.0),
        Entry(603.0, "approval requested for stage prod: approved", HARNESS),
        Entry(604.0, "Strategy", "Choice"),  # a branch taken, nothing to say
    ]

    assert timeline_lines(timeline)[1:] == [
        " 00:00:00  ── stage prod (blue-green), wave 1: a, b",
        " 00:00:03  a: CreateGreenGroup",
        "             - green created",
        " 00:00:03  WaitForApproval (until 00:10:03)",
        " 00:10:03  · approval requested for stage prod: approved",
    ]


def test_every_invariant_checked_is_listed_as_held_or_violated() -> None:
    held = cast(Result, SimpleNamespace(invariants={"lock released": 0, "no task token": 0}, invariant_violations=[]))
    broken = cast(
        Result, SimpleNamespace(invariants={"lock released": 1, "no task token": 0}, invariant_violations=["held"])
    )

    assert invariant_lines(held) == ["  invariants: 2 checked, all held", "    ✓ lock released", "    ✓ no task token"]
    assert invariant_lines(broken) == [
        "  invariants: 2 checked, 1 violation(s) of 1",
        "    ✗ lock released (1)",
        "    ✓ no task token",
    ]
