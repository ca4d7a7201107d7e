"""discard_green: blue keeps (or goes back to) serving; our green is deleted; a reused group or the seed never is."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from create_green_group import logic as create_logic
from create_green_group.models import CreateGreenGroupInput, GreenGroup
from discard_green import logic
from discard_green.models import DiscardGreenInput
from moto import mock_aws
from shift_traffic import logic as shift_logic
from shift_traffic.models import ShiftTrafficInput

from shared import tags
from shared.aws.elbv2 import LoadBalancing, TargetHealth
from shared.aws.groups import BlueGreenGroups, GroupDetails
from shared.errors import InvalidInput, RollbackFailed
from tests.conftest import REGION
from tests.unit.blue_green_fleet import AMI_NEW, EXECUTION, GREEN, NOW, OTHER_EXECUTION, SEED, Fleet, build_fleet


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    with mock_aws():
        fleet = build_fleet()
        fleet.ec2.modify_launch_template(LaunchTemplateId=fleet.template_id, DefaultVersion="2")  # publish's work
        yield fleet


def create(fleet: Fleet) -> GreenGroup:
    request = CreateGreenGroupInput(
        execution_id=EXECUTION, target=fleet.target, ami_id=AMI_NEW, launch_template_version=2, previous_version=1
    )
    return create_logic.run(request, fleet.config, groups=fleet.groups, templates=fleet.templates, now=NOW)


def shift(fleet: Fleet, green: GreenGroup) -> bool:
    request = ShiftTrafficInput(execution_id=EXECUTION, target=fleet.target, green=green)
    return shift_logic.run(request, fleet.config, groups=fleet.groups, now=NOW).done


def discard(
    fleet: Fleet,
    green: GreenGroup | None,
    *,
    previous: int | None = 1,
    new: int | None = 2,
    dry_run: bool = False,
    execution: str = EXECUTION,
    load_balancing: LoadBalancing | None = None,
    restoring_since: datetime | None = None,
    now: datetime = NOW,
) -> dict[str, Any]:
    request = DiscardGreenInput(
        execution_id=execution,
        dry_run=dry_run,
        target=fleet.target,
        green=green,
        previous_version=previous,
        new_version=new,
        restoring_since=restoring_since,
    )
    output = logic.run(
        request,
        fleet.config,
        groups=fleet.groups,
        templates=fleet.templates,
        load_balancing=load_balancing or fleet.load_balancing,
        now=now,
    )
    return output.model_dump(by_alias=True, mode="json")


def default_version(fleet: Fleet) -> int:
    response = fleet.ec2.describe_launch_template_versions(LaunchTemplateId=fleet.template_id, Versions=["$Default"])
    return int(response["LaunchTemplateVersions"][0]["VersionNumber"])


def test_discard_deletes_our_green_leaves_blue_serving_and_restores_the_default(fleet: Fleet) -> None:
    # Given the seed serving and green created by this execution (the check failed)
    fleet.create_group(SEED)
    green = create(fleet)
    # When discarded
    output = discard(fleet, green)
    # Then green is gone, blue untouched, the launch template default back on version 1
    assert output == {
        "greenDeleted": True,
        "greenRetained": False,
        "blueRestored": False,
        "defaultVersion": 1,
        "done": True,
        "restoringSince": None,
        "reason": "",
    }
    assert fleet.names() == [SEED]
    assert fleet.attached(SEED) == sorted([fleet.tg_web, fleet.tg_api])
    assert fleet.tags_of(SEED) == {}
    assert default_version(fleet) == 1
    # And a retry finds nothing more to do
    assert discard(fleet, green) == {
        "greenDeleted": False,
        "greenRetained": False,
        "blueRestored": False,
        "defaultVersion": 1,
        "done": True,
        "restoringSince": None,
        "reason": "",
    }


def test_discard_after_a_completed_shift_puts_blue_back_before_deleting_green(fleet: Fleet) -> None:
    # Given a shift that went all the way (blue parked and retained, green live), then failed afterwards
    fleet.create_group(SEED, sizes=(1, 4, 2))
    green = create(fleet)
    assert [shift(fleet, green), shift(fleet, green)] == [False, True]
    assert fleet.sizes(SEED) == (0, 0, 0)
    # When discarded
    output = discard(fleet, green)
    # Then blue is attached back, scaled back to its recorded capacity and live again; green is deleted
    assert (output["blueRestored"], output["greenDeleted"]) == (True, True)
    assert fleet.attached(SEED) == sorted([fleet.tg_web, fleet.tg_api])
    assert fleet.sizes(SEED) == (1, 4, 2)
    assert fleet.tags_of(SEED)[tags.ROLE] == "live"
    assert fleet.names() == [SEED]


class BlueStillStarting(LoadBalancing):
    """The target groups report the seed's instances as `initial` (registering, health checks not passed)."""

    def target_health(self, target_group_arn: str) -> list[TargetHealth]:
        group = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups(
            AutoScalingGroupNames=[SEED]
        )["AutoScalingGroups"][0]
        blue = {i["InstanceId"] for i in group["Instances"]}
        return [
            replace(h, state="initial", reason="Elb.RegistrationInProgress") if h.target_id in blue else h
            for h in super().target_health(target_group_arn)
        ]


