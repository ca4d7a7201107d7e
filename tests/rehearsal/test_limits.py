"""How close an execution came to Step Functions' limits (rehearsal.limits), and the Lambda timeout each
invocation is held to on simulated time (rehearsal.dispatch)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from rehearsal import limits
from rehearsal.artifact import Artifact, functions_of
from rehearsal.clock import SimClock
from rehearsal.contract import Contract
from rehearsal.dispatch import Dispatcher
from rehearsal.iam.requests import MotoLookup, Where
from rehearsal.intrinsics import Account, Resolver
from tests.statemachine.test_moto_seam import CAUGHT, FUNCTION, Probe, machine, run_machine

TASK = {
    "Type": "Task",
    "Resource": "arn:aws:states:::lambda:invoke",
    "Parameters": {"FunctionName": FUNCTION, "Payload": {}},
    "End": True,
}


# observe / violations


def test_a_small_execution_is_observed_well_within_the_limits() -> None:
    # Given a two-state execution
    run = run_machine(machine({"Type": "Pass", "Result": {"ok": True}, "Next": "Caught"}, CAUGHT))

    # When its history is observed
    observation = limits.observe(run.history)

    # Then every event is counted, the limits are AWS's, and nothing is near them
    assert observation["historyEvents"] == len(run.history) == 6
    assert (observation["historyCap"], observation["payloadLimit"]) == (25_000, 262_144)
    assert 0 < observation["maxPayloadBytes"] < 100
    assert limits.violations(observation) == []


def test_the_largest_payload_names_its_state_and_is_reported_above_80_percent() -> None:
    # Given a task whose function answers 240,000 bytes (92 % of 256 KiB)
    run = run_machine(machine({**TASK, "ResultSelector": {"blob.$": "$.Payload.blob"}}), Probe({"blob": "x" * 240_000}))

    # When its history is observed
    observation = limits.observe(run.history)

    # Then the payload belongs to the task's state, and is reported
    assert run.status == "SUCCEEDED"
    assert 240_000 < observation["maxPayloadBytes"] < 240_100
    assert observation["largestPayloadState"] == "First"
    (violation,) = limits.violations(observation)
    assert violation.startswith("payload: ")
    assert "state First" in violation
    assert "92%" in violation


def test_payloads_are_counted_in_utf8_bytes_and_follow_their_event_back_to_its_state() -> None:
    # Given a history whose task result holds 1,000 two-byte characters, two events after its state entered
    history = [
        {"id": 1, "previousEventId": 0, "type": "ExecutionStarted", "executionStartedEventDetails": {"input": "{}"}},
        {"id": 2, "previousEventId": 1, "type": "TaskStateEntered",
         "stateEnteredEventDetails": {"name": "Fetch", "input": "{}"}},
        {"id": 3, "previousEventId": 2, "type": "TaskScheduled", "taskScheduledEventDetails": {"parameters": "{}"}},
        {"id": 4, "previousEventId": 3, "type": "TaskSucceeded",
         "taskSucceededEventDetails": {"output": "é" * 1_000}},
    ]  # fmt: skip

    # When it is observed
    observation = limits.observe(history)

    # Then the result is 2,000 bytes, of Fetch's TaskSucceeded
    assert observation["maxPayloadBytes"] == 2_000
    assert (observation["largestPayloadState"], observation["largestPayloadEvent"]) == ("Fetch", "TaskSucceeded")


def test_a_history_above_80_percent_of_the_quota_is_a_violation_and_at_80_percent_is_not() -> None:
    # Given observations of 20,000 and 20,001 events (80 % of 25,000 is 20,000)
    observation = limits.observe(run_machine(machine({"Type": "Pass", "End": True})).history)

    # Then only the one above 80 % is reported
    assert limits.violations({**observation, "historyEvents": 20_000}) == []
    (violation,) = limits.violations({**observation, "historyEvents": 20_001})
    assert violation.startswith("history: 20001 events, 80% of the 25000-event")


def test_an_execution_stopped_by_the_history_quota_is_a_violation() -> None:
    # Given a loop that runs into the (lowered) history quota
    spin = {"Type": "Pass", "Next": "First"}
    run = run_machine({"StartAt": "First", "States": {"First": spin}}, history_cap=50)

    # When its history is observed against that quota
    observation = {**limits.observe(run.history), "historyCap": 50}

    # Then it is reported
    assert run.error == "States.Runtime"
    assert observation["historyEvents"] == 50
    assert [v.split(":")[0] for v in limits.violations(observation)] == ["history"]


# Lambda timeouts on simulated time


def _dispatcher(timeout_seconds: int, handler: Any) -> tuple[Dispatcher, str]:
    """A dispatcher over a one-function template whose handler is `handler(dispatcher, event, context)`."""
    template = {
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"RoleArn": {"Fn::GetAtt": ["MachineRole", "Arn"]}},
            },
            "MachineRole": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Probe": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Handler": "probe.handler.lambda_handler",
                    "Role": {"Fn::GetAtt": ["ProbeRole", "Arn"]},
                    "Timeout": timeout_seconds,
                },
            },
            "ProbeRole": {"Type": "AWS::IAM::Role", "Properties": {}},
        }
    }
    artifact = Artifact(Path("probe.template.json"), "Probe", template, "{}", "Machine", functions_of(template), {})
    account = Account()
    resolver = Resolver(artifact, account)
    contract = Contract(artifact, resolver, MotoLookup(Where(account.partition, account.region, account.account)))
    dispatcher = Dispatcher(resolver, contract, {}, [])
    arn = resolver.get_att("Probe", "Arn")
    # What load() registers, with the handler given instead of imported from lambdas/:
    dispatcher.functions[arn] = artifact.functions["Probe"]
    dispatcher._names[arn] = resolver.physical_name("Probe")
    dispatcher._environments[arn] = dict(os.environ)
    dispatcher._handlers[arn] = lambda event, context: handler(dispatcher, event, context)
    return dispatcher, arn


def test_an_invocation_that_outlives_its_timeout_on_simulated_time_fails_as_lambda_fails_it() -> None:
    # Given a function with a 300 s timeout whose call is throttled: botocore backs off 400 simulated seconds
    clock = SimClock()

    def handler(dispatcher: Dispatcher, event: dict[str, Any], context: Any) -> dict[str, Any]:
        dispatcher.sleeping(clock.advance)(400)
        return {"done": True}

    dispatcher, arn = _dispatcher(300, handler)
    moved_on: list[Any] = []
    dispatcher.after["probe"] = lambda event, result: moved_on.append(result)

    # When it is invoked
    response = dispatcher.invoke(arn, {})

    # Then Lambda answers its timeout, the result is lost and the world does not move on from it
    assert response["FunctionError"] == "Unhandled"
    assert response["Payload"]["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 300.00 seconds" in response["Payload"]["errorMessage"]
    assert moved_on == []
    assert [step for step, _ in dispatcher.timeouts] == ["probe"]
    assert clock.now() >= 400  # the sleep is the world's time too


def test_an_invocation_within_its_timeout_answers_its_result() -> None:
    clock = SimClock()

    def handler(dispatcher: Dispatcher, event: dict[str, Any], context: Any) -> dict[str, Any]:
        dispatcher.sleeping(clock.advance)(200)
        return {"remainingMs": context.get_remaining_time_in_millis()}

    dispatcher, arn = _dispatcher(300, handler)

    response = dispatcher.invoke(arn, {})

    # The context's remaining time counts the simulated sleep
    assert "FunctionError" not in response
    assert response["Payload"]["remainingMs"] == pytest.approx(100_000, abs=1_000)
    assert dispatcher.timeouts == []


def test_time_other_branches_spend_meanwhile_is_not_the_invocations() -> None:
    # Given a function that runs while another branch of the workflow waits 400 simulated seconds
    clock = SimClock()

    def handler(dispatcher: Dispatcher, event: dict[str, Any], context: Any) -> dict[str, Any]:
        other = threading.Thread(target=clock.advance, args=(400,))
        other.start()
        other.join()
        return {}

    dispatcher, arn = _dispatcher(300, handler)

    # When it is invoked / Then it does not time out: that wait was not its own
    assert "FunctionError" not in dispatcher.invoke(arn, {})


def test_an_error_raised_after_the_timeout_is_the_timeout() -> None:
    clock = SimClock()

    def handler(dispatcher: Dispatcher, event: dict[str, Any], context: Any) -> dict[str, Any]:
        dispatcher.sleeping(clock.advance)(301)
        raise RuntimeError("the throttled call finally failed")

    dispatcher, arn = _dispatcher(300, handler)

    response = dispatcher.invoke(arn, {})

    assert response["Payload"]["errorType"] == "Sandbox.Timedout"


def test_step_functions_sees_sandbox_timedout_which_a_retry_on_states_timeout_does_not_match() -> None:
    # Given a task that retries States.Timeout and catches Sandbox.Timedout, on a function that times out
    clock = SimClock()

    def handler(dispatcher: Dispatcher, event: dict[str, Any], context: Any) -> dict[str, Any]:
        dispatcher.sleeping(clock.advance)(120)
        return {}

    dispatcher, arn = _dispatcher(60, handler)
    task = {
        **TASK,
        "Parameters": {"FunctionName": arn, "Payload": {}},
        "Retry": [{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 3}],
        "Catch": [{"ErrorEquals": ["Sandbox.Timedout"], "Next": "Caught"}],
    }

    # When the state machine invokes it
    run = run_machine(machine(task, CAUGHT), dispatcher.invoke)

    # Then one attempt, failed with Lambda's error name, caught by it
    assert [e["taskFailedEventDetails"]["error"] for e in run.events("TaskFailed")] == ["Sandbox.Timedout"]
    assert run.entered("Caught")
    assert dispatcher.invocations == {"probe": 1}
