"""What a bake must leave behind (rehearsal.invariants.bake_violations), how the emulated build plays the
project's components (rehearsal.emulated_builds), and how a second execution is started beside the first
(rehearsal.perturbations.SecondExecution)."""

from __future__ import annotations

import importlib
import time
from typing import Any

import pytest

from rehearsal.clock import IDLE_SECONDS, Activity, SimClock
from rehearsal.emulated_builds import Build, checked_out_commit, component_failure
from rehearsal.invariants import BASE_IMAGE_TAG, COMMIT_TAG, bake_violations
from rehearsal.perturbations import SecondExecution
from rehearsal.runner import run
from rehearsal.scenarios import load_scenario

COMMIT = "15a05b59c55f4a8f667911cfc02faa0862fd413f"
OTHER = "e4db29ad5740a21faf1b22dba22d6553693c8422"
BASE = "ami-0123456789abcdef0"
APP_AMI = "ami-000000000000000a1"
BASE_AMI = "ami-000000000000000b1"
GONE_AMI = "ami-000000000000000a2"


def recipe(install: str = COMMIT, test: str | None = None, parent: str = BASE) -> dict[str, Any]:
    """A per-bake recipe as start_image_build writes it: the install component gets the source, the test the commit."""
    source = {"Commit": install, "Branch": "main", "CloneUrl": "https://git.example/web-app", "SourceType": "github"}
    return {
        "name": "web-app-app-0123456789ab",
        "parentImage": parent,
        "components": [
            {"componentArn": "arn:install", "parameters": [{"name": k, "value": [v]} for k, v in source.items()]},
            {"componentArn": "arn:test", "parameters": [{"name": "Commit", "value": [test or install]}]},
        ],
    }


def app_build(ami_id: str = APP_AMI, **kwargs: Any) -> Build:
    return Build("arn:build", "app", ["AVAILABLE"], ami_id=ami_id, recipe=recipe(**kwargs), number=2)


# bake_violations


def test_an_app_ami_tagged_with_its_commit_and_its_parent_keeps_the_invariant() -> None:
    # Given an app AMI whose tags say the commit it checked out and the base it was built on
    build = app_build()
    tags = {APP_AMI: {COMMIT_TAG: COMMIT, BASE_IMAGE_TAG: BASE}}

    # When the invariant is checked / Then it holds
    assert bake_violations([build], {APP_AMI: COMMIT}, tags) == []


def test_an_app_ami_tagged_with_another_commit_is_a_violation_naming_both() -> None:
    # Given an app AMI that checked out one commit and is tagged with another
    build = app_build()
    tags = {APP_AMI: {COMMIT_TAG: OTHER, BASE_IMAGE_TAG: BASE}}

    # When the invariant is checked
    (violation,) = bake_violations([build], {APP_AMI: COMMIT}, tags)

    # Then it names the image, the commit it baked and the one it claims
    assert APP_AMI in violation
    assert f"checked out {COMMIT}" in violation
    assert f"{COMMIT_TAG}={OTHER}" in violation


def test_an_untagged_app_ami_and_a_wrong_base_tag_are_both_violations() -> None:
    # Given an app AMI without a commit tag, tagged with a base it was not built on
    build = app_build()
    tags = {APP_AMI: {BASE_IMAGE_TAG: "ami-0fffffffffffffff0"}}

    # When the invariant is checked
    violations = bake_violations([build], {APP_AMI: COMMIT}, tags)

    # Then both are named
    assert len(violations) == 2
    assert f"has no {COMMIT_TAG} tag" in violations[0]
    assert f"was built on {BASE}" in violations[1]


def test_a_base_ami_must_carry_no_commit_and_a_pruned_ami_is_not_judged() -> None:
    # Given a base AMI tagged with a commit, and an app AMI that no longer exists
    base = Build("arn:base", "base", ["AVAILABLE"], ami_id=BASE_AMI, number=1)
    gone = app_build(ami_id=GONE_AMI)

    # When the invariant is checked
    violations = bake_violations(
        [base, gone],
        {BASE_AMI: None, GONE_AMI: COMMIT},
        {BASE_AMI: {COMMIT_TAG: COMMIT}},
    )

    # Then only the base image is named: it checked out no commit
    assert violations == [
        f"{BASE_AMI} (image build 1: base image from the base pipeline) checked out no commit "
        f"but is tagged {COMMIT_TAG}={COMMIT}"
    ]


# the emulated build plays the project's components


def test_the_build_checks_out_the_install_components_commit() -> None:
    assert checked_out_commit(recipe()) == COMMIT
    assert checked_out_commit(None) is None


def test_a_test_component_given_another_commit_fails_the_build_while_testing() -> None:
    assert component_failure(recipe(test=OTHER)) == (
        "TESTING",
        f"app-test: the image carries commit {COMMIT}, but the test was given {OTHER}",
    )


def test_a_short_commit_fails_the_build_in_app_install() -> None:
    failure = component_failure(recipe(install="15a05b5"))
    assert failure is not None
    assert failure[0] == "BUILDING"
    assert "full commit SHA" in failure[1]


def test_a_consistent_recipe_fails_nothing() -> None:
    assert component_failure(recipe()) is None


# a second execution


