"""check_refresh: one look per call; Healthy only with every InService instance healthy in every target group."""

from __future__ import annotations

import dataclasses
import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from check_refresh import logic
from check_refresh.models import CheckRefreshInput

from shared.aws.autoscaling import AutoScaling, ScalingActivity
from shared.aws.elbv2 import LoadBalancing
from shared.errors import InstanceRefreshNotFound, TargetGroupNotFound
from tests.conftest import REGION
from tests.unit.fakes import FakeLoadBalancing
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

TG_WEB = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef"
TG_API = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/fedcba9876543210"


def check_request(refresh_id: str = "r-1", version: int = 2) -> CheckRefreshInput:
    return CheckRefreshInput(
        execution_id=EXECUTION, target=TARGET, instance_refresh_id=refresh_id, launch_template_version=version
    )


def failed_launch(minutes: int, message: str = "The image id '[ami-0bad]' does not exist") -> ScalingActivity:
    return ScalingActivity(
        activity_id=f"a-{minutes}",
        status_code="Failed",
        status_message=message,
        description="Launching a new EC2 instance.  Status Reason: " + message,
        start_time=STARTED + timedelta(minutes=minutes),
    )


FLEET = [instance("i-1", "2"), instance("i-2", "2"), instance("i-gone", "1", state="Terminating")]


def test_successful_refresh_with_every_instance_healthy_in_every_target_group_is_healthy() -> None:
    # Given a Successful refresh and both InService instances healthy in two target groups
    autoscaling = FakeAutoScaling(
        make_group(FLEET, [TG_WEB, TG_API]), [make_refresh("r-1", "Successful", percentage=100)]
    )
    elb = FakeLoadBalancing(
        {TG_WEB: {"i-1": "healthy", "i-2": "healthy"}, TG_API: {"i-1": "healthy", "i-2": "healthy"}}
    )
    # When checked
    output = logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=elb)
    # Then the verdict is Healthy, with a readable reason
    assert (output.verdict, output.status, output.percentage_complete) == ("Healthy", "Successful", 100)
    assert "all 2 InService instances are healthy in 2 target group(s)" in output.reason


def test_successful_refresh_with_instances_still_in_initial_health_is_in_progress() -> None:
    # Given one instance still "initial" in one target group
    autoscaling = FakeAutoScaling(make_group(FLEET, [TG_WEB, TG_API]), [make_refresh("r-1", "Successful")])
    elb = FakeLoadBalancing(
        {TG_WEB: {"i-1": "healthy", "i-2": "healthy"}, TG_API: {"i-1": "healthy", "i-2": "initial"}}
    )
    # When checked
    output = logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=elb)
    # Then it keeps waiting and says for what
    assert output.verdict == "InProgress"
    assert "i-2 initial in api" in output.reason


def test_successful_refresh_with_an_unhealthy_instance_fails_naming_it() -> None:
    # Given i-2 unhealthy in the web target group
    autoscaling = FakeAutoScaling(make_group(FLEET, [TG_WEB]), [make_refresh("r-1", "Successful")])
    elb = FakeLoadBalancing({TG_WEB: {"i-1": "healthy", "i-2": "unhealthy"}})
    # When checked
    output = logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=elb)
    # Then it fails with the instance id and the reason
    assert output.verdict == "Failed"
    assert "i-2 unhealthy in web (Target.Timeout)" in output.reason


def test_successful_refresh_waits_for_instances_not_yet_registered() -> None:
    # Given i-2 is InService in the group but not yet in the target group
    autoscaling = FakeAutoScaling(make_group(FLEET, [TG_WEB]), [make_refresh("r-1", "Successful")])
    elb = FakeLoadBalancing({TG_WEB: {"i-1": "healthy"}})
    # When checked
    output = logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=elb)
    # Then it is not Healthy yet
    assert output.verdict == "InProgress"
    assert "i-2 not registered yet in web" in output.reason


def test_successful_refresh_on_a_group_without_target_groups_is_healthy() -> None:
    # Given a group with no target group
    autoscaling = FakeAutoScaling(make_group(FLEET), [make_refresh("r-1", "Successful")])
    elb = FakeLoadBalancing({})
    # When checked
    output = logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=elb)
    # Then Healthy, without asking the load balancer
    assert output.verdict == "Healthy"
    assert elb.calls == []


