"""One line a person can read for what each step did: the notes of the rehearsal's timeline.

Each line is read from the step's answer and, where the answer alone does not say it, from its request: what a
wait waits for (register_wait's `kind`), and whether the step ran as a dry run (`dryRun`: prune_images' answer lists
the images it *would* prune under the same keys as the ones it pruned). A dry run's line says what would happen,
never that it happened."""

from __future__ import annotations

from typing import Any

# What each kind of wait (register_wait's `kind`, or the lock's queue) waits for, in words.
WAIT_KINDS = {"image": "image build", "refresh": "instance refresh", "approval": "approval", "queue": "queue"}


def summarize(step: str, out: dict[str, Any], request: dict[str, Any] | None = None) -> str:
    """One line a person can read for what a step did; `request` is the payload the step was invoked with."""
    request = request or {}
    dry = bool(request.get("dryRun") or out.get("dryRun"))
    if step == "validate_request":
        req = out["request"]
        what = " ".join(str(w) for w in (req["action"], req.get("commit") or req.get("amiId")) if w)
        stages = ", ".join(s["name"] for s in out["stages"])
        return f"request: {what} → stages {stages}{' (dry run)' if req.get('dryRun') else ''}"
    if step == "lock":
        return _lock(out, dry)
    if step == "register_wait":
        return _wait(out, request)
    if step in _IMAGES:
        return _IMAGES[step](out, dry)
    if step in _ROLLING:
        return _ROLLING[step](out, dry)
    if step == "prune_images":
        pruned, snapshots, kept = (len(out[k]) for k in ("imagesPruned", "snapshotsDeleted", "imagesKept"))
        if dry:  # a dry run deletes nothing: the same keys list what it would delete
            return f"would prune {pruned} AMI(s), {snapshots} snapshot(s); would keep {kept}"
        return f"pruned {pruned} AMI(s), {snapshots} snapshot(s); kept {kept}"
    if step == "relay_event":
        return (
            f"event relayed: {out.get('kind')} {out.get('resourceId')} resumed the execution"
            if out.get("resumed")
            else (f"event not relayed: {out.get('reason')}")
        )
    return _summarize_blue_green(step, out, dry)


def _lock(out: dict[str, Any], dry: bool) -> str:
    targets = ", ".join(out.get("targets", []))
    holder = str(out.get("holder") or "").rsplit(":", 1)[-1]
    superseded = f"; superseded {', '.join(out['superseded'])}" if out.get("superseded") else ""
    if out.get("queued"):
        return f"queued behind {holder or 'another deployment'}: waiting in the queue for {targets}{superseded}"
    if out.get("acquired"):
        return f"{'would acquire the lock on' if dry else 'lock acquired on'} {targets}{superseded}"
    if out.get("released") or (dry and out.get("action") == "release"):
        return f"{'would release the lock on' if dry else 'lock released on'} {targets}"
    if holder:
        return f"lock held by {holder}, waiting (attempt {out.get('attempt')})"
    return ""


def _wait(out: dict[str, Any], request: dict[str, Any]) -> str:
    """What the task token waits for, from the request's `kind` (the answer does not say it)."""
    kind = str(request.get("kind") or out.get("kind") or "")
    if kind == "approval":
        stage = (request.get("approval") or {}).get("stage")
        return f"approval of stage {stage} requested: waiting for a person" if stage else "approval requested"
    what = WAIT_KINDS.get(kind, kind or "event")
    group = f" on {request['autoScalingGroupName']}" if request.get("autoScalingGroupName") else ""
    if out.get("alreadyDone"):
        return f"the {what}{group} had already ended ({out.get('status')}): no wait"
    return f"waiting for the {what}{group} to finish ({out.get('status') or 'status not known yet'})"


def _start_image_build(out: dict[str, Any], dry: bool) -> str:
    commit = f" for commit {out['commit']}" if out.get("commit") else ""
    if dry:
        return f"would start the {out['pipeline']} image build{commit}"
    return f"{out['pipeline']} image build requested{commit}"


