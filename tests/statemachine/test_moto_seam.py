"""The rehearsal's one seam into moto's interpreter: it must fail loudly when moto changes under it, and it
must hold a deployment to Step Functions' rules and limits on simulated time (small hand-written machines,
each run through moto with the seam installed)."""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import moto
import pytest
from moto import mock_aws

from rehearsal import moto_seam
from rehearsal.clock import SimClock
from rehearsal.invariants import history_of
from rehearsal.limits import HISTORY_CAP

FUNCTION = "arn:aws:lambda:eu-west-1:123456789012:function:probe"
ROLE = "arn:aws:iam::123456789012:role/probe"
REAL_SECONDS = 10.0  # no machine here may take longer in real time: every wait is simulated


def answer(payload: Any = None) -> dict[str, Any]:
    return {"StatusCode": 200, "Payload": {} if payload is None else payload}


class Probe:
    """A function that records each invocation's payload and answers `result`."""

    def __init__(self, result: Any = None) -> None:
        self.calls: list[Any] = []
        self.result = result

    def __call__(self, name: str, payload: Any) -> dict[str, Any]:
        self.calls.append(json.loads(payload) if isinstance(payload, bytes | str) else payload)
        return answer(self.result)

    def token(self) -> str:
        """The task token the first invocation carried, once it has been invoked."""
        while not self.calls:
            time.sleep(0.01)
        return str(self.calls[0]["token"])


@dataclass
class Run:
    """One execution of a hand-written machine through moto with the seam installed."""

    status: str
    error: str | None
    cause: str | None
    history: list[dict[str, Any]]
    clock: SimClock
    real_seconds: float
    advances: list[float] = field(default_factory=list)

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.history if e["type"] == event_type]

    def entered(self, state: str) -> bool:
        return any(e.get("stateEnteredEventDetails", {}).get("name") == state for e in self.history)


@contextmanager
def stepfunctions() -> Iterator[Any]:
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        yield boto3.client("stepfunctions", region_name="eu-west-1")


