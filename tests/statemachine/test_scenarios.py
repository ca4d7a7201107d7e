"""Every scenario in statemachine/scenarios runs the real ASL with the real handlers against the
emulated account; its `expect` block and the invariants are checked after each one.

Invariants (every scenario): each launch template default points to an existing AMI; no AMI that a
kept launch template version or a running instance references was deleted; our lock is released;
exactly one outcome notification, matching the execution's status; no call any role would deny; every AMI a
build made is tagged with the commit the build checked out and, for an app AMI, with its recipe's parent as its
base image (a second execution, `alsoStart`, is held to the same lock and notification rules).
Blue-green targets: exactly one group, healthy, serves each target group; no green group is left; the
seed group and every group within retention still exist, each with its launch template version.

Each scenario runs on the configuration cdk.json names (config/example.jsonc), synthesized once and
cached; a scenario that needs a shape the configuration lacks runs on its declared overlay.
"""

from __future__ import annotations

from typing import Any

import pytest

from rehearsal.result import Result
from rehearsal.runner import run
from rehearsal.scenarios import load_scenario, scenario_names
from rehearsal.timing import STEP_SLACK_SECONDS

FLEET_CALLS = (
    "ec2.CreateLaunchTemplateVersion",
    "ec2.ModifyLaunchTemplate",
    "ec2.DeleteLaunchTemplateVersions",
    "ec2.DeregisterImage",
    "autoscaling.StartInstanceRefresh",
)
ALL_CHANGING_CALLS = (
    *FLEET_CALLS,
    "ec2.CreateTags",
    "ssm.PutParameter",
    "imagebuilder.StartImagePipelineExecution",
    "imagebuilder.CreateImageRecipe",
    "imagebuilder.CreateImage",
    "imagebuilder.CancelImageCreation",
)


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
    result = run(load_scenario(name))
    expect = result.expect

    # Then it ends as the scenario says
    assert result.invariant_violations == []
    assert result.status == expect["status"]
    assert result.error == expect.get("error")
    assert result.lock == "released"
    current_app = result.world_images["app"][-1] if result.world_images["app"] else None  # none on a fresh account
    defaults = {t["amiId"] for t in result.launch_templates.values()}
    if "defaultAmi" in expect:
        assert defaults == {resolve(expect["defaultAmi"], result)}
    for group, image in expect.get("defaultAmiOf", {}).items():  # one group's template, whatever the others did
        template = next(t for t in result.launch_templates.values() if t["group"] == group)
        assert template["amiId"] == resolve(image, result)
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
    if "unchangedStage" in expect:
        groups = {t["autoScalingGroupName"] for t in result.targets if t["stage"] == expect["unchangedStage"]}
        stage = [t for t in result.launch_templates.values() if t["group"] in groups]
        assert stage
        assert {t["amiId"] for t in stage} == {current_app}
    if expect.get("imagesPruned") == "beyond-retention":
        # every app image but the newest retention.keepImages (the new one among them) is pruned
        app_images = len(result.world_images["app"]) + (1 if expect.get("newImageDeployed") else 0)
        keep = int(result.config.get("retention", {}).get("keepImages", 5))
        assert len(result.images_pruned) == max(0, app_images - keep) > 0
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
    check_time(expect, result)
    check_blue_green(expect, result)
    check_bakes(expect, result)
    check_also_started(expect, result)


def check_time(expect: dict[str, Any], result: Result) -> None:
    """Every bounded wait ended within its bound plus one poll interval, and no step acted on a target whose lock
    had expired; `expect.boundReached` names waits that must have run to their bound."""
    margins = result.lock_margins
    if margins["samples"]:
        assert margins["minSeconds"] is not None
        assert margins["minSeconds"] > 0
    for entry in result.bounds:
        assert entry["elapsedSeconds"] <= entry["boundSeconds"] + entry["pollSeconds"] + STEP_SLACK_SECONDS, entry
    for wait in expect.get("boundReached", []):
        reached = [e for e in result.bounds if e["wait"] == wait and e["elapsedSeconds"] >= e["boundSeconds"]]
        assert reached, f"{wait} never ran to its bound: {result.bounds}"


def base_image(name: str, result: Result) -> str:
    """`"new-base"`: the base AMI this run baked (there must be exactly one); else an image name (`@base-image:-1`)."""
    if name != "new-base":
        return str(resolve(name, result))
    (base,) = [b["amiId"] for b in result.bakes if b["pipeline"] == "base"]
    assert base is not None
    return str(base)


