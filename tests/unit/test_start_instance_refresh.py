"""start_instance_refresh: pinned version, preferences AWS accepts, adopt-or-refuse on active refreshes."""

from __future__ import annotations

import importlib
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from start_instance_refresh import logic
from start_instance_refresh.models import StartInstanceRefreshInput

from shared.aws.autoscaling import AutoScaling, GroupInstance
from shared.config import ConfigurationError, RefreshPreferences, Target
from shared.errors import AutoScalingGroupNotFound, InvalidInput, RefreshInProgress
from shared.observability import metrics
from tests.conftest import REGION
from tests.unit.fakes import CONFIG, GROUP, STARTED, TARGET, TEMPLATE, FakeAutoScaling, make_group, make_refresh

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:deploy:run-1"


def instance(
    instance_id: str,
    version: str = "1",
    *,
    state: str = "InService",
    protected: bool = False,
    template: str = TEMPLATE,
) -> GroupInstance:
    return GroupInstance(
        instance_id=instance_id,
        lifecycle_state=state,
        health_status="Healthy",
        protected_from_scale_in=protected,
        launch_template_id=template,
        launch_template_version=version,
    )


@pytest.fixture(autouse=True)
def _powertools_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """shared.observability is imported at collection, before conftest sets POWERTOOLS_* : apply them here."""
    monkeypatch.setattr(metrics, "namespace", "ImmutableAmiPipeline")
    monkeypatch.setattr(metrics, "service", "web-app")


def request(version: int = 2, *, dry_run: bool = False, target: Target = TARGET) -> StartInstanceRefreshInput:
    return StartInstanceRefreshInput(
        execution_id=EXECUTION, dry_run=dry_run, target=target, launch_template_version=version
    )


# --- preferences ---------------------------------------------------------------------------------


def test_preferences_default_to_ignoring_protected_and_standby_instances_without_optional_blocks() -> None:
    # Given the default refresh preferences
    refresh = RefreshPreferences()
    # When they are built
    preferences = logic.build_refresh_preferences(refresh)
    # Then instances that would stall a refresh are ignored, and no checkpoint/alarm block is sent
    assert preferences == {
        "MinHealthyPercentage": 90,
        "MaxHealthyPercentage": 100,
        "InstanceWarmup": 300,
        "SkipMatching": True,
        "ScaleInProtectedInstances": "Ignore",
        "StandbyInstances": "Ignore",
        "AutoRollback": True,
        "BakeTime": 0,
    }


def test_preferences_carry_checkpoints_with_delay_and_alarms_when_configured() -> None:
    # Given checkpoints ending at 100 and two alarms
    refresh = RefreshPreferences(
        checkpoint_percentages=(20, 50, 100), checkpoint_delay_seconds=600, alarms=("5xx", "latency")
    )
    # When they are built
    preferences = logic.build_refresh_preferences(refresh)
    # Then both blocks are sent as AWS expects them
    assert preferences["CheckpointPercentages"] == [20, 50, 100]
    assert preferences["CheckpointDelay"] == 600
    assert preferences["AlarmSpecification"] == {"Alarms": ["5xx", "latency"]}


@pytest.mark.parametrize(
    ("checkpoints", "message"),
    [
        ((20, 50), "the last must be 100"),
        ((50, 20, 100), "unique and ascending"),
        ((50, 50, 100), "unique and ascending"),
        ((0, 100), "between 1 and 100"),
        ((50, 120), "between 1 and 100"),
    ],
)
def test_preferences_reject_checkpoints_aws_would_refuse_or_that_stop_short(
    checkpoints: tuple[int, ...], message: str
) -> None:
    # Given invalid checkpoint percentages
    refresh = RefreshPreferences(checkpoint_percentages=checkpoints)
    # When / Then building the preferences fails with the key and the reason
    with pytest.raises(ConfigurationError, match=message):
        logic.build_refresh_preferences(refresh)


def test_preferences_reject_a_healthy_percentage_range_wider_than_100() -> None:
    # Given min 50 and max 200
    refresh = RefreshPreferences(min_healthy_percentage=50, max_healthy_percentage=200)
    # When / Then
    with pytest.raises(ConfigurationError, match="must not exceed 100"):
        logic.build_refresh_preferences(refresh)


def test_preferences_reject_more_than_ten_alarms() -> None:
    # Given eleven alarms
    refresh = RefreshPreferences(alarms=tuple(f"alarm-{i}" for i in range(11)))
    # When / Then
    with pytest.raises(ConfigurationError, match="at most 10 alarms"):
        logic.build_refresh_preferences(refresh)


def test_rollback_preferences_drop_alarms_checkpoints_bake_time_and_auto_rollback() -> None:
    # Given preferences with every optional block
    refresh = RefreshPreferences(checkpoint_percentages=(50, 100), alarms=("5xx",), bake_time_seconds=600)
    # When they are built for a refresh back to the previous version
    preferences = logic.build_refresh_preferences(refresh, for_rollback=True)
    # Then nothing can stop or reverse the way back
    assert preferences["AutoRollback"] is False
    assert preferences["BakeTime"] == 0
    assert "AlarmSpecification" not in preferences
    assert "CheckpointPercentages" not in preferences


