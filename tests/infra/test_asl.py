"""statemachine/deploy.asl.json: valid JSON, fully substituted, every Task bounded and retried with jitter."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from stacks.deploy_workflow import ASL_FILE, STEPS
from stacks.lambda_function import camel
from tests.infra.conftest import Synthesized

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
LAMBDAS = ASL_FILE.parent.parent / "lambdas"


def asl() -> dict[str, Any]:
    return json.loads(ASL_FILE.read_text())


def all_states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from all_states(processor["States"])
        for branch in state.get("Branches", []):
            yield from all_states(branch["States"])


def test_definition_is_valid_json_with_a_start_state() -> None:
    definition = asl()

    assert definition["StartAt"] in definition["States"]


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(synthesized: Synthesized) -> None:
    placeholders = set(PLACEHOLDER.findall(ASL_FILE.read_text()))
    substitutions = set(synthesized.stack.node.find_child("Workflow").definition_substitutions)  # type: ignore[attr-defined]

    assert placeholders == substitutions


def test_cloudformation_substitutes_every_placeholder_of_the_shipped_definition(synthesized: Synthesized) -> None:
    # DefinitionBody.from_file ships the file as an asset; CloudFormation fills DefinitionSubstitutions in.
    machine = next(iter(synthesized.resources("AWS::StepFunctions::StateMachine").values()))["Properties"]
    shipped = [p for p in synthesized.assembly_dir.glob("asset.*.json") if p.read_text() == ASL_FILE.read_text()]

    assert shipped, "the ASL file is not among the assets"
    assert set(machine["DefinitionSubstitutions"]) == set(PLACEHOLDER.findall(ASL_FILE.read_text()))
    assert "DefinitionS3Location" in machine


def test_every_task_has_a_timeout() -> None:
    tasks = [(name, s) for name, s in all_states(asl()["States"]) if s["Type"] == "Task"]

    assert tasks
    for name, state in tasks:
        assert "TimeoutSeconds" in state or "TimeoutSecondsPath" in state, f"{name} has no TimeoutSeconds"


def test_every_retry_backs_off_with_full_jitter() -> None:
    for name, state in all_states(asl()["States"]):
        for retry in state.get("Retry", []):
            assert retry.get("JitterStrategy") == "FULL", name
            assert retry.get("BackoffRate", 1) > 1, name
            assert "MaxDelaySeconds" in retry, name


def test_every_lambda_task_names_a_step_the_stack_builds() -> None:
    arns = {f"${{{camel(step)}FunctionArn}}" for step in STEPS}
    for name, state in all_states(asl()["States"]):
        if state.get("Resource") == "arn:aws:states:::lambda:invoke":
            assert state["Parameters"]["FunctionName"] in arns, name


def test_every_transition_points_to_an_existing_state() -> None:
    def check(states: dict[str, Any]) -> None:
        for name, state in states.items():
            targets = [state.get("Next"), state.get("Default")]
            targets += [c["Next"] for c in state.get("Choices", [])]
            targets += [c["Next"] for c in state.get("Catch", [])]
            for target in filter(None, targets):
                assert target in states, f"{name} → {target}"
            processor = state.get("ItemProcessor")
            if processor:
                assert processor["StartAt"] in processor["States"]
                check(processor["States"])

    check(asl()["States"])


@pytest.mark.parametrize("state", ["Rejected", "DeploymentFailed"])
def test_failure_ends_report_the_named_error_of_the_step(state: str) -> None:
    fail = asl()["States"][state]

    assert fail == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


def test_no_callback_wait_retries_its_own_timeout() -> None:
    # A waitForTaskToken task whose TimeoutSeconds is the fallback poll: retrying States.Timeout (or a catch-all)
    # would run the wait MaxAttempts + 1 times before the bound is checked again (Step Functions Developer Guide,
    # "Handling errors in Step Functions workflows": a retrier matching States.Timeout retries the timed-out task).
    callbacks = [(n, s) for n, s in all_states(asl()["States"]) if s.get("Resource", "").endswith(".waitForTaskToken")]

    assert callbacks
    for name, state in callbacks:
        for retry in state.get("Retry", []):
            retried = set(retry["ErrorEquals"]) & {"States.Timeout", "States.HeartbeatTimeout", "States.ALL"}
            assert not retried, f"{name} retries {sorted(retried)}"


def test_no_task_sets_a_heartbeat_because_nothing_sends_one() -> None:
    # A task with HeartbeatSeconds fails with States.HeartbeatTimeout unless SendTaskHeartbeat arrives in time.
    senders = [p for p in LAMBDAS.rglob("*.py") if "send_task_heartbeat" in p.read_text()]

    assert not senders, "a function sends heartbeats now: this test and the ASL's heartbeats must change together"
    for name, state in all_states(asl()["States"]):
        assert "HeartbeatSeconds" not in state, name
        assert "HeartbeatSecondsPath" not in state, name


def test_an_unanswered_approval_expires_at_its_configured_time_apart_from_a_rejection(synthesized: Synthesized) -> None:
    stage = asl()["States"]["DeployStages"]["ItemProcessor"]["States"]
    approval = stage["WaitForApproval"]
    machine = next(iter(synthesized.resources("AWS::StepFunctions::StateMachine").values()))["Properties"]

    assert approval["TimeoutSecondsPath"] == "$.settings.approvalTimeoutSeconds"
    assert machine["DefinitionSubstitutions"]["ApprovalTimeoutSeconds"] == str(72 * 3600)
    assert [(c["ErrorEquals"], c["Next"]) for c in approval["Catch"]] == [
        (["States.Timeout"], "ApprovalExpired"),
        (["States.ALL"], "ApprovalRejected"),
    ]
    assert stage["ApprovalExpired"]["Error"] == "ApprovalExpired"
