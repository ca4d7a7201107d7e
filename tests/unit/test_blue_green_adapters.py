"""The blue-green adapters against botocore's Stubber (real request shapes, AWS error codes moto does not raise)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from shared import tags
from shared.aws.alarms import Alarms
from shared.aws.groups import BlueGreenGroups, Capacity, GroupDetails, Tag
from shared.blue_green import TargetGroups, parse_timestamp, timestamp
from shared.errors import AutoScalingGroupNotFound, GroupBusy
from tests.conftest import REGION

CREATED = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def described(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "AutoScalingGroupName": name,
        "MinSize": 1,
        "MaxSize": 2,
        "DesiredCapacity": 1,
        "DefaultCooldown": 300,
        "AvailabilityZones": ["eu-west-1a"],
        "HealthCheckType": "EC2",
        "CreatedTime": CREATED,
        **extra,
    }


def group(name: str, role: str | None = None, since: str | None = None) -> GroupDetails:
    group_tags = [Tag(tags.ROLE, role)] if role else []
    if since:
        group_tags.append(Tag(tags.ROLE_SINCE, since))
    return GroupDetails(
        name=name,
        capacity=Capacity(1, 2, 1),
        target_group_arns=(),
        instances=(),
        tags=tuple(group_tags),
        launch_template_id=None,
        launch_template_version=None,
        created_time=None,
        deleting=False,
    )


def test_groups_of_a_target_are_found_by_tags_plus_the_seed_by_name() -> None:
    client = boto3.client("autoscaling", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_response(
            "describe_auto_scaling_groups",
            {"AutoScalingGroups": [described("web-app-test-run-1", Status="Delete in progress")]},
            {
                "Filters": [
                    {"Name": f"tag:{tags.APPLICATION}", "Values": ["web-app"]},
                    {"Name": f"tag:{tags.TARGET}", "Values": ["web-app-test"]},
                ],
                "MaxRecords": 100,
            },
        )
        stub.add_response(
            "describe_auto_scaling_groups",
            {"AutoScalingGroups": [described("web-app-test")]},
            {"AutoScalingGroupNames": ["web-app-test"]},
        )
        found = BlueGreenGroups(client).groups_of_target("web-app", "web-app-test")
        stub.assert_no_pending_responses()
    assert [(g.name, g.deleting) for g in found] == [("web-app-test", False), ("web-app-test-run-1", True)]


def test_create_copy_reports_already_exists_as_not_created() -> None:
    client = boto3.client("autoscaling", region_name=REGION)
    source = group("web-app-test")
    with Stubber(client) as stub:
        stub.add_client_error("create_auto_scaling_group", service_error_code="AlreadyExists")
        created = BlueGreenGroups(client).create_copy(
            source, name="web-app-test-run-2", launch_template_id="lt-0aaaaaaaaaaaaaaa1", version=2, group_tags=[]
        )
    assert created is False


def test_group_changes_on_a_missing_group_raise_auto_scaling_group_not_found() -> None:
    client = boto3.client("autoscaling", region_name=REGION)
    message = "AutoScalingGroup name not found - AutoScalingGroup 'gone' not found"
    with Stubber(client) as stub:
        stub.add_client_error(
            "update_auto_scaling_group", service_error_code="ValidationError", service_message=message
        )
        stub.add_client_error(
            "delete_auto_scaling_group", service_error_code="ValidationError", service_message=message
        )
        groups = BlueGreenGroups(client)
        with pytest.raises(AutoScalingGroupNotFound, match="gone"):
            groups.set_capacity("gone", Capacity(0, 0, 0))
        # And deleting a group that is already gone is an outcome, not an error
        assert groups.delete("gone") is False


@pytest.mark.parametrize("code", ["ScalingActivityInProgress", "ResourceInUse", "ResourceContention"])
def test_a_busy_group_raises_the_error_the_state_machine_retries(code: str) -> None:
    client = boto3.client("autoscaling", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_client_error("delete_auto_scaling_group", service_error_code=code, service_message="busy")
        stub.add_client_error("update_auto_scaling_group", service_error_code=code, service_message="busy")
        groups = BlueGreenGroups(client)
        with pytest.raises(GroupBusy, match=code):
            groups.delete("web-app-prod-run-1")
        with pytest.raises(GroupBusy, match=code):
            groups.set_capacity("web-app-prod", Capacity(0, 0, 0))


def test_target_groups_are_attached_ten_per_call() -> None:
    client = boto3.client("autoscaling", region_name=REGION)
    arns = [f"arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg{i}/{i:016x}" for i in range(12)]
    with Stubber(client) as stub:
        stub.add_response(
            "attach_load_balancer_target_groups", {}, {"AutoScalingGroupName": "g", "TargetGroupARNs": arns[:10]}
        )
        stub.add_response(
            "attach_load_balancer_target_groups", {}, {"AutoScalingGroupName": "g", "TargetGroupARNs": arns[10:]}
        )
        BlueGreenGroups(client).attach_target_groups("g", arns)
        stub.assert_no_pending_responses()


def test_alarm_states_are_read_100_names_per_call_for_both_alarm_types() -> None:
    client = boto3.client("cloudwatch", region_name=REGION)
    names = [f"alarm-{i:03d}" for i in range(101)]
    with Stubber(client) as stub:
        stub.add_response(
            "describe_alarms",
            {"MetricAlarms": [{"AlarmName": "alarm-007", "StateValue": "ALARM"}]},
            {"AlarmNames": names[:100], "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]},
        )
        stub.add_response(
            "describe_alarms",
            {"CompositeAlarms": [{"AlarmName": "alarm-100", "StateValue": "ALARM"}]},
            {"AlarmNames": names[100:], "AlarmTypes": ANY},
        )
        firing = Alarms(client).in_alarm(names)
        stub.assert_no_pending_responses()
    assert firing == ["alarm-007", "alarm-100"]


def test_capacity_tag_round_trips_and_rejects_nonsense() -> None:
    assert Capacity.from_tag(Capacity(1, 4, 2).tag_value()) == Capacity(1, 4, 2)
    assert [Capacity.from_tag(v) for v in (None, "", "1/2", "a/b/c", "3/1/2", "-1/2/1")] == [None] * 6


def test_role_since_timestamps_are_utc_to_the_second() -> None:
    assert timestamp(datetime(2026, 11, 22, 11, 0, 0, 999, tzinfo=UTC)) == "2026-11-22T11:00:00Z"
    assert parse_timestamp("2026-11-22T10:00:00Z") == CREATED
    assert parse_timestamp("2026-11-22T10:00:00") == CREATED  # naive means UTC
    assert parse_timestamp("yesterday") is None


def test_the_untagged_seed_is_live_only_while_no_group_is_tagged_live() -> None:
    seed = group("web-app-test")
    assert TargetGroups.of([seed], "web-app-test").live() is seed
    tagged = group("web-app-test-run-1", "live")
    assert TargetGroups.of([seed, tagged], "web-app-test").live() is tagged
    retained_seed = group("web-app-test", "retained")
    assert TargetGroups.of([retained_seed], "web-app-test").live() is None


def test_retained_groups_sort_newest_first_with_unknown_ages_last() -> None:
    groups = [
        group("a", "retained", "2026-11-01T00:00:00Z"),
        group("b", "retained", "garbage"),
        group("c", "retained", "2026-11-05T00:00:00Z"),
        group("d", "live", "2026-11-06T00:00:00Z"),
    ]
    assert [g.name for g in TargetGroups.of(groups, "seed").retained_newest_first()] == ["c", "a", "b"]