# --- start / adopt / refuse ----------------------------------------------------------------------


def test_start_pins_the_version_number_and_sends_the_configured_preferences() -> None:
    # Given a group with no refresh
    autoscaling = FakeAutoScaling()
    # When the refresh to version 7 starts
    output = logic.run(request(7), CONFIG, autoscaling=autoscaling)
    # Then the refresh names version "7" and the preferences sent are returned
    assert autoscaling.started == [
        {"template_id": TEMPLATE, "version": 7, "preferences": logic.build_refresh_preferences(CONFIG.refresh)}
    ]
    assert output.instance_refresh_id == "refresh-1"
    assert output.adopted is False
    assert output.preferences["InstanceWarmup"] == 60


def test_start_adopts_an_active_refresh_to_the_same_version_instead_of_starting_another() -> None:
    # Given a refresh to version 2 already in progress (a retried step)
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("refresh-ours", "InProgress", "2")])
    # When the step runs again
    output = logic.run(request(2), CONFIG, autoscaling=autoscaling)
    # Then it adopts the running refresh and starts nothing
    assert output.instance_refresh_id == "refresh-ours"
    assert output.adopted is True
    assert "StartInstanceRefresh" not in autoscaling.calls


def test_start_refuses_when_a_refresh_to_another_version_is_active_and_names_it() -> None:
    # Given someone else's refresh to version 5 in progress
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("refresh-foreign", "InProgress", "5")])
    # When the step runs for version 2
    # Then it fails clearly with the running refresh id, and starts nothing
    with pytest.raises(RefreshInProgress, match="refresh-foreign"):
        logic.run(request(2), CONFIG, autoscaling=autoscaling)
    assert "StartInstanceRefresh" not in autoscaling.calls


def test_start_adopts_a_refresh_to_the_same_version_that_won_a_race() -> None:
    # Given our refresh appears between the check and StartInstanceRefresh (AWS answers InstanceRefreshInProgress)
    autoscaling = FakeAutoScaling()
    autoscaling.before_start = [make_refresh("refresh-raced", "Pending", "2")]
    # When the step runs
    output = logic.run(request(2), CONFIG, autoscaling=autoscaling)
    # Then the raced refresh is adopted
    assert (output.instance_refresh_id, output.adopted) == ("refresh-raced", True)
    assert autoscaling.started == []


def test_start_fails_clearly_when_a_foreign_refresh_won_the_race() -> None:
    # Given a foreign refresh appears just before our StartInstanceRefresh
    autoscaling = FakeAutoScaling()
    autoscaling.before_start = [make_refresh("refresh-other", "Pending", "9")]
    # When / Then the error names it; no blind retry
    with pytest.raises(RefreshInProgress, match="refresh-other"):
        logic.run(request(2), CONFIG, autoscaling=autoscaling)
    assert autoscaling.calls.count("StartInstanceRefresh") == 1


def test_start_ignores_finished_refreshes_when_deciding() -> None:
    # Given only finished refreshes on the group
    autoscaling = FakeAutoScaling(
        refreshes=[make_refresh("old-1", "Successful", "1"), make_refresh("old-2", "Failed", "2")]
    )
    # When the step runs for version 2
    output = logic.run(request(2), CONFIG, autoscaling=autoscaling)
    # Then a new refresh starts
    assert output.adopted is False
    assert len(autoscaling.started) == 1


def test_start_dry_run_starts_nothing_and_returns_no_id() -> None:
    # Given a group with no refresh
    autoscaling = FakeAutoScaling()
    # When the step runs in dry run
    output = logic.run(request(2, dry_run=True), CONFIG, autoscaling=autoscaling)
    # Then nothing starts, and the preferences that would be sent are reported
    assert autoscaling.started == []
    assert output.instance_refresh_id is None
    assert output.preferences["MinHealthyPercentage"] == 90


def test_start_rejects_a_target_that_is_not_configured_before_calling_aws() -> None:
    # Given a target pair that is not in the deploy configuration
    autoscaling = FakeAutoScaling()
    stranger = Target(auto_scaling_group_name="someone-else", launch_template_id=TEMPLATE)
    # When / Then
    with pytest.raises(InvalidInput, match="not a configured target"):
        logic.run(request(2, target=stranger), CONFIG, autoscaling=autoscaling)
    assert autoscaling.calls == []


