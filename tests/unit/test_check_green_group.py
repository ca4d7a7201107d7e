"""check_green_group: one look at green: Failed / TimedOut / InProgress / Alarm / Soaking / Healthy, in that order."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from check_green_group import logic
from check_green_group.models import CheckGreenGroupInput
from create_green_group.models import GreenGroup
from moto import mock_aws

from shared import tags
from shared.aws.autoscaling import ScalingActivity
from shared.aws.groups import BlueGreenGroups
from tests.unit.blue_green_fleet import AMI_NEW, EXECUTION, GREEN, NOW, SEED, Fleet, build_fleet

CREATED = NOW - timedelta(minutes=5)


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    with mock_aws():
        fleet = build_fleet()
        fleet.create_group(SEED)
        fleet.create_ours(GREEN, "green", since="2026-11-22T09:55:00Z", image=AMI_NEW, execution=EXECUTION, version="2")
        yield fleet


class GroupsWithActivities(BlueGreenGroups):
    """moto lists no scaling activities: these stand in for DescribeScalingActivities."""

    def __init__(self, client: Any, activities: list[ScalingActivity]) -> None:
        super().__init__(client)
        self.activities = activities

    def scaling_activities(self, group_name: str, since: datetime) -> list[ScalingActivity]:
        return [a for a in self.activities if a.start_time >= since]


def green_payload(fleet: Fleet, **changes: Any) -> GreenGroup:
    fields: dict[str, Any] = {
        "blue_group_name": SEED,
        "green_group_name": GREEN,
        "reused": False,
        "already_live": False,
        "desired_capacity": 2,
        "target_group_arns": [fleet.tg_web, fleet.tg_api],
        "created_at": CREATED,
        "dry_run": False,
    }
    return GreenGroup(**{**fields, **changes})


def check(
    fleet: Fleet,
    *,
    now: datetime = NOW,
    healthy_since: datetime | None = None,
    groups: BlueGreenGroups | None = None,
    **green: Any,
) -> dict[str, Any]:
    request = CheckGreenGroupInput(
        execution_id=EXECUTION, target=fleet.target, green=green_payload(fleet, **green), healthy_since=healthy_since
    )
    output = logic.run(
        request,
        fleet.config,
        groups=groups or fleet.groups,
        load_balancing=fleet.load_balancing,
        alarms=fleet.alarms,
        now=now,
    )
    return output.model_dump(by_alias=True, mode="json")


def launch_failure(minutes_after_creation: int) -> ScalingActivity:
    return ScalingActivity(
        activity_id=f"act-{minutes_after_creation}",
        status_code="Failed",
        status_message="The image id '[ami-0aaaaaaaaaaaaaaa2]' does not exist",
        description="Launching a new EC2 instance.  Status Reason: The image id does not exist",
        start_time=CREATED + timedelta(minutes=minutes_after_creation),
    )


def test_green_with_every_instance_healthy_everywhere_and_no_soak_is_healthy(fleet: Fleet) -> None:
    # When green (2 InService instances, healthy in both target groups) is checked
    output = check(fleet)
    # Then it is Healthy from now on
    assert output == {
        "verdict": "Healthy",
        "reason": f"all 2 instance(s) of green group {GREEN} are InService and healthy in 2 target group(s)",
        "healthySince": "2026-11-22T10:00:00Z",
        "elapsedSeconds": 300,
        "desired": 2,
        "inService": 2,
        "healthyTargets": 2,
    }


def test_green_instance_not_registered_in_a_target_group_is_in_progress(fleet: Fleet) -> None:
    # Given one green instance taken out of the api target group
    instance = fleet.describe(GREEN)["Instances"][0]["InstanceId"]  # type: ignore[index]
    fleet.elbv2.deregister_targets(TargetGroupArn=fleet.tg_api, Targets=[{"Id": instance}])
    # When checked
    output = check(fleet, healthy_since=NOW - timedelta(minutes=1))
    # Then it keeps waiting, says for what, and forgets when it was healthy
    assert (output["verdict"], output["healthySince"], output["healthyTargets"]) == ("InProgress", None, 1)
    assert f"{instance} not registered yet in api" in output["reason"]


def test_green_with_fewer_healthy_instances_than_desired_is_in_progress(fleet: Fleet) -> None:
    # Given one green instance reported Unhealthy by Auto Scaling
    instance = fleet.describe(GREEN)["Instances"][0]["InstanceId"]  # type: ignore[index]
    fleet.asg.set_instance_health(InstanceId=instance, HealthStatus="Unhealthy")
    # When checked
    output = check(fleet)
    # Then
    assert (output["verdict"], output["inService"]) == ("InProgress", 1)
    assert "1 of 2 instance(s) InService and Healthy" in output["reason"]


def test_green_not_healthy_within_the_health_timeout_is_timed_out(fleet: Fleet) -> None:
    # Given green still missing a target registration 30 minutes (the default timeout) after creation
    instance = fleet.describe(GREEN)["Instances"][0]["InstanceId"]  # type: ignore[index]
    fleet.elbv2.deregister_targets(TargetGroupArn=fleet.tg_web, Targets=[{"Id": instance}])
    # When checked at the timeout
    output = check(fleet, now=CREATED + timedelta(minutes=30))
    # Then
    assert (output["verdict"], output["elapsedSeconds"]) == ("TimedOut", 1800)
    assert "not healthy 30 minutes after it was created" in output["reason"]


def test_green_with_failed_launches_is_failed_naming_them(fleet: Fleet) -> None:
    # Given three failed launches since green was created (maxFailedLaunches defaults to 3), one before it
    activities = [launch_failure(-10), launch_failure(1), launch_failure(2), launch_failure(3)]
    groups = GroupsWithActivities(fleet.asg, activities)
    # When checked
    output = check(fleet, groups=groups)
    # Then green is given up early, before its health is even looked at
    assert output["verdict"] == "Failed"
    assert output["reason"].startswith(f"3 instance launches of green group {GREEN} failed since 2026-11-22T09:55:00Z")
    assert "act-1: The image id '[ami-0aaaaaaaaaaaaaaa2]' does not exist" in output["reason"]
    assert "act--10" not in output["reason"]


def test_fewer_failed_launches_than_the_limit_do_not_fail_green(fleet: Fleet) -> None:
    groups = GroupsWithActivities(fleet.asg, [launch_failure(1), launch_failure(2)])
    assert check(fleet, groups=groups)["verdict"] == "Healthy"


def test_green_that_no_longer_exists_is_failed(fleet: Fleet) -> None:
    # Given green was deleted behind the deployment's back
    fleet.asg.delete_auto_scaling_group(AutoScalingGroupName=GREEN, ForceDelete=True)
    # When checked
    output = check(fleet)
    # Then
    assert (output["verdict"], output["reason"]) == ("Failed", f"green group {GREEN} no longer exists")


def test_healthy_green_soaks_then_is_healthy_once_the_soak_is_over(fleet: Fleet) -> None:
    # Given a 10-minute soak
    fleet.with_config(blueGreen={"soakSeconds": 600})
    # When first seen healthy
    first = check(fleet)
    # Then it soaks from now
    assert (first["verdict"], first["healthySince"]) == ("Soaking", "2026-11-22T10:00:00Z")
    assert "600s to go" in first["reason"]
    # When looked at again (the state machine passes healthySince back) after the soak
    since = datetime.fromisoformat(first["healthySince"])
    assert check(fleet, now=NOW + timedelta(seconds=599), healthy_since=since)["verdict"] == "Soaking"
    second = check(fleet, now=NOW + timedelta(seconds=600), healthy_since=since)
    # Then it is Healthy, still counting from the first healthy look
    assert (second["verdict"], second["healthySince"]) == ("Healthy", "2026-11-22T10:00:00Z")


def test_healthy_green_with_a_watched_alarm_in_alarm_is_alarm(fleet: Fleet) -> None:
    # Given two watched alarms (and one that does not exist), one of them in ALARM
    fleet.with_config(blueGreen={"alarms": ["web-5xx", "web-latency", "gone"], "soakSeconds": 300})
    for name in ("web-5xx", "web-latency"):
        fleet.cloudwatch.put_metric_alarm(
            AlarmName=name,
            MetricName=name,
            Namespace="web",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
    fleet.cloudwatch.set_alarm_state(AlarmName="web-5xx", StateValue="ALARM", StateReason="5xx spike")
    fleet.cloudwatch.set_alarm_state(AlarmName="web-latency", StateValue="OK", StateReason="fine")
    # When checked while soaking
    output = check(fleet, healthy_since=NOW - timedelta(minutes=1))
    # Then the alarm wins over the soak, named in the reason
    assert output["verdict"] == "Alarm"
    assert output["reason"].endswith("alarm(s) in ALARM: web-5xx")


def test_green_of_zero_instances_is_healthy_at_once(fleet: Fleet) -> None:
    # Given green sized to zero (blue had no instances)
    fleet.asg.update_auto_scaling_group(AutoScalingGroupName=GREEN, MinSize=0, MaxSize=0, DesiredCapacity=0)
    # When checked
    output = check(fleet, desired_capacity=0)
    # Then there is nothing to wait for
    assert (output["verdict"], output["desired"], output["inService"]) == ("Healthy", 0, 0)


def test_green_of_a_dry_run_is_healthy_without_looking(fleet: Fleet) -> None:
    # Given a dry-run green that was never created
    fleet.asg.delete_auto_scaling_group(AutoScalingGroupName=GREEN, ForceDelete=True)
    # When checked
    output = check(fleet, dry_run=True)
    # Then
    assert output["verdict"] == "Healthy"
    assert "a dry run created no green group" in output["reason"]


def test_handler_checks_green_through_the_lambda_entry_point(
    fleet: Fleet, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the handler wired to moto, and the payload create_green_group returned
    handler = importlib.import_module("check_green_group.handler")
    monkeypatch.setattr(handler, "CONFIG", fleet.config)
    monkeypatch.setattr(handler, "groups", lambda: fleet.groups)
    monkeypatch.setattr(handler, "load_balancing", lambda: fleet.load_balancing)
    monkeypatch.setattr(handler, "alarms", lambda: fleet.alarms)
    green = green_payload(fleet, created_at=datetime.now(NOW.tzinfo)).model_dump(by_alias=True, mode="json")
    # When the handler runs as the state machine calls it (no dryRun, healthySince null)
    result = handler.lambda_handler(
        {
            "executionId": EXECUTION,
            "target": {"autoScalingGroupName": SEED, "launchTemplateId": fleet.template_id},
            "green": green,
            "healthySince": None,
        },
        lambda_context,
    )
    # Then green is Healthy, with the time it became so
    assert result["verdict"] == "Healthy"
    assert result["healthySince"].endswith("Z")
    assert set(result) == {
        "verdict",
        "reason",
        "healthySince",
        "elapsedSeconds",
        "desired",
        "inService",
        "healthyTargets",
    }
    assert fleet.tags_of(GREEN)[tags.ROLE] == "green"  # looking changed nothing