def test_discard_keeps_green_serving_until_the_restored_blue_is_healthy_again(fleet: Fleet) -> None:
    # Given a shift that detached and parked blue, then failed
    fleet.create_group(SEED, sizes=(1, 4, 2))
    green = create(fleet)
    assert [shift(fleet, green), shift(fleet, green)] == [False, True]
    # When discarded while blue's new instances are still registering
    first = discard(fleet, green, load_balancing=BlueStillStarting())
    # Then blue is back in its target groups, and green stays in them too: no moment without a healthy group
    assert (first["done"], first["greenDeleted"], first["restoringSince"]) == (False, False, "2026-11-22T10:00:00Z")
    assert "initial" in first["reason"]
    assert fleet.attached(SEED) == sorted([fleet.tg_web, fleet.tg_api])
    assert fleet.attached(GREEN) == sorted([fleet.tg_web, fleet.tg_api])
    # When called again once blue is healthy
    second = discard(fleet, green, restoring_since=NOW, now=NOW + timedelta(minutes=2))
    # Then green goes
    assert (second["done"], second["greenDeleted"]) == (True, True)
    assert fleet.names() == [SEED]


def test_discard_gives_up_when_the_restored_blue_never_serves_and_leaves_green_serving(fleet: Fleet) -> None:
    fleet.create_group(SEED, sizes=(1, 4, 2))
    green = create(fleet)
    assert [shift(fleet, green), shift(fleet, green)] == [False, True]
    assert discard(fleet, green, load_balancing=BlueStillStarting())["done"] is False  # blue put back

    with pytest.raises(RollbackFailed, match="still not serving after 30 minutes"):
        discard(fleet, green, load_balancing=BlueStillStarting(), restoring_since=NOW, now=NOW + timedelta(minutes=30))
    assert fleet.attached(GREEN) == sorted([fleet.tg_web, fleet.tg_api])


def test_discard_after_blue_was_only_detached_attaches_it_back(fleet: Fleet) -> None:
    # Given the first shift call detached blue (still running), then the execution failed
    fleet.create_group(SEED, sizes=(1, 4, 2))
    green = create(fleet)
    assert shift(fleet, green) is False
    # When discarded
    output = discard(fleet, green)
    # Then blue serves again at its size, still untagged
    assert output["blueRestored"] is True
    assert fleet.attached(SEED) == sorted([fleet.tg_web, fleet.tg_api])
    assert fleet.sizes(SEED) == (1, 4, 2)
    assert tags.ROLE not in fleet.tags_of(SEED)


def test_discard_returns_a_reused_retained_group_to_retention_instead_of_deleting_it(fleet: Fleet) -> None:
    # Given a rollback that brought back a parked retained group on AMI_NEW
    fleet.create_ours("web-app-test-live", "live", since="2026-11-20T10:00:00Z")
    fleet.create_ours(
        "web-app-test-old",
        "retained",
        since="2026-11-10T10:00:00Z",
        image=AMI_NEW,
        version="2",
        sizes=(0, 0, 0),
        target_groups=[],
        extra_tags={tags.CAPACITY: "2/5/3"},
    )
    green = create(fleet)
    assert (green.reused, fleet.sizes("web-app-test-old")) == (True, (2, 5, 3))
    # When discarded
    output = discard(fleet, green)
    # Then it leaves the target groups, is parked again and retained; it still exists
    assert (output["greenRetained"], output["greenDeleted"]) == (True, False)
    assert fleet.attached("web-app-test-old") == []
    assert fleet.sizes("web-app-test-old") == (0, 0, 0)
    old = fleet.tags_of("web-app-test-old")
    assert (old[tags.ROLE], old[tags.CAPACITY]) == ("retained", "2/5/3")
    # And it keeps its place in the retention order (retained since the 10th, not since the failed rollback)
    assert old[tags.ROLE_SINCE] == "2026-11-10T10:00:00Z"
    assert fleet.attached("web-app-test-live") == sorted([fleet.tg_web, fleet.tg_api])


def test_discard_never_deletes_the_seed_group_even_when_it_was_the_reused_green(fleet: Fleet) -> None:
    # Given the seed, retained and parked on AMI_NEW, brought back by a rollback
    fleet.create_ours("web-app-test-live", "live", since="2026-11-20T10:00:00Z")
    fleet.create_group(
        SEED,
        version="2",
        sizes=(0, 0, 0),
        target_groups=[],
        group_tags={
            tags.APPLICATION: "web-app",
            tags.TARGET: SEED,
            tags.IMAGE: AMI_NEW,
            tags.ROLE: "retained",
            tags.ROLE_SINCE: "2026-11-01T10:00:00Z",
            tags.CAPACITY: "1/2/1",
        },
    )
    green = create(fleet)
    assert (green.green_group_name, green.reused) == (SEED, True)
    # When discarded
    discard(fleet, green)
    # Then the seed still exists, retained again
    assert SEED in fleet.names()
    assert fleet.tags_of(SEED)[tags.ROLE] == "retained"