def test_start_warns_naming_protected_and_standby_instances_that_keep_the_old_ami(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a group with one scale-in protected and one standby instance
    group = make_group(
        [instance("i-plain"), instance("i-protected", protected=True), instance("i-standby", state="Standby")]
    )
    autoscaling = FakeAutoScaling(group)
    warnings: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(logic.logger, "warning", lambda msg, extra: warnings.append((msg, extra)))
    # When the refresh starts with the default (Ignore) behaviours
    logic.run(request(2), CONFIG, autoscaling=autoscaling)
    # Then each kind is named in a warning saying it keeps the old version
    assert [w[1]["instanceIds"] for w in warnings] == [["i-protected"], ["i-standby"]]
    assert all("keep the old launch template version" in w[0] for w in warnings)


# --- adapter and handler (Stubber validates every request against the real service model) ------------


def _group_response(instances: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "AutoScalingGroups": [
            {
                "AutoScalingGroupName": GROUP,
                "MinSize": 1,
                "MaxSize": 4,
                "DesiredCapacity": 2,
                "DefaultCooldown": 300,
                "AvailabilityZones": [f"{REGION}a"],
                "HealthCheckType": "ELB",
                "CreatedTime": STARTED,
                "LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "1"},
                "TargetGroupARNs": [],
                "Instances": instances or [],
            }
        ]
    }


def test_adapter_translates_instance_refresh_in_progress_into_refresh_in_progress() -> None:
    # Given AWS answers InstanceRefreshInProgress
    client = boto3.client("autoscaling", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_client_error(
            "start_instance_refresh", service_error_code="InstanceRefreshInProgress", service_message="busy"
        )
        # When / Then the adapter raises the named error
        with pytest.raises(RefreshInProgress, match="busy"):
            AutoScaling(client).start_refresh(GROUP, template_id=TEMPLATE, version=2, preferences={})


def test_adapter_follows_next_token_of_describe_instance_refreshes() -> None:
    # Given two pages of refreshes (botocore has no paginator for this call)
    client = boto3.client("autoscaling", region_name=REGION)
    item = {"AutoScalingGroupName": GROUP, "Status": "Successful", "StartTime": STARTED}
    with Stubber(client) as stub:
        stub.add_response(
            "describe_instance_refreshes",
            {"InstanceRefreshes": [{**item, "InstanceRefreshId": "r-2"}], "NextToken": "t1"},
            {"AutoScalingGroupName": GROUP, "MaxRecords": 100},
        )
        stub.add_response(
            "describe_instance_refreshes",
            {"InstanceRefreshes": [{**item, "InstanceRefreshId": "r-1"}]},
            {"AutoScalingGroupName": GROUP, "MaxRecords": 100, "NextToken": "t1"},
        )
        # When
        refreshes = AutoScaling(client).describe_refreshes(GROUP)
    # Then both pages are read
    assert [r.refresh_id for r in refreshes] == ["r-2", "r-1"]


def test_adapter_raises_group_not_found_for_a_missing_group() -> None:
    client = boto3.client("autoscaling", region_name=REGION)
    with Stubber(client) as stub:
        # Given AWS knows no such group
        stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []}, {"AutoScalingGroupNames": [GROUP]})
        # When / Then
        with pytest.raises(AutoScalingGroupNotFound, match=GROUP):
            AutoScaling(client).describe_group(GROUP)


@pytest.fixture
def handler_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    return importlib.import_module("start_instance_refresh.handler")


def test_handler_starts_a_rolling_refresh_pinned_to_the_version_number(
    handler_module: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a group with no active refresh, behind a Stubber that checks the real request shapes
    client = boto3.client("autoscaling", region_name=REGION)
    monkeypatch.setattr(handler_module, "autoscaling", lambda: AutoScaling(client))
    expected_preferences = logic.build_refresh_preferences(CONFIG.refresh)
    with Stubber(client) as stub:
        stub.add_response("describe_auto_scaling_groups", _group_response(), {"AutoScalingGroupNames": [GROUP]})
        stub.add_response(
            "describe_instance_refreshes", {"InstanceRefreshes": []}, {"AutoScalingGroupName": GROUP, "MaxRecords": 100}
        )
        stub.add_response(
            "start_instance_refresh",
            {"InstanceRefreshId": "0e9f-refresh"},
            {
                "AutoScalingGroupName": GROUP,
                "Strategy": "Rolling",
                "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "3"}},
                "Preferences": expected_preferences,
            },
        )
        # When the handler runs
        result = handler_module.lambda_handler(
            {
                "executionId": EXECUTION,
                "target": {"autoScalingGroupName": GROUP, "launchTemplateId": TEMPLATE},
                "launchTemplateVersion": 3,
            },
            lambda_context,
        )
        stub.assert_no_pending_responses()
    # Then the output carries the refresh id and the preferences sent
    assert result == {
        "autoScalingGroupName": GROUP,
        "instanceRefreshId": "0e9f-refresh",
        "adopted": False,
        "preferences": expected_preferences,
    }


@pytest.mark.parametrize(
    "payload",
    [
        {"launchTemplateVersion": "$Latest"},
        {"launchTemplateVersion": 0},
        {"launchTemplateVersion": 2, "surprise": True},
    ],
)
def test_handler_rejects_bad_payloads_before_calling_aws(
    handler_module: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, payload: dict[str, Any]
) -> None:
    # Given an autoscaling client with no stubbed responses (any call would fail the test)
    client = boto3.client("autoscaling", region_name=REGION)
    monkeypatch.setattr(handler_module, "autoscaling", lambda: AutoScaling(client))
    event = {"executionId": EXECUTION, "target": {"autoScalingGroupName": GROUP, "launchTemplateId": TEMPLATE}}
    # When / Then
    with Stubber(client), pytest.raises(InvalidInput):
        handler_module.lambda_handler({**event, **payload}, lambda_context)