@pytest.mark.parametrize(
    "status", ["Failed", "Cancelled", "Cancelling", "RollbackInProgress", "RollbackSuccessful", "RollbackFailed"]
)
def test_ended_or_reversed_refresh_is_failed_with_the_aws_status_reason(status: str) -> None:
    # Given a refresh in a failed/reversed status
    refresh = make_refresh("r-1", status, reason="Alarm 5xx went into ALARM")
    autoscaling = FakeAutoScaling(refreshes=[refresh])
    # When checked
    output = logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=FakeLoadBalancing({}))
    # Then the verdict is Failed and the reason quotes AWS
    assert (output.verdict, output.status) == ("Failed", status)
    assert output.reason == f"instance refresh r-1 to version 2 is {status}: Alarm 5xx went into ALARM"


@pytest.mark.parametrize("status", ["Pending", "InProgress", "Baking"])
def test_running_refresh_is_in_progress_with_its_percentage(status: str) -> None:
    # Given a running refresh with two failed launches only
    refresh = dataclasses.replace(make_refresh("r-1", status, percentage=40), instances_to_update=3)
    autoscaling = FakeAutoScaling(refreshes=[refresh], activities=[failed_launch(1), failed_launch(2)])
    # When checked
    output = logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=FakeLoadBalancing({}))
    # Then it is InProgress with AWS's numbers and how long it has been running
    dumped = output.model_dump(by_alias=True)
    assert dumped.pop("elapsedSeconds") >= 0
    assert dumped == {
        "verdict": "InProgress",
        "status": status,
        "percentageComplete": 40,
        "reason": f"instance refresh r-1 to version 2 is {status}, 40% complete",
        "instancesToUpdate": 3,
    }


def test_refresh_with_repeated_launch_failures_is_failed_early_with_the_first_error() -> None:
    # Given an InProgress refresh with STUCK_LAUNCH_FAILURE_THRESHOLD failed launches since it started,
    # and an older failure from before it started
    activities = [
        failed_launch(9, "Insufficient capacity"),
        failed_launch(5),
        failed_launch(3),
        failed_launch(-30, "old"),
    ]
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-1", "InProgress")], activities=activities)
    # When checked
    output = logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=FakeLoadBalancing({}))
    # Then Failed, quoting the first failure since the start
    assert logic.STUCK_LAUNCH_FAILURE_THRESHOLD == 3
    assert output.verdict == "Failed"
    assert "3 instance launches failed" in output.reason
    assert "first failure: The image id '[ami-0bad]' does not exist" in output.reason


def test_failed_activities_that_are_not_launches_do_not_count_as_stuck() -> None:
    # Given three failed terminations
    terminations = [
        dataclasses.replace(failed_launch(m), description="Terminating EC2 instance: i-1") for m in (1, 2, 3)
    ]
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-1", "InProgress")], activities=terminations)
    # When checked
    output = logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=FakeLoadBalancing({}))
    # Then it is still in progress
    assert output.verdict == "InProgress"


def test_unknown_refresh_id_raises_instance_refresh_not_found() -> None:
    # Given no such refresh on the group
    autoscaling = FakeAutoScaling(refreshes=[make_refresh("r-other", "InProgress")])
    # When / Then
    with pytest.raises(InstanceRefreshNotFound, match="r-1"):
        logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=FakeLoadBalancing({}))


# --- adapters (Stubber) --------------------------------------------------------------------------


def _activity(activity_id: str, minutes: int, status: str = "Failed") -> dict[str, Any]:
    return {
        "ActivityId": activity_id,
        "AutoScalingGroupName": GROUP,
        "Cause": "instance refresh",
        "Description": "Launching a new EC2 instance.  Status Reason: boom",
        "StatusMessage": "boom",
        "StartTime": STARTED + timedelta(minutes=minutes),
        "StatusCode": status,
    }


