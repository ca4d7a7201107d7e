"""create_green_group: a copy of blue on the new version, the rollback fast path, idempotent retries, conflicts."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from create_green_group import logic
from create_green_group.models import CreateGreenGroupInput
from moto import mock_aws

from shared import tags
from shared.aws.groups import BlueGreenGroups, Capacity, GroupDetails, Tag
from shared.blue_green import green_group_name
from shared.config import Target
from shared.errors import AutoScalingGroupNotFound, BlueGreenConflict, InvalidInput
from tests.unit.blue_green_fleet import (
    AMI_NEW,
    AMI_OLD,
    APP,
    EXECUTION,
    GREEN,
    NOW,
    OTHER_EXECUTION,
    SEED,
    Fleet,
    blue_green_config,
    build_fleet,
)


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    with mock_aws():
        yield build_fleet()


class AwsLikeGroups(BlueGreenGroups):
    """moto's CreateAutoScalingGroup silently replaces a group of the same name; AWS answers AlreadyExists."""

    def create_copy(self, source: GroupDetails, *, name: str, **kwargs: Any) -> bool:
        if self.describe(name) is not None:
            return False
        return super().create_copy(source, name=name, **kwargs)


def create_request(fleet: Fleet, *, ami: str = AMI_NEW, dry_run: bool = False) -> CreateGreenGroupInput:
    return CreateGreenGroupInput(
        execution_id=EXECUTION,
        dry_run=dry_run,
        target=fleet.target,
        ami_id=ami,
        launch_template_version=2,
        previous_version=1,
    )


def create(fleet: Fleet, *, ami: str = AMI_NEW, dry_run: bool = False) -> dict[str, Any]:
    output = logic.run(
        create_request(fleet, ami=ami, dry_run=dry_run),
        fleet.config,
        groups=fleet.groups,
        templates=fleet.templates,
        now=NOW,
    )
    return output.model_dump(by_alias=True, mode="json")


@pytest.mark.parametrize("version", ["$Default", "$Latest"])
def test_a_seed_on_a_moving_version_counts_as_running_what_it_ran_before_the_publish(
    fleet: Fleet, version: str
) -> None:
    # Given a seed on "$Default"/"$Latest", and the publish made version 2 (AMI_NEW) the default and latest
    fleet.create_group(SEED, version=version)
    fleet.ec2.modify_launch_template(LaunchTemplateId=fleet.template_id, DefaultVersion="2")
    # When green is created for AMI_NEW
    output = create(fleet)
    # Then blue is not taken for already running AMI_NEW: green is created, and blue's version and AMI are known
    assert output["alreadyLive"] is False
    assert output["greenGroupName"] == GREEN
    assert (output["blueLaunchTemplateVersion"], output["blueImageId"]) == (1, AMI_OLD)


def test_a_live_group_served_by_a_classic_load_balancer_is_refused(fleet: Fleet) -> None:
    # Given a seed that also serves through a Classic Load Balancer (blue-green moves target groups only)
    fleet.create_group(SEED)
    details = fleet.groups.describe(SEED)
    assert details is not None
    served_elsewhere = GroupDetails(**{**details.__dict__, "description": {"LoadBalancerNames": ["web-classic"]}})
    # When / Then: refused before anything is created
    with pytest.raises(BlueGreenConflict, match="web-classic"):
        logic.require_shiftable(served_elsewhere)
    assert fleet.names() == [SEED]


def test_a_live_group_in_no_target_group_is_refused(fleet: Fleet) -> None:
    fleet.create_group(SEED, target_groups=[])

    with pytest.raises(BlueGreenConflict, match="in no target group"):
        create(fleet)
    assert fleet.names() == [SEED]


def test_a_green_of_an_earlier_execution_still_in_the_target_groups_stops_the_deployment(fleet: Fleet) -> None:
    # Given the seed and a green left by another execution, still attached to the target groups
    fleet.create_group(SEED)
    fleet.create_ours(
        f"{SEED}-old-run", "green", since="2026-11-21T09:00:00Z", image=AMI_NEW, execution=OTHER_EXECUTION, version="2"
    )
    # When / Then: no second green joins the target groups
    with pytest.raises(BlueGreenConflict, match="still in the target groups"):
        create(fleet)
    assert GREEN not in fleet.names()