def check_bakes(expect: dict[str, Any], result: Result) -> None:
    """What was baked and what each target runs at the end: `appParent` (every app bake's recipe parent),
    `targetCommits` ({stage: commit}: every target of the stage runs an AMI of that commit), `targetsOnBase` (every
    target's AMI was built on that base), `cancelledBuilds` (builds CancelImageCreation stopped), `statesEntered`
    (states the first execution went through), `bakesOverlap` (every app bake started before any was seen ended)."""
    app_bakes = [b for b in result.bakes if b["pipeline"] == "app"]
    if "appParent" in expect:
        assert app_bakes
        assert {b["parentImage"] for b in app_bakes} == {base_image(expect["appParent"], result)}
    by_group = {t["group"]: t for t in result.launch_templates.values()}
    for stage, commit in expect.get("targetCommits", {}).items():
        groups = [t["autoScalingGroupName"] for t in result.targets if t["stage"] == stage]
        assert groups, f"no target in stage {stage}"
        assert {g: by_group[g]["commit"] for g in groups} == dict.fromkeys(groups, commit)
    if "targetsOnBase" in expect:
        base = base_image(expect["targetsOnBase"], result)
        assert {g: t["baseImage"] for g, t in by_group.items()} == dict.fromkeys(by_group, base)
    if "cancelledBuilds" in expect:
        assert sum(1 for b in result.bakes if b["cancelled"]) == expect["cancelledBuilds"]
    entered = {state for _, state, _, _ in result.timeline}
    for state in expect.get("statesEntered", []):
        assert state in entered, f"the execution never entered {state}"
    if expect.get("bakesOverlap"):
        assert len(app_bakes) >= 2
        ends = [b["seenEndedAtSeconds"] for b in app_bakes]
        assert None not in ends
        assert max(b["startedAtSeconds"] for b in app_bakes) < min(ends), app_bakes


def check_also_started(expect: dict[str, Any], result: Result) -> None:
    """A scenario that starts more executions (`alsoStart`, one or a list) says how each ends (`expect.alsoStarted`,
    one or a list in the same order): status, error, states it went through, its notifications' events. Their
    locks and outcome notifications are held to the invariants like the first's."""
    if "alsoStarted" not in expect:
        assert result.also_started == []
        return
    wanted = expect["alsoStarted"] if isinstance(expect["alsoStarted"], list) else [expect["alsoStarted"]]
    assert len(result.also_started) == len(wanted)
    for other, want in zip(result.also_started, wanted, strict=True):
        assert other["status"] == want["status"], other
        assert other["error"] == want.get("error"), other
        for state in want.get("statesEntered", []):
            assert state in other["statesEntered"], f"{other['execution']} never entered {state}"
        events = [n["event"] for n in other["notifications"]]
        for event in want.get("notifications", []):
            assert event in events, f"{other['execution']} sent {events}, not {event}"


def check_blue_green(expect: dict[str, Any], result: Result) -> None:
    """Blue-green expectations speak of one target (`expect.target`, its seed group) and its groups."""
    groups = {
        n: g for n, g in result.groups.items() if g["target"] == expect.get("target", expect.get("blueUntouched"))
    }
    live = [name for name, g in groups.items() if g["inTargetGroup"]]
    if "liveImage" in expect:
        (name,) = live
        image = groups[name]["image"]
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
        retained = sorted(n for n, g in groups.items() if g["role"] == "retained")
        assert retained == sorted(expect["retainedGroups"])
        assert all(groups[n]["instances"] == 0 and not groups[n]["inTargetGroup"] for n in retained)
    if "groupsDeleted" in expect:
        seed = expect["target"]
        deleted = [n for n in result.groups_deleted if n == seed or n.startswith(f"{seed}-")]
        assert deleted == sorted(expect["groupsDeleted"])
    if expect.get("noRefresh"):
        assert not [g for g in result.refreshed_groups if g in {n for n, g in groups.items()}]
        assert expect["target"] not in result.refreshed_groups
    if "blueUntouched" in expect:
        # the group that served before still serves, alone, at full size, and no group was left or changed
        seed = expect["blueUntouched"]
        assert live == [seed]
        assert groups[seed]["healthyTargets"] == groups[seed]["desired"] == 2
        assert sorted(groups) == [seed]


def test_default_rehearsal_reports_every_field_the_cli_promises() -> None:
    result = run(load_scenario("deploy-two-stages-with-approval")).to_json()
    rolling = [t for t in result["targets"] if t["strategy"] == "rolling"]

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
        "targets",
        "accessDenied",
        "bounds",
        "lockMargins",
    ):
        assert key in result
    assert result["status"] == "SUCCEEDED"
    assert result["apiCalls"]["autoscaling.StartInstanceRefresh"] == len(rolling)
    assert result["accessDenied"] == []
    assert len(result["snapshotsDeleted"]) == len(result["imagesPruned"]) > 0
