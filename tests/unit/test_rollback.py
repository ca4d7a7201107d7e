"""rollback: stop the refresh (AWS rollback, else cancel), restore the previous default, refresh back if needed."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from rollback import logic
from rollback.models import RollbackInput

from shared.aws.autoscaling import AutoScaling
from shared.aws.launch_templates import LaunchTemplates
from shared.config import DeployConfig
from shared.errors import InvalidInput, RefreshInProgress, RollbackFailed
from tests.conftest import REGION, SAMPLE_DEPLOY_CONFIG
from tests.unit.test_publish_launch_template_version import FakeLaunchTemplates
from tests.unit.test_start_instance_refresh import (
    CONFIG,
    EXECUTION,
    GROUP,
    STARTED,
    TARGET,
    TEMPLATE,
    FakeAutoScaling,
    _powertools_metrics,  # noqa: F401 (autouse fixture)
    instance,
    make_group,
    make_refresh,
)


def rollback_request(
    refresh_id: str | None = "r-1", *, previous: int = 1, new: int | None = 2, dry_run: bool = False
) -> RollbackInput:
    return RollbackInput(
        execution_id=EXECUTION,
        dry_run=dry_run,
        target=TARGET,
        instance_refresh_id=refresh_id,
        previous_version=previous,
        new_version=new,
    )


def templates_on_new_default() -> FakeLaunchTemplates:
    return FakeLaunchTemplates(versions=[1, 2], default=2)


@pytest.mark.parametrize("status", ["Pending", "InProgress", "Baking", "Cancelling"])
def test_active_refresh_is_rolled_back_by_aws_and_the_default_restored(status: str) -> None:
    # Given the deployment's refresh is active
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-1", status, percentage=30)])
    templates = templates_on_new_default()
    # When rolling back
    output = logic.run(rollback_request(), CONFIG, autoscaling=autoscaling, launch_templates=templates)
    # Then AWS rolls the fleet back, the default is version 1 again, and the step waits for the rollback
    assert "RollbackInstanceRefresh" in autoscaling.calls
    assert autoscaling.started == []
    assert templates.default == 1
    assert (output.instance_refresh_id, output.needs_wait, output.launch_template_default_version) == ("r-1", True, 1)
    assert output.actions == [
        "started RollbackInstanceRefresh of instance refresh r-1",
        f"set launch template {TEMPLATE} default from version 2 back to 1",
    ]


def test_refused_rollback_cancels_then_refreshes_back_once_the_cancellation_ends() -> None:
    # Given AWS refuses RollbackInstanceRefresh for the active refresh
    autoscaling = FakeAutoScaling(
        make_group([instance("i-new", "2"), instance("i-old", "1")]),
        [make_refresh("r-1", "InProgress", percentage=50)],
        irreversible=True,
    )
    templates = templates_on_new_default()
    # When rolling back: the refresh is cancelled and the default restored, but the refresh back must wait
    # for the cancellation (Cancelling blocks StartInstanceRefresh) -> RefreshInProgress for the state machine
    with pytest.raises(RefreshInProgress, match="r-1 \\(Cancelling"):
        logic.run(rollback_request(), CONFIG, autoscaling=autoscaling, launch_templates=templates)
    assert autoscaling.calls.count("CancelInstanceRefresh") == 1
    assert templates.default == 1
    # When the cancellation has ended and the step is retried
    autoscaling.refreshes = [dataclasses.replace(autoscaling.refreshes[0], status="Cancelled")]
    output = logic.run(rollback_request(), CONFIG, autoscaling=autoscaling, launch_templates=templates)
    # Then a refresh to version 1 starts with rollback preferences, and the step waits for it
    assert [(s["version"], s["preferences"]["AutoRollback"]) for s in autoscaling.started] == [(1, False)]
    assert (output.instance_refresh_id, output.needs_wait) == ("refresh-2", True)
    assert output.actions[-1] == "started instance refresh refresh-2 to version 1"


def test_successful_refresh_is_followed_by_a_refresh_back_to_the_previous_version() -> None:
    # Given the refresh succeeded (the group now uses version 2)
    autoscaling = FakeAutoScaling(
        make_group([instance("i-1", "2"), instance("i-2", "2")], version="2"),
        [make_refresh("r-1", "Successful", percentage=100)],
    )
    templates = templates_on_new_default()
    # When rolling back (e.g. the health check failed)
    output = logic.run(rollback_request(), CONFIG, autoscaling=autoscaling, launch_templates=templates)
    # Then the default is restored and a refresh to version 1 (not $Default) starts
    assert templates.default == 1
    assert [s["version"] for s in autoscaling.started] == [1]
    assert (output.instance_refresh_id, output.needs_wait) == ("refresh-2", True)


def test_redriven_rollback_adopts_its_refresh_back_instead_of_starting_another() -> None:
    # Given a rollback already started the refresh back to version 1
    autoscaling = FakeAutoScaling(
        make_group([instance("i-1", "2")], version="2"), [make_refresh("r-1", "Successful", percentage=100)]
    )
    templates = templates_on_new_default()
    first = logic.run(rollback_request(), CONFIG, autoscaling=autoscaling, launch_templates=templates)
    # When the step runs again
    second = logic.run(rollback_request(), CONFIG, autoscaling=autoscaling, launch_templates=templates)
    # Then the running refresh back is adopted
    assert len(autoscaling.started) == 1
    assert second.instance_refresh_id == first.instance_refresh_id
    assert second.actions[-1] == f"adopted instance refresh {first.instance_refresh_id} to version 1"


def test_rollback_after_the_fleet_is_back_starts_nothing() -> None:
    # Given the refresh succeeded but the fleet and the group are back on version 1 (a finished earlier rollback)
    autoscaling = FakeAutoScaling(
        make_group([instance("i-1", "1")], version="1"), [make_refresh("r-1", "Successful", percentage=100)]
    )
    templates = FakeLaunchTemplates(versions=[1, 2], default=1)
    # When rolling back again
    output = logic.run(rollback_request(), CONFIG, autoscaling=autoscaling, launch_templates=templates)
    # Then nothing changes and there is nothing to wait for
    assert autoscaling.started == []
    assert templates.default_changes == []
    assert output.needs_wait is False


def test_failed_refresh_that_replaced_nothing_only_restores_the_default() -> None:
    # Given a refresh that failed before replacing anything; the fleet runs version 1
    autoscaling = FakeAutoScaling(make_group([instance("i-1", "1")]), [make_refresh("r-1", "Failed", percentage=0)])
    templates = templates_on_new_default()
    # When rolling back
    output = logic.run(rollback_request(), CONFIG, autoscaling=autoscaling, launch_templates=templates)
    # Then only the default changes
    assert autoscaling.started == []
    assert "RollbackInstanceRefresh" not in autoscaling.calls
    assert templates.default == 1
    assert (output.instance_refresh_id, output.needs_wait) == (None, False)


def test_failed_refresh_at_zero_percent_with_an_instance_on_the_new_version_refreshes_back() -> None:
    # Given a refresh cancelled at 0% but one new instance already launched on version 2
    autoscaling = FakeAutoScaling(
        make_group([instance("i-1", "1"), instance("i-new", "2", state="Pending")]),
        [make_refresh("r-1", "Cancelled", percentage=0)],
    )
    # When rolling back
    output = logic.run(rollback_request(), CONFIG, autoscaling=autoscaling, launch_templates=templates_on_new_default())
    # Then the fleet is refreshed back, the reason in the actions
    assert [s["version"] for s in autoscaling.started] == [1]
    assert "1 instance(s) run version 2: i-new" in output.actions


@pytest.mark.parametrize(("status", "needs_wait"), [("RollbackInProgress", True), ("RollbackSuccessful", False)])
def test_rollback_already_done_by_aws_counts_as_done(status: str, needs_wait: bool) -> None:
    # Given AWS is rolling back (or rolled back) the refresh itself
    autoscaling = FakeAutoScaling(make_group([instance("i-1", "2")]), [make_refresh("r-1", status, percentage=50)])
    templates = templates_on_new_default()
    # When rolling back
    output = logic.run(rollback_request(), CONFIG, autoscaling=autoscaling, launch_templates=templates)
    # Then no new rollback or refresh is made; the default is restored
    assert "RollbackInstanceRefresh" not in autoscaling.calls
    assert autoscaling.started == []
    assert templates.default == 1
    assert output.needs_wait is needs_wait
    assert output.instance_refresh_id == ("r-1" if needs_wait else None)


def test_rollback_without_a_refresh_id_finds_the_refresh_a_crashed_start_step_made() -> None:
    # Given no refresh id in the payload, but an active refresh to the new version on the group
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-orphan", "InProgress", "2")])
    # When rolling back
    output = logic.run(
        rollback_request(None), CONFIG, autoscaling=autoscaling, launch_templates=templates_on_new_default()
    )
    # Then that refresh is rolled back
    assert output.instance_refresh_id == "r-orphan"
    assert "RollbackInstanceRefresh" in autoscaling.calls


def test_rollback_dry_run_lists_the_actions_and_changes_nothing() -> None:
    # Given a successful refresh and the default on the new version
    autoscaling = FakeAutoScaling(
        make_group([instance("i-1", "2")], version="2"), [make_refresh("r-1", "Successful", percentage=100)]
    )
    templates = templates_on_new_default()
    # When rolling back in dry run
    output = logic.run(rollback_request(dry_run=True), CONFIG, autoscaling=autoscaling, launch_templates=templates)
    # Then the actions are listed and nothing changed
    assert templates.default_changes == []
    assert autoscaling.started == []
    assert output.instance_refresh_id is None
    assert output.needs_wait is True
    assert output.actions[-2:] == [
        f"would set launch template {TEMPLATE} default from version 2 back to 1",
        "would start an instance refresh to version 1",
    ]


def test_rollback_dry_run_of_an_active_refresh_calls_no_mutating_api() -> None:
    # Given an active refresh
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-1", "InProgress")])
    # When rolling back in dry run
    output = logic.run(
        rollback_request(dry_run=True), CONFIG, autoscaling=autoscaling, launch_templates=templates_on_new_default()
    )
    # Then only reads happened
    assert set(autoscaling.calls) <= {"DescribeInstanceRefreshes", "DescribeAutoScalingGroups"}
    assert output.actions[0].startswith("would roll back instance refresh r-1 (InProgress, 0% complete)")


def test_rollback_to_a_missing_previous_version_fails_with_rollback_failed() -> None:
    # Given version 1 was deleted
    templates = FakeLaunchTemplates(versions=[2, 3], default=3)
    # When rolling back to it
    # Then the failure is named RollbackFailed
    with pytest.raises(RollbackFailed, match="cannot restore default version 1"):
        logic.run(rollback_request(None, new=3), CONFIG, autoscaling=FakeAutoScaling(), launch_templates=templates)


def test_rollback_rejects_equal_previous_and_new_versions() -> None:
    with pytest.raises(ValueError, match="nothing to roll back to"):
        rollback_request(previous=2, new=2)


# --- adapter and handler end to end ------------------------------------------------------------------


def test_adapter_returns_aws_refusals_of_rollback_and_cancel_as_outcomes() -> None:
    # Given AWS refuses the rollback (irreversible) and then finds no refresh to cancel
    client = boto3.client("autoscaling", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_client_error(
            "rollback_instance_refresh",
            service_error_code="IrreversibleInstanceRefresh",
            service_message="uses $Latest",
        )
        stub.add_client_error("cancel_instance_refresh", service_error_code="ActiveInstanceRefreshNotFound")
        adapter = AutoScaling(client)
        # When
        attempt = adapter.rollback_refresh(GROUP)
        cancelled = adapter.cancel_refresh(GROUP)
    # Then
    assert (attempt.outcome, attempt.message) == ("irreversible", "uses $Latest")
    assert cancelled is None


def test_handler_rolls_back_an_active_refresh_and_restores_the_default_in_moto(
    lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        # Given a moto launch template whose default is version 2, and a stubbed active refresh
        handler = importlib.import_module("rollback.handler")
        ec2 = boto3.client("ec2", region_name=REGION)
        template_id = ec2.create_launch_template(
            LaunchTemplateName="web-app", LaunchTemplateData={"ImageId": "ami-00000000000000001"}
        )["LaunchTemplate"]["LaunchTemplateId"]
        ec2.create_launch_template_version(
            LaunchTemplateId=template_id, SourceVersion="1", LaunchTemplateData={"ImageId": "ami-00000000000000002"}
        )
        ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion="2")
        config = dict(SAMPLE_DEPLOY_CONFIG)
        config["stages"] = [
            {"name": "test", "targets": [{"autoScalingGroupName": GROUP, "launchTemplateId": template_id}]}
        ]
        monkeypatch.setattr(handler, "CONFIG", DeployConfig.model_validate(config))
        monkeypatch.setattr(handler, "launch_templates", lambda: LaunchTemplates(ec2))
        asg = boto3.client("autoscaling", region_name=REGION)
        monkeypatch.setattr(handler, "autoscaling", lambda: AutoScaling(asg))
        with Stubber(asg) as stub:
            stub.add_response(
                "describe_instance_refreshes",
                {
                    "InstanceRefreshes": [
                        {
                            "InstanceRefreshId": "r-1",
                            "AutoScalingGroupName": GROUP,
                            "Status": "InProgress",
                            "PercentageComplete": 25,
                            "StartTime": STARTED,
                            "DesiredConfiguration": {
                                "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": "2"}
                            },
                        }
                    ]
                },
                {"AutoScalingGroupName": GROUP, "InstanceRefreshIds": ["r-1"], "MaxRecords": 100},
            )
            stub.add_response(
                "rollback_instance_refresh", {"InstanceRefreshId": "r-1"}, {"AutoScalingGroupName": GROUP}
            )
            # When the handler runs
            result = handler.lambda_handler(
                {
                    "executionId": EXECUTION,
                    "target": {"autoScalingGroupName": GROUP, "launchTemplateId": template_id},
                    "instanceRefreshId": "r-1",
                    "previousVersion": 1,
                    "newVersion": 2,
                },
                lambda_context,
            )
            stub.assert_no_pending_responses()
        # Then the default is version 1 again and the step waits for AWS's rollback
        default = ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=["$Default"])
        assert default["LaunchTemplateVersions"][0]["VersionNumber"] == 1
    assert result == {
        "autoScalingGroupName": GROUP,
        "actions": [
            "started RollbackInstanceRefresh of instance refresh r-1",
            f"set launch template {template_id} default from version 2 back to 1",
        ],
        "launchTemplateDefaultVersion": 1,
        "instanceRefreshId": "r-1",
        "needsWait": True,
    }


def test_handler_rejects_equal_versions_as_invalid_input(lambda_context: Any) -> None:
    handler = importlib.import_module("rollback.handler")
    event = {
        "executionId": EXECUTION,
        "target": {"autoScalingGroupName": GROUP, "launchTemplateId": TEMPLATE},
        "instanceRefreshId": None,
        "previousVersion": 3,
        "newVersion": 3,
    }
    with pytest.raises(InvalidInput, match="nothing to roll back to"):
        handler.lambda_handler(event, lambda_context)