def test_green_copies_blues_settings_sizes_target_groups_and_tags_on_the_new_version(fleet: Fleet) -> None:
    # Given the untagged seed group, on version 1, with its own settings and tags
    fleet.create_group(
        SEED,
        sizes=(2, 6, 3),
        group_tags={"team": "web"},
        HealthCheckType="ELB",
        HealthCheckGracePeriod=120,
        DefaultCooldown=60,
        TerminationPolicies=["OldestInstance"],
        CapacityRebalance=True,
        NewInstancesProtectedFromScaleIn=True,
    )
    fleet.asg.create_or_update_tags(
        Tags=[
            {
                "ResourceId": SEED,
                "ResourceType": "auto-scaling-group",
                "Key": "cost",
                "Value": "1",
                "PropagateAtLaunch": True,
            }
        ]
    )
    # When green is created for the AMI of version 2
    output = create(fleet)
    # Then a group named after the execution runs version 2 with blue's sizes, target groups and settings
    assert output == {
        "blueGroupName": SEED,
        "greenGroupName": GREEN,
        "reused": False,
        "alreadyLive": False,
        "desiredCapacity": 3,
        "targetGroupArns": [fleet.tg_web, fleet.tg_api],
        "createdAt": "2026-11-22T10:00:00Z",
        "dryRun": False,
        "blueLaunchTemplateVersion": 1,
        "blueImageId": AMI_OLD,
    }
    green = fleet.describe(GREEN)
    assert green is not None
    assert green["LaunchTemplate"]["LaunchTemplateId"] == fleet.target.launch_template_id
    assert green["LaunchTemplate"]["Version"] == "2"
    assert fleet.sizes(GREEN) == (2, 6, 3)
    assert sorted(green["TargetGroupARNs"]) == sorted([fleet.tg_web, fleet.tg_api])
    assert green["VPCZoneIdentifier"] == fleet.subnet
    assert (green["HealthCheckType"], green["HealthCheckGracePeriod"], green["DefaultCooldown"]) == ("ELB", 120, 60)
    assert green["TerminationPolicies"] == ["OldestInstance"]
    assert (green["CapacityRebalance"], green["NewInstancesProtectedFromScaleIn"]) == (True, True)
    # And blue's tags keep their PropagateAtLaunch; ours are not propagated
    propagate = {t["Key"]: (t["Value"], t["PropagateAtLaunch"]) for t in green["Tags"]}
    assert propagate == {
        "team": ("web", False),
        "cost": ("1", True),
        tags.APPLICATION: (APP, False),
        tags.TARGET: (SEED, False),
        tags.EXECUTION: (EXECUTION, False),
        tags.IMAGE: (AMI_NEW, False),
        tags.ROLE: ("green", False),
        tags.ROLE_SINCE: ("2026-11-22T10:00:00Z", False),
    }
    # And blue is untouched
    assert fleet.tags_of(SEED) == {"team": "web", "cost": "1"}


def test_green_tags_leave_out_aws_and_our_own_keys_of_blue() -> None:
    # Given blue carrying an aws: tag and our tags from an earlier deployment
    blue = GroupDetails(
        name="web-app-test-run-1",
        capacity=Capacity(1, 2, 1),
        target_group_arns=(),
        instances=(),
        tags=(
            Tag("aws:cloudformation:stack-name", "fleet", True),
            Tag(tags.ROLE, "live"),
            Tag(tags.EXECUTION, OTHER_EXECUTION),
            Tag("Name", "web", True),
        ),
        launch_template_id=None,
        launch_template_version=None,
        created_time=None,
        deleting=False,
    )
    request = CreateGreenGroupInput(
        execution_id=EXECUTION,
        target=Target(auto_scaling_group_name=SEED, launch_template_id="lt-0aaaaaaaaaaaaaaa1"),
        ami_id=AMI_NEW,
        launch_template_version=2,
    )
    config = blue_green_config("lt-0aaaaaaaaaaaaaaa1")
    # When green's tags are made
    made = logic.green_tags(blue, request, config, NOW)
    # Then only blue's own tags are copied, and ours are this execution's
    assert [t for t in made if not t.key.startswith("immutable-ami:")] == [Tag("Name", "web", True)]
    assert {t.key: t.value for t in made}[tags.EXECUTION] == EXECUTION


