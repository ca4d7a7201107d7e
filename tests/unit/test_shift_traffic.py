"""shift_traffic: detach blue (only where green serves), wait for draining, then park blue and swap the roles."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from create_green_group.models import GreenGroup
from moto import mock_aws
from shift_traffic import logic
from shift_traffic.models import ShiftTrafficInput

from shared import tags
from shared.aws.groups import BlueGreenGroups, TargetGroupAttachment
from shared.errors import AutoScalingGroupNotFound, BlueGreenConflict
from tests.unit.blue_green_fleet import AMI_NEW, AMI_OLD, APP, EXECUTION, GREEN, NOW, SEED, Fleet, build_fleet


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    with mock_aws():
        fleet = build_fleet()
        fleet.create_group(SEED, sizes=(1, 4, 2))
        fleet.create_ours(GREEN, "green", since="2026-11-22T09:55:00Z", image=AMI_NEW, execution=EXECUTION, version="2")
        yield fleet


class DrainingGroups(BlueGreenGroups):
    """AWS keeps a detached target group in Removing while instances drain; moto drops it at once."""

    def target_group_attachments(self, name: str) -> list[TargetGroupAttachment]:
        if name == SEED:
            return [TargetGroupAttachment(target_group_arn="arn:tg/web", state="Removing")]
        return super().target_group_attachments(name)


def green_payload(fleet: Fleet, **changes: Any) -> GreenGroup:
    fields: dict[str, Any] = {
        "blue_group_name": SEED,
        "green_group_name": GREEN,
        "reused": False,
        "already_live": False,
        "desired_capacity": 2,
        "target_group_arns": [fleet.tg_web, fleet.tg_api],
        "created_at": NOW,
        "dry_run": False,
        "blue_launch_template_version": 1,
        "blue_image_id": AMI_OLD,
    }
    return GreenGroup(**{**fields, **changes})


def shift(
    fleet: Fleet, *, dry_run: bool = False, groups: BlueGreenGroups | None = None, **green: Any
) -> dict[str, Any]:
    request = ShiftTrafficInput(
        execution_id=EXECUTION, dry_run=dry_run, target=fleet.target, green=green_payload(fleet, **green)
    )
    output = logic.run(request, fleet.config, groups=groups or fleet.groups, now=NOW)
    return output.model_dump(by_alias=True, mode="json")


def test_shift_detaches_blue_then_scales_it_to_zero_and_swaps_the_roles(fleet: Fleet) -> None:
    both = sorted([fleet.tg_web, fleet.tg_api])
    # When shifting: the first call detaches blue from both target groups
    first = shift(fleet)
    assert (first["done"], sorted(first["detached"]), first["oldGroup"]) == (False, both, "scale-to-zero")
    assert fleet.attached(SEED) == []
    assert fleet.attached(GREEN) == both
    assert fleet.sizes(SEED) == (1, 4, 2)  # still running while it drains
    # When called again once nothing is attached any more
    second = shift(fleet)
    # Then blue (the seed) is tagged as ours with its AMI, its capacity recorded, scaled to zero, retained
    assert (second["done"], second["detached"]) == (True, [])
    assert fleet.sizes(SEED) == (0, 0, 0)
    assert fleet.tags_of(SEED) == {
        tags.APPLICATION: APP,
        tags.TARGET: SEED,
        tags.IMAGE: AMI_OLD,
        tags.CAPACITY: "1/4/2",
        tags.ROLE: "retained",
        tags.ROLE_SINCE: "2026-11-22T10:00:00Z",
    }
    green = fleet.tags_of(GREEN)
    assert (green[tags.ROLE], green[tags.ROLE_SINCE]) == ("live", "2026-11-22T10:00:00Z")
    # And a further call changes nothing (the recorded capacity is not overwritten with zeros)
    assert shift(fleet)["done"] is True
    assert fleet.tags_of(SEED)[tags.CAPACITY] == "1/4/2"


def test_shift_pins_a_seed_on_default_to_the_version_it_ran_so_a_rollback_launches_the_old_ami(fleet: Fleet) -> None:
    # Given a seed on "$Default": the publish has just made version 2 (AMI_NEW) the default
    fleet.asg.delete_auto_scaling_group(AutoScalingGroupName=SEED, ForceDelete=True)
    fleet.create_group(SEED, version="$Default")
    # When the shift retires it (create_green_group found it ran version 1, AMI_OLD)
    shift(fleet)
    assert shift(fleet)["done"] is True
    # Then it is pinned to version 1 and tagged with AMI_OLD: scaled back up, it launches what it ran
    seed = fleet.describe(SEED)
    assert seed is not None
    assert seed["LaunchTemplate"]["Version"] == "1"
    assert fleet.tags_of(SEED)[tags.IMAGE] == AMI_OLD


def test_shift_with_keep_running_leaves_blue_running_outside_the_target_groups(fleet: Fleet) -> None:
    # Given oldGroup keep-running
    fleet.with_config(blueGreen={"oldGroup": "keep-running"})
    # When shifted to the end
    assert shift(fleet)["done"] is False
    output = shift(fleet)
    # Then blue keeps its capacity, is retained and serves nothing
    assert (output["done"], output["oldGroup"]) == (True, "keep-running")
    assert fleet.sizes(SEED) == (1, 4, 2)
    assert fleet.attached(SEED) == []
    assert tags.CAPACITY not in fleet.tags_of(SEED)
    assert fleet.tags_of(SEED)[tags.ROLE] == "retained"


def test_shift_waits_while_blues_target_groups_are_removing(fleet: Fleet) -> None:
    # Given blue's attachment still Removing (instances draining)
    groups = DrainingGroups(fleet.asg)
    # When shifting
    output = shift(fleet, groups=groups)
    # Then it is not done and blue is not retired yet
    assert (output["done"], output["detached"]) == (False, [])
    assert fleet.sizes(SEED) == (1, 4, 2)
    assert tags.ROLE not in fleet.tags_of(SEED)


def test_shift_dry_run_changes_nothing(fleet: Fleet) -> None:
    # When shifting in a dry run
    output = shift(fleet, dry_run=True)
    # Then it reports what it would detach, and is done without any change
    assert output["done"] is True
    assert sorted(output["detached"]) == sorted([fleet.tg_web, fleet.tg_api])
    assert fleet.attached(SEED) == sorted([fleet.tg_web, fleet.tg_api])
    assert fleet.sizes(SEED) == (1, 4, 2)
    assert fleet.tags_of(SEED) == {}
    assert fleet.tags_of(GREEN)[tags.ROLE] == "green"


def test_shift_never_detaches_blue_from_a_target_group_green_is_not_in(fleet: Fleet) -> None:
    # Given green lost its api attachment
    fleet.asg.detach_load_balancer_target_groups(AutoScalingGroupName=GREEN, TargetGroupARNs=[fleet.tg_api])
    # When / Then
    with pytest.raises(BlueGreenConflict, match="not attached to target group"):
        shift(fleet)
    assert fleet.attached(SEED) == sorted([fleet.tg_web, fleet.tg_api])


def test_shift_to_a_green_that_is_gone_leaves_blue_attached(fleet: Fleet) -> None:
    fleet.asg.delete_auto_scaling_group(AutoScalingGroupName=GREEN, ForceDelete=True)
    with pytest.raises(AutoScalingGroupNotFound, match=GREEN):
        shift(fleet)
    assert fleet.attached(SEED) == sorted([fleet.tg_web, fleet.tg_api])


def test_shift_when_blue_already_runs_the_ami_changes_nothing(fleet: Fleet) -> None:
    # When the green payload says blue was already live on the AMI
    output = shift(fleet, already_live=True, green_group_name=SEED)
    # Then
    assert (output["done"], output["detached"]) == (True, [])
    assert fleet.attached(SEED) == sorted([fleet.tg_web, fleet.tg_api])


def test_handler_shifts_through_the_lambda_entry_point(
    fleet: Fleet, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the handler wired to moto
    handler = importlib.import_module("shift_traffic.handler")
    monkeypatch.setattr(handler, "CONFIG", fleet.config)
    monkeypatch.setattr(handler, "groups", lambda: fleet.groups)
    event = {
        "executionId": EXECUTION,
        "dryRun": False,
        "target": {"autoScalingGroupName": SEED, "launchTemplateId": fleet.template_id},
        "green": green_payload(fleet).model_dump(by_alias=True, mode="json"),
    }
    # When the state machine calls it until done
    results = [handler.lambda_handler(event, lambda_context) for _ in range(2)]
    # Then the first call detaches, the second retires blue
    assert [r["done"] for r in results] == [False, True]
    assert results[1] == {
        "done": True,
        "blueGroupName": SEED,
        "greenGroupName": GREEN,
        "oldGroup": "scale-to-zero",
        "detached": [],
    }
    assert fleet.tags_of(GREEN)[tags.ROLE] == "live"