class FakeStepFunctions:
    """The history of each execution, as the test sets it, and the executions started."""

    def __init__(self) -> None:
        self.histories: dict[str, list[dict[str, Any]]] = {"first": []}
        self.started: list[dict[str, Any]] = []

    def entered(self, execution: str, state: str) -> None:
        self.histories[execution].append({"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": state}})

    def get_execution_history(self, executionArn: str, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's name
        return {"events": list(self.histories[executionArn])}

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        arn = "second" if len(self.started) == 1 else str(kwargs["name"])  # later ones by their names
        self.histories[arn] = []
        return {"executionArn": arn}


def second_execution(sfn: FakeStepFunctions, activity: Activity) -> SecondExecution:
    spec = {"when": "WaitForImageEvent", "input": {"action": "deploy"}}
    return SecondExecution(sfn, "machine", "first", spec, {"action": "deploy"}, "also", activity, SimClock(), [])


def test_the_second_execution_starts_once_the_first_is_in_the_named_state_and_holds_the_world_until_it_is_too() -> None:
    # Given a first execution that has not reached the state yet
    sfn, activity = FakeStepFunctions(), Activity()
    second = second_execution(sfn, activity)
    assert second.poll() is None

    # When it enters the state
    sfn.entered("first", "WaitForImageEvent")
    started = second.poll()

    # Then the second starts with its input, once
    assert started == "second"
    assert sfn.started == [{"stateMachineArn": "machine", "name": "also", "input": '{"action": "deploy"}'}]
    # and the world is held (no token times out, no event is delivered) until it has entered the state itself
    activity.unanswered_token()
    time.sleep(IDLE_SECONDS * 2)
    assert second.poll() is None
    assert not activity.take_timeout()
    sfn.entered("second", "WaitForImageEvent")
    assert second.poll() is None
    time.sleep(IDLE_SECONDS * 2)
    assert activity.take_timeout()
    assert len(sfn.started) == 1


def test_a_second_execution_that_never_reaches_its_hold_state_releases_the_world_and_fails_the_scenario(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a second execution started and holding the world, on a machine too slow for the hold
    monkeypatch.setattr(SecondExecution, "HOLD_REAL_SECONDS", IDLE_SECONDS)
    sfn, activity = FakeStepFunctions(), Activity()
    second = second_execution(sfn, activity)
    sfn.entered("first", "WaitForImageEvent")
    assert second.poll() == "second"

    # When the hold runs out before it reaches WaitForImageEvent
    time.sleep(IDLE_SECONDS * 2)
    second.poll()

    # Then the world moves on (tokens may time out again) and the reason is kept for the harness invariant
    activity.unanswered_token()
    time.sleep(IDLE_SECONDS * 2)
    assert activity.take_timeout()
    assert second.late is not None
    assert "did not reach WaitForImageEvent" in second.late


def test_a_second_execution_that_reaches_its_hold_state_is_never_late() -> None:
    sfn, activity = FakeStepFunctions(), Activity()
    second = second_execution(sfn, activity)
    sfn.entered("first", "WaitForImageEvent")
    second.poll()
    sfn.entered("second", "WaitForImageEvent")
    second.poll()
    assert second.late is None
    assert not second.held


def test_a_queued_push_holds_the_world_until_the_newer_push_watching_it_has_started() -> None:
    # Given a second push that queues (holdUntil JoinQueue) and a third that starts once the second is queued
    sfn, activity, clock = FakeStepFunctions(), Activity(), SimClock()
    queue = {"when": "WaitForRefreshEvent", "holdUntil": "JoinQueue", "input": {}}
    second = SecondExecution(sfn, "machine", "first", queue, {}, "also", activity, clock, [])
    newer = {"after": "previous", "when": "JoinQueue", "holdUntil": "JoinQueue", "input": {}}
    third = SecondExecution(sfn, "machine", lambda: second.execution, newer, {}, "also2", activity, clock, [])
    second.successor = third
    sfn.entered("first", "WaitForRefreshEvent")
    assert second.poll() == "second"

    # When the second reaches the queue, before the third has started
    sfn.entered("second", "JoinQueue")
    second.poll()

    # Then the world stays held (the first cannot finish and hand the lock to the second meanwhile)
    assert second.held
    assert third.poll() == "also2"
    second.poll()
    assert not second.held
    assert third.held
    sfn.entered("also2", "JoinQueue")
    third.poll()
    activity.unanswered_token()
    time.sleep(IDLE_SECONDS * 2)
    assert activity.take_timeout()
    assert second.late is None
    assert third.late is None


def test_a_first_execution_that_ends_before_the_named_state_starts_no_second_one() -> None:
    # Given a first execution that ended without entering the state
    sfn, activity = FakeStepFunctions(), Activity()
    sfn.histories["first"].append({"type": "ExecutionFailed"})
    second = second_execution(sfn, activity)

    # When the harness looks / Then nothing starts, and the reason is kept for the report
    assert second.poll() is None
    assert sfn.started == []
    assert second.never == "the first execution ended without entering WaitForImageEvent"


# end to end: a lambda that mislabels its AMI fails the scenario


def test_a_scenario_fails_when_an_ami_is_tagged_with_another_commit_than_it_baked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given check_image_build tagging every AMI with a commit other than the one baked (the functions' own module,
    # as they import it: `shared`, with lambdas/ on the path)
    imagebuilder = importlib.import_module("shared.aws.imagebuilder")
    original = imagebuilder.ImageTags.tag_image

    def mislabel(self: Any, image_id: str, tags: dict[str, str], region: str | None = None) -> None:
        original(self, image_id, {**tags, COMMIT_TAG: "0" * 40} if COMMIT_TAG in tags else tags, region)

    monkeypatch.setattr(imagebuilder.ImageTags, "tag_image", mislabel)

    # When a push is rehearsed
    result = run(load_scenario("deploy-one-stage"))

    # Then the invariant names the mislabelled AMI
    assert [v for v in result.invariant_violations if f"{COMMIT_TAG}={'0' * 40}" in v]
