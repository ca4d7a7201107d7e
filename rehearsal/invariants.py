"""What changed, read back from the emulated account after a run, and the invariants every scenario keeps."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rehearsal.clock import Event, SimClock
from rehearsal.fleet import groups_of
from rehearsal.result import Result
from rehearsal.timeline import build as build_timeline
from shared import tags

# The invariants, by the name the report prints when they hold (Result.invariants: name → violations found).
DEFAULTS = "every launch template default points to an existing AMI"
VERSIONS = "no kept launch template version references a deleted AMI"
INSTANCES = "no running instance runs a deleted AMI"
OUTCOME = "the execution ended by itself, released its locks and sent one outcome notification matching its status"
OTHERS_OUTCOME = "so did every other execution the scenario started"
BLUE_GREEN = "blue-green: one healthy group serves each target group, no green left, retention kept"
BAKES = "every AMI baked is tagged with the commit it checked out and the base it was built on"
BOUNDS = "every bounded wait ended within its bound; no step acted on a target after its lock expired"
QUOTAS = "history events and payloads within the Step Functions quotas"
TOKENS = "no notification carries a task token"
IAM = "no call the deployed roles would deny (beyond the scenario's expected denials)"
HARNESS = "the scenario's script ran as written (alsoStart, stopWhen)"

TERMINAL_EVENTS = {"DeploymentSucceeded", "DeploymentFailed", "DeploymentRejected", "Superseded"}
# How a SUCCEEDED execution may end: deployed, or superseded in the queue by a newer push (lambdas/lock).
SUCCESS_EVENTS = {"DeploymentSucceeded", "Superseded"}
# The tags check_image_build puts on every AMI it made, as the functions name them.
COMMIT_TAG, BASE_IMAGE_TAG = tags.COMMIT, tags.BASE_IMAGE


def history_of(sfn: Any, execution: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def collect(
    scenario: dict[str, Any],
    world: Any,
    emulated: Any,
    dispatcher: Any,
    clock: SimClock,
    description: dict[str, Any],
    notifications: list[dict[str, Any]],
    history: list[dict[str, Any]],
    events: list[Event],
    initial_images: set[str],
    wall_start: float,
    execution: str,
    also: list[dict[str, Any]] | None = None,
) -> Result:
    """`also`: the executions the scenario started beside the first (`alsoStart`), each {"execution" (its ARN),
    "description", "history", "startedAtSeconds", "when"}; each is held to the same outcome invariants."""
    import boto3

    ec2 = boto3.client("ec2")
    image_tags = {
        i["ImageId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        for page in ec2.get_paginator("describe_images").paginate(Owners=["self"])
        for i in page["Images"]
    }
    remaining = set(image_tags)
    launch_templates = {}
    for group, template_id in world.templates.items():
        default = ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=["$Default"])[
            "LaunchTemplateVersions"
        ][0]
        ami_id = default["LaunchTemplateData"].get("ImageId")
        launch_templates[template_id] = {
            "group": group,
            "defaultVersion": default["VersionNumber"],
            "amiId": ami_id,
            # what that AMI says it is: the commit it runs and the base image it was built on (None: no such tag)
            "commit": image_tags.get(ami_id, {}).get(COMMIT_TAG),
            "baseImage": image_tags.get(ami_id, {}).get(BASE_IMAGE_TAG),
        }
    items = boto3.client("dynamodb").scan(TableName=world.lock_table)["Items"]
    also = list(also or [])
    ours = {execution, *(a["execution"] for a in also)}
    held = [i["target"]["S"] for i in items if i.get("holder", {}).get("S") == execution]
    others = [i["target"]["S"] for i in items if i.get("holder", {}).get("S") not in ours]
    by_execution = {a["execution"]: [n for n in notifications if n.get("executionId") == a["execution"]] for a in also}
    notifications = [n for n in notifications if n.get("executionId") not in by_execution]

    checks: dict[str, list[str]] = {name: [] for name in (DEFAULTS, VERSIONS, INSTANCES, OUTCOME)}
    for template_id, lt in launch_templates.items():
        if lt["amiId"] not in remaining:
            checks[DEFAULTS].append(
                f"{template_id} default version {lt['defaultVersion']} points to missing AMI {lt['amiId']}"
            )
    for template_id, versions in emulated.kept_versions().items():
        for number, image_id in versions:
            if image_id and image_id not in remaining and image_id in initial_images | set(emulated_amis(emulated)):
                checks[VERSIONS].append(f"{template_id} version {number} references deleted AMI {image_id}")
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            if (
                instance["State"]["Name"] != "terminated"
                and instance["ImageId"] not in remaining
                and instance["ImageId"] in initial_images
            ):
                checks[INSTANCES].append(f"instance {instance['InstanceId']} runs deleted AMI {instance['ImageId']}")
    stopped = bool(scenario.get("stopWhen"))
    checks[OUTCOME].extend(outcome_violations(description, notifications, held, stopped))
    if also:
        checks[OTHERS_OUTCOME] = []
    also_started = []
    for other in also:
        name = other["execution"].rsplit(":", 1)[-1]
        mine = by_execution[other["execution"]]
        locked = [i["target"]["S"] for i in items if i.get("holder", {}).get("S") == other["execution"]]
        checks[OTHERS_OUTCOME].extend(f"{name}: {v}" for v in outcome_violations(other["description"], mine, locked))
        also_started.append(
            {
                "execution": name,
                "when": other["when"],
                "startedAtSeconds": other["startedAtSeconds"],
                "status": other["description"]["status"],
                "error": other["description"].get("error"),
                "cause": other["description"].get("cause"),
                "historyEvents": len(other["history"]),
                "lock": "held" if locked else "released",
                "notifications": _notifications(mine),
                "statesEntered": sorted(
                    {
                        e["stateEnteredEventDetails"]["name"]
                        for e in other["history"]
                        if e["type"].endswith("StateEntered")
                    }
                ),
            }
        )
    groups = groups_of(world.target_groups)
    if world.target_groups:
        checks[BLUE_GREEN] = _blue_green_violations(world, groups, emulated)
    checks[BAKES] = bake_violations(emulated.builds.values(), emulated.baked_commits, image_tags)

    timeline = build_timeline(history, events, clock, also)
    return Result(
        scenario=scenario["name"],
        status=description["status"],
        error=description.get("error"),
        cause=description.get("cause"),
        transitions=sum(1 for e in history if e["type"].endswith("StateEntered")),
        history_events=len(history),
        lambda_invocations=sum(dispatcher.invocations.values()),
        api_calls=dict(sorted(emulated.api_calls.items())),
        launch_templates=launch_templates,
        images_kept=sorted(i for i in remaining if i in initial_images or i in emulated_amis(emulated)),
        images_pruned=sorted(i for i in initial_images | set(emulated_amis(emulated)) if i not in remaining),
        snapshots_deleted=sorted(emulated.snapshots_deleted),
        lock="held" if held else "released",
        notifications=_notifications(notifications),
        invariant_violations=[v for found in checks.values() for v in found],
        invariants={name: len(found) for name, found in checks.items()},
        simulated_seconds=clock.now(),
        wall_seconds=time.time() - wall_start,
        timeline=timeline,
        invocations=dict(dispatcher.invocations),
        builds=[b.pipeline for b in emulated.builds.values()],
        world_images={"app": list(world.app_images), "base": list(world.base_images)},
        other_locks=others,
        lags=sorted(emulated.lags.values()),
        groups=groups,
        groups_deleted=sorted(n for n in world.initial_groups if n not in groups),
        refreshed_groups=sorted({r.group for r in emulated.refreshes.values()}),
        fleet=_fleet(),
        bakes=emulated.bakes(),
        also_started=also_started,
    )


def _notifications(notifications: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"event": n.get("event"), **({"error": n["error"].get("Error")} if isinstance(n.get("error"), dict) else {})}
        for n in notifications
    ]


def outcome_violations(
    description: dict[str, Any], notifications: list[dict[str, Any]], held: list[str], stopped: bool = False
) -> list[str]:
    """One execution's end: it released its locks, ended by itself (unless the scenario stopped it: `stopped`),
    and sent exactly one outcome notification that matches its status (for a stopped one, finish_execution's)."""
    violations = []
    if held:
        violations.append(f"lock still held on {held}")
    if description["status"] == "ABORTED" and not stopped:
        violations.append(f"the execution did not end by itself: {description.get('cause')}")
    terminal = [n for n in notifications if n.get("event") in TERMINAL_EVENTS]
    succeeded = description["status"] == "SUCCEEDED"
    if len(terminal) != 1:
        violations.append(f"expected exactly one outcome notification, got {[n.get('event') for n in terminal]}")
    elif (terminal[0]["event"] in SUCCESS_EVENTS) is not succeeded:
        violations.append(f"outcome notification {terminal[0]['event']} does not match status {description['status']}")
    return violations


def bake_violations(
    builds: Iterable[Any], baked_commits: dict[str, str | None], image_tags: dict[str, dict[str, str]]
) -> list[str]:
    """Every AMI a build of this run made, while it exists, says what it is: its commit tag is the commit its build
    checked out (none for a base image), and an app AMI's base-image tag is its recipe's parent.

    `builds` are the emulation's (rehearsal.emulated_builds.Build); `baked_commits` maps each AMI to the commit its
    build checked out; `image_tags` holds every AMI left in the account with its tags."""
    violations = []
    for build in builds:
        if build.ami_id is None or build.ami_id not in image_tags:
            continue  # no image, or no longer one: nothing left to mislabel
        labels = image_tags[build.ami_id]
        what = f"{build.ami_id} (image build {build.number}: {build.describe()})"
        checked_out = baked_commits.get(build.ami_id)
        tagged = labels.get(COMMIT_TAG)
        if tagged != checked_out:
            says = f"is tagged {COMMIT_TAG}={tagged}" if tagged is not None else f"has no {COMMIT_TAG} tag"
            baked = f"checked out {checked_out}" if checked_out is not None else "checked out no commit"
            violations.append(f"{what} {baked} but {says}")
        if build.parent is not None and labels.get(BASE_IMAGE_TAG) != build.parent:
            violations.append(
                f"{what} was built on {build.parent} but is tagged {BASE_IMAGE_TAG}={labels.get(BASE_IMAGE_TAG)}"
            )
    return violations


def _blue_green_violations(world: Any, groups: dict[str, dict[str, Any]], emulated: Any) -> list[str]:
    """Per blue-green target: exactly one healthy group serves; no green is left; the seed group and every
    group still within retention exist; every group's launch template version (hence its AMI) still exists."""
    violations = []
    keep = int(world.config.get("retention", {}).get("keepGroups", 2))
    versions = emulated.kept_versions()
    for seed in world.target_groups:
        mine = {n: g for n, g in groups.items() if g["target"] == seed}
        serving = [n for n, g in mine.items() if g["inTargetGroup"]]
        if len(serving) != 1:
            violations.append(f"{seed}: its target group is served by {serving}, not by exactly one group")
        else:
            live = mine[serving[0]]
            if live["desired"] == 0 or live["healthyTargets"] < live["desired"]:
                violations.append(
                    f"{seed}: {serving[0]} serves with {live['healthyTargets']}/{live['desired']} healthy"
                )
            if not live["role"].startswith("live"):
                violations.append(f"{seed}: {serving[0]} serves but its role is {live['role']}")
        if seed not in groups:
            violations.append(f"{seed}: the seed group was deleted")
        violations.extend(f"{seed}: green group {n} was left behind" for n, g in mine.items() if g["role"] == "green")
        deleted = [n for n, g in world.initial_groups.items() if g["target"] == seed and n not in groups]
        retained = [n for n, g in mine.items() if g["role"] == "retained"]
        for name in deleted:
            if world.initial_groups[name]["role"] != "retained" or len(retained) < keep:
                violations.append(f"{seed}: {name} ({world.initial_groups[name]['role']}) was deleted within retention")
        template_id = world.templates[seed]
        numbers = {str(n) for n, _ in versions.get(template_id, [])}
        for name, group in mine.items():
            if group["launchTemplateVersion"] not in numbers:
                violations.append(f"{name} uses deleted version {group['launchTemplateVersion']} of {template_id}")
    return violations


def emulated_amis(emulated: Any) -> list[str]:
    return [b.ami_id for b in emulated.builds.values() if b.ami_id]


def _fleet() -> dict[str, str | None]:
    """Every Auto Scaling group in the emulated account at the end, with the launch template it uses."""
    import boto3

    pages = boto3.client("autoscaling").get_paginator("describe_auto_scaling_groups").paginate()
    return {
        g["AutoScalingGroupName"]: (g.get("LaunchTemplate") or {}).get("LaunchTemplateId")
        for page in pages
        for g in page["AutoScalingGroups"]
    }


def task_token_violations(published: list[str], issued: set[str]) -> list[str]:
    """No message the notification topic delivered holds a task token: every token Step Functions issued (the
    `taskToken` each waitForTaskToken task passed to register_wait) nor a `taskToken` field. A token in a mail
    lets whoever reads it, and may call SendTaskSuccess (granted on "*"), answer the task: approve a stage."""
    violations = []
    for body in published:
        if any(token and token in body for token in issued):
            violations.append(f"a notification carries a task token: {body[:200]}")
        elif '"taskToken"' in body:
            violations.append(f"a notification has a taskToken field: {body[:200]}")
    return violations