def run_machine(
    definition: dict[str, Any],
    invoke: Callable[[str, Any], dict[str, Any]] = lambda name, payload: answer(),
    *,
    execution_input: dict[str, Any] | None = None,
    take_timeout: Callable[[], bool] = lambda: True,
    simulated_clock: bool = True,
    history_cap: int = HISTORY_CAP,
    meanwhile: Callable[[Any, SimClock], None] | None = None,
) -> Run:
    """Run `definition` to its end. `take_timeout` says whether an unanswered token times out (True: nobody
    answers); `meanwhile(sfn, clock)` runs on another thread while the execution runs (a person, AWS events)."""
    clock = SimClock()
    advances: list[float] = []

    def advance(seconds: float) -> None:
        advances.append(seconds)
        clock.advance(seconds)

    with stepfunctions() as sfn:
        machine = sfn.create_state_machine(name="probe", definition=json.dumps(definition), roleArn=ROLE)
        now = clock.now if simulated_clock else None
        started = time.time()
        with moto_seam.install(invoke, advance, take_timeout, now=now, history_cap=history_cap):
            execution = sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], input=json.dumps(execution_input or {})
            )["executionArn"]
            helper = threading.Thread(target=meanwhile, args=(sfn, clock), daemon=True) if meanwhile else None
            if helper:
                helper.start()
            while (description := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
                if time.time() - started > REAL_SECONDS:
                    sfn.stop_execution(executionArn=execution)
                    pytest.fail(f"the execution still runs after {REAL_SECONDS}s of real time: a real wait")
                time.sleep(0.01)
            history = history_of(sfn, execution)
        return Run(
            description["status"],
            description.get("error"),
            description.get("cause"),
            history,
            clock,
            time.time() - started,
            advances,
        )


def callback_task(**fields: Any) -> dict[str, Any]:
    """A lambda:invoke.waitForTaskToken task that hands the token to the function, caught into "Caught"."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": FUNCTION, "Payload": {"token.$": "$$.Task.Token"}},
        "End": True,
        **fields,
    }


def machine(first: dict[str, Any], *others: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"StartAt": "First", "States": {"First": first, **dict(others)}}


CAUGHT = ("Caught", {"Type": "Pass", "End": True})


# The seam itself: pinned, checked, restored.


def test_seam_matches_the_pinned_moto() -> None:
    assert moto.__version__ == moto_seam.PINNED_MOTO_VERSION
    moto_seam.check()  # raises SeamBrokenError if any patched name moved


@pytest.mark.parametrize(("module", "attribute"), moto_seam.PATCHED)
def test_seam_refuses_to_run_when_a_patched_name_is_gone(
    module: str, attribute: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(importlib.import_module(module), attribute)

    with pytest.raises(moto_seam.SeamBrokenError, match=attribute):
        moto_seam.check()


@pytest.mark.parametrize(("module", "owner", "method"), moto_seam.PATCHED_METHODS)
def test_seam_refuses_to_run_when_a_patched_method_is_gone(
    module: str, owner: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(getattr(importlib.import_module(module), owner), method)

    with pytest.raises(moto_seam.SeamBrokenError, match=method):
        moto_seam.check()


def test_seam_refuses_another_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "6.0.0")

    with pytest.raises(moto_seam.SeamBrokenError, match=r"6\.0\.0"):
        moto_seam.check()


def test_seam_restores_moto_after_the_rehearsal() -> None:
    lambda_utils = importlib.import_module(moto_seam._LAMBDA_UTILS)
    originals = {
        (m, o, n): vars(getattr(importlib.import_module(m), o)).get(n) for m, o, n in moto_seam.PATCHED_METHODS
    }
    original = lambda_utils._invoke_lambda_function

    with moto_seam.install(lambda name, payload: answer(), lambda seconds: None):
        assert lambda_utils._invoke_lambda_function is not original

    assert lambda_utils._invoke_lambda_function is original
    for (module, owner, name), before in originals.items():
        assert vars(getattr(importlib.import_module(module), owner)).get(name) is before, f"{owner}.{name}"


# HeartbeatSeconds: no heartbeat within it fails the task with States.HeartbeatTimeout, whatever TimeoutSeconds.


def test_a_task_without_a_heartbeat_fails_with_heartbeat_timeout_at_its_simulated_deadline() -> None:
    # Given a callback task that allows an hour but a heartbeat every 5 minutes, and nobody answers
    definition = machine(callback_task(TimeoutSeconds=3600, HeartbeatSeconds=300))

    # When it runs
    run = run_machine(definition)

    # Then it fails as AWS fails it, 300 simulated seconds in, without waiting in real time
    assert (run.status, run.error) == ("FAILED", "States.HeartbeatTimeout")
    assert [e["taskTimedOutEventDetails"]["error"] for e in run.events("TaskTimedOut")] == ["States.HeartbeatTimeout"]
    assert sum(run.advances) == pytest.approx(300, abs=1)
    assert run.real_seconds < 3


def test_a_heartbeat_timeout_is_not_retried_as_a_timeout_but_is_caught_by_name() -> None:
    # Given a heartbeat task whose Retry lists only States.Timeout and whose Catch names the heartbeat timeout
    definition = machine(
        callback_task(
            TimeoutSeconds=3600,
            HeartbeatSeconds=60,
            Retry=[{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 3}],
            Catch=[{"ErrorEquals": ["States.HeartbeatTimeout"], "Next": "Caught"}],
        ),
        CAUGHT,
    )

    # When nobody sends a heartbeat
    run = run_machine(definition)

    # Then one attempt, caught by its own name
    assert run.status == "SUCCEEDED"
    assert run.entered("Caught")
    assert len(run.events("TaskScheduled")) == 1


def test_an_answer_after_the_heartbeat_deadline_comes_too_late() -> None:
    # Given a heartbeat every 60 s, and a person who answers 120 simulated seconds later without heartbeats
    function = Probe()

    def person(sfn: Any, clock: SimClock) -> None:
        token = function.token()
        time.sleep(0.1)
        clock.advance(120)
        sfn.send_task_success(taskToken=token, output="{}")

    definition = machine(callback_task(TimeoutSeconds=3600, HeartbeatSeconds=60))

    # When it runs
    run = run_machine(
        definition,
        function,
        take_timeout=lambda: False,
        meanwhile=person,
    )

    # Then the task had already failed on its heartbeat
    assert (run.status, run.error) == ("FAILED", "States.HeartbeatTimeout")


def test_heartbeats_keep_a_task_alive_past_its_heartbeat_interval() -> None:
    # Given a heartbeat every 60 s, and a worker that sends one every 50 s, then answers at 120 s
    function = Probe()

    def worker(sfn: Any, clock: SimClock) -> None:
        token = function.token()
        for _ in range(2):
            time.sleep(0.1)
            clock.advance(50)
            sfn.send_task_heartbeat(taskToken=token)
        time.sleep(0.1)
        clock.advance(20)
        sfn.send_task_success(taskToken=token, output='{"done": true}')

    definition = machine(callback_task(TimeoutSeconds=3600, HeartbeatSeconds=60))

    # When it runs
    run = run_machine(
        definition,
        function,
        take_timeout=lambda: False,
        meanwhile=worker,
    )

    # Then it succeeds with the worker's answer
    assert run.status == "SUCCEEDED", run.error


# TimeoutSeconds / TimeoutSecondsPath with Retry on States.Timeout: each attempt costs its timeout.


def test_a_timed_out_callback_that_retries_states_timeout_runs_every_attempt_on_simulated_time() -> None:
    # Given a callback whose timeout comes from its input and whose Retry lists States.Timeout (2 retries, 5 s)
    definition = machine(
        callback_task(
            TimeoutSecondsPath="$.fallbackSeconds",
            Retry=[{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 1}],
            Catch=[{"ErrorEquals": ["States.Timeout"], "Next": "Caught"}],
        ),
        CAUGHT,
    )

    # When no attempt is ever answered
    run = run_machine(definition, execution_input={"fallbackSeconds": 900})

    # Then it runs MaxAttempts + 1 times, each costing its 900 s timeout, with the intervals between, then the Catch
    assert [e["taskTimedOutEventDetails"]["error"] for e in run.events("TaskTimedOut")] == ["States.Timeout"] * 3
    assert len(run.events("TaskScheduled")) == 3
    assert run.advances == pytest.approx([900, 5, 900, 5, 900], abs=1)
    assert run.entered("Caught")
    assert run.status == "SUCCEEDED"


def test_an_answer_after_the_simulated_timeout_comes_too_late() -> None:
    # Given a callback with a 300 s timeout, answered 400 simulated seconds after it started
    function = Probe()

    def late(sfn: Any, clock: SimClock) -> None:
        token = function.token()
        time.sleep(0.1)
        clock.advance(400)
        sfn.send_task_success(taskToken=token, output="{}")

    definition = machine(callback_task(TimeoutSeconds=300))

    # When it runs
    run = run_machine(
        definition,
        function,
        take_timeout=lambda: False,
        meanwhile=late,
    )

    # Then the task had timed out: the answer does not count
    assert (run.status, run.error) == ("FAILED", "States.Timeout")


# 25,000 history events: the execution fails at the cap, and no Catch runs.


def loop(inner_catch: bool) -> dict[str, Any]:
    spin = {
        "StartAt": "Spin",
        "States": {
            "Spin": {"Type": "Pass", "Next": "Again"},
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "Spin"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    parallel: dict[str, Any] = {"Type": "Parallel", "Branches": [spin], "End": True}
    if inner_catch:
        parallel["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
        parallel["Retry"] = [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}]
    return machine(parallel, CAUGHT)


def test_the_history_quota_fails_the_execution_with_its_last_event_and_no_catch_runs() -> None:
    # Given a loop that never ends, inside a Parallel that retries and catches everything (quota lowered to 200)
    definition = loop(inner_catch=True)

    # When it runs
    run = run_machine(definition, execution_input={"go": True}, history_cap=200)

    # Then event 200 is the execution's failure, as AWS records it, and neither Retry nor Catch ran
    assert (run.status, run.error) == ("FAILED", "States.Runtime")
    assert run.cause == "The execution reached the maximum number of history events (200)."
    assert len(run.history) == 200
    assert (run.history[-1]["id"], run.history[-1]["type"]) == (200, "ExecutionFailed")
    assert run.history[-1]["executionFailedEventDetails"]["error"] == "States.Runtime"
    assert not run.entered("Caught")
    assert len(run.events("ParallelStateStarted")) == 1


def test_nothing_runs_after_the_history_quota() -> None:
    # Given a loop whose every turn invokes a function
    function = Probe()
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": FUNCTION, "Payload": {}},
                "ResultPath": None,
                "Next": "Call",
            }
        },
    }

    # When it runs into the quota (lowered to 100)
    run = run_machine(definition, function, history_cap=100)

    # Then every invocation the history shows happened, and none after the failure
    assert (run.status, run.error) == ("FAILED", "States.Runtime")
    assert len(function.calls) == len(run.events("TaskScheduled"))


def test_the_history_quota_is_the_documented_one() -> None:
    assert HISTORY_CAP == 25_000
    assert inspect.signature(moto_seam.install).parameters["history_cap"].default == HISTORY_CAP


# 256 KiB per payload: States.DataLimitExceeded, which neither States.ALL nor its own name catches.


def test_a_task_result_above_256_kib_fails_the_execution_and_no_retry_or_catch_runs() -> None:
    # Given a task that retries and catches everything, whose function answers 300 KB
    function = Probe({"blob": "x" * 300_000})
    definition = machine(
        {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": FUNCTION, "Payload": {}},
            "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            "End": True,
        },
        CAUGHT,
    )

    # When it runs
    run = run_machine(definition, function)

    # Then the execution fails with the terminal error after one attempt
    assert (run.status, run.error) == ("FAILED", "States.DataLimitExceeded")
    assert len(function.calls) == 1
    assert not run.entered("Caught")


def test_a_task_input_above_256_kib_after_parameters_fails_before_the_call() -> None:
    # Given Parameters that double a 150 KB input, and a Catch naming States.DataLimitExceeded itself
    function = Probe()
    definition = machine(
        {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": FUNCTION, "Payload": {"a.$": "$.blob", "b.$": "$.blob"}},
            "Catch": [{"ErrorEquals": ["States.DataLimitExceeded"], "Next": "Caught"}],
            "End": True,
        },
        CAUGHT,
    )

    # When it runs
    run = run_machine(definition, function, execution_input={"blob": "y" * 150_000})

    # Then it fails before invoking anything, and the Catch does not run (the safer reading of "terminal")
    assert (run.status, run.error) == ("FAILED", "States.DataLimitExceeded")
    assert function.calls == []
    assert not run.entered("Caught")


def test_a_state_output_above_256_kib_inside_a_parallel_is_not_caught_by_the_parallel() -> None:
    # Given a branch whose task answers 300 KB, in a Parallel that catches everything
    branch = {
        "StartAt": "Big",
        "States": {
            "Big": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": FUNCTION, "Payload": {}},
                "End": True,
            }
        },
    }
    definition = machine(
        {
            "Type": "Parallel",
            "Branches": [branch],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            "End": True,
        },
        CAUGHT,
    )

    # When it runs
    run = run_machine(definition, Probe({"blob": "z" * 300_000}))

    # Then the execution fails with it
    assert (run.status, run.error) == ("FAILED", "States.DataLimitExceeded")
    assert not run.entered("Caught")


# A failed Parallel branch or Map iteration: the state fails with the branch's error, States.* names included.


@pytest.mark.parametrize("kind", ["Parallel", "Map"])
def test_a_branch_that_times_out_fails_its_parallel_or_map_with_states_timeout(kind: str) -> None:
    # Given a callback that times out inside a Parallel or a Map whose Catch names States.Timeout
    inner = {"StartAt": "Wait", "States": {"Wait": callback_task(TimeoutSeconds=60)}}
    state: dict[str, Any] = {
        "Type": kind,
        "End": True,
        "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Caught"}],
    }
    if kind == "Parallel":
        state["Branches"] = [inner]
    else:
        state.update(ItemsPath="$.items", ItemProcessor={**inner, "ProcessorConfig": {"Mode": "INLINE"}})

    # When it runs
    run = run_machine(machine(state, CAUGHT), execution_input={"items": [1]})

    # Then the branch's States.Timeout reaches the state's Catch (moto alone reports States.Runtime)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.entered("Caught")
