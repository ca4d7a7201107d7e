"""Every scenario in statemachine/scenarios runs the real ASL with the real handlers against the
emulated account; its `expect` block and the invariants are checked after each one.

Invariants (every scenario): each launch template default points to an existing AMI; no AMI that a
kept launch template version or a running instance references was deleted; our lock is released;
exactly one outcome notification, matching the execution's status. Blue-green targets: exactly one
group, healthy, serves each target group; no green group is left; the seed group and every group
within retention still exist, each with its launch template version.
"""

from __future__ import annotations

from typing import Any

import pytest

from rehearsal.runner import Result, load_scenario, run, scenario_names

FLEET_CALLS = (
    "ec2.CreateLaunchTemplateVersion",
    "ec2.ModifyLaunchTemplate",
    "ec2.DeleteLaunchTemplateVersions",
    "ec2.DeregisterImage",
    "autoscaling.StartInstanceRefresh",
)
ALL_CHANGING_CALLS = (*FLEET_CALLS, "ec2.CreateTags", "ssm.PutParameter", "imagebuilder.StartImagePipelineExecution")


def resolve(value: Any, result: Result) -> Any:
    if isinstance(value, str) and value.startswith(("@app-image:", "@base-image:")):
        kind, index = value[1:].split(":")
        return result.world_images["app" if kind == "app-image" else "base"][int(index)]
    if isinstance(value, list):
        return [resolve(v, result) for v in value]
    return value


@pytest.mark.parametrize("name", scenario_names())
def test_scenario_ends_as_expected_with_every_invariant_intact(name: str) -> None:
    # Given the scenario's world and script / When the deployment runs
    scenario = load_scenario(name)
    expect = scenario["expect"]
    result = run(scenario)

    # Then it ends as the scenario says
    assert result.invariant_violations == []
    assert result.status == expect["status"]
    assert result.error == expect.get("error")
    assert result.lock == "released"
    current_app = result.world_images["app"][-1]
    defaults = {t["amiId"] for t in result.launch_templates.values()}
    if "defaultAmi" in expect:
        assert defaults == {resolve(expect["defaultAmi"], result)}
    if expect.get("newImageDeployed"):
        assert len(defaults) == 1
        assert defaults.isdisjoint(result.world_images["app"])
    if expect.get("unchanged"):
        assert defaults == {current_app}
        assert result.images_pruned == []
        assert not [call for call in FLEET_CALLS if result.api_calls.get(call)]
    if expect.get("noRollout"):
        assert not result.api_calls.get("autoscaling.StartInstanceRefresh")
        assert not result.api_calls.get("ec2.CreateLaunchTemplateVersion")
    if expect.get("nothingTouched"):
        assert not [call for call in ALL_CHANGING_CALLS if result.api_calls.get(call)]
    if expect.get("prodUnchanged"):
        prod = [t for t in result.launch_templates.values() if t["group"].startswith("web-app-prod")]
        assert prod
        assert {t["amiId"] for t in prod} == {current_app}
    if "imagesPruned" in expect:
        assert len(result.images_pruned) == expect["imagesPruned"]
    for image in resolve(expect.get("kept", []), result):
        assert image in result.images_kept
    if "notifications" in expect:
        assert [n["event"] for n in result.notifications] == expect["notifications"]
    if "builds" in expect:
        assert result.builds == expect["builds"]
    for group in expect.get("untouchedGroups", []):
        template = next(t for t in result.launch_templates.values() if t["group"] == group)
        assert template["amiId"] == current_app
        assert template["defaultVersion"] == 4
    if expect.get("foreignLockKept"):
        assert result.other_locks
    check_blue_green(expect, result)


def check_blue_green(expect: dict[str, Any], result: Result) -> None:
    live = [name for name, g in result.groups.items() if g["inTargetGroup"]]
    if "liveImage" in expect:
        (name,) = live
        image = result.groups[name]["image"]
        if expect["liveImage"] == "new":
            assert image is not None
            assert image not in result.world_images["app"]
        else:
            assert image == resolve(expect["liveImage"], result)
    if "liveGroup" in expect:
        assert live == [expect["liveGroup"]]
    if "liveGroupCreated" in expect:
        assert bool(result.api_calls.get("autoscaling.CreateAutoScalingGroup")) is expect["liveGroupCreated"]
    if "retainedGroups" in expect:
        retained = sorted(n for n, g in result.groups.items() if g["role"] == "retained")
        assert retained == expect["retainedGroups"]
        assert all(result.groups[n]["instances"] == 0 and not result.groups[n]["inTargetGroup"] for n in retained)
    if "groupsDeleted" in expect:
        assert result.groups_deleted == expect["groupsDeleted"]
    if expect.get("noRefresh"):
        assert not result.api_calls.get("autoscaling.StartInstanceRefresh")
    if expect.get("blueUntouched"):
        # the group that served before still serves, alone, at full size, and no group was left or changed
        assert live == ["web-app-prod"]
        assert result.groups["web-app-prod"]["healthyTargets"] == result.groups["web-app-prod"]["desired"] == 2
        assert sorted(result.groups) == ["web-app-prod"]


def test_default_rehearsal_reports_every_field_the_cli_promises() -> None:
    result = run(load_scenario("deploy-two-stages-with-approval")).to_json()

    for key in (
        "status",
        "error",
        "transitions",
        "historyEvents",
        "lambdaInvocations",
        "apiCalls",
        "launchTemplates",
        "imagesKept",
        "imagesPruned",
        "snapshotsDeleted",
        "lock",
        "notifications",
    ):
        assert key in result
    assert result["status"] == "SUCCEEDED"
    assert result["apiCalls"]["autoscaling.StartInstanceRefresh"] == 3
    assert len(result["snapshotsDeleted"]) == len(result["imagesPruned"]) > 0