def test_discard_without_a_green_payload_finds_this_executions_green_by_its_tag(fleet: Fleet) -> None:
    # Given create crashed after creating green (the state machine passes green: null)
    fleet.create_group(SEED)
    create(fleet)
    # When discarded
    output = discard(fleet, None)
    # Then green is still found and deleted
    assert output["greenDeleted"] is True
    assert fleet.names() == [SEED]


class ListingNotCaughtUp(BlueGreenGroups):
    """A group created a moment ago is not yet in the tag-filtered listing (it is by name)."""

    def groups_of_target(self, application: str, target_name: str) -> list[GroupDetails]:
        return [g for g in super().groups_of_target(application, target_name) if g.name != GREEN]


def test_discard_without_a_green_payload_finds_this_executions_green_by_its_name(fleet: Fleet) -> None:
    fleet.create_group(SEED)
    create(fleet)
    request = DiscardGreenInput(execution_id=EXECUTION, target=fleet.target, previous_version=1, new_version=2)

    output = logic.run(
        request,
        fleet.config,
        groups=ListingNotCaughtUp(fleet.asg),
        templates=fleet.templates,
        load_balancing=fleet.load_balancing,
        now=NOW,
    )

    assert output.green_deleted is True
    assert fleet.names() == [SEED]


def test_discard_leaves_a_group_of_another_execution_alone(fleet: Fleet) -> None:
    # Given this execution's payload names a group another execution created under the same name
    fleet.create_group(SEED)
    fleet.create_ours(GREEN, "green", since="2026-11-22T09:00:00Z", image=AMI_NEW, execution=OTHER_EXECUTION)
    green = GreenGroup(
        blue_group_name=SEED,
        green_group_name=GREEN,
        reused=False,
        already_live=False,
        desired_capacity=2,
        target_group_arns=[fleet.tg_web, fleet.tg_api],
        created_at=NOW,
        dry_run=False,
    )
    # When discarded
    output = discard(fleet, green)
    # Then it is not deleted
    assert output["greenDeleted"] is False
    assert GREEN in fleet.names()


def test_discard_dry_run_changes_nothing(fleet: Fleet) -> None:
    # Given green created (by an earlier real step) and the default on the new version
    fleet.create_group(SEED)
    green = create(fleet)
    # When discarded in a dry run
    output = discard(fleet, green, dry_run=True)
    # Then it reports what it would do and does none of it
    assert output == {
        "greenDeleted": True,
        "greenRetained": False,
        "blueRestored": False,
        "defaultVersion": 1,
        "done": True,
        "restoringSince": None,
        "reason": "",
    }
    assert fleet.names() == sorted([SEED, GREEN])
    assert default_version(fleet) == 2


def test_discard_leaves_a_default_that_is_not_this_executions_version(fleet: Fleet) -> None:
    # Given someone already moved the default to version 1
    fleet.create_group(SEED)
    fleet.ec2.modify_launch_template(LaunchTemplateId=fleet.template_id, DefaultVersion="1")
    # When discarded with newVersion 2
    output = discard(fleet, None, previous=1, new=2)
    # Then the default stays and is reported; without versions nothing is looked up
    assert output["defaultVersion"] == 1
    assert discard(fleet, None, previous=None, new=None)["defaultVersion"] is None


def test_discard_rejects_a_rolling_target(fleet: Fleet) -> None:
    request = DiscardGreenInput(execution_id=EXECUTION, target=fleet.config.stages[1].targets[0])
    with pytest.raises(InvalidInput, match="blue-green stage"):
        logic.run(
            request,
            fleet.config,
            groups=fleet.groups,
            templates=fleet.templates,
            load_balancing=fleet.load_balancing,
            now=NOW,
        )


def test_handler_discards_through_the_lambda_entry_point(
    fleet: Fleet, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given green created, and the handler wired to moto
    fleet.create_group(SEED)
    green = create(fleet)
    handler = importlib.import_module("discard_green.handler")
    monkeypatch.setattr(handler, "CONFIG", fleet.config)
    monkeypatch.setattr(handler, "groups", lambda: fleet.groups)
    monkeypatch.setattr(handler, "launch_templates", lambda: fleet.templates)
    monkeypatch.setattr(handler, "load_balancing", lambda: fleet.load_balancing)
    # When the state machine's failure path calls it with the caught error
    result = handler.lambda_handler(
        {
            "executionId": EXECUTION,
            "dryRun": False,
            "target": {"autoScalingGroupName": SEED, "launchTemplateId": fleet.template_id},
            "green": green.model_dump(by_alias=True, mode="json"),
            "previousVersion": 1,
            "newVersion": 2,
            "error": {"Error": "GreenUnhealthy", "Cause": "i-1 unhealthy in web"},
        },
        lambda_context,
    )
    # Then
    assert result == {
        "greenDeleted": True,
        "greenRetained": False,
        "blueRestored": False,
        "defaultVersion": 1,
        "done": True,
        "restoringSince": None,
        "reason": "",
    }
    assert fleet.names() == [SEED]
