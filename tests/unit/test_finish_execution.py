"""finish_execution: an execution that ended outside its failure path is rolled back, unlocked and reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from finish_execution import logic
from finish_execution.models import ExecutionStatusEvent
from publish_launch_template_version.logic import version_description
from publish_launch_template_version.models import PublishInput

from shared.aws.lock_table import QueuedDeployment
from shared.aws.stepfunctions import last_state_entered
from shared.config import Stage
from shared.errors import InvalidInput
from tests.unit.fakes import FakeHistory, FakeLocks, FakeNotifier, FakeQueue
from tests.unit.test_publish_launch_template_version import FakeLaunchTemplates
from tests.unit.test_start_instance_refresh import (
    CONFIG,
    EXECUTION,
    GROUP,
    TARGET,
    TEMPLATE,
    FakeAutoScaling,
    _powertools_metrics,  # noqa: F401 (autouse fixture)
    make_refresh,
)

# One rolling stage with the target these fakes know.
ONE_TARGET = CONFIG.model_copy(update={"stages": (Stage(name="test", targets=(TARGET,)),)})
STATE_MACHINE = EXECUTION.rsplit(":", 1)[0].replace(":execution:", ":stateMachine:")
ASL = Path(__file__).resolve().parents[2] / "statemachine" / "deploy.asl.json"


def status_event(status: str, machine: str = STATE_MACHINE) -> ExecutionStatusEvent:
    return ExecutionStatusEvent.model_validate(
        {
            "source": "aws.states",
            "detail-type": "Step Functions Execution Status Change",
            "detail": {"executionArn": EXECUTION, "stateMachineArn": machine, "status": status, "input": "{}"},
        }
    )


def published_by_this_execution() -> FakeLaunchTemplates:
    """Version 2 of the target's template, made by EXECUTION from version 1, is the default."""
    store = FakeLaunchTemplates(versions=[1], default=1)
    request = PublishInput(execution_id=EXECUTION, target=TARGET, ami_id="ami-0123456789abcdef0")
    new = store.create_version(
        TEMPLATE,
        source_version=1,
        image_id=request.ami_id,
        description=version_description(request, 1),
        client_token="t",
    )
    store.set_default_version(TEMPLATE, new.number)
    return store


def run(status: str, last: str | None, autoscaling: FakeAutoScaling, store: FakeLaunchTemplates) -> Any:
    locks, notifier = FakeLocks({GROUP: EXECUTION, "someone-elses": "other"}), FakeNotifier()
    output = logic.run(
        status_event(status),
        STATE_MACHINE,
        ONE_TARGET,
        history=FakeHistory(last),
        locks=locks,
        autoscaling=autoscaling,
        templates=store,
        notifier=notifier,
    )
    return output, locks, notifier


def test_a_stopped_execution_mid_refresh_is_rolled_back_unlocked_and_reported_once() -> None:
    # Given an execution stopped while its refresh to version 2 runs
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-1", "InProgress", percentage=40)])
    store = published_by_this_execution()
    # When EventBridge delivers its ABORTED status change
    output, locks, notifier = run("ABORTED", "WaitForRefreshEvent", autoscaling, store)
    # Then AWS rolls the fleet back, version 1 is the default again, its lock (only) is gone, one notification
    assert "RollbackInstanceRefresh" in autoscaling.calls
    assert store.default == 1
    assert output.targets[0].outcome == "rolled-back"
    assert locks.held == {"someone-elses": "other"}
    assert [m["event"] for _, m in notifier.sent] == ["DeploymentFailed", "RolledBack"]
    failed = notifier.sent[0][1]
    assert failed["error"]["Error"] == "ExecutionAborted"
    assert failed["rolledBack"] == [GROUP]
    assert failed["locksReleased"] == [GROUP]
    assert [t["outcome"] for t in failed["targets"]] == ["rolled-back"]
    assert "ABORTED in WaitForRefreshEvent" in notifier.mails[0]
    assert "What was rolled back: 1 group(s)." in notifier.mails[0]