def test_green_copies_a_mixed_instances_policy_on_the_new_version(fleet: Fleet) -> None:
    # Given a seed group with a mixed instances policy on version 1
    fleet.asg.create_auto_scaling_group(
        AutoScalingGroupName=SEED,
        MinSize=1,
        MaxSize=2,
        DesiredCapacity=1,
        VPCZoneIdentifier=fleet.subnet,
        TargetGroupARNs=[fleet.tg_web],
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": fleet.template_id, "Version": "1"},
                "Overrides": [{"InstanceType": "t3.small"}, {"InstanceType": "t3.medium"}],
            }
        },
    )
    # When green is created
    create(fleet)
    # Then green's policy names version 2 of the template and keeps the overrides
    policy = fleet.describe(GREEN)["MixedInstancesPolicy"]  # type: ignore[index]
    assert policy["LaunchTemplate"]["LaunchTemplateSpecification"]["LaunchTemplateId"] == fleet.template_id
    assert policy["LaunchTemplate"]["LaunchTemplateSpecification"]["Version"] == "2"
    assert [o["InstanceType"] for o in policy["LaunchTemplate"]["Overrides"]] == ["t3.small", "t3.medium"]


def test_create_reuses_the_newest_retained_group_that_runs_the_ami(fleet: Fleet) -> None:
    # Given a live group on AMI_OLD and two parked retained groups on AMI_NEW, plus one on another AMI
    fleet.create_ours("web-app-test-live", "live", since="2026-11-20T10:00:00Z", version="1", sizes=(1, 4, 2))
    fleet.create_ours(
        "web-app-test-older",
        "retained",
        since="2026-11-01T10:00:00Z",
        image=AMI_NEW,
        version="2",
        sizes=(0, 0, 0),
        target_groups=[],
        extra_tags={tags.CAPACITY: "1/3/1"},
    )
    fleet.create_ours(
        "web-app-test-newer",
        "retained",
        since="2026-11-10T10:00:00Z",
        image=AMI_NEW,
        version="2",
        sizes=(0, 0, 0),
        target_groups=[],
        extra_tags={tags.CAPACITY: "2/5/3"},
    )
    fleet.create_ours("web-app-test-other", "retained", since="2026-11-15T10:00:00Z", image="ami-0ccccccccccccccc3")
    before = fleet.names()
    # When green is brought up for AMI_NEW
    output = create(fleet)
    # Then the newest matching retained group is scaled back to its recorded capacity and attached to blue's
    # target groups, tagged green for this execution; nothing is created
    assert (output["greenGroupName"], output["reused"], output["desiredCapacity"]) == ("web-app-test-newer", True, 3)
    assert fleet.names() == before
    assert fleet.sizes("web-app-test-newer") == (2, 5, 3)
    assert fleet.attached("web-app-test-newer") == sorted([fleet.tg_web, fleet.tg_api])
    newer = fleet.tags_of("web-app-test-newer")
    assert (newer[tags.ROLE], newer[tags.EXECUTION], newer[tags.ROLE_SINCE]) == (
        "green",
        EXECUTION,
        "2026-11-22T10:00:00Z",
    )
    assert fleet.sizes("web-app-test-older") == (0, 0, 0)
    assert fleet.tags_of("web-app-test-older")[tags.ROLE] == "retained"
    # And a retry answers the same without changing anything more
    assert create(fleet) == output


def test_reused_group_without_a_capacity_tag_takes_blues_sizes(fleet: Fleet) -> None:
    # Given a parked retained group on AMI_NEW that lost its CAPACITY tag
    fleet.create_ours("web-app-test-live", "live", since="2026-11-20T10:00:00Z", sizes=(2, 8, 4))
    fleet.create_ours(
        "web-app-test-old",
        "retained",
        since="2026-11-10T10:00:00Z",
        image=AMI_NEW,
        version="2",
        sizes=(0, 0, 0),
        target_groups=[],
    )
    # When it is reused
    output = create(fleet)
    # Then it gets blue's current sizes
    assert output["reused"] is True
    assert fleet.sizes("web-app-test-old") == (2, 8, 4)