def _check_image_build(out: dict[str, Any], dry: bool) -> str:
    if out.get("cancelled"):
        return f"image build {out['status']}; cancelled {', '.join(out['cancelled'])}"
    made = f" → {out['amiId']}" if out.get("amiId") else ""
    if out.get("baseUnchanged"):
        # rebuild-base: the new base installs exactly what the running one does, so nothing is rolled out
        return f"base image build {out['status']}{made}: base unchanged (same packages), nothing to roll out"
    return f"{out.get('pipeline', '')} image build {out['status']}{made}".strip()


_IMAGES = {"start_image_build": _start_image_build, "check_image_build": _check_image_build}


def _publish(out: dict[str, Any], dry: bool) -> str:
    if "restored" in out:
        return f"{out['launchTemplateId']}: {out['reason']}"
    if dry:
        version, now = out["version"], out["previousVersion"]
        return f"{out['launchTemplateId']}: would publish version {version} as the default (now {now})"
    pruned = f", pruned versions {out['prunedVersions']}" if out.get("prunedVersions") else ""
    return f"{out['launchTemplateId']}: version {out['version']} is the default (was {out['previousVersion']}){pruned}"


def _start_refresh(out: dict[str, Any], dry: bool) -> str:
    if dry:
        return f"{out['autoScalingGroupName']}: would start an instance refresh"
    adopted = " adopted" if out.get("adopted") else ""
    return f"{out['autoScalingGroupName']}: refresh {out.get('instanceRefreshId')}{adopted}"


def _check_refresh(out: dict[str, Any], dry: bool) -> str:
    return f"health: {out['verdict']} ({out['status']}, {out['percentageComplete']}%) {out.get('reason', '')}".rstrip()


def _rollback(out: dict[str, Any], dry: bool) -> str:
    return f"{out['autoScalingGroupName']}: {'would roll back' if dry else 'rollback'}: {'; '.join(out['actions'])}"


_ROLLING = {
    "publish_launch_template_version": _publish,
    "start_instance_refresh": _start_refresh,
    "check_refresh": _check_refresh,
    "rollback": _rollback,
}


def _summarize_blue_green(step: str, out: dict[str, Any], dry: bool) -> str:
    if step == "create_green_group":
        if out.get("alreadyLive"):
            return f"{out['blueGroupName']} already runs the image: nothing to do"
        size = f"{out['desiredCapacity']} instance(s)"
        if dry:
            return f"would create green {out['greenGroupName']} with {size} beside {out['blueGroupName']}"
        how = "brought back (retained)" if out.get("reused") else "created"
        return f"green {out['greenGroupName']} {how} with {size} beside {out['blueGroupName']}"
    if step == "check_green_group":
        healthy = f"{out.get('healthyTargets')}/{out.get('desired')} healthy"
        return f"green: {out['verdict']} ({healthy}) {out.get('reason', '')}".rstrip()
    if step == "shift_traffic":
        if dry:
            return f"would shift traffic from {out['blueGroupName']} to {out['greenGroupName']}"
        if not out.get("done"):
            return f"{out['blueGroupName']} leaving the target groups (draining)"
        return f"{out['greenGroupName']} is live; {out['blueGroupName']} retained ({out['oldGroup']})"
    if step == "discard_green":
        done = [k for k in ("greenDeleted", "greenRetained", "blueRestored") if out.get(k)]
        return f"green discarded: {', '.join(done) or 'nothing to undo'}; default version {out.get('defaultVersion')}"
    if step == "retire_groups":
        deleted = "would delete" if dry else "deleted"
        gone, kept = (", ".join(out.get(k) or []) or "none" for k in ("deleted", "kept"))
        return f"retention: {deleted} {gone}, kept {kept}"
    return ""


def event_kind(out: dict[str, Any]) -> str:
    """What a wait waits for, in words (register_wait's `kind`)."""
    return WAIT_KINDS.get(str(out.get("kind")), "event")
