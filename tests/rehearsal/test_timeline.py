"""The rehearsal's timeline, built from an execution's history and what happened meanwhile: headers for stages and
waves, each note under the state whose invocation made it, the harness's doings at their own time, and a dry run's
plan where the state machine skips the stages."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from rehearsal.clock import Event, SimClock
from rehearsal.runner import run
from rehearsal.scenarios import load_scenario
from rehearsal.timeline import HARNESS, HEADER, Entry, Invocations, build

FUNCTION = "arn:aws:lambda:eu-west-1:123456789012:function:web-app-Step"
PROD: dict[str, Any] = {
    "name": "prod",
    "approval": True,
    "waveSize": 2,
    "strategy": "blue-green",
    "targets": [{"autoScalingGroupName": "web-app-prod-a"}, {"autoScalingGroupName": "web-app-prod-b"}],
}


class History:
    """A Step Functions history as moto records it: ids, previousEventId chains, real timestamps."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.start = time.time()

    def add(self, kind: str, previous: int, at: float, **details: Any) -> int:
        identity = len(self.events) + 1
        event = {"id": identity, "previousEventId": previous, "type": kind}
        event["timestamp"] = datetime.fromtimestamp(self.start + at, UTC)
        event.update(details)
        self.events.append(event)
        return identity

    def state(self, kind: str, name: str, previous: int, at: float, state_input: dict[str, Any]) -> int:
        details = {"name": name, "input": json.dumps(state_input)}
        return self.add(f"{kind}StateEntered", previous, at, stateEnteredEventDetails=details)

    def iteration(self, map_name: str, index: int, previous: int, at: float) -> int:
        details = {"name": map_name, "index": index}
        return self.add("MapIterationStarted", previous, at, mapIterationStartedEventDetails=details)

    def task(self, name: str, previous: int, at: float, payload: dict[str, Any], token: bool = False) -> int:
        """A Lambda task entered at `at`, scheduled with `payload`; returns its StateEntered id."""
        entered = self.state("Task", name, previous, at, payload)
        resource = "invoke.waitForTaskToken" if token else "invoke"
        parameters = json.dumps({"FunctionName": FUNCTION, "Payload": payload})
        details = {"resource": resource, "parameters": parameters}
        self.add("TaskScheduled", entered, at, taskScheduledEventDetails=details)
        return entered

    def exit(self, name: str, previous: int, at: float) -> int:
        return self.add("TaskStateExited", previous, at, stateExitedEventDetails={"name": name})


def during(invocations: Invocations, payload: dict[str, Any], text: str) -> Event:
    """An event made while the state machine's invocation with `payload` runs (on this thread)."""
    with invocations.during(FUNCTION, json.dumps(payload)):
        return Event(time.time(), text)


def named(entries: list[Entry], kind: str | None = None) -> list[str]:
    return [e.state for e in entries if kind is None or e.kind == kind]


def test_a_stage_and_each_of_its_waves_start_with_a_header_naming_strategy_and_groups() -> None:
    history = History()
    stage = history.iteration("DeployStages", 0, 0, 0.0)
    approval = history.state("Choice", "NeedsApproval", stage, 0.1, {"stage": PROD})
    wave = history.iteration("DeployWaves", 0, approval, 0.2)
    history.state("Map", "DeployWave", wave, 0.3, {"wave": PROD["targets"], "strategy": "blue-green"})

    headers = named(build(history.events, [], SimClock()), HEADER)

    assert headers == [
        "stage prod (blue-green): 2 group(s) in 1 wave(s), after approval",
        "stage prod (blue-green), wave 1: web-app-prod-a, web-app-prod-b",
    ]


def test_a_note_goes_under_the_state_whose_invocation_made_it_not_under_one_another_branch_entered_meanwhile() -> None:
    # Given two branches of one wave: a's check is entered, then b's, and a's answer comes after b entered
    history, invocations = History(), Invocations()
    a = {"target": {"autoScalingGroupName": "web-app-prod-a"}}
    b = {"target": {"autoScalingGroupName": "web-app-prod-b"}}
    check_a = history.task("CheckGreenGroup", 0, 0.0, a)
    check_b = history.task("CheckGreenGroup", 0, 0.0, b)
    time.sleep(0.01)
    events = [during(invocations, a, "green: Healthy (a)"), during(invocations, b, "green: Soaking (b)")]

    # When the timeline is built
    entries = [e for e in build(history.events, events, SimClock()) if e.kind == "Task"]

    # Then each note is under its own branch's state
    assert (check_a, check_b) == (1, 3)
    assert [e.notes for e in entries] == [["green: Healthy (a)"], ["green: Soaking (b)"]]


def test_the_nth_invocation_with_the_same_payload_belongs_to_the_nth_state_scheduled_with_it() -> None:
    history, invocations = History(), Invocations()
    payload = {"executionId": "x", "action": "acquire"}
    first = history.task("AcquireLock", 0, 0.0, payload)
    exited = history.exit("AcquireLock", first + 1, 0.1)
    history.task("AcquireLock", exited, 0.2, payload)
    events = [during(invocations, payload, "lock held, waiting"), during(invocations, payload, "lock acquired")]

    entries = [e for e in build(history.events, events, SimClock()) if e.kind == "Task"]

    assert [e.notes for e in entries] == [["lock held, waiting"], ["lock acquired"]]