@pytest.mark.parametrize("tagged", [False, True], ids=["untagged-seed", "tagged-live-group"])
def test_create_with_blue_already_on_the_ami_changes_nothing(fleet: Fleet, tagged: bool) -> None:
    # Given the live group already runs AMI_NEW (the seed by its launch template version, or our IMAGE tag)
    if tagged:
        fleet.create_ours("web-app-test-live", "live", since="2026-11-20T10:00:00Z", image=AMI_NEW)
        blue = "web-app-test-live"
    else:
        fleet.create_group(SEED, version="2")
        blue = SEED
    tags_before = fleet.tags_of(blue)
    # When green is asked for AMI_NEW
    output = create(fleet)
    # Then nothing is created or changed, and the state machine is told
    assert output["alreadyLive"] is True
    assert (output["blueGroupName"], output["greenGroupName"], output["reused"]) == (blue, blue, False)
    assert fleet.names() == [blue]
    assert fleet.tags_of(blue) == tags_before


def test_create_is_idempotent_when_the_step_is_retried(fleet: Fleet) -> None:
    # Given the seed, and a first attempt that created green
    fleet.create_group(SEED)
    first = create(fleet)
    # When the step runs again (a retry after a timeout)
    second = logic.run(
        create_request(fleet), fleet.config, groups=AwsLikeGroups(fleet.asg), templates=fleet.templates, now=NOW
    )
    # Then it adopts its own green and answers the same
    assert second.model_dump(by_alias=True, mode="json") == first
    assert fleet.names() == sorted([SEED, GREEN])


def test_create_adopts_its_green_when_aws_answers_already_exists() -> None:
    # Given a listing that does not show green yet, and CreateAutoScalingGroup answering AlreadyExists
    with mock_aws():
        fleet = build_fleet()
        fleet.create_group(SEED)
        fleet.create_group(
            GREEN, version="2", group_tags={tags.EXECUTION: EXECUTION, tags.ROLE_SINCE: "2026-11-22T09:59:00Z"}
        )
        # When green is created
        output = logic.run(
            create_request(fleet), fleet.config, groups=AwsLikeGroups(fleet.asg), templates=fleet.templates, now=NOW
        )
    # Then the existing group of this execution is adopted, with its creation time
    assert (output.green_group_name, output.reused) == (GREEN, False)
    assert output.created_at.isoformat() == "2026-11-22T09:59:00+00:00"


def test_create_refuses_a_green_name_taken_by_another_execution(fleet: Fleet) -> None:
    # Given a group named like this execution's green that another execution created (not tagged for the target)
    fleet.create_group(SEED)
    fleet.create_group(GREEN, group_tags={tags.EXECUTION: OTHER_EXECUTION})
    # When / Then
    with pytest.raises(BlueGreenConflict, match="not created by this execution"):
        logic.run(
            create_request(fleet), fleet.config, groups=AwsLikeGroups(fleet.asg), templates=fleet.templates, now=NOW
        )


def test_two_live_groups_are_a_conflict_naming_both(fleet: Fleet) -> None:
    # Given two groups of the target tagged live
    fleet.create_ours("web-app-test-a", "live", since="2026-11-20T10:00:00Z")
    fleet.create_ours("web-app-test-b", "live", since="2026-11-21T10:00:00Z")
    # When / Then nothing is guessed
    with pytest.raises(BlueGreenConflict, match="web-app-test-a, web-app-test-b"):
        create(fleet)
    assert fleet.names() == ["web-app-test-a", "web-app-test-b"]


def test_a_tagged_live_group_wins_over_the_untagged_seed(fleet: Fleet) -> None:
    # Given the untagged seed (left after an outside change) and a group tagged live
    fleet.create_group(SEED)
    fleet.create_ours("web-app-test-live", "live", since="2026-11-20T10:00:00Z")
    # When green is created
    output = create(fleet)
    # Then blue is the tagged live group
    assert output["blueGroupName"] == "web-app-test-live"