def test_a_target_whose_refresh_succeeded_keeps_the_new_version() -> None:
    # Given the execution timed out after this target's refresh had succeeded
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-1", "Successful", percentage=100)])
    store = published_by_this_execution()
    # When the TIMED_OUT status change arrives
    output, _, _ = run("TIMED_OUT", "WaitForApproval", autoscaling, store)
    # Then the finished deployment stays: nothing is rolled back
    assert (output.targets[0].outcome, store.default) == ("deployed", 2)
    assert "RollbackInstanceRefresh" not in autoscaling.calls


def test_an_execution_that_failed_through_its_own_failure_path_is_left_alone() -> None:
    # Given a failure the state machine handled (it ended in DeploymentFailed, after rolling back and notifying)
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-1", "Failed")])
    store = published_by_this_execution()
    # When its FAILED status change arrives
    output, locks, notifier = run("FAILED", "DeploymentFailed", autoscaling, store)
    # Then nothing is done twice: no rollback, no lock touched, no second notification
    assert output.handled
    assert (store.default, notifier.sent, locks.held[GROUP]) == (2, [], EXECUTION)


def test_a_failure_outside_the_failure_path_is_cleaned_up() -> None:
    # Given an execution that failed in a wait (the history quota fails it wherever it is, with no Catch)
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-1", "InProgress", percentage=10)])
    store = published_by_this_execution()
    # When its FAILED status change arrives
    output, _, notifier = run("FAILED", "WaitForHealth", autoscaling, store)
    # Then it is rolled back and reported like any failure
    assert (output.handled, store.default) == (False, 1)
    assert [m["event"] for _, m in notifier.sent] == ["DeploymentFailed", "RolledBack"]


def test_events_of_another_state_machine_or_status_are_refused() -> None:
    with pytest.raises(InvalidInput, match="not an end of this workflow's executions"):
        logic.run(
            status_event("ABORTED", machine=f"{STATE_MACHINE}-other"),
            STATE_MACHINE,
            CONFIG,
            history=FakeHistory(None),
            locks=FakeLocks({}),
            autoscaling=FakeAutoScaling(),
            templates=FakeLaunchTemplates(),
            notifier=FakeNotifier(),
        )


def test_the_handled_ends_are_the_state_machines_own_final_failure_states() -> None:
    # The top-level Fail states, reached only after ReleaseLockAfterFailure/NotifyFailure or NotifyRejected
    states = json.loads(ASL.read_text())["States"]
    fails = {name for name, state in states.items() if state["Type"] == "Fail"}

    assert fails == logic.HANDLED_ENDS


def test_the_last_state_entered_is_read_by_event_id_whatever_the_order() -> None:
    events = [
        {"id": 1, "stateEnteredEventDetails": {"name": "Init"}},
        {"id": 3, "stateEnteredEventDetails": {"name": "WaitForHealth"}},
        {"id": 4, "type": "ExecutionAborted"},
        {"id": 2, "stateEnteredEventDetails": {"name": "ValidateRequest"}},
    ]

    assert last_state_entered(events) == "WaitForHealth"


def test_a_stopped_execution_wakes_the_push_queued_for_its_groups_and_leaves_the_queue_itself() -> None:
    # Given a push queued behind the stopped execution's group, and the stopped execution's own stale queue item
    def queued(execution: str, token: str) -> QueuedDeployment:
        return QueuedDeployment(execution, (GROUP,), "deploy", "codecommit", 1, 1, token, 9)

    queue = FakeQueue(
        [queued("arn:aws:states:eu-west-1:123456789012:execution:deploy:next", "t-next"), queued(EXECUTION, "t-own")]
    )
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-1", "InProgress", percentage=40)])
    locks, notifier = FakeLocks({GROUP: EXECUTION}), FakeNotifier()
    # When its ABORTED status change arrives
    output = logic.run(
        status_event("ABORTED"),
        STATE_MACHINE,
        ONE_TARGET,
        history=FakeHistory("WaitForRefreshEvent"),
        locks=locks,
        autoscaling=autoscaling,
        templates=published_by_this_execution(),
        notifier=notifier,
        queue=queue,
    )
    # Then the queued push is woken (it takes the lock next) and nothing of the stopped one is left queued
    assert output.locks_released == [GROUP]
    assert queue.woken == ["t-next"]
    assert output.queued_woken == ["arn:aws:states:eu-west-1:123456789012:execution:deploy:next"]
    assert EXECUTION not in queue.entries