def test_scaling_activities_stop_paginating_once_activities_predate_the_refresh() -> None:
    # Given a first page reaching back before the refresh start, and a second page that must not be read
    client = boto3.client("autoscaling", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_response(
            "describe_scaling_activities",
            {"Activities": [_activity("a3", 3), _activity("a2", 1), _activity("a1", -5)], "NextToken": "more"},
            {"AutoScalingGroupName": GROUP, "MaxRecords": 100},
        )
        # When
        activities = AutoScaling(client).scaling_activities(GROUP, STARTED)
        stub.assert_no_pending_responses()
    # Then only activities since the start are returned, from one call
    assert [a.activity_id for a in activities] == ["a3", "a2"]


def test_target_health_adapter_translates_a_missing_target_group() -> None:
    client = boto3.client("elbv2", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_client_error("describe_target_health", service_error_code="TargetGroupNotFound")
        with pytest.raises(TargetGroupNotFound, match="targetgroup/web"):
            LoadBalancing(client).target_health(TG_WEB)


def test_handler_checks_a_successful_refresh_and_the_target_health_end_to_end(
    lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Successful refresh and two healthy instances, behind Stubbers validating the real API shapes
    handler = importlib.import_module("check_refresh.handler")
    asg = boto3.client("autoscaling", region_name=REGION)
    elbv2 = boto3.client("elbv2", region_name=REGION)
    monkeypatch.setattr(handler, "autoscaling", lambda: AutoScaling(asg))
    monkeypatch.setattr(handler, "load_balancing", lambda: LoadBalancing(elbv2))
    with Stubber(asg) as asg_stub, Stubber(elbv2) as elb_stub:
        asg_stub.add_response(
            "describe_instance_refreshes",
            {
                "InstanceRefreshes": [
                    {
                        "InstanceRefreshId": "r-1",
                        "AutoScalingGroupName": GROUP,
                        "Status": "Successful",
                        "PercentageComplete": 100,
                        "InstancesToUpdate": 0,
                        "StartTime": STARTED,
                        "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "2"}},
                    }
                ]
            },
            {"AutoScalingGroupName": GROUP, "InstanceRefreshIds": ["r-1"], "MaxRecords": 100},
        )
        asg_stub.add_response(
            "describe_auto_scaling_groups",
            {
                "AutoScalingGroups": [
                    {
                        "AutoScalingGroupName": GROUP,
                        "MinSize": 2,
                        "MaxSize": 4,
                        "DesiredCapacity": 2,
                        "DefaultCooldown": 300,
                        "AvailabilityZones": ["eu-west-1a"],
                        "HealthCheckType": "ELB",
                        "CreatedTime": STARTED,
                        "TargetGroupARNs": [TG_WEB],
                        "Instances": [
                            {
                                "InstanceId": iid,
                                "AvailabilityZone": "eu-west-1a",
                                "LifecycleState": "InService",
                                "HealthStatus": "Healthy",
                                "ProtectedFromScaleIn": False,
                                "LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "2"},
                            }
                            for iid in ("i-1", "i-2")
                        ],
                    }
                ]
            },
            {"AutoScalingGroupNames": [GROUP]},
        )
        elb_stub.add_response(
            "describe_target_health",
            {
                "TargetHealthDescriptions": [
                    {"Target": {"Id": iid, "Port": 80}, "TargetHealth": {"State": "healthy"}} for iid in ("i-1", "i-2")
                ]
            },
            {"TargetGroupArn": TG_WEB},
        )
        # When the handler runs
        result = handler.lambda_handler(
            {
                "executionId": EXECUTION,
                "target": {"autoScalingGroupName": GROUP, "launchTemplateId": TEMPLATE},
                "instanceRefreshId": "r-1",
                "launchTemplateVersion": 2,
            },
            lambda_context,
        )
    # Then the verdict is Healthy
    assert result.pop("elapsedSeconds") >= 0
    assert result == {
        "verdict": "Healthy",
        "status": "Successful",
        "percentageComplete": 100,
        "reason": "refresh succeeded; all 2 InService instances are healthy in 1 target group(s)",
        "instancesToUpdate": 0,
    }


def test_elapsed_seconds_count_from_the_refresh_start() -> None:
    # Given a refresh that started ten minutes ago
    started = datetime.now(UTC) - timedelta(minutes=10)
    refresh = dataclasses.replace(make_refresh("r-1", "InProgress", percentage=40), start_time=started)
    autoscaling = FakeAutoScaling(refreshes=[refresh], activities=[])
    # When checked
    output = logic.run(check_request(), CONFIG, autoscaling=autoscaling, load_balancing=FakeLoadBalancing({}))
    # Then the state machine can bound its wait by time, not by the number of polls
    assert 595 <= output.elapsed_seconds <= 660
