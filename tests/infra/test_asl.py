"""statemachine/deploy.asl.json: valid JSON, fully substituted, every Task bounded and retried with jitter."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from shared.statuses import ACTIVE_REFRESH_STATUSES
from stacks.deploy_workflow import ASL_FILE
from stacks.steps import BY_PLACEHOLDER
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
    arns = {f"${{{placeholder}}}" for placeholder in BY_PLACEHOLDER}
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
        (["Rejected"], "ApprovalRejected"),  # scripts/approval.py's SendTaskFailure; any other error is not a rejection
    ]
    assert stage["ApprovalExpired"]["Error"] == "ApprovalExpired"


# --- bakes: per-bake recipes, the base first on a fresh account, cancel on the way out ---------------------


def lambda_payload(state: dict[str, Any]) -> dict[str, Any]:
    return dict(state["Parameters"]["Payload"])


def test_a_missing_base_image_bakes_the_base_first_then_the_app_on_it() -> None:
    states = asl()["States"]
    start, base_first = states["StartImageBuild"], states["StartBaseBuildFirst"]

    # StartImageBuild: BaseImageMissing (raised by start_image_build on a fresh account) before the catch-all
    assert [(c["ErrorEquals"], c["Next"]) for c in start["Catch"]] == [
        (["BaseImageMissing"], "StartBaseBuildFirst"),
        (["States.ALL"], "ReleaseLockAfterFailure"),
    ]
    assert start["Catch"][0]["ResultPath"] not in ("$.error", "$.build")  # the catch records, the bake goes on
    # StartBaseBuildFirst: the same function, the base pipeline, waited on like any bake
    assert base_first["Parameters"]["FunctionName"] == start["Parameters"]["FunctionName"]
    expected = {k: v for k, v in lambda_payload(start).items() if k != "pipeline.$"}
    assert lambda_payload(base_first) == {**expected, "pipeline": "base", "baseAmiId": None}
    assert (base_first["ResultPath"], base_first["Next"]) == ("$.build", "WaitForImageEvent")
    assert [(c["ErrorEquals"], c["Next"]) for c in base_first["Catch"]] == [(["States.ALL"], "ReleaseLockAfterFailure")]
    # Once the base is available, the app is baked on that very AMI
    app_on_base = states["StartAppBuildOnNewBase"]
    assert lambda_payload(app_on_base)["pipeline"] == "app"
    assert lambda_payload(app_on_base)["baseAmiId.$"] == "$.image.amiId"


def test_base_unchanged_ends_only_a_rebuild_base() -> None:
    # A deploy's base-first bake installs the same packages as nothing: its app must still be baked and rolled out
    base_or_app = asl()["States"]["BaseOrApp"]
    unchanged = next(c for c in base_or_app["Choices"] if c["Next"] == "BaseUnchanged")

    assert {"Variable": "$.plan.result.request.action", "StringEquals": "rebuild-base"} in unchanged["And"]
    assert {"Variable": "$.imageBuild.result.baseUnchanged", "BooleanEquals": True} in unchanged["And"]
    base = next(c for c in base_or_app["Choices"] if c["Next"] == "RenewLockForAppBake")
    assert base == {"Variable": "$.imageBuild.result.pipeline", "StringEquals": "base", "Next": "RenewLockForAppBake"}
    assert base_or_app["Choices"].index(unchanged) < base_or_app["Choices"].index(base)


def test_a_bake_still_running_is_waited_on_through_its_first_unfinished_build() -> None:
    states = asl()["States"]
    verdict = states["ImageVerdict"]
    within_bound = next(c for c in verdict["Choices"] if "NumericLessThanPath" in c)

    assert within_bound["Next"] == "WaitOnPendingBuild"
    assert states["WaitOnPendingBuild"] == {
        "Type": "Pass",
        "Comment": states["WaitOnPendingBuild"]["Comment"],
        "InputPath": "$.imageBuild.result.pendingBuildArn",
        "ResultPath": "$.build.result.imageBuildVersionArn",
        "Next": "WaitForImageEvent",
    }
    assert lambda_payload(states["WaitForImageEvent"])["resourceId.$"] == "$.build.result.imageBuildVersionArn"
    # and every check reads all bakes of the build again, not only the one waited on
    assert lambda_payload(states["CheckImageBuild"])["build.$"] == "$.build.result"


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("ImageBuildFailed", "ImageBuildFailed"),
        ("ImageBuildCancelled", "ImageBuildCancelled"),
        ("ImageBuildTimedOut", "ImageBuildTimedOut"),
    ],
)
def test_a_bake_that_failed_was_cancelled_or_timed_out_cancels_its_unfinished_builds_before_failing(
    state: str, error: str
) -> None:
    states = asl()["States"]
    ending, cancel = states[state], states["CancelUnfinishedBuilds"]

    assert (ending["Parameters"]["Error"], ending["ResultPath"], ending["Next"]) == (
        error,
        "$.error",
        "CancelUnfinishedBuilds",
    )
    # check_image_build with cancel: every build of the bake that has not ended; the error to report is kept
    assert cancel["Parameters"]["FunctionName"] == "${CheckImageBuildFunctionArn}"
    assert lambda_payload(cancel) == {**lambda_payload(states["CheckImageBuild"]), "cancel": True}
    assert cancel["ResultPath"] != "$.error"
    assert [(c["ErrorEquals"], c["ResultPath"], c["Next"]) for c in cancel["Catch"]] == [
        (["States.ALL"], "$.cancelError", "ReleaseLockAfterFailure")
    ]
    assert cancel["Next"] == "ReleaseLockAfterFailure"


def test_the_images_of_a_rebuild_reach_every_publish() -> None:
    states = asl()["States"]
    stages = states["DeployStages"]
    waves = stages["ItemProcessor"]["States"]["DeployWaves"]
    wave = waves["ItemProcessor"]["States"]["DeployWave"]
    publish = wave["ItemProcessor"]["States"]["PublishLaunchTemplateVersion"]

    assert states["ImageAvailable"]["Parameters"]["images.$"] == "$.imageBuild.result.images"
    assert states["ImageFromRequest"]["Parameters"]["images"] is None  # deploy-image, rollback: no bake
    assert states["Init"]["Parameters"]["image"]["images"] is None
    assert stages["ItemSelector"]["images.$"] == "$.image.images"
    assert waves["ItemSelector"]["images.$"] == "$.images"
    assert wave["ItemSelector"]["images.$"] == "$.images"
    assert lambda_payload(publish)["images.$"] == "$.images"


def test_a_check_that_fails_for_good_still_cancels_the_builds_it_was_watching() -> None:
    # A check that outlived its retries (GetImage denied, throttled for minutes) must not leave builds running
    states = asl()["States"]
    assert [(c["ErrorEquals"], c["ResultPath"], c["Next"]) for c in states["CheckImageBuild"]["Catch"]] == [
        (["States.ALL"], "$.error", "CancelUnfinishedBuilds")
    ]


# --- approvals: the task token is in no message ------------------------------------------------------------------


def references_task_token(value: Any) -> bool:
    if isinstance(value, dict):
        return any(references_task_token(v) for v in value.values())
    if isinstance(value, list):
        return any(references_task_token(v) for v in value)
    return isinstance(value, str) and "$$.Task.Token" in value


def test_no_notification_carries_a_task_token() -> None:
    # Anyone who reads the mail and may call SendTaskSuccess (granted on "*": it has no resource types) could answer
    # the task with it: approve a stage. No notification waits for a token, and no payload names one; the state
    # machine publishes nothing itself (the notify step does, shared.notifications refusing a taskToken field).
    states = list(all_states(asl()["States"]))
    notifies = [(n, s) for n, s in states if s.get("Parameters", {}).get("FunctionName") == "${NotifyFunctionArn}"]

    assert not [n for n, s in states if ":::sns:" in s.get("Resource", "")]
    assert {n for n, _ in notifies} >= {"NotifyStarted", "NotifySuccess", "NotifyFailure", "NotifyRejected"}
    for name, state in notifies:
        assert state["Resource"] == "arn:aws:states:::lambda:invoke", name
        assert not references_task_token(state["Parameters"]["Payload"]), name


def test_an_approval_waits_on_register_wait_which_keeps_its_token_in_the_table() -> None:
    approval = asl()["States"]["DeployStages"]["ItemProcessor"]["States"]["WaitForApproval"]
    payload = lambda_payload(approval)

    assert approval["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert approval["Parameters"]["FunctionName"] == "${RegisterWaitFunctionArn}"
    assert payload["kind"] == "approval"  # shared.aws.task_tokens.APPROVAL (tests/infra/test_approvals.py)
    assert payload["taskToken.$"] == "$$.Task.Token"
    # the resource id register_wait checks and scripts/approval.py looks up (task_tokens.approval_resource_id)
    assert payload["resourceId.$"] == "States.Format('{}#{}', $.executionId, $.stage.name)"
    assert payload["approval"]["stage.$"] == "$.stage.name"
    assert payload["approval"]["timeoutSeconds.$"] == approval["TimeoutSecondsPath"]


def _status_alternatives(condition: Any) -> Iterator[list[str]]:
    """The values of every `Or` of StringEquals tests on one `...result.status` variable, nested anywhere."""
    if isinstance(condition, list):
        for item in condition:
            yield from _status_alternatives(item)
    elif isinstance(condition, dict):
        tests = condition.get("Or", [])
        variables = {t.get("Variable", "") for t in tests if isinstance(t, dict)}
        if len(variables) == 1 and next(iter(variables)).endswith(".result.status"):
            yield [t["StringEquals"] for t in tests]
        for value in condition.values():
            yield from _status_alternatives(value)


def test_every_wait_on_an_active_instance_refresh_lists_exactly_the_active_statuses() -> None:
    # Given every Choice of the definition that branches on an instance refresh's status
    choices = [s for _, s in all_states(asl()["States"]) if s.get("Type") == "Choice"]
    waits = [set(v) for c in choices for v in _status_alternatives(c["Choices"]) if set(v) & ACTIVE_REFRESH_STATUSES]
    # Then each one that waits on a refresh still under way names the functions' active statuses, no more, no fewer
    assert len(waits) == 2  # RefreshVerdict and RollbackVerdict
    assert all(w == ACTIVE_REFRESH_STATUSES for w in waits)