def test_no_live_group_is_auto_scaling_group_not_found(fleet: Fleet) -> None:
    # Given only a retained group (the seed does not exist)
    fleet.create_ours("web-app-test-old", "retained", since="2026-11-20T10:00:00Z")
    # When / Then
    with pytest.raises(AutoScalingGroupNotFound, match="no live group"):
        create(fleet)


def test_dry_run_plans_green_and_changes_nothing(fleet: Fleet) -> None:
    # Given the seed
    fleet.create_group(SEED)
    # When created in a dry run
    output = create(fleet, dry_run=True)
    # Then green is named and sized, nothing exists
    assert (output["greenGroupName"], output["desiredCapacity"], output["dryRun"]) == (GREEN, 2, True)
    assert fleet.names() == [SEED]


def test_create_rejects_a_target_of_a_rolling_stage(fleet: Fleet) -> None:
    # Given the prod target, configured in a rolling stage
    prod = fleet.config.stages[1].targets[0]
    request = CreateGreenGroupInput(execution_id=EXECUTION, target=prod, ami_id=AMI_NEW, launch_template_version=2)
    # When / Then
    with pytest.raises(InvalidInput, match="not configured in a blue-green stage"):
        logic.run(request, fleet.config, groups=fleet.groups, templates=fleet.templates, now=NOW)


@pytest.mark.parametrize(
    ("execution", "expected"),
    [
        ("arn:aws:states:eu-west-1:1:execution:deploy:run_2.b", f"{SEED}-run2b"),
        ("arn:aws:states:eu-west-1:1:execution:deploy:" + "x" * 80, f"{SEED}-" + "x" * 80),
    ],
)
def test_green_name_is_the_execution_name_reduced_to_letters_digits_and_hyphens(execution: str, expected: str) -> None:
    assert green_group_name(SEED, execution) == expected


def test_green_name_is_cut_to_255_characters() -> None:
    configured = "g" * 250
    assert green_group_name(configured, EXECUTION) == f"{configured}-run-"
    assert len(green_group_name(configured, EXECUTION)) == 255


def test_handler_creates_green_through_the_lambda_entry_point(
    fleet: Fleet, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the seed group, and the handler wired to moto
    fleet.create_group(SEED)
    handler = importlib.import_module("create_green_group.handler")
    monkeypatch.setattr(handler, "CONFIG", fleet.config)
    monkeypatch.setattr(handler, "groups", lambda: fleet.groups)
    monkeypatch.setattr(handler, "launch_templates", lambda: fleet.templates)
    # When the handler runs on the state machine's payload
    result = handler.lambda_handler(
        {
            "executionId": EXECUTION,
            "dryRun": False,
            "target": {"autoScalingGroupName": SEED, "launchTemplateId": fleet.template_id},
            "amiId": AMI_NEW,
            "launchTemplateVersion": 2,
        },
        lambda_context,
    )
    # Then green exists and the payload is camelCase
    assert set(result) == {
        "blueGroupName",
        "greenGroupName",
        "reused",
        "alreadyLive",
        "desiredCapacity",
        "targetGroupArns",
        "createdAt",
        "dryRun",
        "blueLaunchTemplateVersion",
        "blueImageId",
    }
    assert result["greenGroupName"] == GREEN
    assert result["createdAt"].endswith("Z")
    assert fleet.names() == sorted([SEED, GREEN])


def test_handler_rejects_unknown_fields_as_invalid_input(lambda_context: Any) -> None:
    handler = importlib.import_module("create_green_group.handler")
    event: dict[str, Any] = {
        "executionId": EXECUTION,
        "target": {"autoScalingGroupName": SEED, "launchTemplateId": "lt-0aaaaaaaaaaaaaaa1"},
        "amiId": AMI_NEW,
        "launchTemplateVersion": 2,
        "colour": "green",
    }
    with pytest.raises(InvalidInput, match="colour: unknown field"):
        handler.lambda_handler(event, lambda_context)