def test_what_the_harness_does_is_a_line_of_its_own_at_its_own_simulated_time() -> None:
    # Given a wait entered at once, and an approval answered ten simulated minutes later on the harness's thread
    clock, history = SimClock(), History()
    history.task("WaitForApproval", 0, 0.0, {"kind": "approval"}, token=True)
    clock.advance(600)
    answered = Event(time.time(), "approval requested for stage prod: approved")

    entries = build(history.events, [answered], clock)

    harness = [e for e in entries if e.kind == HARNESS]
    assert [(e.state, e.at >= 600) for e in harness] == [("approval requested for stage prod: approved", True)]
    assert entries[0].notes == []  # not lent to the state that was running


def test_a_state_of_a_wave_of_several_groups_names_its_group_and_one_of_a_single_group_wave_does_not() -> None:
    history = History()
    wave = history.iteration("DeployWaves", 0, 0, 0.0)
    deploy = history.state("Map", "DeployWave", wave, 0.1, {"wave": PROD["targets"]})
    target = history.iteration("DeployWave", 0, deploy, 0.2)
    history.task("CreateGreenGroup", target, 0.3, {"target": PROD["targets"][0]})
    single = History()
    wave = single.iteration("DeployWaves", 0, 0, 0.0)
    deploy = single.state("Map", "DeployWave", wave, 0.1, {"wave": PROD["targets"][:1]})
    single.task("CreateGreenGroup", deploy, 0.3, {"target": PROD["targets"][0]})

    lanes = [e.lane for e in build(history.events, [], SimClock()) if e.kind == "Task"]
    alone = [e.lane for e in build(single.events, [], SimClock()) if e.kind == "Task"]

    assert (lanes, alone) == (["web-app-prod-a"], [None])


def test_a_wait_for_a_task_token_says_when_it_ended_and_an_ordinary_task_does_not() -> None:
    clock, history = SimClock(), History()
    wait = history.task("WaitForImageEvent", 0, 0.0, {"kind": "image"}, token=True)
    time.sleep(0.01)  # the bake's half hour passes after the wait began
    clock.advance(1800)
    exited = history.exit("WaitForImageEvent", wait + 1, time.time() - history.start)
    history.task("CheckImageBuild", exited, time.time() - history.start, {"build": {}})

    wait_entry, check = (e for e in build(history.events, [], clock) if e.kind == "Task")

    assert wait_entry.until is not None
    assert wait_entry.until - wait_entry.at >= 1800
    assert check.until is None


VALIDATED: dict[str, Any] = {
    "request": {"action": "deploy", "commit": "3f2c1e9a", "dryRun": True},
    "stages": [
        {"name": "test", "approval": False, "waveSize": 1, "strategy": "rolling", "targets": PROD["targets"][:1]},
        PROD,
    ],
    "needsBake": True,
    "pipeline": "app",
}


def validated(history: History, answer: dict[str, Any]) -> int:
    entered = history.task("ValidateRequest", 0, 0.0, {"input": {}})
    output = json.dumps({"StatusCode": 200, "Payload": answer})
    return history.add("TaskSucceeded", entered + 1, 0.05, taskSucceededEventDetails={"output": output})


def test_a_dry_run_that_needs_a_bake_says_what_each_stage_and_wave_would_have_deployed() -> None:
    # Given a dry run of a push: the state machine goes from NeedsBake straight to PruneImages
    history = History()
    history.task("PruneImages", validated(history, VALIDATED), 0.1, {"dryRun": True})

    headers = named(build(history.events, [], SimClock()), HEADER)

    assert headers[0].startswith("dry run: the state machine skips the bake and every stage; it would bake the app")
    assert headers[1:] == [
        "stage test (rolling), wave 1: web-app-prod-a: would refresh",
        "stage prod (blue-green), wave 1: web-app-prod-a, web-app-prod-b: would launch green beside each and shift "
        "traffic after approval",
    ]


@pytest.mark.parametrize("change", [{"needsBake": False}, {"request": {"action": "deploy", "dryRun": False}}])
def test_no_plan_is_added_when_the_run_is_not_a_dry_run_that_needs_a_bake(change: dict[str, Any]) -> None:
    history = History()
    validated(history, {**VALIDATED, **change})

    assert named(build(history.events, [], SimClock()), HEADER) == []


def test_an_entry_still_unpacks_as_time_state_kind_and_notes() -> None:
    at, state, kind, notes = Entry(1.0, "Deployed", "Succeed", ["done"], lane="g", until=2.0)

    assert (at, state, kind, notes) == (1.0, "Deployed", "Succeed", ["done"])


def test_in_a_real_run_each_branch_of_a_blue_green_wave_keeps_its_own_notes() -> None:
    # Given the push that deploys test, then prod's two blue-green groups at once
    timeline = run(load_scenario("push-deploys-every-stage")).timeline

    # Then every green check of a group says that group's green, and no step's note lands on another state
    checks = [e for e in timeline if e.state == "CheckGreenGroup"]
    assert {e.lane for e in checks} == {"web-app-prod-a", "web-app-prod-b"}
    for entry in checks:
        assert entry.notes
        assert all(note.startswith("green: ") and f"{entry.lane}-rehearsal" in note for note in entry.notes)
    assert not [e for e in timeline if e.state == "ShiftTraffic" and any(n.startswith("green: ") for n in e.notes)]
    assert "stage prod (blue-green), wave 1: web-app-prod-a, web-app-prod-b" in named(timeline, HEADER)
    (wait,) = [e for e in timeline if e.state == "WaitForImageEvent"]
    assert wait.notes[0].startswith("waiting for the image build")
    assert wait.until is not None
    assert wait.until - wait.at >= 60 * 29  # the bake's half hour
