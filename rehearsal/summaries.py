"""One line a person can read for what each step did: the notes of the rehearsal's timeline."""

from __future__ import annotations

from typing import Any


def summarize(step: str, out: dict[str, Any]) -> str:
    """One line a person can read for what a step did."""
    if step == "validate_request":
        req = out["request"]
        what = req.get("commit") or req.get("amiId") or ""
        stages = ", ".join(s["name"] for s in out["stages"])
        return f"request: {req['action']} {what} → stages {stages}{' (dry run)' if req.get('dryRun') else ''}"
    if step == "lock":
        if out.get("acquired"):
            return f"lock acquired on {', '.join(out['targets'])}"
        if out.get("released"):
            return f"lock released on {', '.join(out['targets'])}"
        if out.get("holder"):
            return f"lock held by {out['holder'].rsplit(':', 1)[-1]}, waiting (attempt {out.get('attempt')})"
        return ""
    if step == "publish_launch_template_version" and "restored" in out:
        return f"{out['launchTemplateId']}: {out['reason']}"
    if step == "publish_launch_template_version":
        pruned = f", pruned versions {out['prunedVersions']}" if out.get("prunedVersions") else ""
        return (
            f"{out['launchTemplateId']}: version {out['version']} is the default (was {out['previousVersion']}){pruned}"
        )
    if step == "start_instance_refresh":
        adopted = " adopted" if out.get("adopted") else ""
        return f"{out['autoScalingGroupName']}: refresh {out.get('instanceRefreshId')}{adopted}"
    if step == "check_refresh":
        return (
            f"health: {out['verdict']} ({out['status']}, {out['percentageComplete']}%) {out.get('reason', '')}".rstrip()
        )
    if step == "rollback":
        return f"{out['autoScalingGroupName']}: rollback: {'; '.join(out['actions'])}"
    if step == "prune_images":
        counts = [len(out[k]) for k in ("imagesPruned", "snapshotsDeleted", "imagesKept")]
        verb = "would prune" if out.get("dryRun") else "pruned"  # a dry run deletes nothing: say what it would
        return "{} {} AMI(s), {} snapshot(s); kept {}".format(verb, *counts)
    if step == "check_image_build":
        return f"image build {out['status']}{' → ' + out['amiId'] if out.get('amiId') else ''}"
    if step == "register_wait":
        if out.get("kind") == "approval":
            return "approval requested: waiting for an answer"
        return f"waiting for the {event_kind(out)} to finish" if not out.get("alreadyDone") else ""
    if step == "relay_event":
        return (
            f"event relayed: {out.get('kind')} {out.get('resourceId')} resumed the execution"
            if out.get("resumed")
            else (f"event not relayed: {out.get('reason')}")
        )
    if step == "start_image_build":
        return f"{out['pipeline']} image build requested" + (
            f" for commit {out['commit']}" if out.get("commit") else ""
        )
    return _summarize_blue_green(step, out)


def _summarize_blue_green(step: str, out: dict[str, Any]) -> str:
    if step == "create_green_group":
        if out.get("alreadyLive"):
            return f"{out['blueGroupName']} already runs the image: nothing to do"
        how = "brought back (retained)" if out.get("reused") else "created"
        size = f"{out['desiredCapacity']} instance(s)"
        return f"green {out['greenGroupName']} {how} with {size} beside {out['blueGroupName']}"
    if step == "check_green_group":
        healthy = f"{out.get('healthyTargets')}/{out.get('desired')} healthy"
        return f"green: {out['verdict']} ({healthy}) {out.get('reason', '')}".rstrip()
    if step == "shift_traffic":
        if not out.get("done"):
            return f"{out['blueGroupName']} leaving the target groups (draining)"
        return f"{out['greenGroupName']} is live; {out['blueGroupName']} retained ({out['oldGroup']})"
    if step == "discard_green":
        done = [k for k in ("greenDeleted", "greenRetained", "blueRestored") if out.get(k)]
        return f"green discarded: {', '.join(done) or 'nothing to undo'}; default version {out.get('defaultVersion')}"
    if step == "retire_groups":
        return f"retention: deleted {out.get('deleted') or 'none'}, kept {out.get('kept') or 'none'}"
    return ""


def event_kind(out: dict[str, Any]) -> str:
    return {"image": "image build", "approval": "approval"}.get(str(out.get("kind")), "refresh")
